"""The `joined` goal counts an application from the public form at once: compared with a small
model of the rule on generated libraries, contacts and applications (SQLite and PostgreSQL)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine
from sqlmodel import Session

from mailer.audience.segments import parse_segment, recipients_select
from mailer.models import Contact, Library, MembershipApplication


@dataclass(frozen=True)
class World:
    members: list[bool]  # per library
    contacts: list[int | None]  # library index per contact (None: no library)
    # (status, library index or None, contact index or None)
    applications: list[tuple[str, int | None, int | None]]


@st.composite
def worlds(draw: st.DrawFn) -> World:
    members = draw(st.lists(st.booleans(), min_size=1, max_size=4))
    libraries = st.none() | st.integers(0, len(members) - 1)
    contacts = draw(st.lists(libraries, min_size=1, max_size=6))
    people = st.none() | st.integers(0, len(contacts) - 1)
    applications = draw(
        st.lists(
            st.tuples(st.sampled_from(["pending", "approved", "rejected"]), libraries, people),
            max_size=4,
        )
    )
    return World(members, contacts, applications)


def model(world: World) -> set[int]:
    """Contact indexes that count as joined: member library, or an application that is not
    rejected and names the contact or the contact's library."""
    joined = set()
    for i, library in enumerate(world.contacts):
        if library is not None and world.members[library]:
            joined.add(i)
        for status, app_library, app_contact in world.applications:
            if status == "rejected":
                continue
            if app_contact == i or (library is not None and app_library == library):
                joined.add(i)
    return joined


def _store(engine: Engine, world: World) -> list[int]:
    with Session(engine) as session:
        session.execute(sa.delete(MembershipApplication))
        session.execute(sa.delete(Contact))
        session.execute(sa.delete(Library))
        libraries = []
        for i, member in enumerate(world.members):
            library = Library(
                name=f"Knihovna {i}", library_type="mestska", region="Kraj Vysočina",
                is_member=member,
            )  # fmt: skip
            session.add(library)
            libraries.append(library)
        session.flush()
        contacts = []
        for i, library_index in enumerate(world.contacts):
            email = f"k{i}@knihovna.example"
            contact = Contact(
                email=email,
                address_hash=hashlib.sha256(email.encode()).hexdigest(),
                library_id=None if library_index is None else libraries[library_index].id,
                legal_basis="legitimate_interest",
            )
            session.add(contact)
            contacts.append(contact)
        session.flush()
        for status, library_index, contact_index in world.applications:
            session.add(
                MembershipApplication(
                    status=status,
                    library_id=None if library_index is None else libraries[library_index].id,
                    contact_id=None if contact_index is None else contacts[contact_index].id,
                    library_name="Knihovna",
                    library_type="mestska",
                    region="Kraj Vysočina",
                    town="Jihlava",
                    contact_name="Jana Nováková",
                    email="jana@knihovna.example",
                    consent_text="Souhlasím.",
                )
            )
        session.commit()
        return [c.id for c in contacts]  # type: ignore[misc]


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(world=worlds())
def test_joined_matches_the_model(engine: Engine, world: World) -> None:
    ids = _store(engine, world)
    expected = {ids[i] for i in model(world)}
    with Session(engine) as session:
        for value, wanted in ((True, expected), (False, set(ids) - expected)):
            rows = session.execute(recipients_select(parse_segment({"joined": value}))).scalars()
            assert {c.id for c in rows} == wanted
