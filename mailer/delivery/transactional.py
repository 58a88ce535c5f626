"""Queueing transactional mail: one message a person asked for, through the same outbox as
campaigns, ahead of them and outside any sending window.

Each message is a run of its own (campaign `TRANSACTIONAL_CAMPAIGN`, a unique step name), so
its content is frozen like a campaign's and what went out can be shown later; the worker
sends it with the same Composer, crash safety and retries. It jumps the queue without a
column of its own: its row is due at `PRIORITY_DUE`, long before any campaign row, and the
claim takes due rows in (next_attempt_at, id) order along its index. The scheduler's
sending windows pause campaign runs only, so these go out at any hour.

Staff's wording of the message's kind, when they saved one, is filled in here, in the same
transaction; if it somehow does not render, the message goes out with the default wording
and the failure is logged: a reworded text never costs a person their message."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime

from sqlmodel import Session

from mailer.compose import notice_store
from mailer.compose.notice_texts import apply_wording
from mailer.compose.transactional import Notice, freeze_notice
from mailer.models import (
    TRANSACTIONAL_CAMPAIGN,
    MessageStatus,
    OutboxMessage,
    Run,
    RunStatus,
    utcnow,
)

PRIORITY_DUE = datetime(2000, 1, 1, tzinfo=UTC)
log = logging.getLogger(__name__)


def in_staff_wording(session: Session, notice: Notice) -> Notice:
    """`notice` in the wording staff saved for its kind; the notice as built when there is
    none or it fails."""
    wording = notice_store.in_force(session, notice.kind).wording
    if wording is None:
        return notice
    try:
        return apply_wording(notice, wording)
    except Exception:
        # Checked at save, so this is a stored text the checks did not foresee (or values
        # they never saw): the message still goes out, in the default wording.
        log.exception("staff wording of %s failed; sending the default wording", notice.kind)
        return notice


def enqueue(
    session: Session, notice: Notice, *, email: str, contact_id: int | None = None
) -> OutboxMessage:
    """Queue `notice` for `email` (the contact's, when there is one) in the caller's
    transaction: it is sent only if that transaction commits, and then at once."""
    notice = in_staff_wording(session, notice)
    now = utcnow()
    run = Run(
        campaign=TRANSACTIONAL_CAMPAIGN,
        step=f"{notice.kind}-{uuid.uuid4().hex[:16]}",
        status=RunStatus.SCHEDULED,
        content=freeze_notice(notice),
        recipients=1,
        created_by="web",
        created_at=now,
    )
    session.add(run)
    session.flush()
    assert run.id is not None
    message = OutboxMessage(
        run_id=run.id,
        contact_id=contact_id,
        email=email,
        status=MessageStatus.QUEUED,
        next_attempt_at=PRIORITY_DUE,
    )
    session.add(message)
    session.flush()
    return message
