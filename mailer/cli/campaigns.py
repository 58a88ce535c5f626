"""`sdruk campaigns …`: list, check and preview blueprints (other groups add launch, sync…)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from mailer.cli.czech import CzechTyper

app = CzechTyper(help="Kampaně: kontrola, náhled, spuštění.", no_args_is_help=True)
console = Console(highlight=False)
err = Console(stderr=True, highlight=False)


@app.command("list")
def list_cmd() -> None:
    """Vypíše kampaně ze složky campaigns/ s jejich kroky a časy."""
    from mailer.compose.campaigns import BlueprintError, blueprint_slugs, load_blueprint
    from mailer.compose.czech import format_moment
    from mailer.compose.step_labels import session_label

    table = Table("Kampaň", "Název", "Druh", "Kroky (kdy)")
    for slug in blueprint_slugs():
        try:
            bp = load_blueprint(slug)
        except BlueprintError:
            table.add_row(slug, "[red]chybná – spusťte sdruk campaigns check[/red]", "", "")
            continue
        # The id is what `launch` takes; a per-session step also names its session.
        steps = "\n".join(
            f"{s.name}: {format_moment(bp.due_at(s))}"
            + (f" ({session_label(bp, s)})" if s.session is not None else "")
            for s in bp.steps
        )
        table.add_row(slug, bp.name, str(bp.kind), steps)
    console.print(table)


@app.command("check")
def check_cmd(
    slug: Annotated[str | None, typer.Argument(help="Kampaň; bez ní všechny.")] = None,
) -> None:
    """Zkontroluje kampaň (nebo všechny): TOML, segment, MJML, Jinja. Chyby jako soubor:řádek."""
    from mailer.compose.campaigns import blueprint_slugs
    from mailer.compose.check import check_blueprint

    slugs = [slug] if slug else blueprint_slugs()
    if not slugs:
        err.print("Žádné kampaně k ověření.")
        raise typer.Exit(1)
    failed = 0
    for name in slugs:
        problems = check_blueprint(name)
        if problems:
            failed += 1
            for problem in problems:
                console.print(str(problem), markup=False, soft_wrap=True)
        else:
            console.print(f"{name}: v pořádku", markup=False)
    if failed:
        err.print(f"Chybných kampaní: {failed} z {len(slugs)}.")
        raise typer.Exit(1)


@app.command("preview")
def preview_cmd(
    slug: Annotated[str, typer.Argument(help="Kampaň.")],
    contact: Annotated[str, typer.Option("--contact", help="E-mail kontaktu v databázi.")],
    html: Annotated[Path | None, typer.Option("--html", help="Zapsat HTML sem.")] = None,
    eml: Annotated[
        Path | None, typer.Option("--eml", help="Zapsat celou zprávu (.eml) sem.")
    ] = None,
    step: Annotated[str, typer.Option("--step", help="Krok kampaně.")] = "launch",
) -> None:
    """Zapíše přesně to, co by kontakt dostal (HTML nebo celou zprávu .eml)."""
    from sqlmodel import Session, select

    from mailer.compose.campaigns import BlueprintError, load_blueprint
    from mailer.compose.check import check_blueprint
    from mailer.compose.composer import Composer, Recipient
    from mailer.compose.freeze import freeze
    from mailer.db import get_engine
    from mailer.models import Contact, Library

    if (html is None) == (eml is None):
        err.print("Uveďte právě jedno z --html SOUBOR nebo --eml SOUBOR.")
        raise typer.Exit(2)
    problems = check_blueprint(slug)
    if problems:
        for problem in problems:
            err.print(str(problem), markup=False, soft_wrap=True)
        raise typer.Exit(1)
    try:
        blueprint = load_blueprint(slug)
        blueprint.step(step)
    except (BlueprintError, KeyError) as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from exc
    address = _normalise(contact)
    with Session(get_engine()) as session:
        row = session.exec(select(Contact).where(Contact.email == address)).first()
        if row is None:
            err.print(
                f"Kontakt {address} v databázi není (naimportujte ho: sdruk contacts import)."
            )
            raise typer.Exit(1)
        library = session.get(Library, row.library_id) if row.library_id else None
        # A preview has no run or outbox row: id 0 makes tokens that lead nowhere.
        recipient = Recipient.from_rows(0, row, library)
    composer = Composer(freeze(blueprint, step), 0)
    if eml is not None:
        from mailer.compose.dkim import DkimKeyError

        try:
            data = composer.message(recipient).data
        except DkimKeyError as exc:
            err.print(f"Zprávu nelze podepsat: {exc}", markup=False)
            raise typer.Exit(1) from exc
        eml.write_bytes(data)
        console.print(f"Zpráva pro {address} zapsána do {eml}.", markup=False)
    elif html is not None:
        html.write_text(composer.html(recipient), encoding="utf-8")
        console.print(f"HTML pro {address} zapsáno do {html}.", markup=False)


def _normalise(address: str) -> str:
    from mailer.audience.addresses import InvalidAddress, normalize_email

    try:
        return normalize_email(address)
    except InvalidAddress as exc:
        err.print(f"Neplatná adresa {address!r}: {exc}", markup=False)
        raise typer.Exit(1) from exc
