"""How far each run has got: outbox rows counted by state, for pages and the live JSON."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from mailer.models import MessageStatus, OutboxMessage, Run, RunStatus

# States after which a message needs no more work.
FINAL = (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.SKIPPED)


def run_counts(session: Session, run_ids: Iterable[int]) -> dict[int, dict[str, int]]:
    """Outbox rows per run and state (every state present, zero when none)."""
    ids = list(run_ids)
    result: dict[int, dict[str, int]] = {i: {s.value: 0 for s in MessageStatus} for i in ids}
    if not ids:
        return result
    rows = session.execute(
        sa.select(col(OutboxMessage.run_id), col(OutboxMessage.status), sa.func.count())
        .where(col(OutboxMessage.run_id).in_(ids))
        .group_by(col(OutboxMessage.run_id), col(OutboxMessage.status))
    )
    for run_id, status, n in rows:
        result[run_id][status] = int(n)
    return result


def run_progress(session: Session, run: Run) -> dict[str, Any]:
    """The JSON the progress bar polls."""
    from mailer.web.console.render import RUN_STATUS_LABELS

    assert run.id is not None
    counts = run_counts(session, [run.id])[run.id]
    total = sum(counts.values())
    done = sum(counts[s.value] for s in FINAL)
    finished = run.status in (RunStatus.SENT, RunStatus.CANCELLED) or (total > 0 and done == total)
    note = None
    if not finished:
        from mailer.delivery.runs import limit_estimate

        note, _ = limit_estimate(total - done)
    return {
        "limit_note": note,
        "run_id": run.id,
        "status": run.status,
        "status_label": RUN_STATUS_LABELS.get(RunStatus(run.status), run.status),
        "total": total,
        "done": done,
        "counts": counts,
        "finished": finished,
    }
