"""`sdruk libraries join …` and `sdruk libraries leave …`: recording that a library joined
SDRUK (the same function as the console's „Zaznamenat vstup do SDRUK“) or left it, for scripts
and the membership system."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from sqlmodel import Session

from mailer.audience.membership import (
    JoinResult,
    MembershipError,
    find_library,
    parse_year,
    record_join,
    record_leave,
)
from mailer.cli.contacts import require_schema
from mailer.cli.czech import CzechTyper
from mailer.compose.czech import format_moment
from mailer.db import get_engine

app = CzechTyper(help="Knihovny v adresáři: členství v SDRUK.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _credit(result: JoinResult) -> str:
    if result.run_id is None:
        return "Žádná náborová kampaň knihovnu předtím neoslovila, vstup se nezapočte žádné."
    step = "úvodní rozesílce" if result.step == "launch" else "připomínce"
    name = result.campaign_name or result.campaign
    return f"Vstup se započte náborové kampani „{name}“ ({step}, rozesílka č. {result.run_id})."


def _print(result: JoinResult) -> None:
    since = f" od roku {result.member_since}" if result.member_since else ""
    if not result.recorded:
        when = f", zapsáno {format_moment(result.joined_at)}" if result.joined_at else ""
        console.print(
            f"Knihovna [bold]{result.library}[/bold] už je členem SDRUK{since}{when}; "
            "nic se nezměnilo."
        )
        return
    console.print(
        f"Zaznamenáno: knihovna [bold]{result.library}[/bold] je členem SDRUK{since}. "
        "Připomínky náborové kampaně jí přestanou chodit na všechny adresy."
    )
    if result.contact_email:
        console.print(f"Přihlášku poslal(a): {result.contact_email}")
    console.print(_credit(result))


# Which library a command records something for: the same argument for joining and leaving.
LibraryArgument = Annotated[
    str,
    typer.Argument(
        metavar="SIGLA_NEBO_ČÍSLO",
        help="Sigla knihovny (např. BOA001) nebo její číslo z adresy stránky v konzoli.",
        show_default=False,
    ),
]


@app.command("join", short_help="Zaznamená vstup knihovny do SDRUK (jako konzole).")
def join(
    library: LibraryArgument,
    since: Annotated[
        str | None,
        typer.Option("--since", metavar="ROK", help="Členem od roku (výchozí: letošní rok)."),
    ] = None,
    contact: Annotated[
        str | None,
        typer.Option(
            "--contact",
            metavar="E-MAIL",
            help="Kdo přihlášku poslal: e-mail některého kontaktu knihovny "
            "(výchozí: její první kontakt).",
        ),
    ] = None,
    note: Annotated[
        str, typer.Option("--note", metavar="TEXT", help="Poznámka k zápisu (např. odkud víte).")
    ] = "",
    as_json: Annotated[
        bool, typer.Option("--json", help="Výsledek jako jeden objekt JSON.")
    ] = False,
) -> None:
    """Zaznamená vstup knihovny do SDRUK, stejně jako tlačítko „Zaznamenat vstup do SDRUK“
    v konzoli: připomínky náborové kampaně jí přestanou chodit na všechny adresy a vstup se
    započte náborové kampani, která ji oslovila naposledy. Opakované volání nic nezmění."""
    require_schema()
    try:
        with Session(get_engine()) as session:
            found = find_library(session, library)
            result = record_join(
                session,
                found,
                actor="cli",
                member_since=parse_year(since),
                contact=contact,
                note=note,
            )
            session.commit()
    except MembershipError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc)}, ensure_ascii=False))
        else:
            err.print(f"[red]Nelze zaznamenat:[/red] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(result.as_json(), ensure_ascii=False))
    else:
        _print(result)


@app.command("leave", short_help="Zaznamená, že knihovna ze SDRUK vystoupila.")
def leave(
    library: LibraryArgument,
    note: Annotated[
        str, typer.Option("--note", metavar="TEXT", help="Poznámka k zápisu (např. odkud víte).")
    ] = "",
    as_json: Annotated[
        bool, typer.Option("--json", help="Výsledek jako jeden objekt JSON.")
    ] = False,
) -> None:
    """Zaznamená, že knihovna ze SDRUK vystoupila: přestane být členem a zápis se uloží do
    historie změn. Import adresáře členství zapsané v konzoli nebo příkazem „join“ sám neukončí;
    k tomu slouží tento příkaz. Opakované volání nic nezmění."""
    require_schema()
    try:
        with Session(get_engine()) as session:
            found = find_library(session, library)
            result = record_leave(session, found, actor="cli", note=note)
            session.commit()
    except MembershipError as exc:
        if as_json:
            typer.echo(json.dumps({"error": str(exc)}, ensure_ascii=False))
        else:
            err.print(f"[red]Nelze zaznamenat:[/red] {exc}")
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(asdict(result), ensure_ascii=False))
    elif result.recorded:
        console.print(f"Zaznamenáno: knihovna [bold]{result.library}[/bold] už není členem SDRUK.")
    else:
        console.print(
            f"Knihovna [bold]{result.library}[/bold] není členem SDRUK; nic se nezměnilo."
        )
