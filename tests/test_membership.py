"""Recording that a library joined SDRUK (console and `sdruk libraries join`), and which
campaign the joining is credited to: the recruitment campaign that reached the library last
before it joined, never a later event invitation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from console_support import BASE_URL, HTML, add_user, make_app, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from mailer.audience.membership import record_join
from mailer.cli import app
from mailer.events.stats import run_stats
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
EDITOR = "editor@sdruk.example"


@dataclass
class Directory:
    library: int  # Městská knihovna Tišnov, two contacts
    other: int  # Obecní knihovna Lhota, one contact
    ředitelka: int
    knihovnik: int
    lhota: int


def _directory(engine: Engine) -> Directory:
    with Session(engine) as session:
        tisnov = Library(
            name="Městská knihovna Tišnov",
            siglum="BOG504",
            library_type="mestska",
            region="Jihomoravský kraj",
            town="Tišnov",
        )
        lhota = Library(
            name="Obecní knihovna Lhota",
            siglum="ZLG001",
            library_type="obecni",
            region="Zlínský kraj",
            town="Lhota",
        )
        session.add_all([tisnov, lhota])
        session.flush()
        people = [
            Contact(
                email=email,
                first_name=first,
                last_name="Svobodová",
                library_id=library.id,
                legal_basis="legitimate_interest",
            )
            for email, first, library in [
                ("reditelka@knihovna-tisnov.example", "Marie", tisnov),
                ("pujcovna@knihovna-tisnov.example", "Petr", tisnov),
                ("knihovna@lhota.example", "Eva", lhota),
            ]
        ]
        session.add_all(people)
        session.commit()
        ids = [p.id for p in people]
        assert tisnov.id and lhota.id and all(ids)
        return Directory(tisnov.id, lhota.id, *ids)  # type: ignore[arg-type]


def _run(
    engine: Engine,
    campaign: str,
    step: str,
    kind: str,
    sent: list[tuple[int, datetime]],
    *,
    status: str = "sent",
) -> int:
    """A run of a campaign step that reached these contacts at these times."""
    with Session(engine) as session:
        run = Run(
            campaign=campaign,
            step=step,
            status=RunStatus.SENT,
            content={"kind": kind, "name": f"Kampaň {campaign}", "links": [], "tracking": "off"},
            recipients=len(sent),
            started_at=min(at for _, at in sent),
        )
        session.add(run)
        session.flush()
        for contact_id, at in sent:
            contact = session.get(Contact, contact_id)
            assert contact is not None
            session.add(
                OutboxMessage(
                    run_id=run.id,  # type: ignore[arg-type]
                    contact_id=contact_id,
                    email=contact.email,
                    status=status,
                    sent_at=at if status == "sent" else None,
                )
            )
        session.commit()
        assert run.id is not None
        return run.id


def _joined_events(engine: Engine) -> list[Event]:
    with Session(engine) as session:
        return list(session.exec(select(Event).where(Event.kind == EventKind.JOINED)).all())


@pytest.fixture
def console(engine: Engine) -> Iterator[TestClient]:
    add_user(engine, EDITOR, "editor")
    with TestClient(make_app(engine), base_url=BASE_URL) as client:
        yield client


def _join_in_console(client: TestClient, library_id: int, **form: str) -> int:
    csrf = sign_in(client, EDITOR)
    response = client.post(
        f"/console/libraries/{library_id}/membership",
        data={"csrf_token": csrf, "member_since": "2026", **form},
        follow_redirects=False,
    )
    return response.status_code


def test_it_credits_a_console_join_to_the_recruitment_campaign_not_a_later_invitation(
    engine: Engine, console: TestClient
) -> None:
    d = _directory(engine)
    now = utcnow()
    recruitment = _run(
        engine, "nabor-2026", "launch", "recruitment", [(d.ředitelka, now - timedelta(days=9))]
    )
    # The conference invitation reached the library's other address later.
    _run(engine, "konference-2027", "launch", "event", [(d.knihovnik, now - timedelta(days=2))])
    assert _join_in_console(console, d.library) == 303
    (event,) = _joined_events(engine)
    assert event.run_id == recruitment


def test_it_credits_the_latest_recruitment_run_before_the_join(engine: Engine) -> None:
    d = _directory(engine)
    now = utcnow()
    _run(engine, "nabor-2026", "launch", "recruitment", [(d.ředitelka, now - timedelta(days=12))])
    reminder = _run(
        engine, "nabor-2026", "pripominka", "recruitment", [(d.knihovnik, now - timedelta(days=2))]
    )
    # A failed message reached nobody; a message after the join did not lead to it.
    _run(
        engine,
        "nabor-2025",
        "launch",
        "recruitment",
        [(d.ředitelka, now - timedelta(days=1))],
        status="failed",
    )
    _run(engine, "nabor-2027", "launch", "recruitment", [(d.knihovnik, now + timedelta(days=1))])
    with Session(engine) as session:
        library = session.get(Library, d.library)
        assert library is not None
        result = record_join(session, library, actor="test", now=now)
        session.commit()
    assert (result.run_id, result.campaign, result.step) == (reminder, "nabor-2026", "pripominka")
    assert _joined_events(engine)[0].run_id == reminder


def test_it_credits_nothing_when_no_recruitment_reached_the_library(engine: Engine) -> None:
    d = _directory(engine)
    _run(engine, "konference-2027", "launch", "event", [(d.ředitelka, utcnow())])
    # A recruitment message to another library is not this library's.
    _run(engine, "nabor-2026", "launch", "recruitment", [(d.lhota, utcnow())])
    with Session(engine) as session:
        library = session.get(Library, d.library)
        assert library is not None
        result = record_join(session, library, actor="test", now=utcnow() + timedelta(seconds=1))
        session.commit()
    assert result.recorded and result.run_id is None and result.campaign is None
    assert _joined_events(engine)[0].run_id is None


def test_it_counts_the_join_in_the_recruitment_results_only(engine: Engine) -> None:
    d = _directory(engine)
    now = utcnow()
    recruitment = _run(
        engine, "nabor-2026", "launch", "recruitment", [(d.ředitelka, now - timedelta(days=9))]
    )
    conference = _run(
        engine, "konference-2027", "launch", "event", [(d.knihovnik, now - timedelta(days=2))]
    )
    with Session(engine) as session:
        library = session.get(Library, d.library)
        assert library is not None
        record_join(session, library, actor="test", now=now)
        session.commit()
    with Session(engine) as session:
        assert run_stats(session, recruitment).funnel["joined"] == 1
        assert run_stats(session, conference).funnel["joined"] == 0


def test_it_keeps_a_console_join_idempotent_and_explains_a_bad_year(
    engine: Engine, console: TestClient
) -> None:
    d = _directory(engine)
    csrf = sign_in(console, EDITOR)
    url = f"/console/libraries/{d.library}/membership"
    bad = console.post(
        url,
        data={"csrf_token": csrf, "member_since": "2150", "note": "přihláška poštou"},
        headers=HTML,
    )
    assert bad.status_code == 422
    assert "Rok členství „2150“ není platný" in bad.text
    assert 'value="přihláška poštou"' in bad.text  # what was typed stays
    assert _joined_events(engine) == []
    for _ in range(2):
        assert _join_in_console(console, d.library, note="přihláška poštou") == 303
    assert len(_joined_events(engine)) == 1
    page = console.get(f"/console/libraries/{d.library}?notice=already_member", headers=HTML)
    assert "Knihovna už je členem SDRUK, nic se nezměnilo." in page.text


def test_it_records_a_join_from_the_command_line_as_the_console_does(
    engine: Engine, console: TestClient
) -> None:
    d = _directory(engine)
    recruitment = _run(
        engine, "nabor-2026", "launch", "recruitment", [(d.ředitelka, utcnow() - timedelta(1))]
    )
    cli = runner.invoke(
        app,
        [
            "libraries",
            "join",
            "bog504",
            "--since",
            "2025",
            "--contact",
            "Pujcovna@knihovna-tisnov.example",
            "--note",
            "z evidence členů",
        ],
    )
    assert cli.exit_code == 0, cli.output
    assert "Městská knihovna Tišnov" in cli.output and "od roku 2025" in cli.output
    assert "Vstup se započte náborové kampani „Kampaň nabor-2026“" in cli.output
    # The console records the other library; both leave the same traces.
    assert _join_in_console(console, d.other, note="z evidence členů") == 303
    with Session(engine) as session:
        tisnov, lhota = session.get(Library, d.library), session.get(Library, d.other)
        assert tisnov is not None and lhota is not None
        assert (tisnov.is_member, tisnov.member_since) == (True, 2025)
        assert tisnov.joined_at is not None and lhota.is_member
        audits = session.exec(
            select(AuditEntry).where(AuditEntry.action == "membership").order_by(col(AuditEntry.id))
        ).all()
    assert [(a.actor, a.target) for a in audits] == [
        ("cli", "Městská knihovna Tišnov"),
        (EDITOR, "Obecní knihovna Lhota"),
    ]
    by_library = {e.detail["library_id"]: e for e in _joined_events(engine)}
    assert by_library[d.library].contact_id == d.knihovnik
    assert by_library[d.library].run_id == recruitment
    assert by_library[d.library].detail["note"] == by_library[d.other].detail["note"]
    assert by_library[d.other].contact_id == d.lhota


def test_it_answers_a_repeated_join_by_id_without_a_second_record(engine: Engine) -> None:
    d = _directory(engine)
    first = runner.invoke(app, ["libraries", "join", str(d.library), "--json"])
    assert first.exit_code == 0, first.output
    recorded = json.loads(first.output)
    assert recorded["recorded"] is True and recorded["library"] == "Městská knihovna Tišnov"
    assert recorded["contact_email"] == "reditelka@knihovna-tisnov.example"
    again = runner.invoke(app, ["libraries", "join", "BOG504"])
    assert again.exit_code == 0, again.output
    assert "už je členem SDRUK" in again.output and "nic se nezměnilo" in again.output
    again_json = json.loads(runner.invoke(app, ["libraries", "join", "BOG504", "--json"]).output)
    assert again_json["recorded"] is False
    assert again_json["joined_at"] == recorded["joined_at"]
    assert len(_joined_events(engine)) == 1


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["XYZ999"], "Knihovna „XYZ999“ v adresáři není"),
        (["99999999999999999999999"], "v adresáři není"),
        (
            ["BOG504", "--contact", "knihovna@lhota.example"],
            "nepatří ke knihovně „Městská knihovna Tišnov“",
        ),
        (["BOG504", "--since", "1850"], "Rok členství „1850“ není platný"),
        (["BOG504", "--since", "loni"], "Rok členství „loni“ není platný"),
    ],
)
def test_it_refuses_a_join_it_cannot_record_in_czech(
    engine: Engine, arguments: list[str], message: str
) -> None:
    _directory(engine)
    result = runner.invoke(app, ["libraries", "join", *arguments])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())
    as_json = runner.invoke(app, ["libraries", "join", *arguments, "--json"])
    assert as_json.exit_code == 2 and message in json.loads(as_json.output)["error"]
    assert _joined_events(engine) == []
    with Session(engine) as session:
        assert not any(lib.is_member for lib in session.exec(select(Library)).all())


def test_it_describes_the_command_in_czech(configured: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["libraries", "join", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "Zaznamená vstup knihovny do SDRUK" in text and "--since" in text
