"""The membership application form: pre-filled from a campaign link, credited to its run,
counted as the reminders' goal at once, confirmed by transactional mail, decided by staff."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from console_support import CSV, add_user, load_contacts, sign_in
from fastapi.testclient import TestClient
from public_support import client_for, protection, submit
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.audience.segments import SegmentContext, parse_segment, recipients_select
from mailer.compose.campaigns import load_blueprint
from mailer.delivery.runs import launch
from mailer.models import (
    TRANSACTIONAL_CAMPAIGN,
    Event,
    EventKind,
    Library,
    MembershipApplication,
    OutboxMessage,
    Run,
)
from mailer.tokens import Purpose, default_signer

CAMPAIGN = "join-this-year-2026"
KLADNO = "reditel@knihovna-kladno.example"
assert KLADNO in CSV


def _answers(**overrides: str) -> dict[str, str]:
    data = {
        "library_name": "Městská knihovna Kladno",
        "library_type": "mestska",
        "region": "Středočeský kraj",
        "town": "Kladno",
        "siglum": "KLA001",
        "contact_name": "Jana Chruščová",
        "contact_role": "ředitelka",
        "email": KLADNO,
        "phone": "+420 312 000 111",
        "ico": "00069922",
        "dic": "",
        "billing_address": "Náměstí Starosty Pavla 4, 272 01 Kladno",
        "consent_statutes": "1",
        "consent_processing": "1",
    }
    data.update(overrides)
    return data


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> TestClient:
    load_contacts(engine, tmp_path)
    return client_for(engine)


def _launched(engine: Engine) -> Run:
    result = launch(engine, load_blueprint(CAMPAIGN))
    with Session(engine) as session:
        run = session.get(Run, result.run_id)
        assert run is not None
        return run


def _apply_link(engine: Engine, run_id: int, email: str) -> str:
    with Session(engine) as session:
        outbox_id = session.exec(
            select(OutboxMessage.id).where(
                OutboxMessage.run_id == run_id, OutboxMessage.email == email
            )
        ).one()
    return f"/chceme-byt-clenem/{default_signer().sign(Purpose.APPLY, outbox_id)}"


def _reminder_audience(engine: Engine) -> set[str]:
    blueprint = load_blueprint(CAMPAIGN)
    segment = parse_segment(blueprint.audience_for("pripominka"))
    with Session(engine) as session:
        contacts = session.execute(
            recipients_select(segment, topic="membership", context=SegmentContext(CAMPAIGN))
        ).scalars()
        return {contact.email for contact in contacts}


def _mark_sent(engine: Engine, run_id: int) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(OutboxMessage.__table__)  # type: ignore[attr-defined]
            .where(OutboxMessage.__table__.c.run_id == run_id)  # type: ignore[attr-defined]
            .values(status="sent", sent_at=sa.func.now())
        )


def _transactional(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage.email, Run.content)
            .join(Run, col(Run.id) == col(OutboxMessage.run_id))
            .where(Run.campaign == TRANSACTIONAL_CAMPAIGN)
            .order_by(col(OutboxMessage.id))
        ).all()
    return [(email, content) for email, content in rows]


def test_it_prefills_from_the_campaign_link_and_stops_reminders_at_once(
    engine: Engine, client: TestClient
) -> None:
    run = _launched(engine)
    assert run.id is not None
    _mark_sent(engine, run.id)
    assert {KLADNO, "petr.novak@knihovna-kladno.example"} <= _reminder_audience(engine)
    link = _apply_link(engine, run.id, KLADNO)

    page = client.get(link)
    assert page.status_code == 200
    assert 'value="Městská knihovna Kladno"' in page.text
    assert 'value="KLA001"' in page.text
    assert 'value="Jana Chruščová"' in page.text
    assert '<option value="mestska" selected>' in page.text

    answer = client.post(link, data={**protection(page.text), **_answers()})
    assert answer.status_code == 200, answer.text
    assert "Děkujeme za přihlášku" in answer.text

    with Session(engine) as session:
        application = session.exec(select(MembershipApplication)).one()
        library = session.exec(select(Library).where(Library.siglum == "KLA001")).one()
        assert application.status == "pending"
        assert application.run_id == run.id and application.step == "launch"
        assert application.library_id == library.id
        assert (
            "stanovami" in application.consent_text and "osobních údajů" in application.consent_text
        )
        applied = session.exec(select(Event).where(Event.kind == EventKind.APPLIED)).one()
        assert applied.run_id == run.id
    # Both addresses of the library leave the reminder's audience at once.
    audience = _reminder_audience(engine)
    assert KLADNO not in audience and "petr.novak@knihovna-kladno.example" not in audience
    assert "knihovna@obec-lhota.example" in audience
    # The applicant's confirmation and the staff notice are queued as transactional mail.
    queued = _transactional(engine)
    assert [email for email, _ in queued] == [KLADNO, "sdruk@sdruk.cz"]
    assert all(content["transactional"] and content["tracking"] == "off" for _, content in queued)


def test_it_refuses_an_altered_or_replayed_link(engine: Engine, client: TestClient) -> None:
    run = _launched(engine)
    assert run.id is not None
    link = _apply_link(engine, run.id, KLADNO)
    token = link.rsplit("/", 1)[1]
    altered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
    assert client.get(f"/chceme-byt-clenem/{altered}").status_code == 404
    # A token of another purpose (the unsubscribe link of the same message) is no apply link.
    outbox_id = default_signer().verify(Purpose.APPLY, token)
    assert outbox_id is not None
    other = default_signer().sign(Purpose.UNSUBSCRIBE, outbox_id[0])
    assert client.get(f"/chceme-byt-clenem/{other}").status_code == 404

    assert submit(client, link, _answers()).status_code == 200
    again = client.get(link)
    assert again.status_code == 409 and "už byla odeslána" in again.text
    page = client.get("/chceme-byt-clenem")
    replay = client.post(link, data={**protection(page.text), **_answers()})
    assert replay.status_code == 409
    with Session(engine) as session:
        assert len(session.exec(select(MembershipApplication)).all()) == 1


def test_it_refuses_forms_without_protection_and_stores_nothing(
    engine: Engine, client: TestClient
) -> None:
    page = client.get("/chceme-byt-clenem")
    fields = protection(page.text)
    no_csrf = client.post("/chceme-byt-clenem", data={**fields, "csrf_token": "x", **_answers()})
    assert no_csrf.status_code == 403 and "Formulář vypršel" in no_csrf.text
    bot = client.post(
        "/chceme-byt-clenem", data={**fields, "web_stranka": "http://spam", **_answers()}
    )
    assert bot.status_code == 400
    page = client.get("/chceme-byt-clenem")
    no_work = client.post(
        "/chceme-byt-clenem", data={**protection(page.text), "altcha": "", **_answers()}
    )
    assert no_work.status_code == 400 and "JavaScript" in no_work.text
    # A solved challenge buys one form, not two.
    fields = protection(client.get("/chceme-byt-clenem").text)
    assert client.post("/chceme-byt-clenem", data={**fields, **_answers()}).status_code == 200
    reused = client.post("/chceme-byt-clenem", data={**fields, **_answers(email="jiny@example.cz")})
    assert reused.status_code == 400
    huge = client.post(
        "/chceme-byt-clenem", data={**fields, **_answers(billing_address="x" * 40_000)}
    )
    assert huge.status_code == 413 and "příliš velký" in huge.text
    with Session(engine) as session:
        assert len(session.exec(select(MembershipApplication)).all()) == 1


def test_it_explains_each_wrong_field_in_czech_and_keeps_what_was_typed(
    client: TestClient,
) -> None:
    answer = submit(
        client,
        "/chceme-byt-clenem",
        _answers(ico="12345678", email="neni-adresa", siglum="12", consent_statutes=""),
    )
    assert answer.status_code == 422
    text = answer.text
    assert "IČO má osm číslic" in text
    assert "E-mailová adresa není platná" in text
    assert "Sigla má tvar" in text
    assert "Bez souhlasu se stanovami" in text
    assert 'value="Městská knihovna Kladno"' in text


def test_it_answers_alike_whether_the_library_is_in_the_directory(client: TestClient) -> None:
    known = submit(client, "/chceme-byt-clenem", _answers())
    unknown = submit(
        client,
        "/chceme-byt-clenem",
        _answers(library_name="Knihovna Nikde", siglum="ZZZ999", email="nikdo@nikde.example"),
    )
    assert known.status_code == unknown.status_code == 200
    scrub = re.compile(r"reditel@knihovna-kladno\.example|nikdo@nikde\.example")
    assert scrub.sub("", known.text) == scrub.sub("", unknown.text)


def test_it_throttles_a_flood_from_one_address_and_nobody_else(client: TestClient) -> None:
    answers = [
        submit(client, "/chceme-byt-clenem", _answers(library_name=f"Knihovna {i}")).status_code
        for i in range(6)
    ]
    assert answers[:3] == [200, 200, 200]
    assert set(answers[3:]) == {429}
    other = submit(client, "/chceme-byt-clenem", _answers(email="knihovna@obec-lhota.example"))
    assert other.status_code == 200


def test_staff_approve_and_membership_is_recorded_for_the_run(
    engine: Engine, client: TestClient
) -> None:
    run = _launched(engine)
    assert run.id is not None
    _mark_sent(engine, run.id)
    assert submit(client, _apply_link(engine, run.id, KLADNO), _answers()).status_code == 200
    with Session(engine) as session:
        application_id = session.exec(select(MembershipApplication.id)).one()
    add_user(engine, "editor@sdruk.cz", "editor")
    csrf = sign_in(client, "editor@sdruk.cz")
    listing = client.get("/console/applications", headers={"accept": "text/html"})
    assert "Městská knihovna Kladno" in listing.text and "čeká na rozhodnutí" in listing.text
    detail = client.get(f"/console/applications/{application_id}", headers={"accept": "text/html"})
    assert "Přidejte se ke Sdružení knihoven ČR" in detail.text
    decided = client.post(
        f"/console/applications/{application_id}/decision",
        data={"decision": "approve", "note": "vítejte", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert decided.status_code == 303
    with Session(engine) as session:
        library = session.exec(select(Library).where(Library.siglum == "KLA001")).one()
        assert library.is_member and library.joined_at is not None
        joined = session.exec(select(Event).where(Event.kind == EventKind.JOINED)).one()
        assert joined.run_id == run.id
        application = session.get(MembershipApplication, application_id)
        assert application is not None and application.status == "approved"
    again = client.post(
        f"/console/applications/{application_id}/decision",
        data={"decision": "reject", "csrf_token": csrf},
        headers={"accept": "text/html"},
    )
    assert again.status_code == 409 and "už bylo rozhodnuto" in again.text


def test_a_rejected_application_no_longer_stops_reminders(
    engine: Engine, client: TestClient
) -> None:
    run = _launched(engine)
    assert run.id is not None
    _mark_sent(engine, run.id)
    assert submit(client, _apply_link(engine, run.id, KLADNO), _answers()).status_code == 200
    assert KLADNO not in _reminder_audience(engine)
    from mailer.signups.membership import decide

    with Session(engine) as session:
        application_id = session.exec(select(MembershipApplication.id)).one()
        decide(session, application_id, approve=False, actor="editor@sdruk.cz", note="duplicita")
        session.commit()
    assert KLADNO in _reminder_audience(engine)
