"""`sdruk runs stats ID [--json]`: the results of one run, added onto the `runs` group."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mailer.cli.contacts import require_schema
from mailer.cli.runs import app
from mailer.compose.step_labels import step_names
from mailer.db import get_engine, session_scope
from mailer.delivery.runs import status_label
from mailer.events.stats import GroupStats, RunNotFound, RunStats, run_stats, tracking_share

console = Console()
err = Console(stderr=True)


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f} %".replace(".", ",") if whole else "–"


def _summary(stats: RunStats) -> Table:
    status = status_label(stats.status)
    campaign, step = step_names(stats.campaign, stats.step)
    table = Table(title=f"Rozesílka {stats.run_id}: {campaign} – {step} ({status})")
    table.add_column("Ukazatel")
    table.add_column("Počet", justify="right")
    table.add_column("Podíl", justify="right")
    sent, libraries = stats.sent, stats.libraries
    # (label, number, note beside the number, denominator of the share or None)
    rows: list[tuple[str, int, str, int | None]] = [
        ("Příjemci", stats.recipients, "", None),
        ("Odesláno", sent, "", None),
        ("Doručeno (bez vrácených)", stats.delivered, "", sent),
        ("Čeká na odeslání", stats.queued, "", None),
        ("Selhalo", stats.failed, "", None),
        ("Vynecháno", stats.skipped, "", None),
        (
            "Nedoručeno (trvale / dočasně)",
            stats.bounced,
            f"{stats.hard_bounces} / {stats.soft_bounces}",
            sent,
        ),
        ("Jednotlivě sledováno (odesláno)", stats.tracked_sent, "", sent),
        # Per-recipient opens and clicks exist only for tracked messages: their share too.
        ("Otevřeli lidé (unikátní)", stats.unique_human_opens, "", stats.tracked_sent),
        ("Otevření stroji (Apple MPP, skenery)", stats.machine_opens, "", None),
        ("Klikli lidé (unikátní)", stats.unique_human_clicks, "", stats.tracked_sent),
        ("Kliknutí strojů (bezpečnostní brány)", stats.machine_clicks, "", None),
        ("Webová verze", stats.web_views, "", None),
        ("Odhlášení", stats.unsubscribes, "", sent),
        ("Stížnosti na spam", stats.complaints, "", sent),
        ("Registrace na akci", stats.registered, "", sent),
        (
            "Vstoupilo knihoven do SDRUK",
            stats.joined_libraries,
            f"z {libraries} oslovených",
            libraries,
        ),
    ]
    for label, value, note, base in rows:
        shown = f"{value} ({note})" if note else str(value)
        table.add_row(label, shown, "" if base is None else _percent(value, base))
    return table


def _links(stats: RunStats) -> Table:
    table = Table(title="Kliknutí podle odkazu")
    table.add_column("#", justify="right")
    table.add_column("Odkaz")
    table.add_column("Lidé", justify="right")
    table.add_column("Kliknutí lidí", justify="right")
    table.add_column("Kliknutí strojů", justify="right")
    for link in stats.links:
        table.add_row(
            str(link.index + 1),
            link.url,
            str(link.people),
            str(link.human_clicks),
            str(link.machine_clicks),
        )
    return table


def _groups(title: str, groups: list[GroupStats]) -> Table:
    table = Table(title=title)
    for name in ("", "Příjemci", "Odesláno", "Otevřeli", "Klikli", "Odhlásili", "Nedoručeno"):
        table.add_column(name, justify="left" if not name else "right")
    table.add_column("Stížnosti", justify="right")
    table.add_column("Vstoupilo knihoven", justify="right")
    for g in groups:
        table.add_row(
            g.label,
            str(g.recipients),
            str(g.sent),
            f"{g.opened} ({_percent(g.opened, g.tracked_sent)})",
            f"{g.clicked} ({_percent(g.clicked, g.tracked_sent)})",
            str(g.unsubscribed),
            str(g.bounced),
            str(g.complained),
            f"{g.joined_libraries} z {g.libraries}",
        )
    return table


@app.command("stats")
def stats_cmd(
    run_id: Annotated[int, typer.Argument(help="Číslo běhu (viz sdruk runs list).")],
    as_json: Annotated[bool, typer.Option("--json", help="Výstup jako JSON.")] = False,
) -> None:
    """Výsledky běhu: doručení, otevření a kliknutí lidí (stroje zvlášť), odhlášení."""
    require_schema()
    try:
        with session_scope(get_engine()) as session:
            stats = run_stats(session, run_id)
    except RunNotFound:
        err.print(f"[red]Běh {run_id} neexistuje.[/red]")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(stats.as_json(), ensure_ascii=False, indent=2))
        return
    console.print(_summary(stats))
    if (share := tracking_share(stats)) is not None:
        console.print(share)
    if stats.tracking != "individual":
        console.print(
            f"Měření je „{stats.tracking}“: unikátní otevření a rozpad podle knihoven "
            "nejsou k dispozici; otevření lidí celkem: "
            f"{stats.human_opens}, kliknutí lidí celkem: {stats.human_clicks}."
        )
    if stats.links:
        console.print(_links(stats))
    console.print(_groups("Podle typu knihovny", stats.by_library_type))
    console.print(_groups("Podle kraje", stats.by_region))
