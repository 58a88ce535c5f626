"""The send loop against a real in-process SMTP server with injected faults: every fault ends
in the state the issue asks for, and a contact who left after the launch is skipped."""

from __future__ import annotations

import sqlalchemy as sa
from delivery_support import add_contacts, blueprint, options, outbox_ids, rows
from smtp_server import DISCONNECT, SMTPServer, smtp_server
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.audience.contacts import is_suppressed, suppress
from mailer.delivery.runs import launch, progress, resume
from mailer.delivery.send import drain
from mailer.delivery.transport import transport_from_url
from mailer.events.record import unsubscribe
from mailer.models import Contact, Event, TopicOptOut

__all__ = ["smtp_server"]


async def _drain(engine: Engine, server: SMTPServer, **overrides: object):  # type: ignore[no-untyped-def]
    transport = transport_from_url(server.url(concurrency="4"))
    return await drain(engine, transport, options(**overrides))


async def test_it_sends_every_message_once_and_finishes_the_run(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 30)
    run_id = launch(engine, blueprint()).run_id

    stats = await _drain(engine, smtp_server)

    received = smtp_server.messages
    assert sorted(outbox_ids([m.data for m in received])) == sorted(rows(engine, run_id))
    assert all(r.status == "sent" and r.attempts == 1 for r in rows(engine, run_id).values())
    assert all(m.mail_from.startswith("bounce+") for m in received)
    assert stats.sent == 30 and stats.finished_runs == [run_id]
    assert progress(engine, run_id).status == "sent"


async def test_it_retries_a_temporary_failure_then_gives_up(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 4)
    smtp_server.fail("rcpt", "k0@knihovna.cz", "451 4.3.0 Mailbox busy")  # for ever
    smtp_server.fail("rcpt", "k1@knihovna.cz", "421 4.7.0 Try again later", times=2)
    smtp_server.fail("data", "k2@knihovna.cz", DISCONNECT, times=1)
    run_id = launch(engine, blueprint()).run_id

    await _drain(engine, smtp_server, max_attempts=3)

    by_email = {r.email: r for r in rows(engine, run_id).values()}
    assert by_email["k0@knihovna.cz"].status == "failed"
    assert by_email["k0@knihovna.cz"].attempts == 3
    assert "vzdáno po 3 pokusech: 451 4.3.0 Mailbox busy" in by_email["k0@knihovna.cz"].error
    assert (by_email["k1@knihovna.cz"].status, by_email["k1@knihovna.cz"].attempts) == ("sent", 3)
    assert (by_email["k2@knihovna.cz"].status, by_email["k2@knihovna.cz"].attempts) == ("sent", 2)
    assert by_email["k3@knihovna.cz"].status == "sent"
    assert len(smtp_server.received_by("k2@knihovna.cz")) == 1
    assert progress(engine, run_id).status == "sent"


async def test_it_leaves_a_retry_for_later_when_its_run_pauses(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 2)
    smtp_server.fail("rcpt", "k0@knihovna.cz", "450 4.2.1 Slow down", times=1)
    smtp_server.fail("data", "k1@knihovna.cz", "554 5.7.1 Rejected by policy")
    run_id = launch(engine, blueprint()).run_id

    # The drain ends without waiting an hour for the retry: the run is paused.
    await _drain(engine, smtp_server, retry_base_seconds=3600)

    row = next(r for r in rows(engine, run_id).values() if r.email == "k0@knihovna.cz")
    assert (row.status, row.attempts) == ("retry", 1)
    assert row.next_attempt_at is not None and row.error.startswith("450")
    assert progress(engine, run_id).status == "paused"


