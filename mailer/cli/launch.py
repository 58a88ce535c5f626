"""`sdruk campaigns launch SLUG [--step STEP] [--ihned] [--json]`: materialise one run of a
campaign step (added onto the campaigns group that mailer/cli/campaigns.py defines). Outside
the campaign's sending window the run waits for its next opening, unless staff explicitly
confirm sending at once."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from mailer.audience.segments import SegmentError
from mailer.cli.campaigns import app
from mailer.cli.contacts import require_schema
from mailer.compose.campaigns import BlueprintError, load_blueprint
from mailer.compose.check import check_blueprint
from mailer.compose.czech import format_moment
from mailer.compose.step_labels import step_names
from mailer.db import get_engine
from mailer.delivery.readiness import readiness
from mailer.delivery.runs import BlueprintRejected, launch, window_start
from mailer.models import utcnow

console = Console()
err = Console(stderr=True)


@app.command("launch")
def launch_cmd(
    slug: Annotated[str, typer.Argument(help="Kampaň (adresář v campaigns/).")],
    step: Annotated[str, typer.Option(help="Krok kampaně (launch nebo připomínka).")] = "launch",
    now: Annotated[
        bool,
        typer.Option(
            "--ihned",
            "--now",
            help="Odeslat hned, i mimo okno pro odesílání (zeptá se na potvrzení).",
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--ano", "--yes", help="Potvrdit --ihned bez ptaní (pro skripty).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Výstup jako JSON.")] = False,
) -> None:
    """Vybere příjemce a zařadí zprávy kroku do fronty (opakované spuštění nic nezmění).

    Mimo okno pro odesílání kampaně rozesílka počká na jeho nejbližší otevření."""
    require_schema()
    try:
        blueprint = load_blueprint(slug)
        blueprint.step(step)
    except (BlueprintError, KeyError, FileNotFoundError, ValueError) as exc:
        err.print(f"[red]Kampaň {slug} nelze spustit:[/red] {exc}")
        raise typer.Exit(1) from exc
    # Nothing goes out from a blueprint that fails its checks (file and line are printed).
    problems = check_blueprint(slug)
    if problems:
        for problem in problems:
            err.print(f"[red]{problem}[/red]")
        raise typer.Exit(1)
    # Unfinished content or an unfit setup: refused for a real relay, shown for capture.
    ready = readiness(blueprint)
    if ready.note:
        err.print(f"[yellow]{escape(ready.note)}[/yellow]")
    for warning in ready.warnings:
        err.print(f"[yellow]Upozornění:[/yellow] {escape(warning)}")
    if ready.refused:
        err.print(f"[red]Kampaň {slug} nelze odeslat na skutečný server, dokud zbývá:[/red]")
        for item in ready.errors:
            err.print(f"[red]  • {escape(item)}[/red]")
        err.print("Nic nebylo spuštěno. Stav nasazení ukáže sdruk doctor.")
        raise typer.Exit(1)
    moment = utcnow()
    window = blueprint.sending_window
    if now and not window.is_open(moment) and not yes:
        starts = format_moment(window_start(blueprint, moment))
        # Czech answers (a/ano), which click.confirm's y/n does not take.
        answer = typer.prompt(
            f"Okno pro odesílání kampaně je teď zavřené ({window.describe()}), "
            f"otevře se {starts}. Opravdu odeslat hned? [a/N]",
            default="n",
            show_default=False,
        )
        if answer.strip().lower() not in ("a", "ano", "y", "yes"):
            err.print("Nic nebylo spuštěno.")
            raise typer.Exit(1)
    try:
        result = launch(
            get_engine(),
            blueprint,
            step,
            actor="cli",
            now=moment,
            keep_window=True,
            outside_window=now,
        )
    except SegmentError as exc:
        err.print(f"[red]Segment kampaně {slug} je chybný:[/red] {exc}")
        raise typer.Exit(1) from exc
    except BlueprintRejected as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if as_json:
        starts_at = result.starts_at.isoformat() if result.starts_at else None
        typer.echo(
            json.dumps(
                {
                    "run": result.run_id,
                    "recipients": result.recipients,
                    "created": result.created,
                    "starts_at": starts_at,
                }
            )
        )
        return
    title, label = step_names(slug, step)
    if result.created:
        console.print(
            f"Spuštěno: rozesílka [bold]{result.run_id}[/bold], {title} – {label}, "
            f"příjemců: [bold]{result.recipients}[/bold]. Odeslat: sdruk send"
        )
        if result.starts_at and result.starts_at > moment:
            console.print(
                f"Okno pro odesílání je teď zavřené ({window.describe()}): rozesílka začne "
                f"[bold]{format_moment(result.starts_at)}[/bold]. "
                "Hned ji lze odeslat jen nově spuštěnou s volbou --ihned."
            )
        elif now and not window.is_open(moment):
            console.print("Odesílá se hned, mimo okno pro odesílání (zvoleno --ihned).")
    else:
        console.print(
            f"{title} – {label}: už spuštěno (rozesílka {result.run_id}, "
            f"příjemců {result.recipients}); nic se nezměnilo."
        )
