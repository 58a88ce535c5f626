"""Event registration: seats per session with a waiting list, a cancellation moving the first
wait-listed person up, one seat per person also when two requests race, staff's list, export
and closing, and the campaign's `registered` goal."""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from console_support import add_user, load_contacts, sign_in
from fastapi.testclient import TestClient
from public_support import client_for, protection, submit
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer import settings as mailer_settings
from mailer.audience.segments import SegmentContext, parse_segment, recipients_select
from mailer.compose.campaigns import load_blueprint
from mailer.models import TRANSACTIONAL_CAMPAIGN, EventRegistration, OutboxMessage, Run
from mailer.signups import registrations
from mailer.tokens import Purpose, default_signer

SLUG = "leadership-workshops-2027"
PAGE = f"/registrace/{SLUG}"


@pytest.fixture
def campaigns(configured: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The shipped workshops with two seats per workshop, so filling one is quick."""
    folder = tmp_path / "kampane"
    shutil.copytree(ROOT / "campaigns" / SLUG, folder / SLUG)
    toml = folder / SLUG / "campaign.toml"
    toml.write_text(
        re.sub(r"capacity = 25[^\n]*", "capacity = 2", toml.read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(folder))
    mailer_settings.get_settings.cache_clear()
    yield folder
    mailer_settings.get_settings.cache_clear()


@pytest.fixture
def client(engine: Engine, campaigns: Path, tmp_path: Path) -> TestClient:
    load_contacts(engine, tmp_path)
    return client_for(engine)


def _person(email: str, session: str = "1", **extra: str) -> dict[str, str]:
    name = email.split("@")[0].replace(".", " ").title()
    return {"name": name, "role": "ředitelka", "library_name": "Knihovna", "email": email,
            "session": session, **extra}  # fmt: skip


def _states(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        rows = session.exec(select(EventRegistration.email, EventRegistration.status)).all()
    return dict(rows)


def _mail(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with Session(engine) as session:
        rows = session.exec(
            select(OutboxMessage.email, Run.content)
            .join(Run, col(Run.id) == col(OutboxMessage.run_id))
            .where(Run.campaign == TRANSACTIONAL_CAMPAIGN)
            .order_by(col(OutboxMessage.id))
        ).all()
    return [(email, content) for email, content in rows]


def test_it_fills_a_workshop_waitlists_the_next_and_moves_them_up(
    engine: Engine, client: TestClient
) -> None:
    page = client.get(PAGE)
    assert page.status_code == 200
    assert "Vedení a motivace týmu" in page.text and "volných míst: 2" in page.text
    for email in ("anna@k.example", "bara@k.example", "cyril@k.example"):
        answer = submit(client, PAGE, _person(email))
        assert answer.status_code == 200 and "Děkujeme za registraci" in answer.text
    assert _states(engine) == {
        "anna@k.example": "registered",
        "bara@k.example": "registered",
        "cyril@k.example": "waitlisted",
    }
    assert "obsazeno, zapíšeme vás na čekací listinu" in client.get(PAGE).text
    mail = _mail(engine)
    assert [(e, c["step"]) for e, c in mail] == [
        ("anna@k.example", "registrace-potvrzena"),
        ("bara@k.example", "registrace-potvrzena"),
        ("cyril@k.example", "registrace-cekaci-listina"),
    ]
    assert "BEGIN:VCALENDAR" in mail[0][1]["ics"] and "Vedení a motivace týmu" in mail[0][1]["ics"]
    assert mail[2][1]["ics"] is None

    cancel_url = mail[0][1]["values"]["message"]["button_url"]
    path = cancel_url.split("kampane.sdruk.test", 1)[1]
    confirm = client.get(path)
    assert confirm.status_code == 200 and "Zrušit registraci" in confirm.text
    assert _states(engine)["anna@k.example"] == "registered"  # a GET changes nothing
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', confirm.text)
    assert csrf
    done = client.post(path, data={"csrf_token": csrf.group(1)})
    assert done.status_code == 200 and "Registrace zrušena" in done.text
    assert _states(engine) == {
        "anna@k.example": "cancelled",
        "bara@k.example": "registered",
        "cyril@k.example": "registered",
    }
    assert _mail(engine)[-1][0] == "cyril@k.example"
    assert _mail(engine)[-1][1]["step"] == "registrace-uvolnene-misto"
    # Cancelling again changes nothing; an altered link is refused.
    assert client.post(path, data={"csrf_token": csrf.group(1)}).status_code == 200
    assert len(_mail(engine)) == 4
    assert client.get(path[:-2] + ("AA" if path[-2:] != "AA" else "BB")).status_code == 404
    assert client.post(path, data={"csrf_token": "jiny"}).status_code == 403


def test_registering_twice_takes_one_seat_and_answers_alike(
    engine: Engine, client: TestClient
) -> None:
    first = submit(client, PAGE, _person("anna@k.example"))
    again = submit(client, PAGE, _person("ANNA@k.example", name="Anna Jinak"))
    assert first.status_code == again.status_code == 200
    assert first.text == again.text
    with Session(engine) as session:
        assert len(session.exec(select(EventRegistration)).all()) == 1
        assert registrations.taken(session, SLUG) == {1: 1}


@pytest.mark.parametrize("same_person", [True, False])
def test_racing_registrations_never_overbook(
    engine: Engine, campaigns: Path, same_person: bool
) -> None:
    """Eight requests at once for the last seats: the same person gets one seat; different
    people get the two seats and the rest wait."""
    blueprint = load_blueprint(SLUG)
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        email = "anna@k.example" if same_person else f"ucastnik{i}@k.example"
        person = registrations.Registrant(f"Účastník {i}", "", "", email)
        try:
            barrier.wait()
            with Session(engine) as session:
                registrations.register(session, blueprint, 0, person)
                session.commit()
        except Exception as exc:  # an IntegrityError is the database refusing a double
            if type(exc).__name__ != "IntegrityError":
                errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    states = list(_states(engine).values())
    if same_person:
        assert states == ["registered"]
    else:
        assert states.count("registered") == 2 and states.count("waitlisted") == 6


def test_staff_see_export_and_close_registration(engine: Engine, client: TestClient) -> None:
    submit(client, PAGE, _person("anna@k.example"))
    submit(client, PAGE, _person("bara@k.example", session="3"))
    add_user(engine, "editor@sdruk.cz", "editor")
    csrf = sign_in(client, "editor@sdruk.cz")
    html = {"accept": "text/html"}
    listing = client.get(f"/console/campaigns/{SLUG}/registrations", headers=html)
    assert listing.status_code == 200
    assert "Anna" in listing.text and "Přihlášeno 1 z 2 míst" in listing.text
    export = client.post(f"/console/campaigns/{SLUG}/registrations.csv", data={"csrf_token": csrf})
    text = export.content.decode("utf-8-sig")
    assert text.splitlines()[0] == "Termín;Stav;Jméno;Funkce;Knihovna;E-mail;Registrace"
    assert "anna@k.example" in text and "přihlášen(a)" in text
    closed = client.post(
        f"/console/campaigns/{SLUG}/registrations/state",
        data={"state": "close", "csrf_token": csrf},
        follow_redirects=False,
    )
    assert closed.status_code == 303
    page = client.get(PAGE)
    assert "Registrace na tuto akci je uzavřena" in page.text and "<form" not in page.text


def test_a_directory_contact_who_registers_reaches_the_goal(
    engine: Engine, client: TestClient
) -> None:
    email = "knihovna@obec-lhota.example"
    goal = parse_segment({"registered": True})

    def registered() -> set[str]:
        with Session(engine) as session:
            contacts = session.execute(
                recipients_select(goal, topic="events", context=SegmentContext(SLUG))
            ).scalars()
            return {c.email for c in contacts}

    assert email not in registered()
    submit(client, PAGE, _person(email))
    assert registered() == {email}


def test_a_campaign_link_prefills_and_other_links_are_refused(
    engine: Engine, client: TestClient
) -> None:
    from mailer.delivery.runs import launch

    run_id = launch(engine, load_blueprint(SLUG)).run_id
    with Session(engine) as session:
        outbox_id = session.exec(
            select(OutboxMessage.id).where(
                OutboxMessage.run_id == run_id,
                OutboxMessage.email == "reditel@knihovna-kladno.example",
            )
        ).one()
    token = default_signer().sign(Purpose.REGISTER, outbox_id)
    page = client.get(f"{PAGE}/{token}")
    assert page.status_code == 200 and 'value="Jana Chruščová"' in page.text
    apply_token = default_signer().sign(Purpose.APPLY, outbox_id)
    assert client.get(f"{PAGE}/{apply_token}").status_code == 404
    assert client.get("/registrace/join-this-year-2026").status_code == 404
    assert client.get("/registrace/..%2F..%2Fetc").status_code == 404


def test_a_campaign_link_counts_only_for_its_own_event(
    engine: Engine, client: TestClient, campaigns: Path
) -> None:
    """A signed link of one event's message posted to another event's page would credit that
    message's run (and its recipient's contact) with a registration it did not bring; it is
    refused as the page behind it is, and nothing is stored."""
    from mailer.delivery.runs import launch

    other = "knihovny-soucasnosti-2027"
    shutil.copytree(ROOT / "campaigns" / other, campaigns / other)
    run_id = launch(engine, load_blueprint(SLUG)).run_id
    with Session(engine) as session:
        outbox_id = session.exec(
            select(OutboxMessage.id).where(
                OutboxMessage.run_id == run_id,
                OutboxMessage.email == "reditel@knihovna-kladno.example",
            )
        ).one()
    token = default_signer().sign(Purpose.REGISTER, outbox_id)
    assert client.get(f"/registrace/{other}/{token}").status_code == 404
    page = client.get(f"/registrace/{other}")
    answer = client.post(
        f"/registrace/{other}/{token}",
        data={**protection(page.text), **_person("reditel@knihovna-kladno.example", "0")},
    )
    assert answer.status_code == 404
    with Session(engine) as session:
        assert session.exec(select(EventRegistration)).all() == []
