"""The tracking question on public pages: the sign-up form records the answer when the address
is confirmed (with the wording shown and the IP), and the preferences page of a message sets it,
each answer kept as evidence; a page without an answer changes nothing."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from console_support import load_contacts
from events_factory import make_world
from fastapi.testclient import TestClient
from public_support import client_for, submit
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.audience.tracking_consent import QUESTION
from mailer.models import (
    TRANSACTIONAL_CAMPAIGN,
    Contact,
    OutboxMessage,
    Run,
    TrackingConsentRecord,
)
from mailer.tokens import Purpose, default_signer


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> TestClient:
    load_contacts(engine, tmp_path)
    return client_for(engine)


def _signup(email: str, **extra: str) -> dict[str, Any]:
    return {"email": email, "first_name": "Jana", "last_name": "Nová", "library_name": "",
            "topic": ["events"], "consent": "1", **extra}  # fmt: skip


def _confirm(engine: Engine, client: TestClient) -> None:
    with Session(engine) as session:
        content = session.exec(
            select(Run.content)
            .join(OutboxMessage, col(OutboxMessage.run_id) == col(Run.id))
            .where(Run.campaign == TRANSACTIONAL_CAMPAIGN)
            .order_by(col(OutboxMessage.id))
        ).first()
    assert content is not None
    path = content["values"]["message"]["button_url"].split("kampane.sdruk.test", 1)[1]
    page = client.get(path)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert csrf
    assert client.post(path, data={"csrf_token": csrf.group(1)}).status_code == 200


def _records(engine: Engine, email: str) -> tuple[str, list[TrackingConsentRecord]]:
    with Session(engine) as session:
        contact = session.exec(select(Contact).where(Contact.email == email)).one()
        records = session.exec(
            select(TrackingConsentRecord)
            .where(TrackingConsentRecord.contact_id == contact.id)
            .order_by(col(TrackingConsentRecord.id))
        ).all()
        return contact.tracking_consent, list(records)


def test_the_sign_up_records_the_answer_when_the_address_is_confirmed(
    engine: Engine, client: TestClient
) -> None:
    form = client.get("/odber").text
    assert QUESTION in form and "anonymně" in form
    answer = submit(client, "/odber", _signup("nova@example.cz", tracking="denied"))
    assert answer.status_code == 200
    with Session(engine) as session:
        assert session.exec(select(TrackingConsentRecord)).all() == []  # not before confirming
    _confirm(engine, client)
    value, records = _records(engine, "nova@example.cz")
    assert value == "denied"
    [evidence] = records
    assert evidence.source == "formulář odběru" and evidence.recorded_by is None
    assert evidence.wording is not None
    assert QUESTION in evidence.wording and "Ne, nesledujte mě" in evidence.wording
    assert evidence.ip  # the client's address, as with the consent to mailing


def test_an_unanswered_question_leaves_the_consent_unknown(
    engine: Engine, client: TestClient
) -> None:
    submit(client, "/odber", _signup("bez-odpovedi@example.cz", tracking="možná"))
    _confirm(engine, client)
    value, records = _records(engine, "bez-odpovedi@example.cz")
    assert (value, records) == ("unknown", [])


def test_the_preferences_page_sets_the_consent_and_keeps_each_answer(
    engine: Engine, client: TestClient
) -> None:
    world = make_world(engine, contacts=1)
    token = default_signer().sign(Purpose.PREFERENCES, world.outbox_ids[0])
    page = client.get(f"/p/{token}")
    assert page.status_code == 200 and QUESTION in page.text
    email = "reditelka0.nabor-2026.launch@knihovna-test.cz"

    denied = client.post(f"/p/{token}", data={"action": "tracking", "tracking": "denied"})
    assert denied.status_code == 200 and "sledování nechcete" in denied.text
    assert 'value="denied" aria-describedby="tracking-help" checked' in denied.text
    missing = client.post(f"/p/{token}", data={"action": "tracking"})
    assert missing.status_code == 200 and "Vyberte prosím odpověď" in missing.text
    granted = client.post(f"/p/{token}", data={"action": "tracking", "tracking": "granted"})
    assert "souhlas se sledováním" in granted.text

    value, records = _records(engine, email)
    assert value == "granted"
    assert [(r.value, r.source) for r in records] == [
        ("denied", "stránka nastavení"),
        ("granted", "stránka nastavení"),
    ]
    assert all(r.ip and r.wording and QUESTION in r.wording for r in records)


def test_the_confirmation_page_shows_the_tracking_answer_it_confirms(
    engine: Engine, client: TestClient
) -> None:
    """Anyone can type an address into the sign-up form and answer the question for it; the
    answer is recorded only when the address's owner confirms, so the page they confirm on
    must say what they confirm: the question and the answer given on the form."""
    submit(client, "/odber", _signup("cizi@example.cz", tracking="granted"))
    with Session(engine) as session:
        content = session.exec(
            select(Run.content)
            .join(OutboxMessage, col(OutboxMessage.run_id) == col(Run.id))
            .where(Run.campaign == TRANSACTIONAL_CAMPAIGN)
        ).one()
    path = content["values"]["message"]["button_url"].split("kampane.sdruk.test", 1)[1]
    page = client.get(path)
    assert page.status_code == 200
    assert QUESTION in page.text and "Ano, smíte" in page.text