async def test_it_fails_a_refused_recipient_and_suppresses_a_hard_bounce(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    ids = add_contacts(engine, 3)
    smtp_server.fail("rcpt", "k0@knihovna.cz", "550 5.1.1 <k0@knihovna.cz>: User unknown")
    smtp_server.fail("data", "k1@knihovna.cz", "552 5.2.2 Mailbox full")
    run_id = launch(engine, blueprint()).run_id

    await _drain(engine, smtp_server)

    by_email = {r.email: r for r in rows(engine, run_id).values()}
    assert by_email["k0@knihovna.cz"].status == "failed"
    assert by_email["k0@knihovna.cz"].error.startswith("550 5.1.1")
    assert by_email["k1@knihovna.cz"].status == "failed"
    assert by_email["k2@knihovna.cz"].status == "sent"
    with Session(engine) as session:
        bounced = session.get(Contact, ids[0])
        full = session.get(Contact, ids[1])
        assert bounced is not None and bounced.status == "bounced"
        assert is_suppressed(session, "k0@knihovna.cz")
        # A full mailbox is the recipient's problem today, not a dead address.
        assert full is not None and full.status == "active"
        assert not is_suppressed(session, "k1@knihovna.cz")
        kinds = session.exec(select(Event.kind).where(Event.contact_id == ids[0])).all()
        assert kinds == ["bounce_hard"]


async def test_it_pauses_the_run_on_a_policy_refusal_without_blaming_the_recipient(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 10)
    smtp_server.fail("data", "k0@knihovna.cz", "554 5.7.1 Message rejected by policy")
    run_id = launch(engine, blueprint()).run_id

    stats = await _drain(engine, smtp_server)

    p = progress(engine, run_id)
    assert p.status == "paused"
    assert "5.7.1 Message rejected by policy" in (p.status_reason or "")
    assert stats.paused_runs and run_id in stats.paused_runs
    row = next(r for r in rows(engine, run_id).values() if r.email == "k0@knihovna.cz")
    assert (row.status, row.attempts, row.worker) == ("queued", 0, None)
    assert p.counts.get("failed", 0) == 0 and p.counts.get("sending", 0) == 0

    smtp_server.clear_faults()
    resume(engine, run_id)
    await _drain(engine, smtp_server)
    assert progress(engine, run_id).counts == {"sent": 10}
    assert len(smtp_server.received_by("k0@knihovna.cz")) == 1


async def test_it_pauses_the_run_after_too_many_errors_in_a_row(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 40)
    smtp_server.fail("rcpt", "*", "550 5.2.0 Mailbox disabled")
    run_id = launch(engine, blueprint()).run_id

    await _drain(engine, smtp_server, max_consecutive_errors=5)

    p = progress(engine, run_id)
    assert p.status == "paused"
    assert (p.status_reason or "").startswith("Příliš mnoho chyb za sebou")
    # The pause stops the run well before every recipient was tried.
    assert p.counts.get("failed", 0) < 40 and p.counts.get("queued", 0) > 0


async def test_it_retries_when_the_relay_is_down_and_pauses_the_run(engine: Engine) -> None:
    from smtp_server import free_port

    add_contacts(engine, 12)
    run_id = launch(engine, blueprint()).run_id
    transport = transport_from_url(f"smtp://127.0.0.1:{free_port()}?timeout=2&concurrency=2")

    await drain(engine, transport, options(max_consecutive_errors=6, retry_base_seconds=3600))

    p = progress(engine, run_id)
    assert p.status == "paused" and "spojení selhalo" in (p.status_reason or "")
    assert p.counts.get("retry", 0) >= 6 and p.counts.get("failed", 0) == 0


async def test_it_skips_contacts_who_left_after_the_launch(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    ids = add_contacts(engine, 5)
    run_id = launch(engine, blueprint()).run_id
    with Session(engine) as session:
        # Through the one write path: the queued message turns skipped at once.
        unsubscribe(session, ids[0], "web")
        # Behind the queue's back: only the worker's re-check before sending can catch these.
        suppress(session, "k1@knihovna.cz", "complaint")
        session.add(TopicOptOut(contact_id=ids[2], topic="membership"))
        session.execute(sa.update(Contact).where(Contact.id == ids[3]).values(status="bounced"))
        session.commit()

    stats = await _drain(engine, smtp_server)

    by_email = {r.email: r for r in rows(engine, run_id).values()}
    assert [m.rcpt_tos for m in smtp_server.messages] == [["k4@knihovna.cz"]]
    assert [by_email[f"k{i}@knihovna.cz"].status for i in range(5)] == ["skipped"] * 4 + ["sent"]
    assert by_email["k1@knihovna.cz"].error == "adresa je na seznamu blokovaných"
    assert by_email["k2@knihovna.cz"].error == "kontakt se odhlásil z tématu kampaně"
    assert by_email["k3@knihovna.cz"].error == "adresa mezitím nedoručitelná"
    assert stats.skipped == 3
    assert progress(engine, run_id).status == "sent"


async def test_it_limits_transactions_at_once_per_destination_domain(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 12, domain="knihovna.cz")
    add_contacts(engine, 12, prefix="m", domain="mestska.cz")
    launch(engine, blueprint())
    smtp_server.handler.data_delay = 0.02

    await _drain(engine, smtp_server, domain_concurrency=1)
    limited = dict(smtp_server.handler.peak)
    assert len(smtp_server.messages) == 24

    # The reminder to the same people, without the limit, overlaps transactions to a domain.
    smtp_server.handler.peak.clear()
    assert launch(engine, blueprint(), "pripominka").recipients == 24
    await _drain(engine, smtp_server)
    assert limited == {"knihovna.cz": 1, "mestska.cz": 1}
    assert smtp_server.handler.peak["knihovna.cz"] > 1
