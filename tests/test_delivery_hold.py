"""Messages a worker has claimed but holds back (pacing) are not sent to a contact who left
while they waited: the contact is looked at again right before the SMTP transaction."""

from __future__ import annotations

from delivery_support import add_contacts, blueprint, options, rows
from smtp_server import SMTPServer, smtp_server
from sqlalchemy import Engine
from sqlmodel import Session

from mailer.delivery.runs import launch, progress
from mailer.delivery.send import Stats, drain
from mailer.delivery.transport import transport_from_url
from mailer.events.record import unsubscribe
from mailer.models import TopicOptOut

__all__ = ["smtp_server"]


async def test_it_does_not_send_a_held_message_to_someone_who_left_during_the_hold(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    ids = add_contacts(engine, 3)
    run_id = launch(engine, blueprint()).run_id
    left: list[int] = []

    def leave_after_first_send(stats: Stats) -> None:
        # Runs right after the first message's outcome is committed, while the worker holds
        # the other two claimed messages (one token every 2 s): they left during the hold.
        if stats.sent == 1 and not left:
            with Session(engine) as session:
                unsubscribe(session, ids[1], "web")
                session.add(TopicOptOut(contact_id=ids[2], topic="membership"))
                session.commit()
            left.append(1)

    # One connection, so the second message is only taken after the first one's outcome.
    transport = transport_from_url(smtp_server.url(concurrency="1"))
    stats = await drain(
        engine,
        transport,
        options(rate_per_second=0.5, recheck_after_seconds=1.0),
        on_progress=leave_after_first_send,
    )

    assert left, "the first message was never sent"
    assert [m.rcpt_tos for m in smtp_server.messages] == [["k0@knihovna.cz"]]
    by_email = {r.email: r for r in rows(engine, run_id).values()}
    assert by_email["k0@knihovna.cz"].status == "sent"
    assert (by_email["k1@knihovna.cz"].status, by_email["k1@knihovna.cz"].error) == (
        "skipped",
        "kontakt se mezitím odhlásil",
    )
    assert (by_email["k2@knihovna.cz"].status, by_email["k2@knihovna.cz"].error) == (
        "skipped",
        "kontakt se odhlásil z tématu kampaně",
    )
    assert (stats.sent, stats.skipped) == (1, 2)
    assert progress(engine, run_id).status == "sent"
