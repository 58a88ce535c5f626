"""The inbound SMTP endpoint, driven over real SMTP (smtplib and aiosmtplib) against the
in-process aiosmtpd server: mailto unsubscribes, DSNs and ARF reports."""

from __future__ import annotations

import smtplib
import socket
from collections.abc import Iterator

import aiosmtplib
import pytest
from events_factory import make_world
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.audience.contacts import is_suppressed
from mailer.models import Contact, Event, EventKind, MessageStatus, OutboxMessage
from mailer.tokens import Purpose, default_signer
from mailer.web.inbound import InboundHandler, make_controller

BOUNCE_DOMAIN = "bounces.sdruk.cz"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_port(engine: Engine) -> Iterator[int]:
    port = _free_port()
    controller = make_controller(engine, "127.0.0.1", port)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _verp(outbox_id: int) -> str:
    return f"bounce+{default_signer().sign_address(Purpose.RETURN_PATH, outbox_id)}@{BOUNCE_DOMAIN}"


def _list_unsubscribe(outbox_id: int) -> str:
    token = default_signer().sign(Purpose.UNSUBSCRIBE, outbox_id)
    mailto = default_signer().sign_address(Purpose.UNSUBSCRIBE, outbox_id)
    return f"<https://kampane.sdruk.test/u/{token}>, <mailto:unsubscribe+{mailto}@{BOUNCE_DOMAIN}>"


def _message_id(run_id: int, outbox_id: int) -> str:
    """The Message-ID the composer gives a message of a run without a nonce (older runs)."""
    return f"sdruk.{run_id}.{outbox_id}@sdruk.cz"


def _original_headers(
    outbox_id: int, to: str, *, run_id: int = 1, only_list_unsubscribe: bool = False
) -> str:
    own = (
        ""
        if only_list_unsubscribe
        else f"Return-Path: <{_verp(outbox_id)}>\r\n"
        f"Message-ID: <{_message_id(run_id, outbox_id)}>\r\n"
    )
    return (
        f"{own}"
        "From: =?utf-8?q?Sdru=C5=BEen=C3=AD_knihoven_=C4=8CR?= <sdruk@sdruk.cz>\r\n"
        f"To: {to}\r\n"
        "Subject: =?utf-8?q?P=C5=99idejte_se_k_n=C3=A1m?=\r\n"
        "Date: Tue, 24 Nov 2026 22:14:58 +0100\r\n"
        f"List-Unsubscribe: {_list_unsubscribe(outbox_id)}\r\n"
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    )


