"""`sdruk campaigns export|import|history`: the folder format in and out of the database."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mailer.cli.campaigns import app as campaigns_app
from mailer.cli.campaigns import console, err
from mailer.cli.contacts import require_schema


@campaigns_app.command("export")
def export_cmd(
    slug: Annotated[str, typer.Argument(help="Kampaň.")],
    directory: Annotated[Path, typer.Argument(help="Složka, kam se kampaň zapíše.")],
    revision: Annotated[
        int | None, typer.Option("--revision", min=1, help="Verze; bez ní nejnovější.")
    ] = None,
) -> None:
    """Zapíše kampaň z databáze jako složku (campaign.toml, body.mjml, případně blocks.json)."""
    from mailer.compose.store import StoreError, export_folder
    from mailer.db import get_engine

    require_schema()
    try:
        export_folder(get_engine(), slug, directory, revision)
    except StoreError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    console.print(f"Kampaň {slug} zapsána do {directory}.", markup=False)


@campaigns_app.command("import")
def import_cmd(
    directory: Annotated[Path, typer.Argument(help="Složka kampaně (campaign.toml, body.mjml).")],
    slug: Annotated[
        str | None, typer.Option("--slug", help="Adresa kampaně; bez ní název složky.")
    ] = None,
    author: Annotated[str, typer.Option("--author", help="Kdo změnu dělá.")] = "příkazová řádka",
) -> None:
    """Načte složku kampaně do databáze jako novou verzi (jen když projde kontrolou)."""
    from mailer.compose.campaigns import SLUG_RE
    from mailer.compose.check import check_blueprint
    from mailer.compose.store import StoreError, import_folder
    from mailer.db import get_engine

    require_schema()
    folder = directory.resolve()
    name = slug or folder.name
    if not SLUG_RE.match(name):
        err.print(
            f"Adresa kampaně {name!r} smí obsahovat jen malá písmena bez diakritiky, číslice a "
            "pomlčky; zvolte ji volbou --slug.",
            markup=False,
        )
        raise typer.Exit(2)
    if not folder.is_dir():
        err.print(f"Složka {directory} neexistuje.", markup=False)
        raise typer.Exit(2)
    if slug and slug != folder.name:
        import tempfile

        from mailer.compose.store import read_folder, write_folder

        try:
            files = read_folder(folder)
        except StoreError as exc:
            err.print(str(exc), markup=False)
            raise typer.Exit(2) from None
        staging = Path(tempfile.mkdtemp())
        write_folder(files, staging / slug)
        problems = check_blueprint(slug, staging)
    else:
        problems = check_blueprint(name, folder.parent)
    if problems:
        for problem in problems:
            err.print(str(problem), markup=False, soft_wrap=True)
        err.print("Kampaň nebyla načtena: nejdřív opravte uvedené chyby.")
        raise typer.Exit(1)
    try:
        stored = import_folder(get_engine(), folder, slug=name, author=author)
    except StoreError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(2) from None
    console.print(f"Kampaň {name} načtena jako verze {stored.number}.", markup=False)


@campaigns_app.command("history")
def history_cmd(slug: Annotated[str, typer.Argument(help="Kampaň.")]) -> None:
    """Vypíše uložené verze kampaně: kdo, kdy a co změnil."""
    from mailer.compose.czech import format_moment
    from mailer.compose.store import history
    from mailer.db import get_engine

    require_schema()
    found = history(get_engine(), slug)
    if not found:
        err.print(f"Kampaň {slug} v databázi není.", markup=False)
        raise typer.Exit(1)
    for rev in found:
        console.print(
            f"verze {rev.number}  {format_moment(rev.created_at)}  {rev.author}  {rev.summary}",
            markup=False,
        )
