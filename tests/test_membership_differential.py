"""Who is a member, and who still gets the "not joined" reminders, after any sequence of
directory imports, console joins and recorded resignations: compared with a small model of the
rule (an import ends only a membership the directory recorded or has listed; a joining is
recorded once, by whichever path made the library a member) on generated sequences."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.audience.contacts import import_contacts
from mailer.audience.membership import find_library, record_join, record_leave
from mailer.audience.segments import parse_segment, recipients_select
from mailer.models import (
    AuditEntry,
    Contact,
    ContactTag,
    Event,
    EventKind,
    LegalBasisRecord,
    Library,
)

# Library index -> how many contacts it has.
CONTACTS = [2, 1, 1]
SIGLA = [f"JIG{i:03d}" for i in range(len(CONTACTS))]
HEADER = "e-mail;knihovna;typ;sigla;obec;kraj;člen;souhlas\n"

Flag = bool | None  # a file's „člen“ cell: ano, ne, or empty (says nothing)
flags = st.tuples(*[st.sampled_from([True, False, None]) for _ in CONTACTS])
operations = st.lists(
    st.one_of(
        st.tuples(st.just("import"), flags),
        st.tuples(st.just("join"), st.integers(0, len(CONTACTS) - 1)),
        st.tuples(st.just("leave"), st.integers(0, len(CONTACTS) - 1)),
    ),
    max_size=8,
)


@dataclass
class Model:
    member: list[bool] = field(default_factory=lambda: [False] * len(CONTACTS))
    by_directory: list[bool] = field(default_factory=lambda: [False] * len(CONTACTS))
    # A JOINED event names one of the library's contacts (its first): the reminder goal.
    joined_event: list[bool] = field(default_factory=lambda: [False] * len(CONTACTS))
    joinings: int = 0

    def first_import(self, file: tuple[Flag, ...]) -> None:
        # Libraries new to the directory are members or not; that is no joining.
        for i, flag in enumerate(file):
            self.member[i] = self.by_directory[i] = bool(flag)

    def import_file(self, file: tuple[Flag, ...]) -> tuple[int, int]:
        """(libraries joined, memberships kept)."""
        joined = kept = 0
        for i, flag in enumerate(file):
            if flag is True and not self.member[i]:
                self.member[i] = self.by_directory[i] = True
                self.record_joining(i)
                joined += 1
            elif flag is True:
                self.by_directory[i] = True
            elif flag is False and self.member[i] and self.by_directory[i]:
                self.member[i] = self.by_directory[i] = False
            elif flag is False and self.member[i]:
                kept += 1
        return joined, kept

    def join(self, i: int) -> None:
        if not self.member[i]:
            self.member[i], self.by_directory[i] = True, False
            self.record_joining(i)

    def leave(self, i: int) -> None:
        self.member[i] = self.by_directory[i] = False

    def record_joining(self, i: int) -> None:
        self.joined_event[i] = True
        self.joinings += 1


def _email(library: int, n: int) -> str:
    return f"k{n}@knihovna-{library}.example"


def _import(engine: Engine, path: Path, file: tuple[Flag, ...]) -> Any:
    cell = {True: "ano", False: "ne", None: ""}
    lines = [
        f"{_email(i, n)};Knihovna {i};městská;{SIGLA[i]};Jihlava;Kraj Vysočina;"
        f"{cell[flag]};oprávněný zájem\n"
        for i, flag in enumerate(file)
        for n in range(CONTACTS[i])
    ]
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    report = import_contacts(engine, path, actor="import")
    assert not report.rejected, report.rejected
    return report


def _staff(engine: Engine, i: int, leaving: bool) -> None:
    with Session(engine) as session:
        library = find_library(session, SIGLA[i])
        if leaving:
            record_leave(session, library, actor="editor@sdruk.example")
        else:
            record_join(session, library, actor="editor@sdruk.example")
        session.commit()


def _empty(engine: Engine) -> None:
    with Session(engine) as session:
        for table in (Event, AuditEntry, LegalBasisRecord, ContactTag, Contact, Library):
            session.execute(sa.delete(table))
        session.commit()


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(first=flags, steps=operations)
def test_membership_and_the_not_joined_audience_match_the_model(
    engine: Engine, tmp_path: Path, first: tuple[Flag, ...], steps: list[tuple[str, Any]]
) -> None:
    _empty(engine)
    path = tmp_path / "adresar.csv"
    model = Model()
    model.first_import(first)
    _import(engine, path, first)
    for kind, argument in steps:
        if kind == "import":
            report = _import(engine, path, argument)
            assert (report.libraries_joined, report.memberships_kept) == model.import_file(argument)
        else:
            _staff(engine, argument, leaving=kind == "leave")
            model.leave(argument) if kind == "leave" else model.join(argument)

    with Session(engine) as session:
        members = {lib.siglum for lib in session.exec(select(Library)).all() if lib.is_member}
        assert members == {SIGLA[i] for i, m in enumerate(model.member) if m}
        joined_events = session.exec(select(Event).where(Event.kind == EventKind.JOINED)).all()
        assert len(joined_events) == model.joinings
        not_joined = {
            c.email
            for c in session.execute(recipients_select(parse_segment({"joined": False}))).scalars()
        }
    expected = {
        _email(i, n)
        for i, count in enumerate(CONTACTS)
        for n in range(count)
        if not model.member[i] and not model.joined_event[i]
    }
    assert not_joined == expected