def postfix_dsn(outbox_id: int, rcpt: str, status: str, action: str = "failed") -> bytes:
    """A DSN as Postfix writes it (RFC 3464)."""
    code = "550" if status.startswith("5") else "452"
    boundary = "3F2A1C0042.1732486500/mx.knihovna-test.cz"
    return (
        "Return-Path: <>\r\n"
        "Received: by mx.knihovna-test.cz (Postfix) id 3F2A1C0042;\r\n"
        "\tTue, 24 Nov 2026 22:15:00 +0100 (CET)\r\n"
        "Date: Tue, 24 Nov 2026 22:15:00 +0100 (CET)\r\n"
        "From: MAILER-DAEMON@mx.knihovna-test.cz (Mail Delivery System)\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"To: {_verp(outbox_id)}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        f'\tboundary="{boundary}"\r\n'
        "Content-Transfer-Encoding: 8bit\r\n"
        "Message-Id: <20261124211500.3F2A1C0042@mx.knihovna-test.cz>\r\n"
        "\r\n"
        "This is a MIME-encapsulated message.\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "This is the mail system at host mx.knihovna-test.cz.\r\n"
        "\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients.\r\n"
        "\r\n"
        f"<{rcpt}>: host mx.knihovna-test.cz[192.0.2.10] said: {code} {status}\r\n"
        f"    <{rcpt}>: Recipient address rejected (in reply to RCPT TO command)\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.knihovna-test.cz\r\n"
        "X-Postfix-Queue-ID: 3F2A1C0042\r\n"
        f"X-Postfix-Sender: rfc822; {_verp(outbox_id)}\r\n"
        "Arrival-Date: Tue, 24 Nov 2026 22:14:59 +0100 (CET)\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {rcpt}\r\n"
        f"Original-Recipient: rfc822;{rcpt}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        "Remote-MTA: dns; mx.knihovna-test.cz\r\n"
        f"Diagnostic-Code: smtp; {code} {status} <{rcpt}>: Recipient address\r\n"
        "    rejected: User unknown in virtual mailbox table\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Undelivered Message Headers\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"{_original_headers(outbox_id, rcpt)}"
        "\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def arf_report(
    outbox_id: int,
    rcpt: str,
    *,
    redacted: bool,
    run_id: int = 1,
    only_list_unsubscribe: bool = False,
) -> bytes:
    """An abuse report as feedback loops send it (RFC 5965). Redacted reports (common) leave
    out the envelope sender; the original's List-Unsubscribe token still names the message."""
    original = _original_headers(
        outbox_id, rcpt, run_id=run_id, only_list_unsubscribe=only_list_unsubscribe
    )
    boundary = "part1_13d.2e68ed54_boundary"
    mail_from = "" if redacted else f"Original-Mail-From: <{_verp(outbox_id)}>\r\n"
    return (
        "From: <staff@feedback.mailbox-provider.example>\r\n"
        "Date: Wed, 25 Nov 2026 08:00:00 +0100\r\n"
        "Subject: FW: Complaint about message from 192.0.2.1\r\n"
        "To: <fbl@bounces.sdruk.cz>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=feedback-report;\r\n"
        f'     boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        'Content-Type: text/plain; charset="US-ASCII"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n"
        "\r\n"
        "This is an email abuse report for an email message received from IP\r\n"
        "192.0.2.1 on Tue, 24 Nov 2026 22:14:58 +0100.\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/feedback-report\r\n"
        "\r\n"
        "Feedback-Type: abuse\r\n"
        "User-Agent: SomeGenerator/1.0\r\n"
        "Version: 1\r\n"
        f"{mail_from}"
        f"Original-Rcpt-To: <{rcpt}>\r\n"
        "Arrival-Date: Tue, 24 Nov 2026 22:14:58 +0100\r\n"
        "Reporting-MTA: dns; mail.mailbox-provider.example\r\n"
        "Source-IP: 192.0.2.1\r\n"
        "Authentication-Results: mail.mailbox-provider.example;\r\n"
        "     spf=pass smtp.mail=sdruk@sdruk.cz\r\n"
        "Reported-Domain: sdruk.cz\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/rfc822\r\n"
        "Content-Disposition: inline\r\n"
        "\r\n"
        f"{original}"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
        "Vážená paní ředitelko, …\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def _contact(engine: Engine, contact_id: int) -> Contact:
    with Session(engine) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact


def _kinds(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(Event.kind).order_by(Event.id)).all())  # type: ignore[arg-type]


def test_it_unsubscribes_on_mail_to_the_mailto_address(engine: Engine, smtp_port: int) -> None:
    world = make_world(engine)
    pending = make_world(engine, step="reminder", status=MessageStatus.QUEUED)
    with Session(engine) as session:
        row = session.get(OutboxMessage, pending.outbox_ids[0])
        assert row is not None
        row.contact_id = world.contact_ids[0]
        session.add(row)
        session.commit()
    token = default_signer().sign_address(Purpose.UNSUBSCRIBE, world.outbox_ids[0])
    message = (
        f"From: reditelka0@knihovna-test.cz\r\nTo: unsubscribe+{token}@{BOUNCE_DOMAIN}\r\n"
        "Subject: unsubscribe\r\n\r\nOdhlaste me prosim.\r\n"
    )
    for _ in range(2):  # a second copy changes nothing
        with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
            smtp.sendmail(
                "reditelka0@knihovna-test.cz", [f"unsubscribe+{token}@{BOUNCE_DOMAIN}"], message
            )
    contact = _contact(engine, world.contact_ids[0])
    assert contact.status == "unsubscribed"
    assert _kinds(engine) == ["unsubscribe"]
    with Session(engine) as session:
        row = session.get(OutboxMessage, pending.outbox_ids[0])
        assert row is not None and row.status == MessageStatus.SKIPPED
        assert is_suppressed(session, contact.email)


