"""Console contact pages: search, edits that never resubscribe without recorded consent,
membership, CSV import with its row report, GDPR export and erasure."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_support import BASE_URL, HTML, add_user, load_contacts, make_app, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.audience.contacts import address_hash, is_suppressed
from mailer.models import (
    AuditEntry,
    Contact,
    ContactStatus,
    Event,
    EventKind,
    LegalBasisRecord,
    Library,
    OutboxMessage,
    Run,
    Suppression,
    TopicOptOut,
)


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    load_contacts(engine, tmp_path)
    add_user(engine, "editor@sdruk.example", "editor")
    add_user(engine, "spravce@sdruk.example", "admin")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        yield test_client


def _contact(engine: Engine, email: str) -> Contact:
    with Session(engine) as session:
        return session.exec(select(Contact).where(Contact.email == email)).one()


def _audit(engine: Engine, action: str) -> list[AuditEntry]:
    with Session(engine) as session:
        return list(session.exec(select(AuditEntry).where(AuditEntry.action == action)).all())


def test_it_searches_and_filters_contacts(client: TestClient) -> None:
    sign_in(client, "editor@sdruk.example")
    page = client.get("/console/contacts", params={"q": "Kladno"}, headers=HTML).text
    assert "reditel@knihovna-kladno.example" in page
    assert "knihovna@obec-lhota.example" not in page
    members = client.get("/console/contacts", params={"member": "ano"}, headers=HTML).text
    assert "knihovna@vkol.example" in members and "obec-lhota" not in members
    by_type = client.get("/console/contacts", params={"library_type": "obecni"}).text
    assert "Nalezeno: 1 kontakt." in by_type


def test_it_unsubscribes_and_resubscribes_only_with_recorded_consent(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    contact = _contact(engine, "petr.novak@knihovna-kladno.example")
    url = f"/console/contacts/{contact.id}"
    all_topics = ["membership", "events", "newsletter"]
    response = client.post(
        url,
        data={"csrf_token": csrf, "status": "unsubscribed", "topics": all_topics},
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert _contact(engine, contact.email).status == ContactStatus.UNSUBSCRIBED
    with Session(engine) as session:
        assert is_suppressed(session, contact.email)

    # Back to active without consent: refused, nothing changes.
    refused = client.post(
        url, data={"csrf_token": csrf, "status": "active", "topics": all_topics}, headers=HTML
    )
    assert refused.status_code == 422
    assert "souhlas" in refused.text
    assert _contact(engine, contact.email).status == ContactStatus.UNSUBSCRIBED

    client.post(
        url,
        data={
            "csrf_token": csrf,
            "status": "active",
            "topics": all_topics,
            "consent": "ano",
            "evidence": "e-mail ze dne 3. 3. 2026",
        },
    )
    assert _contact(engine, contact.email).status == ContactStatus.ACTIVE
    with Session(engine) as session:
        assert not is_suppressed(session, contact.email)
        records = session.exec(
            select(LegalBasisRecord).where(LegalBasisRecord.contact_id == contact.id)
        ).all()
        assert any(r.basis == "consent" and "3. 3. 2026" in (r.evidence or "") for r in records)
        kinds = [e.kind for e in session.exec(select(Event)).all()]
    assert EventKind.UNSUBSCRIBE in kinds and EventKind.RESUBSCRIBE in kinds
    assert _audit(engine, "resubscribe")


def test_it_edits_salutation_and_topics_and_needs_consent_to_take_a_topic_back(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    contact = _contact(engine, "reditel@knihovna-kladno.example")
    url = f"/console/contacts/{contact.id}"
    client.post(
        url,
        data={
            "csrf_token": csrf,
            "status": "active",
            "salutation": "Vážená paní ředitelko",
            "topics": ["membership", "events"],
        },
    )
    assert _contact(engine, contact.email).salutation == "Vážená paní ředitelko"
    assert 'id="salutation-used">Vážená paní ředitelko<' in client.get(url, headers=HTML).text
    with Session(engine) as session:
        opted = session.exec(select(TopicOptOut.topic).where(TopicOptOut.contact_id == contact.id))
        assert list(opted) == ["newsletter"]
    back = client.post(
        url,
        data={
            "csrf_token": csrf,
            "status": "active",
            "topics": ["membership", "events", "newsletter"],
        },
    )
    assert back.status_code == 422
    client.post(
        url,
        data={
            "csrf_token": csrf,
            "status": "active",
            "topics": ["membership", "events", "newsletter"],
            "consent": "ano",
            "evidence": "telefonát 5. 3. 2026",
        },
    )
    with Session(engine) as session:
        assert (
            session.exec(select(TopicOptOut).where(TopicOptOut.contact_id == contact.id)).all()
            == []
        )
    page = client.get(url, headers=HTML).text
    assert "odhlášení tématu" in page and "přihlášení tématu" in page


def test_it_records_that_a_library_joined(client: TestClient, engine: Engine) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    with Session(engine) as session:
        library = session.exec(select(Library).where(Library.siglum == "KLA001")).one()
    response = client.post(
        f"/console/libraries/{library.id}/membership",
        data={"csrf_token": csrf, "member_since": "2026", "note": "přihláška poštou"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    with Session(engine) as session:
        joined = session.get(Library, library.id)
        assert joined is not None and joined.is_member and joined.member_since == 2026
        assert joined.joined_at is not None
        events = session.exec(select(Event).where(Event.kind == EventKind.JOINED)).all()
    assert len(events) == 1 and events[0].detail["library_id"] == library.id
    assert _audit(engine, "membership")[0].target == "Městská knihovna Kladno"


def test_it_imports_an_upload_and_reports_the_bad_row(client: TestClient, engine: Engine) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    csv_text = (
        "email,first_name,last_name,role,library,library_type,town,region,consent\n"
        "nova@knihovna-beroun.example,Eva,Malá,ředitelka,Městská knihovna Beroun,mestska,"
        "Beroun,Středočeský kraj,legitimate_interest\n"
        "tohle-neni-adresa,Jan,Chybný,knihovník,Městská knihovna Beroun,mestska,"
        "Beroun,Středočeský kraj,legitimate_interest\n"
    )
    files = {"file": ("kontakty.csv", csv_text.encode(), "text/csv")}
    check = client.post(
        "/console/contacts/import", data={"csrf_token": csrf, "mode": "check"}, files=files
    )
    assert check.status_code == 200
    assert "Jen kontrola" in check.text and "tohle-neni-adresa" in check.text
    with Session(engine) as session:
        assert (
            session.exec(
                select(Contact).where(Contact.email == "nova@knihovna-beroun.example")
            ).first()
            is None
        )
    done = client.post(
        "/console/contacts/import", data={"csrf_token": csrf, "mode": "import"}, files=files
    )
    assert "Odmítnuté řádky (1)" in done.text
    assert '<td class="n">3</td>' in done.text  # the bad row's line number
    assert _contact(engine, "nova@knihovna-beroun.example").first_name == "Eva"
    entry = _audit(engine, "import")[0]
    assert entry.detail["created"] == 1 and entry.actor == "editor@sdruk.example"


def test_it_exports_everything_about_a_contact_as_json(client: TestClient, engine: Engine) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    contact = _contact(engine, "knihovna@obec-lhota.example")
    response = client.post(f"/console/contacts/{contact.id}/export", data={"csrf_token": csrf})
    assert response.status_code == 200
    assert "attachment" in response.headers["content-disposition"]
    data = json.loads(response.text)
    assert data["contact"]["email"] == contact.email
    assert data["library"]["name"] == "Obecní knihovna Lhota"
    assert data["legal_basis_records"] and "events" in data and "messages" in data
    assert _audit(engine, "export")[0].target == f"kontakt #{contact.id}"


def test_it_erases_a_contact_leaving_only_the_suppression_hash(
    client: TestClient, engine: Engine
) -> None:
    contact = _contact(engine, "knihovna@obec-lhota.example")
    with Session(engine) as session:
        run = Run(campaign="test", step="launch", recipients=1)
        session.add(run)
        session.flush()
        assert run.id is not None and contact.id is not None
        session.add(
            OutboxMessage(run_id=run.id, contact_id=contact.id, email=contact.email, status="sent")
        )
        session.add(Event(kind=EventKind.OPEN, run_id=run.id, contact_id=contact.id, ip="10.0.0.0"))
        session.commit()
    editor_csrf = sign_in(client, "editor@sdruk.example")
    refused = client.post(f"/console/contacts/{contact.id}/erase", data={"csrf_token": editor_csrf})
    assert refused.status_code == 403  # erasure is for administrators

    csrf = sign_in(client, "spravce@sdruk.example")
    response = client.post(
        f"/console/contacts/{contact.id}/erase", data={"csrf_token": csrf}, follow_redirects=False
    )
    assert response.status_code == 303
    digest = address_hash(contact.email)
    with Session(engine) as session:
        assert session.get(Contact, contact.id) is None
        assert session.get(Suppression, digest) is not None
        assert is_suppressed(session, contact.email)
        outbox = session.exec(select(OutboxMessage)).one()
        assert outbox.contact_id is None and contact.email not in outbox.email
        event = session.exec(select(Event).where(col(Event.kind) == EventKind.OPEN)).one()
        assert event.contact_id is None and event.ip is None
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "erase")).one()
    # The audit log names no address, only the hash.
    assert contact.email not in json.dumps(entry.detail) + entry.target
    assert entry.detail["address_hash"] == digest
