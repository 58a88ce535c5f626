"""Recording outcomes: one group commit of a batch of message outcomes (sent, retry, failed,
requeued, skipped), with hard bounces written through the one event write path."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from mailer.delivery import outbox as ob
from mailer.delivery.outcomes import BOUNCED, FAILED, REQUEUE, RETRY, SENT, SKIPPED, Outcome

__all__ = ["write"]


def write(conn: Connection, worker: str, batch: list[Outcome], now: datetime) -> None:
    """One group commit of outcomes (the caller's transaction)."""
    sent: list[tuple[int, str]] = []
    retry: list[tuple[int, str, datetime]] = []
    failed: list[tuple[int, str]] = []
    requeue: list[int] = []
    skipped: dict[str, list[int]] = {}
    bounced: list[Outcome] = []
    for o in batch:
        m = o.message
        if o.kind == SENT:
            sent.append((m.id, o.text))
        elif o.kind == RETRY:
            assert o.retry_at is not None
            retry.append((m.id, o.text, o.retry_at))
        elif o.kind == FAILED:
            failed.append((m.id, o.text))
        elif o.kind == BOUNCED:
            failed.append((m.id, o.text))
            bounced.append(o)
        elif o.kind == REQUEUE:
            requeue.append(m.id)
        elif o.kind == SKIPPED:
            skipped.setdefault(o.text, []).append(m.id)
    ob.mark_sent(conn, sent, now)
    ob.mark_retry(conn, worker, retry)
    ob.mark_failed(conn, worker, failed)
    ob.release(conn, worker, requeue, now)
    for reason, ids in skipped.items():
        ob.mark_skipped(conn, ids, reason)
    if bounced:
        _record_bounces(conn, bounced, now)


def _record_bounces(conn: Connection, bounced: list[Outcome], now: datetime) -> None:
    # Through the one write path for contact changes caused by events: bounced, suppressed,
    # and the contact's other waiting messages skipped, in this same transaction.
    from mailer.events.record import BounceTarget, hard_bounce

    session = ob.session_on(conn)
    try:
        for o in bounced:
            m = o.message
            contact_id = m.contact.id if m.contact is not None else None
            target = BounceTarget(m.id, m.run_id, contact_id)
            hard_bounce(session, target, status=o.enhanced or "5.1.1", diagnostic=o.text, now=now)
        session.flush()
    finally:
        session.close()
