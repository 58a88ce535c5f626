"""A directory import and the memberships staff record: an import never ends a membership
recorded in the console, by `sdruk libraries join` or by an approved application (only an
explicit `sdruk libraries leave` does), and a library the import switches to member is
recorded as joined exactly as the console records it, once however often the file comes."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from mailer.audience.contacts import ImportReport, import_contacts
from mailer.audience.membership import record_join
from mailer.cli import app
from mailer.db import make_engine
from mailer.events.stats import run_stats
from mailer.migrations import upgrade
from mailer.models import (
    AuditEntry,
    Contact,
    Event,
    EventKind,
    Library,
    OutboxMessage,
    Run,
    RunStatus,
    utcnow,
)

runner = CliRunner()
HEADER = "e-mail;jméno;příjmení;knihovna;typ;sigla;obec;kraj;člen;souhlas\n"
PEOPLE = [
    ("reditelka@knihovna-tisnov.example", "Marie", "Svobodová"),
    ("pujcovna@knihovna-tisnov.example", "Petr", "Dvořák"),
]


def _import(engine: Engine, tmp_path: Path, member: str, name: str = "adresar.csv") -> ImportReport:
    lines = [
        f"{email};{first};{last};Městská knihovna Tišnov;městská;BOG504;Tišnov;"
        f"Jihomoravský kraj;{member};oprávněný zájem\n"
        for email, first, last in PEOPLE
    ]
    path = tmp_path / name
    path.write_text(HEADER + "".join(lines), encoding="utf-8")
    report = import_contacts(engine, path, actor="import-test")
    assert not report.rejected, report.rejected
    return report


def _library(engine: Engine) -> Library:
    with Session(engine) as session:
        return session.exec(select(Library).where(Library.siglum == "BOG504")).one()


def _joined_events(engine: Engine) -> list[Event]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(Event).where(Event.kind == EventKind.JOINED).order_by(col(Event.id))
            ).all()
        )


def _recruitment_run(engine: Engine) -> int:
    """A recruitment run that reached the library's second address yesterday."""
    with Session(engine) as session:
        contact = session.exec(select(Contact).where(Contact.email == PEOPLE[1][0])).one()
        run = Run(
            campaign="nabor-2026",
            step="launch",
            status=RunStatus.SENT,
            content={"kind": "recruitment", "name": "Nábor 2026", "links": [], "tracking": "off"},
            recipients=1,
            started_at=utcnow() - timedelta(days=1),
        )
        session.add(run)
        session.flush()
        session.add(
            OutboxMessage(
                run_id=run.id,  # type: ignore[arg-type]
                contact_id=contact.id,  # type: ignore[arg-type]
                email=contact.email,
                status="sent",
                sent_at=utcnow() - timedelta(days=1),
            )
        )
        session.commit()
        assert run.id is not None
        return run.id


def test_a_reimport_saying_not_a_member_keeps_a_join_recorded_by_staff(
    engine: Engine, tmp_path: Path
) -> None:
    _import(engine, tmp_path, "ne")
    joined = runner.invoke(app, ["libraries", "join", "BOG504", "--note", "přihláška poštou"])
    assert joined.exit_code == 0, joined.output
    # The directory's file does not know of the joining yet, once or twice.
    for _ in range(2):
        report = _import(engine, tmp_path, "ne")
        library = _library(engine)
        assert library.is_member and library.joined_at is not None
        assert report.memberships_kept == 1
        (note,) = [n for n in report.notes if "ponecháno" in n.reason]
        assert "členství zaznamenané v konzoli, které adresář zatím neuvádí, ponecháno" in (
            note.reason
        )
        assert "sdruk libraries leave" in note.reason
    assert len(_joined_events(engine)) == 1


def test_a_join_in_the_console_is_kept_likewise(engine: Engine, tmp_path: Path) -> None:
    _import(engine, tmp_path, "ne")
    with Session(engine) as session:
        library = session.exec(select(Library).where(Library.siglum == "BOG504")).one()
        record_join(session, library, actor="editor@sdruk.example")
        session.commit()
    assert _import(engine, tmp_path, "ne").memberships_kept == 1
    assert _library(engine).is_member


