"""One-click unsubscribe (RFC 8058), the confirmation page, undo, and preferences."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from events_factory import make_world
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from mailer.audience.contacts import is_suppressed
from mailer.models import (
    Contact,
    Event,
    EventKind,
    LegalBasisRecord,
    MessageStatus,
    OutboxMessage,
    TopicOptOut,
)
from mailer.tokens import Purpose, default_signer
from mailer.web.app import create_app


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(), base_url="https://kampane.sdruk.test") as test_client:
        yield test_client


def _token(purpose: Purpose, *ids: int) -> str:
    return default_signer().sign(purpose, *ids)


def _contact(engine: Engine, contact_id: int) -> Contact:
    with Session(engine) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact


def _events(engine: Engine, kind: EventKind) -> list[Event]:
    with Session(engine) as session:
        return list(session.exec(select(Event).where(Event.kind == kind)).all())


def _assert_one_click_answer(response: object) -> None:
    assert response.status_code == 200  # type: ignore[attr-defined]
    assert "location" not in response.headers  # type: ignore[attr-defined]
    assert "set-cookie" not in response.headers  # type: ignore[attr-defined]


def test_it_unsubscribes_on_urlencoded_one_click_post_twice(
    engine: Engine, client: TestClient
) -> None:
    world = make_world(engine)
    token = _token(Purpose.UNSUBSCRIBE, world.outbox_ids[0])
    for _ in range(2):
        response = client.post(
            f"/u/{token}",
            content=b"List-Unsubscribe=One-Click",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
            follow_redirects=False,
        )
        _assert_one_click_answer(response)
    contact = _contact(engine, world.contact_ids[0])
    assert contact.status == "unsubscribed"
    with Session(engine) as session:
        assert is_suppressed(session, contact.email)
    events = _events(engine, EventKind.UNSUBSCRIBE)
    assert [(e.contact_id, e.run_id, e.detail["source"]) for e in events] == [
        (world.contact_ids[0], world.run_id, "one-click")
    ]
    assert _contact(engine, world.contact_ids[1]).status == "active"


def test_it_unsubscribes_on_multipart_one_click_post_twice(
    engine: Engine, client: TestClient
) -> None:
    world = make_world(engine)
    token = _token(Purpose.UNSUBSCRIBE, world.outbox_ids[1])
    for _ in range(2):
        response = client.post(
            f"/u/{token}",
            files={"List-Unsubscribe": (None, "One-Click")},
            follow_redirects=False,
        )
        assert response.request.headers["content-type"].startswith("multipart/form-data")
        _assert_one_click_answer(response)
    assert _contact(engine, world.contact_ids[1]).status == "unsubscribed"
    assert len(_events(engine, EventKind.UNSUBSCRIBE)) == 1


def test_it_refuses_a_post_without_the_one_click_body(engine: Engine, client: TestClient) -> None:
    world = make_world(engine)
    token = _token(Purpose.UNSUBSCRIBE, world.outbox_ids[0])
    response = client.post(f"/u/{token}", data={"something": "else"})
    assert response.status_code == 400
    assert _contact(engine, world.contact_ids[0]).status == "active"


def test_it_changes_nothing_on_get(engine: Engine, client: TestClient) -> None:
    world = make_world(engine, status=MessageStatus.QUEUED)
    token = _token(Purpose.UNSUBSCRIBE, world.outbox_ids[0])
    for method in ("GET", "HEAD"):
        response = client.request(method, f"/u/{token}")
        assert response.status_code == 200
    page = client.get(f"/u/{token}")
    assert "Odhlásit se" in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    assert _contact(engine, world.contact_ids[0]).status == "active"
    assert _events(engine, EventKind.UNSUBSCRIBE) == []
    with Session(engine) as session:
        statuses = session.exec(select(OutboxMessage.status)).all()
    assert set(statuses) == {MessageStatus.QUEUED}


def test_it_skips_queued_messages_of_a_contact_unsubscribing_mid_run(
    engine: Engine, client: TestClient
) -> None:
    sent = make_world(engine, step="launch")
    pending = make_world(engine, step="reminder", status=MessageStatus.QUEUED)
    # The same people in the reminder run: point its rows at the first run's contacts.
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage).where(OutboxMessage.run_id == pending.run_id)
        ).all()
        for row, contact_id in zip(rows, sent.contact_ids, strict=True):
            row.contact_id = contact_id
        rows[1].status = MessageStatus.RETRY
        session.add_all(rows)
        session.commit()
    for outbox_id in sent.outbox_ids[:2]:
        token = _token(Purpose.UNSUBSCRIBE, outbox_id)
        response = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
        _assert_one_click_answer(response)
    with Session(engine) as session:
        by_contact = {
            row.contact_id: row.status
            for row in session.exec(
                select(OutboxMessage).where(OutboxMessage.run_id == pending.run_id)
            ).all()
        }
        sent_statuses = session.exec(
            select(OutboxMessage.status).where(OutboxMessage.run_id == sent.run_id)
        ).all()
    assert by_contact == {
        sent.contact_ids[0]: MessageStatus.SKIPPED,
        sent.contact_ids[1]: MessageStatus.SKIPPED,
        sent.contact_ids[2]: MessageStatus.QUEUED,
    }
    assert set(sent_statuses) == {MessageStatus.SENT}


def test_it_confirms_the_page_button_with_an_undo_that_records_fresh_consent(
    engine: Engine, client: TestClient
) -> None:
    world = make_world(engine)
    token = _token(Purpose.UNSUBSCRIBE, world.outbox_ids[0])
    done = client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click", "via": "page"})
    assert done.status_code == 200
    assert "Odhlášení proběhlo" in done.text
    assert f'action="/u/{token}/undo"' in done.text
    assert _events(engine, EventKind.UNSUBSCRIBE)[0].detail["source"] == "page"

    undone = client.post(f"/u/{token}/undo", data={"undo": "1"})
    assert undone.status_code == 200
    assert "Odběr obnoven" in undone.text
    contact = _contact(engine, world.contact_ids[0])
    assert (contact.status, contact.legal_basis) == ("active", "consent")
    with Session(engine) as session:
        assert not is_suppressed(session, contact.email)
        consents = session.exec(
            select(LegalBasisRecord).where(LegalBasisRecord.contact_id == contact.id)
        ).all()
    assert [(r.basis, r.source) for r in consents] == [("consent", "web")]
    assert "tlačítko Vrátit" in (consents[0].evidence or "")
    assert len(_events(engine, EventKind.RESUBSCRIBE)) == 1


def test_it_lets_a_recipient_leave_one_topic_or_all(engine: Engine, client: TestClient) -> None:
    world = make_world(engine, status=MessageStatus.QUEUED, topic="events")
    token = _token(Purpose.PREFERENCES, world.outbox_ids[0])
    page = client.get(f"/p/{token}")
    assert page.status_code == 200
    assert "Akce, workshopy a konference" in page.text

    saved = client.post(
        f"/p/{token}", data={"action": "save", "topic": ["membership", "newsletter"]}
    )
    assert "Nastavení jsme uložili" in saved.text
    with Session(engine) as session:
        off = session.exec(
            select(TopicOptOut.topic).where(TopicOptOut.contact_id == world.contact_ids[0])
        ).all()
        skipped = session.get(OutboxMessage, world.outbox_ids[0])
    assert off == ["events"]
    assert skipped is not None and skipped.status == MessageStatus.SKIPPED
    assert _contact(engine, world.contact_ids[0]).status == "active"

    client.post(f"/p/{token}", data={"action": "save", "topic": ["events", "newsletter"]})
    with Session(engine) as session:
        off = session.exec(
            select(TopicOptOut.topic).where(TopicOptOut.contact_id == world.contact_ids[0])
        ).all()
    assert off == ["membership"]

    client.post(f"/p/{token}", data={"action": "all"})
    assert _contact(engine, world.contact_ids[0]).status == "unsubscribed"
    with Session(engine) as session:
        kinds = session.exec(
            select(Event.kind, func.count()).group_by(Event.kind).order_by(col(Event.kind))
        ).all()
    assert dict(kinds) == {"topic_opt_in": 1, "topic_opt_out": 2, "unsubscribe": 1}


def test_it_answers_with_security_headers(engine: Engine, client: TestClient) -> None:
    world = make_world(engine)
    for path in (f"/u/{_token(Purpose.UNSUBSCRIBE, world.outbox_ids[0])}", "/u/nonsense"):
        response = client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert response.headers["strict-transport-security"].startswith("max-age=")
        assert "set-cookie" not in response.headers


def test_it_accepts_contact_bound_preference_links(engine: Engine, client: TestClient) -> None:
    world = make_world(engine)
    token = _token(Purpose.CONTACT_PREFERENCES, world.contact_ids[2])
    assert client.get(f"/p/{token}").status_code == 200
    assert _events(engine, EventKind.TOPIC_OPT_OUT) == []
    client.post(f"/p/{token}", data={"action": "save", "topic": ["membership", "events"]})
    [event] = _events(engine, EventKind.TOPIC_OPT_OUT)
    assert (event.contact_id, event.detail["topic"], event.run_id) == (
        world.contact_ids[2],
        "newsletter",
        None,
    )
    client.post(f"/p/{token}", data={"action": "all"})
    client.post(f"/p/{token}", data={"action": "resubscribe"})
    contact = _contact(engine, world.contact_ids[2])
    assert (contact.status, contact.legal_basis) == ("active", "consent")
