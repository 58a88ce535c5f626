"""The `registered` goal follows registrations from the public page: a cancelled registration
withdraws it (unless another one of the same campaign is still active), and the `attending`
fields pick only confirmed seats, not the waiting list."""

from __future__ import annotations

from pathlib import Path

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
from mailer.models import Contact
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
