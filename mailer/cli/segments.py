"""`sdruk segments …`: count, list and save segments of contacts."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, select

from mailer.audience.segments import (
    Segment,
    SegmentError,
    count,
    field_specs,
    parse_segment,
    parse_where,
    recipients_select,
)
from mailer.cli.contacts import require_schema
from mailer.cli.czech import CzechTyper
from mailer.compose.czech import count_noun
from mailer.db import get_engine, session_scope
from mailer.models import LIBRARY_TYPE_LABELS, Contact, Library, LibraryType, SavedSegment, utcnow

app = CzechTyper(help="Segmenty příjemců.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)

WhereOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--where",
        "-w",
        help="Podmínka POLE=H1,H2 nebo POLE!=H (lze opakovat; platí všechny).",
    ),
]
FileOpt = Annotated[
    Path | None,
    typer.Option("--segment-file", help="TOML s tabulkou [segment] (i campaign.toml)."),
]
SavedOpt = Annotated[str | None, typer.Option("--saved", help="Uložený segment podle jména.")]
TopicOpt = Annotated[
    str | None, typer.Option("--topic", help="Vynechá ty, kdo se odhlásili z tématu.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Výstup jako JSON.")]


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(2)


def _file_definition(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _fail(f"Soubor {path} nelze otevřít: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise _fail(f"{path}: chybný TOML: {exc}") from None
    segment = data.get("segment", data)
    if not isinstance(segment, dict):
        raise _fail(f"{path}: [segment] má být tabulka.")
    return segment


def build_segment(where: list[str] | None, segment_file: Path | None, saved: str | None) -> Segment:
    """The AND of the --where options, the segment file and the saved segment."""
    parts: list[dict[str, Any]] = []
    try:
        if where:
            parts.append(parse_where(where).definition)
        if segment_file is not None:
            parts.append(_file_definition(segment_file))
        if saved is not None:
            with Session(get_engine()) as session:
                row = session.exec(select(SavedSegment).where(SavedSegment.name == saved)).first()
            if row is None:
                raise _fail(f"Uložený segment „{saved}“ neexistuje.")
            parts.append(dict(row.definition))
        definition: dict[str, Any] = parts[0] if len(parts) == 1 else {"all": parts}
        return parse_segment(definition if parts else {})
    except SegmentError as exc:
        raise _fail(str(exc)) from None


@app.command("count")
def count_cmd(
    where: WhereOpt = None,
    segment_file: FileOpt = None,
    saved: SavedOpt = None,
    topic: TopicOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Spočítá kontakty v segmentu (jen aktivní, nepotlačené, s právním základem)."""
    require_schema()
    segment = build_segment(where, segment_file, saved)
    try:
        with Session(get_engine()) as session:
            n = count(session, segment, topic=topic)
    except SegmentError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({"count": n}))
    else:
        console.print(f"Kontaktů v segmentu: [bold]{n}[/bold]")


def _library_type_label(value: str | None) -> str:
    if value is None:
        return ""
    try:
        return LIBRARY_TYPE_LABELS[LibraryType(value)]
    except ValueError:
        return value


@app.command("show")
def show_cmd(
    where: WhereOpt = None,
    segment_file: FileOpt = None,
    saved: SavedOpt = None,
    topic: TopicOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Kolik řádků.")] = 20,
    as_json: JsonOpt = False,
) -> None:
    """Vypíše kontakty v segmentu jako tabulku."""
    require_schema()
    segment = build_segment(where, segment_file, saved)
    try:
        with Session(get_engine()) as session:
            total = count(session, segment, topic=topic)
            stmt = recipients_select(segment, topic=topic).add_columns(Library).limit(limit)
            rows: list[tuple[Contact, Library | None]] = [
                (r[0], r[1]) for r in session.execute(stmt).all()
            ]
    except SegmentError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        items = [
            {
                "id": c.id,
                "email": c.email,
                "first_name": c.first_name,
                "last_name": c.last_name,
                "role": c.role,
                "library": lib.name if lib else None,
                "library_type": lib.library_type if lib else None,
                "region": lib.region if lib else None,
                "town": lib.town if lib else None,
                "member": lib.is_member if lib else False,
            }
            for c, lib in rows
        ]
        typer.echo(json.dumps({"count": total, "contacts": items}, ensure_ascii=False))
        return
    people = count_noun(total, "kontakt", "kontakty", "kontaktů")
    table = Table(title=f"Segment: {people} (zobrazeno {len(rows)})", title_justify="left")
    table.add_column("E-mail", no_wrap=True)
    for title in ("Jméno", "Knihovna", "Typ", "Kraj", "Člen"):
        table.add_column(title, overflow="fold")
    for c, lib in rows:
        table.add_row(
            c.email,
            f"{c.first_name} {c.last_name}".strip(),
            lib.name if lib else "",
            _library_type_label(lib.library_type if lib else None),
            lib.region if lib else "",
            ("ano" if lib.is_member else "ne") if lib else "",
        )
    # Piped output has no width; a wide table reads better than one folded to 80 columns.
    out = console if console.is_terminal else Console(width=200)
    out.print(table)


@app.command("save")
def save_cmd(
    name: Annotated[str, typer.Argument(help="Jméno segmentu.")],
    where: WhereOpt = None,
    segment_file: FileOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Uloží segment pod jménem (přepíše stejnojmenný)."""
    require_schema()
    if not where and segment_file is None:
        raise _fail("Zadejte podmínky segmentu: --where nebo --segment-file.")
    segment = build_segment(where, segment_file, None)
    with session_scope() as session:
        row = session.exec(select(SavedSegment).where(SavedSegment.name == name)).first()
        saved = row or SavedSegment(name=name)
        saved.definition = segment.definition
        saved.updated_at = utcnow()
        session.add(saved)
        n = count(session, segment)
    if as_json:
        typer.echo(json.dumps({"name": name, "definition": segment.definition, "count": n}))
    else:
        people = count_noun(n, "kontakt", "kontakty", "kontaktů")
        console.print(f"Segment „{name}“ uložen ({people}).")


@app.command("fields")
def fields_cmd() -> None:
    """Vypíše pole, podle kterých lze segmentovat, a jejich platné hodnoty."""
    table = Table(title="Pole segmentů", title_justify="left")
    table.add_column("Pole")
    table.add_column("Význam")
    table.add_column("Hodnoty", overflow="fold")
    for name, spec in sorted(field_specs().items()):
        if spec.kind == "bool":
            values = "true / false (ano / ne)"
        elif spec.choices is not None:
            values = ", ".join(spec.choices())
        else:
            values = "text"
        table.add_row(name, spec.description, values)
    console.print(table)
