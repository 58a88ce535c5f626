"""Presentation of one run's results: the funnel (sent → delivered → opened by people →
clicked → joined or registered), unsubscribes and bounces, activity over time as inline SVG,
tables by library type and region with machine opens shown apart, and the per-recipient CSV.

Every number comes from mailer.events.stats (the same as `sdruk runs stats`), where their
meaning is defined; this module only lays them out."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape
from sqlmodel import Session

from mailer.csvfiles import MEDIA_TYPE, attachment_headers, csv_document
from mailer.events.stats import (
    Activity,
    RunNotFound,
    RunReport,
    RunStats,
    run_report,
    tracking_share,
)
from mailer.models import LIBRARY_TYPE_LABELS, Run
from mailer.settings import get_settings
from mailer.web.console.audit import audit
from mailer.web.console.auth import DB, Editor, Reader
from mailer.web.console.render import MESSAGE_STATUS_LABELS, fmt_dt, page
from mailer.web.console.routing import ConsoleRoute
from mailer.web.params import RowId

router = APIRouter(route_class=ConsoleRoute)
TYPE_LABELS = {t.value: label for t, label in LIBRARY_TYPE_LABELS.items()}


def funnel_rows(stats: RunStats) -> list[tuple[str, str, int, str, int]]:
    """The funnel as (step key, label, number, note, base of its share), in the order of
    stats.FUNNEL_STEPS. Joining is a share of the libraries reached; opened and clicked, of the
    messages sent individually tracked (only theirs can be known); the rest of messages sent."""
    n = stats.funnel
    tracked = stats.individual
    sent = max(1, stats.sent)
    rows = [
        ("sent", "Odesláno", n["sent"], "zpráv předaných poštovnímu serveru"),
        ("delivered", "Doručeno", n["delivered"], "bez vrácených zpráv (nedoručitelností)"),
        (
            "opened",
            "Otevřeno lidmi",
            n["opened"],
            "adresátů; i ti, kdo klikli nebo otevřeli webovou verzi; bez automatických otevření; "
            "podíl ze sledovaných zpráv"
            if tracked
            else "otevření (anonymní sledování)",
        ),
        (
            "clicked",
            "Kliknuto",
            n["clicked"],
            "adresátů; bez skenerů odkazů; podíl ze sledovaných zpráv"
            if tracked
            else "kliknutí (anonymní sledování)",
        ),
        (
            "joined",
            "Vstoupilo do SDRUK",
            n["joined"],
            f"knihoven z {stats.libraries} oslovených",
        ),
        ("registered", "Registrováno na akci", n["registered"], "adresátů"),
    ]
    bases = {"joined": max(1, stats.libraries)}
    if tracked:
        bases["opened"] = bases["clicked"] = max(1, stats.tracked_sent)
    # The funnel ends in the goal the campaign pursues: an invitation to an event is not
    # judged by joinings, nor a recruitment by registrations, unless it reached them anyway.
    pursued = {"recruitment": "joined", "event": "registered"}.get(stats.kind)
    return [
        (*row, bases.get(row[0], sent))
        for row in rows
        if row[0] not in ("joined", "registered") or pursued in (None, row[0]) or row[2]
    ]


SERIES = (
    ("sent", "odesláno", "#9aa5b1"),
    ("opened", "otevřeno lidmi", "#0b5c8c"),
    ("clicked", "kliknuto", "#1f7a3a"),
    ("unsubscribed", "odhlášeno", "#b42318"),
)


def chart_svg(activity: Activity, width: int = 900, height: int = 260) -> Markup:
    """Cumulative activity over time as an inline SVG line chart (no scripts, no libraries)."""
    if activity.empty:
        return Markup('<p class="muted">Zatím žádná aktivita.</p>')
    cumulative = {key: activity.cumulative(key) for key, _, _ in SERIES}
    last = len(next(iter(cumulative.values()))) - 1
    top = max(1, *(values[-1] for values in cumulative.values()))
    left, bottom, right, up = 56, 28, 12, 12
    plot_w, plot_h = width - left - right, height - bottom - up

    def xy(i: int, value: int) -> str:
        return f"{left + plot_w * i / last:.1f},{up + plot_h * (1 - value / top):.1f}"

    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="Průběh v čase" '
        'xmlns="http://www.w3.org/2000/svg" font-size="12" font-family="sans-serif">'
    ]
    for frac in (0, 0.25, 0.5, 0.75, 1):
        y = up + plot_h * (1 - frac)
        parts.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e7ec"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" fill="#5c6675">'
            f"{round(top * frac)}</text>"
        )
    for i in sorted({0, last // 3, 2 * last // 3, last}):
        tick = escape(fmt_dt(activity.at(i), "d. M. H:mm"))
        anchor = "start" if i == 0 else "end" if i == last else "middle"
        parts.append(
            f'<text x="{left + plot_w * i / last:.1f}" y="{height - 8}" text-anchor="{anchor}" '
            f'fill="#5c6675">{tick}</text>'
        )
    for key, label, colour in SERIES:
        values = cumulative[key]
        if not values[-1]:
            continue
        path = " ".join(xy(i, v) for i, v in enumerate(values))
        parts.append(
            f'<polyline data-series="{key}" fill="none" stroke="{colour}" stroke-width="2.5" '
            f'points="{path}"><title>{escape(label)}: {values[-1]}</title></polyline>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _report_or_404(session: Session, run_id: int) -> RunReport:
    try:
        return run_report(session, run_id)
    except RunNotFound:
        raise HTTPException(status_code=404, detail="Rozesílka neexistuje.") from None


@router.get("/runs/{run_id}/results", response_class=HTMLResponse)
def run_results(request: Request, run_id: RowId, staff: Reader, session: DB) -> HTMLResponse:
    report = _report_or_404(session, run_id)
    funnel = funnel_rows(report.stats)
    return page(
        request,
        "results.html",
        staff,
        run=session.get(Run, run_id),
        stats=report.stats,
        funnel=funnel,
        tracking_share=tracking_share(report.stats),
        chart=chart_svg(report.activity),
        series=SERIES,
    )


CSV_HEADER = [
    "e-mail",
    "knihovna",
    "typ knihovny",
    "kraj",
    "stav zprávy",
    "odesláno (místní čas)",
    "doručeno",
    "otevřeno",
    "kliknuto",
    "odhlášeno",
    "nedoručitelné",
    "stížnost na spam",
    "knihovna vstoupila",
    "registrace",
]


def _local_time(value: datetime | None) -> str:
    # "29.11.2026 14:30:05": what Czech Excel reads as a date and time, in local time.
    if value is None:
        return ""
    return value.astimezone(ZoneInfo(get_settings().timezone)).strftime("%d.%m.%Y %H:%M:%S")


def results_csv(report: RunReport) -> str:
    """One row per recipient; the "ano" of each column add up to the numbers on the page."""
    tracked = report.stats.individual
    yes = {True: "ano", False: "ne"}
    statuses = {k.value: v for k, v in MESSAGE_STATUS_LABELS.items()}
    rows = (
        [
            r.email,
            r.library,
            TYPE_LABELS.get(r.library_type, r.library_type),
            r.region,
            statuses.get(r.status, r.status),
            _local_time(r.sent_at),
            yes[r.delivered],
            # Anonymous tracking knows no recipient's opens or clicks, nor does a message that
            # went out untracked (its contact denied tracking): left empty, not "ne".
            yes[r.opened] if tracked and r.tracked else "",
            yes[r.clicked] if tracked and r.tracked else "",
            yes[r.unsubscribed],
            yes[r.bounced],
            yes[r.complained],
            yes[r.joined],
            yes[r.registered],
        ]
        for r in report.recipients
    )
    return csv_document(CSV_HEADER, rows)


@router.post("/runs/{run_id}/results.csv")
def run_results_csv(run_id: RowId, staff: Editor, session: DB) -> Response:
    report = _report_or_404(session, run_id)
    stats = report.stats
    body = results_csv(report)
    audit(
        session, staff.email, "export", f"{stats.campaign}/{stats.step}", run_id=run_id, kind="csv"
    )
    session.commit()
    name = f"vysledky-{stats.campaign}-{stats.step}.csv"
    return Response(body, media_type=MEDIA_TYPE, headers=attachment_headers(name))