def test_it_refuses_recipients_without_a_valid_token(engine: Engine, smtp_port: int) -> None:
    world = make_world(engine)
    wrong_purpose = default_signer().sign_address(Purpose.OPEN, world.outbox_ids[0])
    refused = [
        f"unsubscribe+{wrong_purpose}@{BOUNCE_DOMAIN}",
        f"bounce+{wrong_purpose}@{BOUNCE_DOMAIN}",
        f"bounce+AAAAAAAAAAAAAAAAAAAA@{BOUNCE_DOMAIN}",
        "reditelka0@knihovna-test.cz",
    ]
    with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
        smtp.ehlo()
        smtp.mail("someone@example.org")
        for address in refused:
            code, _ = smtp.rcpt(address)
            assert code == 550, address
    assert _kinds(engine) == []


async def test_it_marks_a_hard_bounce_from_a_real_dsn(engine: Engine, smtp_port: int) -> None:
    world = make_world(engine)
    rcpt = "reditelka0.nabor-2026.launch@knihovna-test.cz"
    dsn = postfix_dsn(world.outbox_ids[0], rcpt, "5.1.1")
    for _ in range(2):  # the bouncing server retried: counted once
        async with aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port) as smtp:
            await smtp.sendmail("", [_verp(world.outbox_ids[0])], dsn)  # MAIL FROM:<>
    contact = _contact(engine, world.contact_ids[0])
    assert contact.status == "bounced"
    with Session(engine) as session:
        assert is_suppressed(session, contact.email)
        [event] = session.exec(select(Event)).all()
    assert (event.kind, event.outbox_id, event.run_id) == (
        EventKind.BOUNCE_HARD,
        world.outbox_ids[0],
        world.run_id,
    )
    assert event.detail["status"] == "5.1.1"
    assert "User unknown" in event.detail["diagnostic"]


def test_it_counts_a_soft_bounce_and_ignores_delay_notices(engine: Engine, smtp_port: int) -> None:
    world = make_world(engine)
    with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
        delayed = postfix_dsn(world.outbox_ids[1], "x@knihovna-test.cz", "4.4.1", "delayed")
        smtp.sendmail("", [_verp(world.outbox_ids[1])], delayed)
        full = postfix_dsn(world.outbox_ids[1], "x@knihovna-test.cz", "5.2.2")
        smtp.sendmail("", [_verp(world.outbox_ids[1])], full)
    contact = _contact(engine, world.contact_ids[1])
    assert (contact.status, contact.soft_bounces) == ("active", 1)
    assert _kinds(engine) == ["bounce_soft"]


@pytest.mark.parametrize("redacted", [False, True], ids=["verp", "redacted"])
def test_it_marks_a_complaint_from_an_arf_report(
    engine: Engine, smtp_port: int, redacted: bool
) -> None:
    world = make_world(engine)
    pending = make_world(engine, step="reminder", status=MessageStatus.QUEUED)
    report = arf_report(
        world.outbox_ids[2], "reditelka2@knihovna-test.cz", redacted=redacted, run_id=world.run_id
    )
    with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
        smtp.sendmail("staff@feedback.mailbox-provider.example", [f"fbl@{BOUNCE_DOMAIN}"], report)
    contact = _contact(engine, world.contact_ids[2])
    assert contact.status == "complained"
    with Session(engine) as session:
        assert is_suppressed(session, contact.email)
        [event] = session.exec(select(Event)).all()
        untouched = session.get(OutboxMessage, pending.outbox_ids[2])
    assert (event.kind, event.outbox_id, event.detail["feedback_type"]) == (
        "complaint",
        world.outbox_ids[2],
        "abuse",
    )
    assert untouched is not None and untouched.status == MessageStatus.QUEUED  # another contact


