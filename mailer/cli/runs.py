"""`sdruk runs …`: show, list, pause, resume and cancel runs of campaign steps."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mailer.cli.contacts import require_schema
from mailer.cli.czech import CzechTyper
from mailer.compose.step_labels import step_names
from mailer.db import get_engine
from mailer.delivery.runs import (
    RunProgress,
    RunStateError,
    cancel,
    list_runs,
    pause,
    progress,
    resume,
    status_label,
)
from mailer.models import MessageStatus

app = CzechTyper(help="Rozesílky (běhy kampaní): stav, pozastavení, zrušení.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

MESSAGE_LABELS = {
    MessageStatus.QUEUED.value: "ve frontě",
    MessageStatus.SENDING.value: "odesílá se",
    MessageStatus.SENT.value: "odesláno",
    MessageStatus.RETRY.value: "čeká na opakování",
    MessageStatus.FAILED.value: "selhalo",
    MessageStatus.SKIPPED.value: "přeskočeno",
}


def _number(n: int | float) -> str:
    # Czech thousands separator is a (non-breaking) space.
    return f"{n:,.0f}".replace(",", "\u00a0")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    return str(timedelta(seconds=round(seconds)))


def _show(p: RunProgress) -> None:
    campaign, step = step_names(p.campaign, p.step)
    table = Table(title=f"Rozesílka {p.run_id}: {campaign} – {step}")
    table.add_column("Stav zprávy")
    table.add_column("Počet", justify="right")
    for status, label in MESSAGE_LABELS.items():
        table.add_row(label, _number(p.counts.get(status, 0)))
    table.add_row("[bold]celkem příjemců[/bold]", f"[bold]{_number(p.recipients)}[/bold]")
    console.print(table)
    console.print(f"Stav rozesílky: [bold]{status_label(p.status)}[/bold]")
    if p.status_reason:
        console.print(f"Důvod: {p.status_reason}")
    if p.rate_per_second:
        left = f", zbývá přibližně {_duration(p.eta_seconds)}" if p.eta_seconds is not None else ""
        console.print(f"Rychlost: {p.rate_per_second:.1f} zpráv/s".replace(".", ",") + left)
    if p.limit_note:
        console.print(f"[yellow]{p.limit_note}[/yellow]")
    if p.possible_duplicates:
        console.print(
            f"[yellow]Možné duplicity: {_number(p.possible_duplicates)}[/yellow] "
            "(zprávy odeslané znovu po pádu pracovníka uprostřed odesílání)"
        )


RunId = Annotated[int, typer.Argument(help="Číslo rozesílky (viz sdruk runs list).")]


@app.command("show")
def show_cmd(
    run_id: RunId,
    as_json: Annotated[bool, typer.Option("--json", help="Výstup jako JSON.")] = False,
) -> None:
    """Počty zpráv podle stavu, rychlost a odhad zbývajícího času."""
    require_schema()
    try:
        p = progress(get_engine(), run_id)
    except RunStateError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(json.dumps(p.as_json(), ensure_ascii=False))
    else:
        _show(p)


@app.command("list")
def list_cmd(
    limit: Annotated[int, typer.Option(help="Kolik posledních rozesílek.")] = 30,
    as_json: Annotated[bool, typer.Option("--json", help="Výstup jako JSON.")] = False,
) -> None:
    """Poslední rozesílky se stavem a počty."""
    require_schema()
    runs = list_runs(get_engine(), limit)
    if as_json:
        typer.echo(json.dumps([r.as_json() for r in runs], ensure_ascii=False))
        return
    if not runs:
        console.print("Zatím žádné rozesílky.")
        return
    table = Table(title="Rozesílky")
    for column in ("Č.", "Kampaň", "Krok", "Stav", "Příjemci", "Odesláno", "Zbývá", "Chyby"):
        numeric = column not in ("Kampaň", "Krok", "Stav")
        # Fold, never truncate: a campaign slug cut to "join-this-ye…" is useless to staff.
        table.add_column(column, justify="right" if numeric else "left", overflow="fold")
    for r in runs:
        table.add_row(
            str(r.run_id),
            r.campaign,
            r.step,
            status_label(r.status),
            _number(r.recipients),
            _number(r.counts.get("sent", 0)),
            _number(r.remaining),
            _number(r.counts.get("failed", 0)),
        )
    console.print(table)


@app.command("pause")
def pause_cmd(
    run_id: RunId,
    reason: Annotated[str, typer.Option(help="Proč (uvidí ostatní).")] = "pozastaveno obsluhou",
) -> None:
    """Pozastaví rozesílku; rozeslané zprávy doběhnou, další se neberou."""
    require_schema()
    try:
        pause(get_engine(), run_id, reason)
    except RunStateError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Rozesílka {run_id} je pozastavená. Pokračovat: sdruk runs resume {run_id}")


@app.command("resume")
def resume_cmd(run_id: RunId) -> None:
    """Obnoví pozastavenou rozesílku."""
    require_schema()
    try:
        status = resume(get_engine(), run_id)
    except RunStateError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Rozesílka {run_id} pokračuje ({status_label(status)}).")


@app.command("cancel")
def cancel_cmd(
    run_id: RunId,
    reason: Annotated[str, typer.Option(help="Proč (uvidí ostatní).")] = "zrušeno obsluhou",
) -> None:
    """Zruší rozesílku: neodeslané zprávy se přeskočí (nelze vrátit)."""
    require_schema()
    try:
        skipped = cancel(get_engine(), run_id, reason)
    except RunStateError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    console.print(f"Rozesílka {run_id} je zrušená; přeskočeno zpráv: {_number(skipped)}.")
