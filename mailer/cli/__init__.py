"""The `sdruk` command line: one Typer app; each command group lives in its own module."""

from __future__ import annotations

import typer

from mailer.cli import db as db_cli

app = typer.Typer(
    help="SDRUK Campaigns – e-mailové kampaně Sdružení knihoven ČR.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(db_cli.app, name="db")


def main() -> None:
    app()
