"""`sdruk contacts …`: importing the contact directory from CSV."""

from __future__ import annotations

import getpass
import json
import sys
from pathlib import Path
from typing import Annotated

import sqlalchemy as sa
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from mailer.audience.contacts import BasisChoice, ImportFileError, ImportReport, import_contacts
from mailer.audience.rows import legal_basis_value
from mailer.cli.czech import CzechTyper
from mailer.compose.czech import count_noun
from mailer.db import get_engine

app = CzechTyper(help="Kontakty knihoven.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

SHOWN_REJECTIONS = 50


def require_schema() -> None:
    """Exit with a hint when the database has no tables yet."""
    if not sa.inspect(get_engine()).has_table("contact"):
        err.print("[red]Databáze nemá tabulky.[/red] Spusťte nejdřív: sdruk db upgrade")
        raise typer.Exit(2)


def print_report(report: ImportReport, name: str) -> None:
    """A Czech summary of an import, its warnings and a table of the rejected rows."""
    verb = "Zkouška nanečisto (nic se neuložilo)" if report.dry_run else "Import dokončen"
    console.print(
        f"{verb}: [bold]{name}[/bold] ({report.encoding}, oddělovač „{report.delimiter}“), "
        f"{count_noun(report.rows, 'řádek', 'řádky', 'řádků')}."
    )
    console.print(
        f"  nové kontakty: [green]{report.created}[/green], změněné: {report.updated}, "
        f"beze změny: {report.unchanged}, odmítnuté řádky: "
        f"[{'red' if report.rejected else 'green'}]{len(report.rejected)}[/]"
    )
    console.print(
        f"  knihovny nové: {report.libraries_created}, změněné: {report.libraries_updated}; "
        f"sloučené duplicity: {report.merged_duplicates}; "
        f"nově na seznamu blokovaných adres: {report.suppressed}"
    )
    if report.libraries_joined or report.memberships_kept:
        console.print(
            f"  knihovny nově členy SDRUK (vstup zaznamenán): {report.libraries_joined}; "
            f"ponechaná členství zapsaná v konzoli: {report.memberships_kept}"
        )
    if report.basis_assigned:
        console.print(
            f"  zvolený právní základ dostalo "
            f"{count_noun(report.basis_assigned, 'kontakt', 'kontakty', 'kontaktů')}."
        )
    if report.without_basis:
        n = report.without_basis
        lacking = count_noun(n, "kontakt nemá", "kontakty nemají", "kontaktů nemá")
        console.print(
            f"[yellow]Pozor:[/yellow] {lacking}"
            " právní základ (souhlas ani oprávněný zájem), takže jim nepůjde nic poslat. "
            "Doplňte sloupec „souhlas“, nebo zvolte základ pro celý soubor: "
            "--legal-basis opravneny-zajem (u institucionálních adres knihoven), případně "
            "--legal-basis souhlas s --note, kde a kdy souhlas vznikl."
        )
    if report.notes:
        table = Table(title="Ke kontrole (řádky se naimportovaly)", title_justify="left")
        table.add_column("Řádek", justify="right")
        table.add_column("Upozornění")
        for note in report.notes[:SHOWN_REJECTIONS]:
            table.add_row(str(note.line), note.reason)
        console.print(table)
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
    legal_basis: Annotated[
        str | None,
        typer.Option(
            "--legal-basis",
            metavar="ZÁKLAD",
            help="Právní základ pro řádky, které žádný nemají: opravneny-zajem nebo souhlas. "
            "Uloží se u každého kontaktu jako doklad (soubor, řádek, čas, kdo).",
        ),
    ] = None,
    note: Annotated[
        str,
        typer.Option("--note", metavar="TEXT", help="Doklad k právnímu základu celého souboru."),
    ] = "",
) -> None:
    """Naimportuje kontakty: doplní nové, aktualizuje známé, odhlášené nikdy znovu nepřihlásí."""
    require_schema()
    engine = get_engine()
    choice: BasisChoice | None = None
    if legal_basis is not None:
        basis = legal_basis_value(legal_basis)
        if basis is None:
            err.print(
                f"[red]Neznámý právní základ „{legal_basis}“.[/red] "
                "Platné jsou: opravneny-zajem, souhlas."
            )
            raise typer.Exit(2)
        if basis == "consent" and not note.strip():
            err.print("[red]Souhlas pro celý soubor potřebuje doklad:[/red] --note „kdy a jak“.")
            raise typer.Exit(2)
        choice = BasisChoice(basis, f"příkazová řádka ({getpass.getuser()})", note.strip())
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

                report = import_contacts(
                    engine, file, dry_run=dry_run, progress=progress, basis_choice=choice
                )
        else:
            report = import_contacts(engine, file, dry_run=dry_run, basis_choice=choice)
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
