"""Subscribing with double opt-in: the same answer and the same mail for every address, a
signed confirmation link that expires after 7 days, consent recorded with its evidence, the
welcome, and a flood from one address throttled without slowing anyone else."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from console_support import load_contacts
from fastapi.testclient import TestClient
from public_support import client_for, submit
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.models import (
    TRANSACTIONAL_CAMPAIGN,
    Contact,
    LegalBasisRecord,
    OutboxMessage,
    Run,
    SubscriptionRequest,
    TopicOptOut,
)
from mailer.tokens import Purpose, default_signer

KNOWN = "knihovna@obec-lhota.example"


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> TestClient:
    load_contacts(engine, tmp_path)
    return client_for(engine)


def _signup(email: str, topics: tuple[str, ...] = ("events", "newsletter")) -> dict[str, Any]:
    return {"email": email, "first_name": "Jana", "last_name": "Nová", "library_name": "",
            "topic": list(topics), "consent": "1"}  # fmt: skip


def _mail(engine: Engine) -> list[tuple[str, int | None, dict[str, Any]]]:
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage.email, OutboxMessage.contact_id, Run.content)
            .join(Run, col(Run.id) == col(OutboxMessage.run_id))
            .where(Run.campaign == TRANSACTIONAL_CAMPAIGN)
            .order_by(col(OutboxMessage.id))
        ).all()
    return [(e, c, content) for e, c, content in rows]


def _confirm_path(content: dict[str, Any]) -> str:
    url = content["values"]["message"]["button_url"]
    return url.split("kampane.sdruk.test", 1)[1]


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found
    return found.group(1)


def test_a_person_subscribes_confirms_and_is_welcomed(engine: Engine, client: TestClient) -> None:
    answer = submit(client, "/odber", _signup("nova.ctenarka@example.cz"))
    assert answer.status_code == 200 and "Zkontrolujte prosím svou schránku" in answer.text
    [(to, contact_id, content)] = _mail(engine)
    assert to == "nova.ctenarka@example.cz" and contact_id is None
    assert content["step"] == "odber-potvrzeni"
    path = _confirm_path(content)
    with Session(engine) as session:
        assert session.exec(select(Contact).where(Contact.email == to)).first() is None

    page = client.get(path)
    assert page.status_code == 200 and "Potvrdit odběr" in page.text
    assert len(_mail(engine)) == 1  # the GET confirmed nothing
    done = client.post(path, data={"csrf_token": _csrf(page.text)})
    assert done.status_code == 200 and "Odběr je potvrzený" in done.text

    with Session(engine) as session:
        contact = session.exec(select(Contact).where(Contact.email == to)).one()
        assert contact.legal_basis == "consent" and contact.status == "active"
        evidence = session.exec(
            select(LegalBasisRecord).where(LegalBasisRecord.contact_id == contact.id)
        ).one()
        assert "Souhlasím, aby mi Sdružení knihoven ČR" in (evidence.evidence or "")
        assert "IP" in (evidence.evidence or "") and "potvrzeno" in (evidence.evidence or "")
        off = set(
            session.exec(select(TopicOptOut.topic).where(TopicOptOut.contact_id == contact.id))
        )
        assert off == {"membership"}
    mail = _mail(engine)
    assert [c["step"] for _, _, c in mail] == ["odber-potvrzeni", "odber-vitejte"]
    # Confirming twice sends no second welcome.
    again = client.post(path, data={"csrf_token": _csrf(page.text)})
    assert again.status_code == 200 and len(_mail(engine)) == 2
    # The welcome's preferences link offers the same topics, as chosen.
    preferences = client.get(_confirm_path(mail[1][2]))
    assert preferences.status_code == 200
    for label in ("Členství a nábor", "Akce, workshopy a konference", "Zpravodaj"):
        assert label in preferences.text
    assert re.search(r'value="membership"(?! checked)', preferences.text)
    assert 'value="events" checked' in preferences.text


def test_it_never_tells_whether_an_address_is_known(engine: Engine, client: TestClient) -> None:
    known = submit(client, "/odber", _signup(KNOWN))
    unknown = submit(client, "/odber", _signup("nikdo@nikde.example"))
    assert known.status_code == unknown.status_code == 200
    assert known.text.replace(KNOWN, "") == unknown.text.replace("nikdo@nikde.example", "")
    (_, known_contact, known_mail), (_, unknown_contact, unknown_mail) = _mail(engine)
    assert known_contact is None and unknown_contact is None

    def same(content: dict[str, Any]) -> tuple[str, str, str]:
        scrub = re.compile(r"/odber/potvrdit/[A-Za-z0-9_-]+")
        return content["subject"], scrub.sub("", str(content["values"])), content["html"]

    assert same(known_mail) == same(unknown_mail)


def test_a_link_older_than_seven_days_or_altered_is_refused(
    engine: Engine, client: TestClient
) -> None:
    submit(client, "/odber", _signup("pozde@example.cz"))
    with Session(engine) as session:
        request_id = session.exec(select(SubscriptionRequest.id)).one()
    signer = default_signer()
    eight_days_ago = int(time.time()) - 8 * 24 * 3600
    stale = (
        f"/odber/potvrdit/{signer.sign(Purpose.CONFIRM_SUBSCRIPTION, request_id, eight_days_ago)}"
    )
    page = client.get(stale)
    assert page.status_code == 410 and "Odkaz už neplatí" in page.text
    fresh = client.get(_confirm_path(_mail(engine)[0][2]))
    refused = client.post(stale, data={"csrf_token": _csrf(fresh.text)})
    assert refused.status_code == 410
    path = _confirm_path(_mail(engine)[0][2])
    altered = path[:-2] + ("AA" if path[-2:] != "AA" else "BB")
    assert client.get(altered).status_code == 404
    other_purpose = default_signer().sign(Purpose.CONTACT_PREFERENCES, request_id)
    assert client.get(f"/odber/potvrdit/{other_purpose}").status_code == 404
    with Session(engine) as session:
        assert (
            session.exec(select(Contact).where(Contact.email == "pozde@example.cz")).first() is None
        )
        pending = session.get(SubscriptionRequest, request_id)
        assert pending is not None and pending.confirmed_at is None


def test_a_flood_from_one_address_is_throttled_and_nobody_else(
    engine: Engine, client: TestClient
) -> None:
    answers = [
        submit(client, "/odber", _signup("zaplava@example.cz")).status_code for _ in range(8)
    ]
    assert answers[:3] == [200, 200, 200] and set(answers[3:]) == {429}
    assert len(_mail(engine)) == 3  # the throttled ones sent nothing
    assert submit(client, "/odber", _signup("jina@example.cz")).status_code == 200
    assert client.get("/chceme-byt-clenem").status_code == 200


def test_it_explains_missing_topics_and_consent(client: TestClient) -> None:
    answer = submit(client, "/odber", {**_signup("a@example.cz", ()), "consent": ""})
    assert answer.status_code == 422
    assert "Vyberte prosím aspoň jedno téma" in answer.text
    assert "Bez souhlasu vám zprávy posílat nemůžeme" in answer.text