def test_it_needs_the_messages_own_identifiers_for_a_complaint(
    engine: Engine, smtp_port: int
) -> None:
    # Anyone who sees a message sees its List-Unsubscribe: quoting it alone proves nothing.
    world = make_world(engine)
    report = arf_report(
        world.outbox_ids[0],
        "reditelka0@knihovna-test.cz",
        redacted=True,
        only_list_unsubscribe=True,
    )
    handler = InboundHandler(engine)
    from mailer.web.inbound import process_message

    assert process_message(engine, [f"fbl@{BOUNCE_DOMAIN}"], report, handler.signer) == [
        "complaint:unverified"
    ]
    # Another message's Message-ID next to this one's tokens does not match either.
    forged = arf_report(
        world.outbox_ids[1], "reditelka1@knihovna-test.cz", redacted=False, run_id=world.run_id
    )
    forged = forged.replace(
        _message_id(world.run_id, world.outbox_ids[1]).encode(),
        _message_id(world.run_id, world.outbox_ids[2]).encode(),
    )
    with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
        smtp.sendmail("staff@feedback.mailbox-provider.example", [f"fbl@{BOUNCE_DOMAIN}"], forged)
    for contact_id in world.contact_ids:
        assert _contact(engine, contact_id).status == "active"
    assert _kinds(engine) == []


def test_it_ignores_an_auto_reply_to_the_return_path(engine: Engine) -> None:
    world = make_world(engine)
    handler = InboundHandler(engine)
    from mailer.web.inbound import process_message

    reply = (
        b"From: reditelka0@knihovna-test.cz\r\nTo: x\r\nSubject: Automaticka odpoved: dovolena\r\n"
        b"Auto-Submitted: auto-replied\r\n\r\nJsem na dovolene do 30. 11.\r\n"
    )
    assert process_message(engine, [_verp(world.outbox_ids[0])], reply, handler.signer) == [
        "ignored"
    ]
    assert _kinds(engine) == []


async def test_it_serves_on_the_running_loop_until_stopped(engine: Engine) -> None:
    import asyncio

    from mailer.web.inbound import serve_forever

    world = make_world(engine)
    port = _free_port()
    stop = asyncio.Event()
    ready = asyncio.Event()
    serving = asyncio.create_task(
        serve_forever(stop=stop, host="127.0.0.1", port=port, engine=engine, on_ready=ready.set)
    )
    await ready.wait()
    token = default_signer().sign_address(Purpose.UNSUBSCRIBE, world.outbox_ids[1])
    await aiosmtplib.send(
        b"Subject: unsubscribe\r\n\r\n",
        sender="reditelka1@knihovna-test.cz",
        recipients=[f"unsubscribe+{token}@{BOUNCE_DOMAIN}"],
        hostname="127.0.0.1",
        port=port,
    )
    stop.set()
    await serving
    assert _contact(engine, world.contact_ids[1]).status == "unsubscribed"


def test_it_logs_each_message_accepted_refused_and_recorded(
    engine: Engine, smtp_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    world = make_world(engine)
    token = default_signer().sign_address(Purpose.UNSUBSCRIBE, world.outbox_ids[0])
    caplog.set_level("INFO", logger="mailer.web.inbound")
    with smtplib.SMTP("127.0.0.1", smtp_port) as smtp:
        smtp.ehlo()
        smtp.mail("reditelka0@knihovna-test.cz")
        assert smtp.rcpt(f"nikdo@{BOUNCE_DOMAIN}")[0] == 550
        assert smtp.rcpt(f"unsubscribe+{token}@{BOUNCE_DOMAIN}")[0] == 250
        smtp.data(b"Subject: unsubscribe\r\n\r\nOdhlaste me.\r\n")
    lines = [r.getMessage() for r in caplog.records if r.name == "mailer.web.inbound"]
    assert any(f"nikdo@{BOUNCE_DOMAIN} odmítnut (550" in line for line in lines), lines
    accepted = [line for line in lines if "přijata (250)" in line]
    assert len(accepted) == 1, lines
    assert "reditelka0@knihovna-test.cz" in accepted[0]
    assert "odhlášení e-mailem zaznamenáno" in accepted[0]
