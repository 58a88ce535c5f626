"""The `joined` field: a recorded joining stops recruitment reminders for that library only.

Regression tests for one JOINED event that emptied every reminder (the event's subquery did
not correlate with the contact and became "any library joined anywhere")."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from console_support import BASE_URL, add_user, make_app, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from test_scheduler_fixtures import ROOT, add_people, send_all

from mailer import settings as mailer_settings
from mailer.audience.contacts import import_contacts
from mailer.audience.segments import (
    SegmentContext,
    count,
    field_specs,
    parse_segment,
    recipients_select,
)
from mailer.compose.campaigns import load_blueprint
from mailer.delivery.runs import launch
from mailer.events.record import record_event
from mailer.models import Contact, EventKind, Library, OutboxMessage

RECRUITMENT = "join-this-year-2026"
REMINDER = {"received": "launch", "joined": False}
DEMO = ROOT / "mailer" / "fixtures" / "libraries.csv"
# A Tuesday morning inside the campaign's sending window, in the past.
LAUNCHED_AT = datetime(2026, 3, 3, 9, 30, tzinfo=ZoneInfo("Europe/Prague"))


@pytest.fixture
def shipped_campaigns(configured: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(ROOT / "campaigns"))
    mailer_settings.get_settings.cache_clear()
    yield ROOT / "campaigns"
    mailer_settings.get_settings.cache_clear()


def _picked(engine: Engine, definition: dict[str, object]) -> set[int]:
    with Session(engine) as session:
        select_ = recipients_select(
            parse_segment(definition), topic="membership", context=SegmentContext(RECRUITMENT)
        )
        return {c.id for c in session.execute(select_).scalars()}


def _sent_launch(engine: Engine, contact_ids: list[int], run_id: int) -> None:
    with Session(engine) as session:
        for contact_id in contact_ids:
            contact = session.get(Contact, contact_id)
            assert contact is not None
            session.add(
                OutboxMessage(
                    run_id=run_id, contact_id=contact_id, email=contact.email, status="sent"
                )
            )
        session.commit()


def test_it_stops_only_the_joined_library_on_a_joined_event(
    engine: Engine, shipped_campaigns: Path, tmp_path: Path
) -> None:
    # Three libraries; olga's has a colleague, petra. Only the JOINED event is recorded (no
    # membership flag), so the event path alone decides.
    people = add_people(engine, ["olga", "petra", "rita", "sara"], shared_library={"petra": "olga"})
    run_id = launch(engine, load_blueprint(RECRUITMENT), "launch", now=LAUNCHED_AT).run_id
    send_all(engine, tmp_path)
    everyone = {people[n] for n in ("olga", "petra", "rita", "sara")}
    assert _picked(engine, REMINDER) == everyone
    with Session(engine) as session:
        record_event(session, EventKind.JOINED, contact_id=people["olga"], run_id=run_id)
        session.commit()
    assert _picked(engine, REMINDER) == {people["rita"], people["sara"]}
    assert _picked(engine, {"joined": True}) == {people["olga"], people["petra"]}
    assert _picked(engine, {"received": "launch", "joined": {"not": False}}) == {
        people["olga"],
        people["petra"],
    }


def test_it_keeps_a_contact_without_library_out_of_a_colleagues_join(
    engine: Engine, shipped_campaigns: Path
) -> None:
    people = add_people(engine, ["olga", "vera"])
    with Session(engine) as session:
        for name in ("olga", "vera"):
            contact = session.get(Contact, people[name])
            assert contact is not None
            contact.library_id = None
            session.add(contact)
        session.commit()
        record_event(session, EventKind.JOINED, contact_id=people["olga"])
        session.commit()
    assert _picked(engine, {"joined": True}) == {people["olga"]}
    assert _picked(engine, {"joined": False}) == {people["vera"]}


@pytest.fixture
def console(engine: Engine) -> Iterator[TestClient]:
    add_user(engine, "editor@sdruk.example", "editor")
    with TestClient(make_app(engine), base_url=BASE_URL) as client:
        yield client


def test_it_drops_the_reminder_by_that_librarys_contacts_on_the_demo_data(
    engine: Engine, shipped_campaigns: Path, console: TestClient, tmp_path: Path
) -> None:
    import_contacts(engine, DEMO)
    launch(engine, load_blueprint(RECRUITMENT), "launch", now=LAUNCHED_AT)
    send_all(engine, tmp_path)
    reminder = parse_segment(REMINDER)
    context = SegmentContext(RECRUITMENT)
    with Session(engine) as session:
        before = count(session, reminder, topic="membership", context=context)
        assert before > 700
        # A library with more than one contact in the reminder.
        reached = session.exec(
            select(Contact.library_id, Contact.id).where(
                col(Contact.id).in_(_picked(engine, REMINDER))
            )
        ).all()
    by_library: dict[int, set[int]] = {}
    for library_id, contact_id in reached:
        by_library.setdefault(library_id, set()).add(contact_id)
    library_id, its_contacts = max(by_library.items(), key=lambda item: len(item[1]))
    assert len(its_contacts) >= 2

    csrf = sign_in(console, "editor@sdruk.example")
    response = console.post(
        f"/console/libraries/{library_id}/membership",
        data={"csrf_token": csrf, "member_since": "2026"},
        follow_redirects=False,
    )
    assert response.status_code == 303

    with Session(engine) as session:
        after = count(session, reminder, topic="membership", context=context)
        members = count(session, parse_segment({"joined": True}), topic="membership")
        library = session.get(Library, library_id)
        assert library is not None and library.is_member
    assert after == before - len(its_contacts)
    assert (
        _picked(engine, REMINDER)
        == {c for contacts in by_library.values() for c in contacts} - its_contacts
    )
    assert members < before


def _bare_contact_froms(sql: str) -> int:
    # FROM lists (up to the WHERE) naming the table `contact` without an alias.
    froms = re.findall(r"\bFROM\b(.*?)(?:\bWHERE\b|\)|$)", sql, flags=re.DOTALL)
    return sum(len(re.findall(r"\bcontact\b(?!\s+AS\b)(?![._])", f)) for f in froms)


@pytest.mark.parametrize("name", sorted(field_specs()))
def test_it_correlates_every_field_with_the_recipient(name: str) -> None:
    spec = field_specs()[name]
    value: object = True if spec.kind == "bool" else "launch"
    if spec.choices is not None:
        value = spec.choices()[0]
    for definition in ({name: value}, {"not": {name: value}}, {"any": [{name: value}]}):
        select_ = recipients_select(parse_segment(definition), context=SegmentContext("k"))
        sql = str(select_.compile(compile_kwargs={"literal_binds": True}))
        # Only the outer FROM names the recipient's table; a second bare `contact` is a
        # subquery that did not correlate and so means "any contact at all".
        assert _bare_contact_froms(sql) == 1, sql
