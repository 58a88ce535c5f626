"""Results of a run: delivery counts, people versus machines, clicks per link, unsubscribes
and complaints, overall and by library type and region.

"Opened" counts people only, and a person who clicked or opened the web version has opened
the message even when their client blocked the pixel (the same rule as the segment field
`opened`). Machine opens and clicks are counted apart, never mixed in.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col

from mailer.models import (
    LIBRARY_TYPE_LABELS,
    Contact,
    Event,
    EventKind,
    Library,
    MessageStatus,
    OutboxMessage,
    Run,
)

_SEEN = (EventKind.OPEN, EventKind.CLICK, EventKind.WEB_VIEW)


@dataclass
class LinkStats:
    index: int
    url: str
    people: int = 0  # recipients who clicked it (distinct, people only)
    human_clicks: int = 0
    machine_clicks: int = 0


@dataclass
class GroupStats:
    """One row of a breakdown (a library type or a region)."""

    key: str
    label: str
    recipients: int = 0
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    unsubscribed: int = 0
    bounced: int = 0
    complained: int = 0


@dataclass
class RunStats:
    run_id: int
    campaign: str
    step: str
    status: str
    tracking: str
    recipients: int = 0
    queued: int = 0
    sent: int = 0
    failed: int = 0
    skipped: int = 0
    bounced: int = 0
    hard_bounces: int = 0
    soft_bounces: int = 0
    unique_human_opens: int = 0
    human_opens: int = 0  # all open events by people (anonymous runs have only this)
    machine_opens: int = 0
    machine_only_recipients: int = 0  # recipients whose every open/click was a machine
    unique_human_clicks: int = 0
    human_clicks: int = 0
    machine_clicks: int = 0
    web_views: int = 0
    unsubscribes: int = 0
    complaints: int = 0
    links: list[LinkStats] = field(default_factory=list)
    by_library_type: list[GroupStats] = field(default_factory=list)
    by_region: list[GroupStats] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


class RunNotFound(LookupError):
    pass


def _distinct_outboxes(
    session: Session, run_id: int, kinds: tuple[EventKind, ...], *, machine: bool | None = False
) -> int:
    query = sa.select(sa.func.count(sa.distinct(col(Event.outbox_id)))).where(
        col(Event.run_id) == run_id,
        col(Event.kind).in_([k.value for k in kinds]),
        col(Event.outbox_id).is_not(None),
    )
    if machine is not None:
        query = query.where(col(Event.is_machine).is_(sa.true() if machine else sa.false()))
    return int(session.execute(query).scalar_one())


def _grouped(session: Session, run_id: int, dimension: Any, measure: str) -> dict[str | None, int]:
    """Counts of outbox rows per `dimension` (a Library column) for one measure."""
    outbox = OutboxMessage
    query = (
        sa.select(dimension, sa.func.count(sa.distinct(col(outbox.id))))
        .select_from(outbox)
        .join(Contact, col(Contact.id) == col(outbox.contact_id), isouter=True)
        .join(Library, col(Library.id) == col(Contact.library_id), isouter=True)
        .where(col(outbox.run_id) == run_id)
        .group_by(dimension)
    )
    if measure == "sent":
        query = query.where(col(outbox.status) == MessageStatus.SENT)
    elif measure != "recipients":
        kinds, human = {
            "opened": (_SEEN, True),
            "clicked": ((EventKind.CLICK,), True),
            "unsubscribed": ((EventKind.UNSUBSCRIBE,), None),
            "bounced": ((EventKind.BOUNCE_HARD, EventKind.BOUNCE_SOFT), None),
            "complained": ((EventKind.COMPLAINT,), None),
        }[measure]
        query = query.join(Event, col(Event.outbox_id) == col(outbox.id)).where(
            col(Event.kind).in_([k.value for k in kinds])
        )
        if human:
            query = query.where(col(Event.is_machine).is_(sa.false()))
    return {key: int(n) for key, n in session.execute(query).all()}


def _breakdown(
    session: Session, run_id: int, dimension: Any, labels: dict[str, str]
) -> list[GroupStats]:
    measures = ("recipients", "sent", "opened", "clicked", "unsubscribed", "bounced", "complained")
    counts = {m: _grouped(session, run_id, dimension, m) for m in measures}
    rows = []
    for key in sorted(counts["recipients"], key=lambda k: (k is None, k or "")):
        name = key or ""
        group = GroupStats(key=name, label=labels.get(name, name or "neuvedeno"))
        for measure in measures:
            setattr(group, measure, counts[measure].get(key, 0))
        rows.append(group)
    return rows


def run_stats(session: Session, run_id: int) -> RunStats:
    """Everything `sdruk runs stats` and the console show about one run."""
    run = session.get(Run, run_id)
    if run is None:
        raise RunNotFound(run_id)
    content = run.content or {}
    stats = RunStats(
        run_id=run_id,
        campaign=run.campaign,
        step=run.step,
        status=run.status,
        tracking=str(content.get("tracking") or "individual"),
    )
    statuses = session.execute(
        sa.select(col(OutboxMessage.status), sa.func.count())
        .where(col(OutboxMessage.run_id) == run_id)
        .group_by(col(OutboxMessage.status))
    ).all()
    by_status = {status: int(n) for status, n in statuses}
    stats.recipients = sum(by_status.values())
    stats.queued = sum(
        by_status.get(s, 0) for s in (MessageStatus.QUEUED, MessageStatus.RETRY, "sending")
    )
    stats.sent = by_status.get(MessageStatus.SENT, 0)
    stats.failed = by_status.get(MessageStatus.FAILED, 0)
    stats.skipped = by_status.get(MessageStatus.SKIPPED, 0)

    events = session.execute(
        sa.select(col(Event.kind), col(Event.is_machine), sa.func.count())
        .where(col(Event.run_id) == run_id)
        .group_by(col(Event.kind), col(Event.is_machine))
    ).all()
    count = {(kind, bool(machine)): int(n) for kind, machine, n in events}
    stats.human_opens = count.get((EventKind.OPEN, False), 0)
    stats.machine_opens = count.get((EventKind.OPEN, True), 0)
    stats.human_clicks = count.get((EventKind.CLICK, False), 0)
    stats.machine_clicks = count.get((EventKind.CLICK, True), 0)
    stats.web_views = count.get((EventKind.WEB_VIEW, False), 0)
    stats.unsubscribes = sum(count.get((EventKind.UNSUBSCRIBE, m), 0) for m in (False, True))
    stats.complaints = sum(count.get((EventKind.COMPLAINT, m), 0) for m in (False, True))

    stats.hard_bounces = _distinct_outboxes(session, run_id, (EventKind.BOUNCE_HARD,), machine=None)
    stats.soft_bounces = _distinct_outboxes(session, run_id, (EventKind.BOUNCE_SOFT,), machine=None)
    stats.bounced = _distinct_outboxes(
        session, run_id, (EventKind.BOUNCE_HARD, EventKind.BOUNCE_SOFT), machine=None
    )
    stats.unique_human_opens = _distinct_outboxes(session, run_id, _SEEN)
    stats.unique_human_clicks = _distinct_outboxes(session, run_id, (EventKind.CLICK,))
    any_seen = _distinct_outboxes(session, run_id, _SEEN, machine=None)
    stats.machine_only_recipients = any_seen - stats.unique_human_opens

    links = list(content.get("links") or [])
    stats.links = [LinkStats(index=i, url=url) for i, url in enumerate(links)]
    per_link = session.execute(
        sa.select(
            col(Event.link_index),
            col(Event.is_machine),
            sa.func.count(),
            sa.func.count(sa.distinct(col(Event.outbox_id))),
        )
        .where(col(Event.run_id) == run_id, col(Event.kind) == EventKind.CLICK)
        .group_by(col(Event.link_index), col(Event.is_machine))
    ).all()
    for index, machine, clicks, people in per_link:
        if index is None or not 0 <= index < len(stats.links):
            continue
        link = stats.links[index]
        if machine:
            link.machine_clicks += int(clicks)
        else:
            link.human_clicks += int(clicks)
            link.people += int(people)

    type_labels = {t.value: label for t, label in LIBRARY_TYPE_LABELS.items()}
    stats.by_library_type = _breakdown(session, run_id, col(Library.library_type), type_labels)
    stats.by_region = _breakdown(session, run_id, col(Library.region), {})
    return stats
