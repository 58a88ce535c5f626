"""Results of one run: the funnel (sent → delivered → opened by people → clicked → joined or
registered), unsubscribes and bounces, activity over time as inline SVG, a table by library
type and region, machine opens shown apart, and a per-recipient CSV export."""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from markupsafe import Markup, escape
from sqlmodel import Session, col

from mailer.models import (
    LIBRARY_TYPE_LABELS,
    Contact,
    Event,
    EventKind,
    Library,
    LibraryType,
    MessageStatus,
    OutboxMessage,
    Run,
)
from mailer.web.console.audit import audit
from mailer.web.console.auth import DB, Editor, Reader
from mailer.web.console.render import fmt_dt, page
from mailer.web.console.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)
BOUNCES = (EventKind.BOUNCE_HARD, EventKind.BOUNCE_SOFT)


@dataclass
class Recipient:
    outbox_id: int
    email: str
    status: str
    sent_at: datetime | None
    contact_id: int | None
    library_id: int | None
    library: str
    library_type: str
    region: str
    joined_at: datetime | None


@dataclass
class RunResults:
    """Everything the results page and the CSV need, computed once per request."""

    run: Run
    recipients: list[Recipient]
    opened: set[int] = field(default_factory=set)  # outbox ids, people only
    clicked: set[int] = field(default_factory=set)
    unsubscribed: set[int] = field(default_factory=set)  # contact ids
    bounced_hard: set[int] = field(default_factory=set)  # outbox ids
    bounced_soft: set[int] = field(default_factory=set)
    complained: set[int] = field(default_factory=set)
    registered: set[int] = field(default_factory=set)  # contact ids
    joined: set[int] = field(default_factory=set)  # library ids
    anonymous: Counter[str] = field(default_factory=Counter)  # human opens/clicks without ids
    machine: Counter[str] = field(default_factory=Counter)
    timeline: list[tuple[datetime, str]] = field(default_factory=list)

    @property
    def start(self) -> datetime:
        return self.run.started_at or self.run.created_at

    @property
    def sent(self) -> list[Recipient]:
        return [r for r in self.recipients if r.status == MessageStatus.SENT]

    @property
    def individual(self) -> bool:
        return (self.run.content or {}).get("tracking", "individual") == "individual"

    def funnel(self) -> list[tuple[str, int, str]]:
        sent = self.sent
        bounced = self.bounced_hard | self.bounced_soft
        delivered = [r for r in sent if r.outbox_id not in bounced]
        libraries = {r.library_id for r in sent if r.library_id}
        steps = [
            ("Odesláno", len(sent), "zpráv předaných poštovnímu serveru"),
            ("Doručeno", len(delivered), "bez vrácených zpráv (nedoručitelnosti)"),
        ]
        if self.individual:
            steps += [
                ("Otevřeno lidmi", len(self.opened), "adresátů; bez automatických otevření"),
                ("Kliknuto", len(self.clicked), "adresátů; bez skenerů odkazů"),
            ]
        else:
            steps += [
                ("Otevřeno lidmi", self.anonymous["open"], "otevření (anonymní sledování)"),
                ("Kliknuto", self.anonymous["click"], "kliknutí (anonymní sledování)"),
            ]
        steps += [
            (
                "Vstoupilo do SDRUK",
                len(self.joined & libraries),
                f"knihoven z {len(libraries)} oslovených",
            ),
            ("Registrováno na akci", len(self.registered), "kontaktů"),
        ]
        return steps


def _recipients(session: Session, run_id: int) -> list[Recipient]:
    rows = session.execute(
        sa.select(
            col(OutboxMessage.id),
            col(OutboxMessage.email),
            col(OutboxMessage.status),
            col(OutboxMessage.sent_at),
            col(OutboxMessage.contact_id),
            col(Library.id),
            col(Library.name),
            col(Library.library_type),
            col(Library.region),
            col(Library.joined_at),
        )
        .select_from(OutboxMessage)
        .outerjoin(Contact, col(Contact.id) == OutboxMessage.contact_id)
        .outerjoin(Library, col(Library.id) == Contact.library_id)
        .where(col(OutboxMessage.run_id) == run_id)
        .order_by(col(OutboxMessage.id))
    ).all()
    return [
        Recipient(
            outbox_id=r[0],
            email=r[1],
            status=r[2],
            sent_at=r[3],
            contact_id=r[4],
            library_id=r[5],
            library=r[6] or "",
            library_type=r[7] or "",
            region=r[8] or "",
            joined_at=r[9],
        )
        for r in rows
    ]


