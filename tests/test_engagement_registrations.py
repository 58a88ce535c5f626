"""The `registered` goal follows registrations from the public page: a cancelled registration
withdraws it (unless another one of the same campaign is still active), and the `attending`
fields pick only confirmed seats, not the waiting list."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session, select
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    SLUG,
    People,
    add_people,
    campaigns_dir_fixture,
)

from mailer.audience.segments import SegmentContext, parse_segment, recipients_select
from mailer.compose.campaigns import load_blueprint
from mailer.models import Contact, Event, EventKind, EventRegistration
from mailer.signups.registrations import Registrant, cancel, register


def _names(engine: Engine, people: People, definition: dict[str, object]) -> set[str]:
    segment = parse_segment(definition)
    with Session(engine) as session:
        rows = session.execute(
            recipients_select(segment, topic="events", context=SegmentContext(SLUG))
        ).scalars()
        return people.names({c.id for c in rows})


def _register(engine: Engine, people: People, name: str, session_index: int = 0) -> int:
    blueprint = load_blueprint(SLUG)
    with Session(engine) as session:
        email = session.exec(select(Contact.email).where(Contact.id == people[name])).one()
        person = Registrant(name=name.capitalize(), role="", library_name="", email=email)
        outcome = register(session, blueprint, session_index, person)
        session.commit()
        assert outcome.registration.id is not None
        return outcome.registration.id


def _cancel(engine: Engine, registration_id: int) -> None:
    with Session(engine) as session:
        assert cancel(session, load_blueprint(SLUG), registration_id) is not None
        session.commit()


def test_it_withdraws_the_registered_goal_of_a_cancelled_registration(
    engine: Engine, campaigns_dir: Path
) -> None:
    people = add_people(engine, ["alena", "bara", "cecilie"])
    alena = _register(engine, people, "alena")
    _register(engine, people, "bara")
    assert _names(engine, people, {"registered": True}) == {"alena", "bara"}
    _cancel(engine, alena)
    assert _names(engine, people, {"registered": True}) == {"bara"}
    assert _names(engine, people, {"registered": False}) == {"alena", "cecilie"}
    assert _names(engine, people, {"attending": True}) == {"bara"}
    # Registering again after cancelling counts again.
    _register(engine, people, "alena")
    assert _names(engine, people, {"registered": True}) == {"alena", "bara"}


# --- the oracle: registrations, cancellations and sessions against a small model ------------

SESSIONS = 3
BASE = datetime(2027, 1, 12, 9, 0, tzinfo=UTC)
OTHER = "jina-akce"


@dataclass(frozen=True)
class World:
    contacts: int
    # (contact index or None for an address not in the directory, session index, status,
    # minute it was made, minute it was cancelled (cancelled only), campaign)
    registrations: list[tuple[int | None, int, str, int, int, str]]
    # REGISTERED events: (contact index, minute, campaign) — an import, or the page's record
    events: list[tuple[int, int, str]]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    contacts = draw(st.integers(1, 4))
    people = st.none() | st.integers(0, contacts - 1)
    minute = st.integers(0, 12)
    rows = draw(
        st.lists(
            st.tuples(
                people,
                st.integers(0, SESSIONS - 1),
                st.sampled_from(["registered", "waitlisted", "cancelled"]),
                minute,
                minute,
                st.sampled_from([SLUG, SLUG, OTHER]),
            ),
            max_size=8,
            # One row per person, session and campaign, as the unique constraint keeps it.
            unique_by=lambda r: (r[0] if r[0] is not None else -1, r[1], r[5]),
        )
    )
    events = draw(
        st.lists(
            st.tuples(st.integers(0, contacts - 1), minute, st.sampled_from([SLUG, OTHER])),
            max_size=5,
        )
    )
    return World(contacts, rows, events)


def model(world: World) -> dict[str, set[int]]:
    """Contact indexes per audience, by the rules as staff read them."""
    mine = [r for r in world.registrations if r[5] == SLUG and r[0] is not None]
    last_cancel: dict[int, int] = {}
    for person, _s, status, _made, cancelled, _c in mine:
        if status == "cancelled" and person is not None:
            last_cancel[person] = max(last_cancel.get(person, -1), cancelled)
    registered = {p for p, _s, status, *_ in mine if status != "cancelled"}
    for person, at, campaign in world.events:
        # An import or a page's record counts unless the person cancelled at or after it.
        if campaign == SLUG and at > last_cancel.get(person, -1):
            registered.add(person)
    out = {
        "registered": {p for p in registered if p is not None},
        "attending": {p for p, _s, status, *_ in mine if status == "registered"},
    }
    for number in range(1, SESSIONS + 1):
        out[f"session-{number}"] = {
            p for p, s, status, *_ in mine if status == "registered" and s == number - 1
        }
    return {k: {p for p in v if p is not None} for k, v in out.items()}


def _store(engine: Engine, world: World) -> list[int]:
    with Session(engine) as session:
        session.execute(sa.delete(EventRegistration))
        session.execute(sa.delete(Event))
        session.execute(sa.delete(Contact))
        contacts = []
        for i in range(world.contacts):
            email = f"k{i}@knihovna.example"
            contact = Contact(
                email=email,
                address_hash=hashlib.sha256(email.encode()).hexdigest(),
                legal_basis="legitimate_interest",
            )
            session.add(contact)
            contacts.append(contact)
        session.flush()
        for person, index, status, made, cancelled, campaign in world.registrations:
            session.add(
                EventRegistration(
                    campaign=campaign,
                    session_index=index,
                    status=status,
                    name="Jana Nováková",
                    email=f"r{person}@knihovna.example",
                    contact_id=None if person is None else contacts[person].id,
                    created_at=BASE + timedelta(minutes=made),
                    cancelled_at=(
                        BASE + timedelta(minutes=cancelled) if status == "cancelled" else None
                    ),
                )
            )
        for person, at, campaign in world.events:
            session.add(
                Event(
                    kind=EventKind.REGISTERED.value,
                    contact_id=contacts[person].id,
                    occurred_at=BASE + timedelta(minutes=at),
                    detail={"campaign": campaign, "source": "import"},
                )
            )
        session.commit()
        return [c.id for c in contacts]  # type: ignore[misc]


def _picked(engine: Engine, definition: dict[str, object]) -> set[int]:
    with Session(engine) as session:
        rows = session.execute(
            recipients_select(parse_segment(definition), context=SegmentContext(SLUG))
        ).scalars()
        return {c.id for c in rows}


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(world=worlds())
def test_registration_audiences_match_the_model(engine: Engine, world: World) -> None:
    ids = _store(engine, world)
    expected = {k: {ids[i] for i in v} for k, v in model(world).items()}
    everyone = set(ids)
    assert _picked(engine, {"registered": True}) == expected["registered"]
    assert _picked(engine, {"registered": False}) == everyone - expected["registered"]
    assert _picked(engine, {"attending": True}) == expected["attending"]
    assert _picked(engine, {"attending": False}) == everyone - expected["attending"]
    for number in range(1, SESSIONS + 1):
        wanted = expected[f"session-{number}"]
        assert _picked(engine, {"attending_session": number}) == wanted
        # What a per-session registrants' step of a series sends to (Blueprint.audience_for).
        series = {"all": [{"attending": True}, {"attending_session": number}]}
        assert _picked(engine, series) == wanted
    # The "register now" reminder of an event: a wait-listed person acted and is left alone.
    assert _picked(engine, {"not": {"registered": True}}) == everyone - expected["registered"]
