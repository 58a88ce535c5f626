"""The event loop end to end: the scheduler launches a workshop series, people register on the
public page from the link in the message they received (one on each workshop, one cancels,
one waits for a seat), and the registrants' practical details go out two days before each
person's own workshop, to exactly that workshop's confirmed seats, through a real SMTP server,
never twice."""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from email.header import decode_header, make_header
from email.message import Message
from pathlib import Path

import pytest
from public_support import client_for, submit
from smtp_server import Received, SMTPServer, smtp_server
from sqlalchemy import Engine
from sqlmodel import Session, select
from test_scheduler_fixtures import GRACE, PRAGUE, add_people, runs, steps

from mailer import settings as mailer_settings
from mailer.compose.campaigns import load_blueprint
from mailer.compose.step_labels import step_names
from mailer.delivery.send import drain
from mailer.delivery.transport import transport_from_url
from mailer.models import Contact, EventRegistration, StepStatus
from mailer.scheduling.clock import ManualClock
from mailer.scheduling.steps import tick
from mailer.scheduling.sync import sync_blueprints

__all__ = ["smtp_server"]

ROOT = Path(__file__).resolve().parent.parent
SLUG = "test-workshopy"
# Tuesday 3 March 2026, 9:00: in the past, since the real delivery worker sends only what is
# due by the real clock.
SEND_AT = datetime(2026, 3, 3, 9, 0, tzinfo=PRAGUE)
FIRST = datetime(2026, 3, 12, 9, 30, tzinfo=PRAGUE)  # a Thursday
SECOND = datetime(2026, 4, 16, 9, 30, tzinfo=PRAGUE)  # a Thursday

CAMPAIGN_TOML = """\
name = "Testovací workshopy"
kind = "event"
topic = "events"
subject = "Pozvánka: {{ event.title }}"
send_at = 2026-03-03T09:00:00
tracking = "individual"

[segment]
library_type = ["mestska"]

[event]
title = "Testovací workshopy 2026"
start = 2026-03-12T09:30:00
end = 2026-04-16T15:30:00
venue = "dvě krajská města"

[[event.sessions]]
title = "Strategické plánování knihovny"
start = 2026-03-12T09:30:00
end = 2026-03-12T15:30:00
venue = "Praha, Městská knihovna v Praze"
address = "Mariánské náměstí 98/1, 110 00 Praha 1"
capacity = 1

[[event.sessions]]
title = "Vedení a motivace týmu"
start = 2026-04-16T09:30:00
end = 2026-04-16T15:30:00
venue = "Brno, Moravská zemská knihovna"
address = "Kounicova 65a, 601 87 Brno"

[[reminder]]
name = "prakticke-informace"
before_session = "2d"
audience = { attending = true }
subject = "Pozítří: workshop {{ session.title }}"
body = "prakticke-informace.mjml"
"""


@pytest.fixture
def campaigns(configured: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "kampane" / SLUG
    folder.mkdir(parents=True)
    (folder / "campaign.toml").write_text(CAMPAIGN_TOML, encoding="utf-8")
    shipped = ROOT / "campaigns" / "leadership-workshops-2027"
    for name in ("body.mjml", "prakticke-informace.mjml"):
        shutil.copy(shipped / name, folder / name)
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(folder.parent))
    mailer_settings.get_settings.cache_clear()
    yield folder.parent
    mailer_settings.get_settings.cache_clear()


def _send(engine: Engine, server: SMTPServer) -> None:
    asyncio.run(drain(engine, transport_from_url(server.url())))


def _html(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/html":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no HTML part")


def _subject(received: Received) -> str:
    return str(make_header(decode_header(received.message["Subject"])))


def _subjects(server: SMTPServer, address: str) -> list[str]:
    return [_subject(m) for m in server.received_by(address)]


def _link(server: SMTPServer, address: str, pattern: str) -> str:
    for received in server.received_by(address):
        found = re.search(pattern, _html(received.message))
        if found:
            return found.group(0).split("kampane.sdruk.test", 1)[1]
    raise AssertionError(f"{address} got no link like {pattern}")


def _register(client, server: SMTPServer, address: str, session_index: int) -> None:  # type: ignore[no-untyped-def]
    # The button of the invitation: the registration page pre-filled for this recipient.
    page = _link(server, address, rf"https://kampane\.sdruk\.test/registrace/{SLUG}/[\w.-]+")
    person = {"name": address.split("@")[0], "role": "ředitelka", "library_name": "Knihovna",
              "email": address, "session": str(session_index)}  # fmt: skip
    answer = submit(client, page, person)
    assert answer.status_code == 200 and "Děkujeme" in answer.text, answer.text


def _cancel(client, server: SMTPServer, address: str) -> None:  # type: ignore[no-untyped-def]
    # The link of the confirmation e-mail, then the page's one button.
    path = _link(server, address, r"https://kampane\.sdruk\.test/zrusit-registraci/[\w.-]+")
    confirm = client.get(path)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', confirm.text)
    assert confirm.status_code == 200 and csrf
    assert client.post(path, data={"csrf_token": csrf.group(1)}).status_code == 200