def compute(session: Session, run: Run) -> RunResults:
    assert run.id is not None
    results = RunResults(run=run, recipients=_recipients(session, run.id))
    contact_ids = {r.contact_id for r in results.recipients if r.contact_id}
    events = session.execute(
        sa.select(
            col(Event.kind),
            col(Event.outbox_id),
            col(Event.contact_id),
            col(Event.is_machine),
            col(Event.occurred_at),
        ).where(col(Event.run_id) == run.id)
    ).all()
    for kind, outbox_id, contact_id, is_machine, occurred_at in events:
        if kind in (EventKind.OPEN, EventKind.CLICK):
            if is_machine:
                results.machine[kind] += 1
                continue
            results.timeline.append((occurred_at, kind))
            if outbox_id is None:
                results.anonymous[kind] += 1
            else:
                # A click by a person implies the message was opened, even with images off.
                results.opened.add(outbox_id)
                if kind == EventKind.CLICK:
                    results.clicked.add(outbox_id)
        elif kind == EventKind.UNSUBSCRIBE and contact_id:
            results.unsubscribed.add(contact_id)
            results.timeline.append((occurred_at, kind))
        elif kind == EventKind.BOUNCE_HARD and outbox_id:
            results.bounced_hard.add(outbox_id)
        elif kind == EventKind.BOUNCE_SOFT and outbox_id:
            results.bounced_soft.add(outbox_id)
        elif kind == EventKind.COMPLAINT and outbox_id:
            results.complained.add(outbox_id)
        elif kind == EventKind.JOINED:
            results.timeline.append((occurred_at, kind))
    # Registrations and joinings are credited when they come after the run started, whether or
    # not the event names the run (imports of registrations know only the campaign).
    if contact_ids:
        registered = session.execute(
            sa.select(col(Event.contact_id), col(Event.detail), col(Event.run_id)).where(
                col(Event.kind) == EventKind.REGISTERED,
                col(Event.contact_id).in_(contact_ids),
                col(Event.occurred_at) >= results.start,
            )
        ).all()
        for contact_id, detail, run_id in registered:
            if run_id == run.id or (detail or {}).get("campaign") == run.campaign:
                results.registered.add(contact_id)
    results.joined = {
        r.library_id
        for r in results.recipients
        if r.library_id and r.joined_at and r.joined_at >= results.start
    }
    for r in results.recipients:
        if r.sent_at:
            results.timeline.append((r.sent_at, "sent"))
    return results


def by_group(results: RunResults, key: str) -> list[dict[str, Any]]:
    """Sent, opened, clicked, unsubscribed and joined per library type or per region."""
    groups: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"sent": 0, "opened": 0, "clicked": 0, "unsubscribed": 0, "libraries": set()}
    )
    for r in results.sent:
        g = groups[getattr(r, key)]
        g["sent"] += 1
        g["opened"] += r.outbox_id in results.opened
        g["clicked"] += r.outbox_id in results.clicked
        g["unsubscribed"] += r.contact_id in results.unsubscribed
        if r.library_id:
            g["libraries"].add(r.library_id)
    order = {t.value: i for i, t in enumerate(LibraryType)} if key == "library_type" else {}
    return [
        {
            "name": name,
            "sent": g["sent"],
            "opened": g["opened"],
            "clicked": g["clicked"],
            "unsubscribed": g["unsubscribed"],
            "joined": len(g["libraries"] & results.joined),
            "libraries": len(g["libraries"]),
        }
        for name, g in sorted(groups.items(), key=lambda item: (order.get(item[0], 99), item[0]))
    ]


SERIES = (
    ("sent", "odesláno", "#9aa5b1"),
    (EventKind.OPEN.value, "otevřeno lidmi", "#0b5c8c"),
    (EventKind.CLICK.value, "kliknuto", "#1f7a3a"),
    (EventKind.UNSUBSCRIBE.value, "odhlášeno", "#b42318"),
)


