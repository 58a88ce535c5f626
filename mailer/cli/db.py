"""`sdruk db …`: database schema commands."""

from __future__ import annotations

from rich.console import Console

from mailer.cli.czech import CzechTyper
from mailer.db import get_engine
from mailer.migrations import upgrade

app = CzechTyper(help="Databáze.", no_args_is_help=True)
console = Console()


@app.command("upgrade")
def upgrade_cmd() -> None:
    """Převede databázi na nejnovější schéma (bezpečné spustit opakovaně)."""
    engine = get_engine()
    upgrade(engine)
    console.print(f"Databáze je aktuální: [bold]{engine.url.render_as_string()}[/bold]")