def test_each_registrant_is_reminded_before_their_own_workshop(
    engine: Engine, campaigns: Path, smtp_server: SMTPServer
) -> None:
    people = add_people(engine, ["alena", "bara", "cecilie", "dana", "eva"])
    with Session(engine) as session:
        address = {
            name: session.exec(select(Contact.email).where(Contact.id == people[name])).one()
            for name in people.ids
        }
    sync_blueprints(engine)
    clock = ManualClock(SEND_AT + timedelta(minutes=1))
    report = tick(engine, now=clock.now(), grace=GRACE)
    assert [o.step for o in report.launched] == ["launch"]
    _send(engine, smtp_server)
    assert all(smtp_server.received_by(a) for a in address.values())

    client = client_for(engine)
    _register(client, smtp_server, address["alena"], 0)  # the first workshop's only seat
    _register(client, smtp_server, address["bara"], 1)
    _register(client, smtp_server, address["cecilie"], 1)
    _register(client, smtp_server, address["dana"], 0)  # full: the waiting list
    _send(engine, smtp_server)  # the confirmations, with their cancel links
    _cancel(client, smtp_server, address["cecilie"])
    with Session(engine) as session:
        states = {r.email: r.status for r in session.exec(select(EventRegistration))}
    assert states == {
        address["alena"]: "registered",
        address["bara"]: "registered",
        address["cecilie"]: "cancelled",
        address["dana"]: "waitlisted",
    }

    blueprint = load_blueprint(SLUG)
    assert [s.name for s in blueprint.steps] == [
        "launch", "prakticke-informace-1", "prakticke-informace-2"
    ]  # fmt: skip
    planned = steps(engine, SLUG)
    assert planned["prakticke-informace-1"].due_at == FIRST - timedelta(days=2)
    assert planned["prakticke-informace-2"].due_at == SECOND - timedelta(days=2)
    # Staff read the step by what it is, not by its id.
    assert step_names(SLUG, "prakticke-informace-2") == (
        "Testovací workshopy",
        "připomínka 2 dny před 2. termínem (16. dubna 2026, Brno, Moravská zemská knihovna)",
    )

    def practical(name: str) -> list[str]:
        return [s for s in _subjects(smtp_server, address[name]) if s.startswith("Pozítří")]

    # A minute before the first workshop's reminder: nothing.
    clock.set(FIRST - timedelta(days=2, minutes=1))
    assert tick(engine, now=clock.now(), grace=GRACE).launched == []
    # Due: only the first workshop's confirmed seat, not its waiting list.
    clock.set(FIRST - timedelta(days=2) + timedelta(minutes=1))
    report = tick(engine, now=clock.now(), grace=GRACE)
    assert [o.step for o in report.launched] == ["prakticke-informace-1"]
    _send(engine, smtp_server)
    assert practical("alena") == ["Pozítří: workshop Strategické plánování knihovny"]
    assert {n: practical(n) for n in ("bara", "cecilie", "dana", "eva")} == {
        "bara": [], "cecilie": [], "dana": [], "eva": []
    }  # fmt: skip
    [mail] = [
        m for m in smtp_server.received_by(address["alena"]) if _subject(m) in practical("alena")
    ]
    body = _html(mail.message)
    assert "Mariánské náměstí 98/1" in body and "Kounicova" not in body
    # Its link opens the person's own registrations, each with its cancel link.
    own = client.get(
        _link(
            smtp_server,
            address["alena"],
            rf"https://kampane\.sdruk\.test/registrace/{SLUG}/[\w.-]+(?=\">stránce své registrace)",
        )
    )
    assert own.status_code == 200 and "Vaše registrace" in own.text
    listed = own.text.split("Vaše registrace", 1)[1].split("</section>", 1)[0]
    assert "Strategické plánování knihovny" in listed and "Vedení a motivace" not in listed
    cancel = re.search(r'href="https://kampane\.sdruk\.test(/zrusit-registraci/[^"]+)"', listed)
    assert cancel and "Zrušit registraci" in client.get(cancel.group(1)).text

    # The second workshop, weeks later: bara only; cecilie cancelled.
    clock.set(SECOND - timedelta(days=2) + timedelta(minutes=1))
    report = tick(engine, now=clock.now(), grace=GRACE)
    assert [o.step for o in report.launched] == ["prakticke-informace-2"]
    _send(engine, smtp_server)
    assert practical("bara") == ["Pozítří: workshop Vedení a motivace týmu"]
    assert practical("cecilie") == [] and practical("dana") == [] and practical("eva") == []

    # Never twice: later rounds launch nothing, and each reminder went out once.
    clock.set(SECOND + timedelta(days=1))
    assert tick(engine, now=clock.now(), grace=GRACE).launched == []
    _send(engine, smtp_server)
    assert practical("alena") == ["Pozítří: workshop Strategické plánování knihovny"]
    assert practical("bara") == ["Pozítří: workshop Vedení a motivace týmu"]
    assert [r.step for r in runs(engine, SLUG)] == [
        "launch", "prakticke-informace-1", "prakticke-informace-2"
    ]  # fmt: skip
    assert all(s.status == StepStatus.LAUNCHED for s in steps(engine, SLUG).values())