def chart_svg(results: RunResults, width: int = 900, height: int = 260) -> Markup:
    """Cumulative activity over time as an inline SVG line chart (no scripts, no libraries)."""
    points = sorted(results.timeline)
    if not points:
        return Markup('<p class="muted">Zatím žádná aktivita.</p>')
    start = min(results.start, points[0][0])
    span = max(points[-1][0] - start, timedelta(minutes=10))
    step = span / 48
    buckets: dict[str, list[int]] = {key: [0] * 49 for key, _, _ in SERIES}
    for when, kind in points:
        if kind in buckets:
            buckets[kind][min(48, int((when - start) / step))] += 1
    cumulative = {k: [sum(v[: i + 1]) for i in range(49)] for k, v in buckets.items()}
    top = max(1, *(max(v) for v in cumulative.values()))
    left, bottom, right, up = 56, 28, 12, 12
    plot_w, plot_h = width - left - right, height - bottom - up

    def xy(i: int, value: int) -> str:
        return f"{left + plot_w * i / 48:.1f},{up + plot_h * (1 - value / top):.1f}"

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
    for i in (0, 16, 32, 48):
        tick = escape(fmt_dt(start + step * i, "d. M. H:mm"))
        anchor = "start" if i == 0 else "end" if i == 48 else "middle"
        parts.append(
            f'<text x="{left + plot_w * i / 48:.1f}" y="{height - 8}" text-anchor="{anchor}" '
            f'fill="#5c6675">{tick}</text>'
        )
    for key, label, colour in SERIES:
        values = cumulative[key]
        if not values[-1]:
            continue
        path = " ".join(xy(i, v) for i, v in enumerate(values))
        parts.append(
            f'<polyline fill="none" stroke="{colour}" stroke-width="2.5" points="{path}">'
            f"<title>{escape(label)}: {values[-1]}</title></polyline>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def _run_or_404(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(status_code=404, detail="Rozesílka neexistuje.")
    return run


@router.get("/runs/{run_id}/results", response_class=HTMLResponse)
def run_results(request: Request, run_id: int, staff: Reader, session: DB) -> HTMLResponse:
    run = _run_or_404(session, run_id)
    results = compute(session, run)
    funnel = results.funnel()
    return page(
        request,
        "results.html",
        staff,
        run=run,
        results=results,
        funnel=funnel,
        funnel_top=max(1, funnel[0][1]),
        by_type=by_group(results, "library_type"),
        by_region=by_group(results, "region"),
        chart=chart_svg(results),
        series=SERIES,
        type_labels={t.value: label for t, label in LIBRARY_TYPE_LABELS.items()},
    )


CSV_HEADER = [
    "e-mail",
    "knihovna",
    "typ knihovny",
    "kraj",
    "stav zprávy",
    "odesláno",
    "otevřeno",
    "kliknuto",
    "odhlášeno",
    "nedoručitelné",
    "knihovna vstoupila",
    "registrace",
]


def results_csv(results: RunResults) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    yes = {True: "ano", False: "ne"}
    for r in results.recipients:
        tracked = results.individual
        writer.writerow(
            [
                r.email,
                r.library,
                LIBRARY_TYPE_LABELS.get(LibraryType(r.library_type), r.library_type)
                if r.library_type in {t.value for t in LibraryType}
                else r.library_type,
                r.region,
                r.status,
                r.sent_at.isoformat() if r.sent_at else "",
                yes[r.outbox_id in results.opened] if tracked else "",
                yes[r.outbox_id in results.clicked] if tracked else "",
                yes[r.contact_id in results.unsubscribed],
                yes[r.outbox_id in (results.bounced_hard | results.bounced_soft)],
                yes[r.library_id in results.joined],
                yes[r.contact_id in results.registered],
            ]
        )
    return out.getvalue()


@router.post("/runs/{run_id}/results.csv")
def run_results_csv(run_id: int, staff: Editor, session: DB) -> Response:
    run = _run_or_404(session, run_id)
    body = results_csv(compute(session, run))
    audit(session, staff.email, "export", f"{run.campaign}/{run.step}", run_id=run_id, kind="csv")
    session.commit()
    name = f"vysledky-{run.campaign}-{run.step}.csv"
    # A BOM so that Excel, which Czech offices open CSV files in, reads UTF-8.
    return Response(
        "\ufeff" + body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