def test_an_import_that_makes_a_library_a_member_records_the_joining(
    engine: Engine, tmp_path: Path
) -> None:
    _import(engine, tmp_path, "ne")
    recruitment = _recruitment_run(engine)
    first = _import(engine, tmp_path, "ano")
    assert first.libraries_joined == 1
    library = _library(engine)
    assert library.is_member and library.joined_at is not None
    (event,) = _joined_events(engine)
    # As record_join credits it: the recruitment run that reached the library last, and the
    # library's first contact as the applicant.
    assert event.run_id == recruitment
    assert event.detail["library_id"] == library.id and event.detail["by"] == "import-test"
    with Session(engine) as session:
        first_contact = session.exec(
            select(Contact).where(Contact.library_id == library.id).order_by(col(Contact.id))
        ).first()
        assert first_contact is not None and event.contact_id == first_contact.id
        assert run_stats(session, recruitment).funnel["joined"] == 1
        audits = session.exec(select(AuditEntry).where(AuditEntry.action == "membership")).all()
        assert [a.actor for a in audits] == ["import-test"]
    # The same file again, or another one saying the same: nothing recorded twice.
    assert _import(engine, tmp_path, "ano").libraries_joined == 0
    assert _import(engine, tmp_path, "ano", "adresar-kopie.csv").libraries_joined == 0
    assert len(_joined_events(engine)) == 1


def test_a_library_new_to_the_directory_as_a_member_is_not_a_joining(
    engine: Engine, tmp_path: Path
) -> None:
    report = _import(engine, tmp_path, "ano")
    assert report.libraries_created == 1 and report.libraries_joined == 0
    assert _library(engine).is_member and _joined_events(engine) == []


def test_the_directory_ends_a_membership_it_recorded_itself(engine: Engine, tmp_path: Path) -> None:
    _import(engine, tmp_path, "ne")
    _import(engine, tmp_path, "ano")
    report = _import(engine, tmp_path, "ne")
    assert report.memberships_kept == 0 and not _library(engine).is_member


def test_once_the_directory_lists_a_staff_join_it_may_end_it(
    engine: Engine, tmp_path: Path
) -> None:
    _import(engine, tmp_path, "ne")
    assert runner.invoke(app, ["libraries", "join", "BOG504"]).exit_code == 0
    # The file caught up with the joining: from now on the directory speaks for it.
    assert _import(engine, tmp_path, "ano").libraries_joined == 0
    assert _import(engine, tmp_path, "ne").memberships_kept == 0
    assert not _library(engine).is_member
    assert len(_joined_events(engine)) == 1


def test_staff_record_a_resignation_from_the_command_line(engine: Engine, tmp_path: Path) -> None:
    _import(engine, tmp_path, "ne")
    assert runner.invoke(app, ["libraries", "join", "BOG504"]).exit_code == 0
    left = runner.invoke(app, ["libraries", "leave", "bog504", "--note", "dopis z 3. 12."])
    assert left.exit_code == 0, left.output
    assert "Městská knihovna Tišnov" in left.output and "už není členem SDRUK" in left.output
    library = _library(engine)
    assert not library.is_member and library.member_since is None
    again = runner.invoke(app, ["libraries", "leave", "BOG504"])
    assert again.exit_code == 0 and "nic se nezměnilo" in again.output
    unknown = runner.invoke(app, ["libraries", "leave", "XYZ999"])
    assert unknown.exit_code == 2 and "v adresáři není" in unknown.output
    assert _import(engine, tmp_path, "ne").memberships_kept == 0
    with Session(engine) as session:
        audits = session.exec(select(AuditEntry).where(AuditEntry.action == "membership_end")).all()
        assert [(a.actor, a.detail["note"]) for a in audits] == [("cli", "dopis z 3. 12.")]
    # Joining again later is a new joining.
    assert _import(engine, tmp_path, "ano").libraries_joined == 1
    assert len(_joined_events(engine)) == 2


def test_the_migration_tells_staff_joins_from_directory_memberships(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, "0012")
        now = utcnow()
        with engine.begin() as conn:
            for i, member in enumerate([True, True, False]):
                conn.execute(
                    Library.__table__.insert(),  # type: ignore[attr-defined]
                    {"id": i + 1, "name": f"Knihovna {i}", "library_type": "mestska",
                     "region": "Kraj Vysočina", "town": "Jihlava", "is_member": member,
                     "created_at": now, "updated_at": now},
                )  # fmt: skip
            # Library 1 joined in the console (a JOINED event); library 2 came as a member.
            conn.execute(
                Event.__table__.insert(),  # type: ignore[attr-defined]
                {"kind": "joined", "occurred_at": now, "is_machine": False,
                 "detail": {"library_id": 1, "by": "editor@sdruk.example"}},
            )  # fmt: skip
        upgrade(engine)
        with Session(engine) as session:
            sources = {
                lib.id: lib.membership_source
                for lib in session.exec(select(Library).order_by(col(Library.id)))
            }
        assert sources == {1: "staff", 2: "import", 3: None}
    finally:
        engine.dispose()
