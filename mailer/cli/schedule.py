"""`sdruk schedule`, `sdruk campaigns sync` and `sdruk registrations import`: the scheduler's
commands (the long-running scheduler itself is `python schedule.py`)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mailer.cli.contacts import require_schema
from mailer.cli.czech import CzechTyper
from mailer.compose.czech import count_noun, format_moment
from mailer.compose.step_labels import step_names
from mailer.csvfiles import ImportFileError
from mailer.db import get_engine
from mailer.scheduling.clock import SystemClock
from mailer.scheduling.overview import StepView, schedule_overview
from mailer.scheduling.registrations import import_registrations
from mailer.scheduling.service import describe_sync
from mailer.scheduling.sync import sync_blueprints
from mailer.settings import get_settings

console = Console()
err = Console(stderr=True)

registrations_app = CzechTyper(help="Registrace na akce kampaní.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Výstup jako JSON.")]


def _row(table: Table, view: StepView, *, with_audience: bool) -> None:
    when = format_moment(view.due_at)
    if view.starts_at is not None and view.starts_at != view.due_at:
        when += f"\n(odeslání začne {format_moment(view.starts_at)})"
    people = (
        ("–" if view.audience is None else str(view.audience))
        if with_audience
        else ("–" if view.recipients is None else str(view.recipients))
    )
    campaign, step = step_names(view.campaign, view.step)
    table.add_row(campaign, step, when, people, view.status_label, view.note or "")


def _table(title: str, views: list[StepView], *, with_audience: bool) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column("Kampaň")
    table.add_column("Krok")
    table.add_column("Termín")
    table.add_column("Příjemců nyní" if with_audience else "Příjemců", justify="right")
    table.add_column("Stav")
    table.add_column("Poznámka")
    for view in views:
        _row(table, view, with_audience=with_audience)
    return table


def schedule_cmd(as_json: JsonOpt = False) -> None:
    """Přehled plánu: nadcházející rozesílky s velikostí publika k dnešku, zpožděné a zmeškané."""
    require_schema()
    overview = schedule_overview(get_engine(), now=SystemClock().now())
    if as_json:
        typer.echo(json.dumps(overview.as_json(), ensure_ascii=False, indent=2))
        return
    if not (overview.upcoming or overview.done or overview.late or overview.missed):
        console.print("Plán je prázdný. Naplánujte kampaně příkazem: sdruk campaigns sync")
    if overview.upcoming:
        console.print(_table("Nadcházející rozesílky", overview.upcoming, with_audience=True))
    if overview.late:
        console.print(_table("Spuštěno se zpožděním", overview.late, with_audience=False))
    if overview.missed:
        console.print(_table("[red]Zmeškané kroky[/red]", overview.missed, with_audience=False))
    if overview.failed:
        console.print(_table("[red]Selhané kroky[/red]", overview.failed, with_audience=False))
    if overview.cancelled:
        console.print(_table("Zrušené kroky", overview.cancelled, with_audience=False))
    if overview.done:
        console.print(_table("Spuštěno včas", overview.done, with_audience=False))
    for slug, problem in sorted(overview.invalid.items()):
        console.print(f"[red]Kampaň {slug} neprošla kontrolou a nespustí se:[/red] {problem}")
    grace = timedelta(hours=get_settings().launch_grace_hours)
    console.print(
        f"Krok zpožděný výpadkem plánovače se spustí nejpozději do "
        f"{count_noun(int(grace.total_seconds() // 3600), 'hodiny', 'hodin', 'hodin')} "
        "po svém termínu, jinak se označí jako zmeškaný."
    )


def sync_cmd(as_json: JsonOpt = False) -> None:
    """Zkontroluje kampaně ve složce campaigns/ a naplánuje jejich kroky (bezpečné opakovat)."""
    require_schema()
    report = sync_blueprints(get_engine())
    if as_json:
        data = {
            "steps": [
                {
                    "campaign": s.campaign,
                    "step": s.step,
                    "due_at": s.due_at.isoformat(),
                    "status": s.status,
                    "change": s.change,
                }
                for s in report.steps
            ],
            "invalid": report.invalid,
            "removed": [{"campaign": c, "step": s} for c, s in report.removed],
        }
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        for line in describe_sync(report):
            console.print(line)
        for s in report.steps:
            campaign, step = step_names(s.campaign, s.step)
            change = CHANGE_LABELS.get(s.change, s.change)
            console.print(f"  {campaign} – {step}: {format_moment(s.due_at)} ({change})")
    if report.invalid:
        raise typer.Exit(1)


# What `sdruk campaigns sync` did to each step (ScheduledChange.change).
CHANGE_LABELS = {
    "new": "nově naplánováno",
    "moved": "přeplánováno",
    "same": "beze změny",
    "done": "už spuštěno",
}


@registrations_app.command("import")
def registrations_import(
    file: Annotated[Path, typer.Argument(help="CSV z registračního systému (sloupec e-mail).")],
    campaign: Annotated[
        str | None, typer.Option("--campaign", "-c", help="Kampaň, ke které registrace patří.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Zaznamená registrace na akci: připomínky je pak vynechají."""
    require_schema()
    try:
        report = import_registrations(get_engine(), file, campaign=campaign)
    except ImportFileError as exc:
        err.print(f"[red]Soubor nelze načíst:[/red] {exc}")
        raise typer.Exit(2) from exc
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False))
        return
    console.print(
        f"Nově zaznamenané registrace: [green]{report.recorded}[/green], "
        f"už dříve zaznamenané: {report.already}."
    )
    if report.unknown:
        unknown = count_noun(len(report.unknown), "adresa není", "adresy nejsou", "adres není")
        console.print(f"[yellow]{unknown} mezi kontakty:[/yellow]")
        for item in report.unknown:
            console.print(f"  řádek {item['line']}: {item['email']}")
    for item in report.rejected:
        console.print(
            f"[red]řádek {item['line']}, sloupec {item['column']}:[/red] {item['reason']}"
        )


def register_campaigns_sync() -> None:
    """Add `sync` to the shared `sdruk campaigns` group."""
    from mailer.cli.campaigns import app as campaigns_app

    campaigns_app.command("sync")(sync_cmd)


register_campaigns_sync()
