"""Review findings about leaving: the undo on the unsubscribe page takes back only the
unsubscribe that the same message's page or one-click just made, never another one."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from events_factory import make_world
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from mailer.audience.contacts import is_suppressed
from mailer.events import record
from mailer.models import Contact
from mailer.tokens import Purpose, default_signer
from mailer.web.app import create_app

ONE_CLICK = {"List-Unsubscribe": "One-Click", "via": "page"}


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(), base_url="https://kampane.sdruk.test") as test_client:
        yield test_client


def _status(engine: Engine, contact_id: int) -> tuple[str, bool]:
    with Session(engine) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact.status, is_suppressed(session, contact.email)


def test_it_does_not_undo_an_unsubscribe_made_elsewhere(engine: Engine, client: TestClient) -> None:
    world = make_world(engine)
    contact_id = world.contact_ids[0]
    with Session(engine) as session:
        # The contact objected by phone; staff recorded it in the console.
        record.unsubscribe(session, contact_id, "konzole: staff@sdruk.cz")
        session.commit()
    token = default_signer().sign(Purpose.UNSUBSCRIBE, world.outbox_ids[0])

    again = client.post(f"/u/{token}", data=ONE_CLICK)  # idempotent: nothing changes
    assert again.status_code == 200
    assert f"/u/{token}/undo" not in again.text
    undone = client.post(f"/u/{token}/undo", data={"undo": "1"})
    assert undone.status_code == 200
    assert _status(engine, contact_id) == ("unsubscribed", True)


def test_it_does_not_undo_a_page_unsubscribe_that_a_later_one_replaced(
    engine: Engine, client: TestClient
) -> None:
    world = make_world(engine)
    contact_id = world.contact_ids[0]
    token = default_signer().sign(Purpose.UNSUBSCRIBE, world.outbox_ids[0])
    assert client.post(f"/u/{token}", data=ONE_CLICK).status_code == 200
    with Session(engine) as session:
        record.resubscribe(session, contact_id, "konzole", evidence="telefonát 3. 2.")
        session.commit()
    with Session(engine) as session:
        record.unsubscribe(session, contact_id, "mailto")
        session.commit()

    client.post(f"/u/{token}/undo", data={"undo": "1"})
    assert _status(engine, contact_id) == ("unsubscribed", True)


def test_it_still_undoes_its_own_unsubscribe(engine: Engine, client: TestClient) -> None:
    world = make_world(engine)
    contact_id = world.contact_ids[0]
    token = default_signer().sign(Purpose.UNSUBSCRIBE, world.outbox_ids[0])
    done = client.post(f"/u/{token}", data=ONE_CLICK)
    assert f"/u/{token}/undo" in done.text
    assert _status(engine, contact_id) == ("unsubscribed", True)
    client.post(f"/u/{token}/undo", data={"undo": "1"})
    assert _status(engine, contact_id) == ("active", False)


def test_it_tells_staff_in_czech_why_waiting_messages_were_skipped(engine: Engine) -> None:
    from mailer.models import MessageStatus, OutboxMessage, Topic

    world = make_world(engine, status=MessageStatus.QUEUED, topic="events")
    with Session(engine) as session:
        record.opt_out_topic(session, world.contact_ids[0], Topic.EVENTS, "preferences")
        record.unsubscribe(session, world.contact_ids[1], "page")
        session.commit()
    with Session(engine) as session:
        errors = [session.get(OutboxMessage, i).error for i in world.outbox_ids[:2]]  # type: ignore[union-attr]
    assert errors == ["kontakt se odhlásil z tématu kampaně", "kontakt se mezitím odhlásil"]
