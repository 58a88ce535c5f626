"""`sdruk contacts …`: importing the contact directory from CSV."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mailer.audience.contacts import ImportFileError, ImportReport, import_contacts
from mailer.db import get_engine

app = typer.Typer(help="Kontakty knihoven.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

SHOWN_REJECTIONS = 50


def require_schema() -> None:
    """Exit with a hint when the database has no tables yet."""
    if not sa.inspect(get_engine()).has_table("contact"):
        err.print("[red]Databáze nemá tabulky.[/red] Spusťte nejdřív: sdruk db upgrade")
        raise typer.Exit(2)


def print_report(report: ImportReport, name: str) -> None:
    """A Czech summary of an import and a table of the rejected rows."""
    verb = "Zkouška nanečisto (nic se neuložilo)" if report.dry_run else "Import dokončen"
    console.print(
        f"{verb}: [bold]{name}[/bold] ({report.encoding}, oddělovač „{report.delimiter}“), "
        f"{report.rows} řádků."
    )
    console.print(
        f"  nové kontakty: [green]{report.created}[/green], změněné: {report.updated}, "
        f"beze změny: {report.unchanged}, odmítnuté řádky: "
        f"[{'red' if report.rejected else 'green'}]{len(report.rejected)}[/]"
    )
    console.print(
        f"  knihovny nové: {report.libraries_created}, změněné: {report.libraries_updated}; "
        f"sloučené duplicity: {report.merged_duplicates}; "
        f"nově na seznamu potlačení: {report.suppressed}"
    )
    if report.rejected:
        table = Table(title="Odmítnuté řádky", title_justify="left")
        table.add_column("Řádek", justify="right")
        table.add_column("Sloupec")
        table.add_column("Důvod")
        for r in report.rejected[:SHOWN_REJECTIONS]:
            table.add_row(str(r.line), r.column, r.reason)
        console.print(table)
        if len(report.rejected) > SHOWN_REJECTIONS:
            console.print(
                f"… a dalších {len(report.rejected) - SHOWN_REJECTIONS} (úplný seznam: --json)"
            )


@app.command("import")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="CSV soubor (UTF-8 nebo Windows-1250, , nebo ;)")],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Jen zkontroluje a spočítá, nic neuloží.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Výsledek jako jeden objekt JSON.")
    ] = False,
) -> None:
    """Naimportuje kontakty: doplní nové, aktualizuje známé, odhlášené nikdy znovu nepřihlásí."""
    require_schema()
    engine = get_engine()
    try:
        if sys.stdout.isatty() and not as_json:
            with Progress(
                TextColumn("Ukládám kontakty"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=True,
            ) as bar:
                task = bar.add_task("import", total=None)

                def progress(done: int, total: int) -> None:
                    bar.update(task, completed=done, total=total)

                report = import_contacts(engine, file, dry_run=dry_run, progress=progress)
        else:
            report = import_contacts(engine, file, dry_run=dry_run)
    except ImportFileError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc)}, ensure_ascii=False))
        else:
            err.print(f"[red]Soubor nelze načíst:[/red] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report.as_json(), ensure_ascii=False))
    else:
        print_report(report, file.name)
