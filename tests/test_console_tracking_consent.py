"""Tracking consent in the console: the contact page shows the value and its evidence and lets
an editor record one (with their address as its author); a reminder to those who did not open
says in Czech whom it leaves out because their opens cannot be known."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from console_support import BASE_URL, HTML, add_user, load_contacts, make_app, sign_in
from events_factory import make_world
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.events import record
from mailer.models import Contact, EventKind, OutboxMessage, TrackingConsentRecord
from mailer.web.console.audience import audience, untracked_note

EMAIL = "reditel@knihovna-kladno.example"


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    load_contacts(engine, tmp_path)
    add_user(engine, "editor@sdruk.example", "editor")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        yield test_client


def _contact(engine: Engine) -> Contact:
    with Session(engine) as session:
        return session.exec(select(Contact).where(Contact.email == EMAIL)).one()


def test_it_records_a_consent_staff_set_with_their_address(
    engine: Engine, client: TestClient
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    contact = _contact(engine)
    url = f"/console/contacts/{contact.id}"
    assert "nevyjádřil(a) se" in client.get(url, headers=HTML).text

    saved = client.post(
        f"{url}/tracking",
        data={"csrf_token": csrf, "tracking": "denied", "tracking_note": "telefonicky 3. 12."},
        headers=HTML,
    )

    assert saved.status_code == 200
    assert "Souhlas se sledováním byl zaznamenán." in saved.text
    assert _contact(engine).tracking_consent == "denied"
    with Session(engine) as session:
        records = session.exec(select(TrackingConsentRecord)).all()
    assert [(r.value, r.source, r.recorded_by, r.wording) for r in records] == [
        ("denied", "konzole", "editor@sdruk.example", "telefonicky 3. 12.")
    ]
    page = client.get(url, headers=HTML).text
    assert "odmítl(a) (konzole, zapsal(a) editor@sdruk.example)" in page


def test_it_wants_evidence_of_a_consent_and_keeps_what_was_typed(
    engine: Engine, client: TestClient
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    contact = _contact(engine)
    refused = client.post(
        f"/console/contacts/{contact.id}/tracking",
        data={"csrf_token": csrf, "tracking": "granted", "tracking_note": ""},
        headers=HTML,
    )
    assert refused.status_code == 422
    assert "Souhlas se sledováním je třeba doložit" in refused.text
    unknown = client.post(
        f"/console/contacts/{contact.id}/tracking",
        data={"csrf_token": csrf, "tracking": "možná"},
        headers=HTML,
    )
    assert unknown.status_code == 422
    assert _contact(engine).tracking_consent == "unknown"
    with Session(engine) as session:
        assert session.exec(select(TrackingConsentRecord)).all() == []


def test_it_says_whom_a_reminder_to_those_who_did_not_open_leaves_out(engine: Engine) -> None:
    slug = "nabor-2026"
    world = make_world(engine, contacts=5, campaign=slug)
    a, b, c, _d, _e = world.contact_ids
    with Session(engine) as session, session.begin():
        record.record_event(
            session, EventKind.OPEN, outbox_id=world.outbox_ids[0], contact_id=a,
            run_id=world.run_id,
        )  # fmt: skip
        for cid in (b, c):
            contact = session.get(Contact, cid)
            assert contact is not None
            contact.tracking_consent = "denied"
        # d's message went out untracked (unknown consent under the strict setting).
        row = session.get(OutboxMessage, world.outbox_ids[3])
        assert row is not None
        row.individually_tracked = False
    reminder = SimpleNamespace(
        slug=slug,
        topic="membership",
        audience_for=lambda step: {"received": "launch", "opened": False},
    )
    with Session(engine) as session:
        size, problem = audience(session, reminder, "pripominka")
        note = untracked_note(session, reminder, "pripominka")
    assert (size, problem) == (1, None)  # e only: a opened; b, c, d cannot be known
    assert note is not None and note.startswith("U 3 kontaktů nevíme, zda zprávu otevřeli")
    goal = SimpleNamespace(
        slug=slug, topic="membership", audience_for=lambda step: {"received": "launch"}
    )
    with Session(engine) as session:
        assert untracked_note(session, goal, "pripominka") is None
        assert audience(session, goal, "pripominka") == (5, None)
