"""Transactional mail (confirmations, welcomes, notifications) through the same outbox: ahead
of queued campaign mail, to addresses campaigns may not mail, with the same MIME shape but no
List-Unsubscribe; not to an address that bounced."""

from __future__ import annotations

import sqlalchemy as sa
from delivery_support import add_contacts, blueprint, options
from smtp_server import SMTPServer, smtp_server
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.audience.contacts import suppress
from mailer.compose.transactional import Notice
from mailer.delivery.runs import launch
from mailer.delivery.send import drain
from mailer.delivery.transactional import enqueue
from mailer.delivery.transport import transport_from_url
from mailer.events.record import unsubscribe
from mailer.models import Contact, OutboxMessage

__all__ = ["smtp_server"]


def _notice(kind: str = "potvrzeni") -> Notice:
    return Notice(
        kind=kind,
        subject="Potvrďte prosím odběr novinek",
        heading="Ještě jeden krok",
        paragraphs=["děkujeme za zájem o novinky Sdružení knihoven ČR."],
        button_label="Potvrdit odběr",
        button_url="https://kampane.sdruk.test/odber/potvrdit/abc",
        why="Tuto zprávu jste obdrželi, protože jste se přihlásili k odběru na našem webu.",
        details=[("Téma", "Zpravodaj"), ("Adresa", "novy.zajemce@example.cz")],
    )


async def test_it_goes_ahead_of_queued_campaign_mail_without_list_headers(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 40)
    launch(engine, blueprint())
    with Session(engine) as session:
        enqueue(session, _notice(), email="novy.zajemce@example.cz")
        session.commit()

    transport = transport_from_url(smtp_server.url(concurrency="1"))
    await drain(engine, transport, options(batch_size=5))

    received = smtp_server.messages
    assert len(received) == 41
    first = received[0]
    assert first.rcpt_tos == ["novy.zajemce@example.cz"]
    message = first.message
    assert "List-Unsubscribe" not in message and "List-Unsubscribe-Post" not in message
    assert "Precedence" not in message
    assert message.is_multipart()
    parts = {part.get_content_type(): part for part in message.walk()}
    html = parts["text/html"].get_payload(decode=True).decode()
    text = parts["text/plain"].get_payload(decode=True).decode()
    assert "https://kampane.sdruk.test/odber/potvrdit/abc" in html
    assert "Potvrdit odběr (https://kampane.sdruk.test/odber/potvrdit/abc)" in text
    assert "Vážená paní, vážený pane," in text  # no contact: the neutral salutation
    assert "Téma: Zpravodaj" in text and "Zpravodaj" in html
    # Campaign mail keeps its list headers.
    assert "List-Unsubscribe" in received[1].message


async def test_it_reaches_people_campaigns_may_not_mail_but_not_a_dead_address(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    gone, bounced = add_contacts(engine, 2)
    with Session(engine) as session:
        unsubscribe(session, gone, "page")
        contact = session.get(Contact, bounced)
        assert contact is not None
        contact.status = "bounced"
        session.add(contact)
        suppress(session, "blokovana@example.cz", "manual")
        emails = {}
        for contact_id in (gone, bounced):
            found = session.get(Contact, contact_id)
            assert found is not None
            emails[contact_id] = found.email
            enqueue(session, _notice(), email=found.email, contact_id=contact_id)
        enqueue(session, _notice(), email="blokovana@example.cz")
        session.commit()

    await drain(engine, transport_from_url(smtp_server.url()), options())

    assert [m.rcpt_tos for m in smtp_server.messages] == [[emails[gone]]]
    with Session(engine) as session:
        states = dict(session.exec(select(OutboxMessage.email, OutboxMessage.status)).all())
    assert states == {
        emails[gone]: "sent",
        emails[bounced]: "skipped",
        "blokovana@example.cz": "skipped",
    }


def test_it_is_sent_only_if_the_request_commits(engine: Engine) -> None:
    with Session(engine) as session:
        enqueue(session, _notice(), email="nikdo@example.cz")
        session.rollback()
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(OutboxMessage)).scalar() == 0
