"""`sdruk campaigns launch SLUG [--step STEP] [--json]`: materialise one run of a campaign step
(added onto the campaigns group that mailer/cli/campaigns.py defines)."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from mailer.audience.segments import SegmentError
from mailer.cli.campaigns import app
from mailer.cli.contacts import require_schema
from mailer.db import get_engine

console = Console()
err = Console(stderr=True)


@app.command("launch")
def launch_cmd(
    slug: Annotated[str, typer.Argument(help="Kampaň (adresář v campaigns/).")],
    step: Annotated[str, typer.Option(help="Krok kampaně (launch nebo připomínka).")] = "launch",
    as_json: Annotated[bool, typer.Option("--json", help="Výstup jako JSON.")] = False,
) -> None:
    """Vybere příjemce a zařadí zprávy kroku do fronty (opakované spuštění nic nezmění)."""
    from mailer.compose.campaigns import BlueprintError, load_blueprint
    from mailer.compose.check import check_blueprint
    from mailer.delivery.runs import BlueprintRejected, launch

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
    try:
        result = launch(get_engine(), blueprint, step, actor="cli")
    except SegmentError as exc:
        err.print(f"[red]Segment kampaně {slug} je chybný:[/red] {exc}")
        raise typer.Exit(1) from exc
    except BlueprintRejected as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if as_json:
        typer.echo(
            json.dumps(
                {"run": result.run_id, "recipients": result.recipients, "created": result.created}
            )
        )
        return
    if result.created:
        console.print(
            f"Spuštěno: rozesílka [bold]{result.run_id}[/bold] kampaně {slug} / {step}, "
            f"příjemců: [bold]{result.recipients}[/bold]. Odeslat: sdruk send"
        )
    else:
        console.print(
            f"Krok {step} kampaně {slug} už byl spuštěn (rozesílka {result.run_id}, "
            f"příjemců {result.recipients}); nic se nezměnilo."
        )
