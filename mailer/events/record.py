"""The one write path for events and for the contact changes events cause.

Two ways in:
- Synchronous functions taking a session (`record_event`, `unsubscribe`, `resubscribe`,
  `opt_out_topic`, `opt_in_topic`, `hard_bounce`, `soft_bounce`, `complaint`, `registered`):
  the caller's transaction holds the event and its consequences together, so an unsubscribe,
  its suppression and the skipping of the contact's queued messages commit or fail as one.
- `EventWriter` for open/click/web-view bursts from the web: requests put hits on an asyncio
  queue and wait; one task writes whatever has queued up in a single transaction (group
  commit) and then releases the waiting requests.

Why a request waits for the commit instead of being answered as soon as its hit is in memory:
an in-memory queue dies with the process (a crash, an OOM kill, a deploy that does not wait),
and the design allows no in-memory state that must survive a crash. Waiting for the batch's
commit costs each request one commit of latency but no throughput, because every hit that
arrives while a batch is being written rides in the next one. So every answered hit is in the
database, and a clean shutdown only has to drain hits whose requests are still waiting.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.audience.suppression import address_hash, suppress
from mailer.delivery.outbox import SKIP_REASONS
from mailer.events import classify
from mailer.models import (
    Contact,
    ContactStatus,
    Event,
    EventKind,
    LegalBasis,
    LegalBasisRecord,
    MessageStatus,
    OutboxMessage,
    Run,
    Suppression,
    Topic,
    TopicOptOut,
    utcnow,
)
from mailer.settings import get_settings

log = logging.getLogger(__name__)
EVENT_TABLE: sa.Table = Event.__table__  # type: ignore[attr-defined]

# Statuses that end a contact's mailing; the strongest one is kept when several apply.
_FINAL_RANK = {
    ContactStatus.ACTIVE: 0,
    ContactStatus.UNSUBSCRIBED: 1,
    ContactStatus.BOUNCED: 2,
    ContactStatus.COMPLAINED: 3,
}
_WAITING = (MessageStatus.QUEUED, MessageStatus.RETRY)


def record_event(
    session: Session,
    kind: EventKind,
    *,
    contact_id: int | None = None,
    run_id: int | None = None,
    outbox_id: int | None = None,
    link_index: int | None = None,
    is_machine: bool = False,
    machine_reason: str | None = None,
    user_agent: str | None = None,
    ip: str | None = None,
    detail: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> Event:
    """Add one raw event to the session's transaction."""
    event = Event(
        kind=kind,
        occurred_at=occurred_at or utcnow(),
        run_id=run_id,
        outbox_id=outbox_id,
        contact_id=contact_id,
        link_index=link_index,
        is_machine=is_machine,
        machine_reason=machine_reason,
        user_agent=(user_agent or None) and user_agent[:500],
        ip=ip,
        detail=detail or {},
    )
    session.add(event)
    return event


def skip_waiting_messages(
    session: Session, contact_id: int, reason: str, *, topic: str | None = None
) -> int:
    """Turn the contact's queued and retrying messages into skipped (only runs of `topic` when
    given). Messages a worker is sending right now are past stopping."""
    query = select(OutboxMessage.id, Run.content).join(Run, col(Run.id) == OutboxMessage.run_id)
    query = query.where(
        OutboxMessage.contact_id == contact_id, col(OutboxMessage.status).in_(_WAITING)
    )
    ids = [
        outbox_id
        for outbox_id, content in session.exec(query).all()
        if topic is None or (content or {}).get("topic") == topic
    ]
    if not ids:
        return 0
    result = session.execute(
        sa.update(OutboxMessage)
        .where(col(OutboxMessage.id).in_(ids), col(OutboxMessage.status).in_(_WAITING))
        .values(status=MessageStatus.SKIPPED, error=reason[:1000])
    )
    return int(getattr(result, "rowcount", 0) or 0)


def _contact_for_update(session: Session, contact_id: int) -> Contact | None:
    # Row lock on PostgreSQL so two concurrent events on one contact serialise; SQLite has
    # one writer anyway.
    return session.exec(select(Contact).where(Contact.id == contact_id).with_for_update()).first()


def _end_contact(
    session: Session,
    contact: Contact,
    status: ContactStatus,
    reason: str,
    now: datetime,
) -> None:
    if _FINAL_RANK[ContactStatus(contact.status)] < _FINAL_RANK[status]:
        contact.status = status
        contact.status_changed_at = now
        contact.status_reason = reason[:500]
        contact.updated_at = now
    suppress(session, contact.email, status.value)
    assert contact.id is not None
    skip_waiting_messages(session, contact.id, SKIP_REASONS[status.value])


def unsubscribe(
    session: Session,
    contact_id: int,
    source: str,
    *,
    run_id: int | None = None,
    outbox_id: int | None = None,
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Unsubscribe a contact at once: status, suppression, event, and its waiting messages
    skipped, all in the caller's transaction. False when it had already left (idempotent)."""
    now = now or utcnow()
    contact = _contact_for_update(session, contact_id)
    if contact is None:
        return False
    if contact.status != ContactStatus.ACTIVE:
        # Already gone: make sure nothing is still waiting, record nothing new.
        reason = SKIP_REASONS.get(contact.status, SKIP_REASONS[ContactStatus.UNSUBSCRIBED.value])
        skip_waiting_messages(session, contact_id, reason)
        return False
    _end_contact(session, contact, ContactStatus.UNSUBSCRIBED, f"odhlášení ({source})", now)
    record_event(
        session,
        EventKind.UNSUBSCRIBE,
        contact_id=contact_id,
        run_id=run_id,
        outbox_id=outbox_id,
        detail={"source": source, **(detail or {})},
        occurred_at=now,
    )
    return True


def resubscribe(
    session: Session,
    contact_id: int,
    source: str,
    *,
    evidence: str,
    run_id: int | None = None,
    outbox_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Undo an unsubscribe on the contact's own request. The old legal basis ended with the
    unsubscribe, so this records a fresh consent with its evidence. Bounced or complained
    contacts stay as they are. False when there was nothing to undo."""
    now = now or utcnow()
    contact = _contact_for_update(session, contact_id)
    if contact is None or contact.status != ContactStatus.UNSUBSCRIBED:
        return False
    contact.status = ContactStatus.ACTIVE
    contact.status_changed_at = now
    contact.status_reason = f"znovu přihlášen ({source})"
    contact.legal_basis = LegalBasis.CONSENT
    contact.updated_at = now
    session.execute(
        sa.delete(Suppression).where(
            col(Suppression.address_hash) == address_hash(contact.email),
            col(Suppression.reason) == ContactStatus.UNSUBSCRIBED.value,
        )
    )
    session.add(
        LegalBasisRecord(
            contact_id=contact_id,
            basis=LegalBasis.CONSENT,
            source=source[:300],
            evidence=evidence[:2000],
            recorded_at=now,
        )
    )
    record_event(
        session,
        EventKind.RESUBSCRIBE,
        contact_id=contact_id,
        run_id=run_id,
        outbox_id=outbox_id,
        detail={"source": source},
        occurred_at=now,
    )
    return True


def opt_out_topic(
    session: Session,
    contact_id: int,
    topic: Topic,
    source: str,
    *,
    run_id: int | None = None,
    outbox_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Stop one topic for a contact; its waiting messages of that topic are skipped.
    False when it was already off."""
    now = now or utcnow()
    if session.get(TopicOptOut, (contact_id, topic.value)) is not None:
        return False
    session.add(TopicOptOut(contact_id=contact_id, topic=topic.value, created_at=now))
    skip_waiting_messages(session, contact_id, SKIP_REASONS["topic"], topic=topic.value)
    record_event(
        session,
        EventKind.TOPIC_OPT_OUT,
        contact_id=contact_id,
        run_id=run_id,
        outbox_id=outbox_id,
        detail={"topic": topic.value, "source": source},
        occurred_at=now,
    )
    return True


def opt_in_topic(
    session: Session,
    contact_id: int,
    topic: Topic,
    source: str,
    *,
    run_id: int | None = None,
    outbox_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """Take a topic back. False when it was not off."""
    opt_out = session.get(TopicOptOut, (contact_id, topic.value))
    if opt_out is None:
        return False
    session.delete(opt_out)
    record_event(
        session,
        EventKind.TOPIC_OPT_IN,
        contact_id=contact_id,
        run_id=run_id,
        outbox_id=outbox_id,
        detail={"topic": topic.value, "source": source},
        occurred_at=now or utcnow(),
    )
    return True


def _already_recorded(session: Session, outbox_id: int | None, kinds: Iterable[EventKind]) -> bool:
    # A DSN or ARF report delivered twice (the sender retried) must count once.
    if outbox_id is None:
        return False
    query = select(Event.id).where(Event.outbox_id == outbox_id, col(Event.kind).in_(list(kinds)))
    return session.exec(query.limit(1)).first() is not None


@dataclass(frozen=True)
class BounceTarget:
    """Whose message bounced or was reported: an outbox row's ids."""

    outbox_id: int
    run_id: int | None
    contact_id: int | None

    @classmethod
    def of(cls, session: Session, outbox_id: int) -> BounceTarget | None:
        row = session.get(OutboxMessage, outbox_id)
        if row is None:
            return None
        return cls(outbox_id, row.run_id, row.contact_id)


def hard_bounce(
    session: Session,
    target: BounceTarget,
    *,
    status: str,
    diagnostic: str = "",
    now: datetime | None = None,
) -> bool:
    """The address does not exist: the contact becomes bounced and suppressed. False when this
    message's bounce was already recorded."""
    return _end_by_message(
        session,
        target,
        EventKind.BOUNCE_HARD,
        ContactStatus.BOUNCED,
        reason=f"{status} {diagnostic}",
        detail={"status": status, "diagnostic": diagnostic[:500]},
        already=(EventKind.BOUNCE_HARD, EventKind.BOUNCE_SOFT),
        now=now or utcnow(),
    )


def soft_bounce(
    session: Session,
    target: BounceTarget,
    *,
    status: str,
    diagnostic: str = "",
    now: datetime | None = None,
) -> bool:
    """Count a temporary failure. After SOFT_BOUNCE_LIMIT soft bounces spread over at least
    SOFT_BOUNCE_DAYS the mailbox is treated as dead (bounced, suppressed). False when this
    message's bounce was already recorded."""
    now = now or utcnow()
    settings = get_settings()
    bounces = (EventKind.BOUNCE_HARD, EventKind.BOUNCE_SOFT)
    if _already_recorded(session, target.outbox_id, bounces):
        return False
    suppressed = False
    contact = None
    if target.contact_id is not None:
        contact = _contact_for_update(session, target.contact_id)
    if contact is not None:
        assert contact.id is not None
        contact.soft_bounces += 1
        contact.last_soft_bounce_at = now
        contact.updated_at = now
        limit = max(settings.soft_bounce_limit, 1)
        earlier = session.exec(
            select(Event.occurred_at)
            .where(Event.contact_id == contact.id, Event.kind == EventKind.BOUNCE_SOFT)
            .order_by(col(Event.occurred_at).desc())
            .limit(limit - 1)
        ).all()
        times = [now, *earlier]
        span = now - min(times)
        if len(times) >= limit and span >= timedelta(days=settings.soft_bounce_days):
            reason = f"{len(times)} dočasných nedoručení za {span.days} dní"
            _end_contact(session, contact, ContactStatus.BOUNCED, reason, now)
            suppressed = True
    record_event(
        session,
        EventKind.BOUNCE_SOFT,
        contact_id=target.contact_id,
        run_id=target.run_id,
        outbox_id=target.outbox_id,
        detail={"status": status, "diagnostic": diagnostic[:500], "suppressed": suppressed},
        occurred_at=now,
    )
    return True


def complaint(
    session: Session,
    target: BounceTarget,
    *,
    feedback_type: str = "abuse",
    source: str = "arf",
    now: datetime | None = None,
) -> bool:
    """The recipient reported the message as spam: an objection, final. The contact becomes
    complained and suppressed. False when this message's complaint was already recorded."""
    return _end_by_message(
        session,
        target,
        EventKind.COMPLAINT,
        ContactStatus.COMPLAINED,
        reason=f"stížnost ({source})",
        detail={"feedback_type": feedback_type, "source": source},
        already=(EventKind.COMPLAINT,),
        now=now or utcnow(),
    )


def _end_by_message(
    session: Session,
    target: BounceTarget,
    kind: EventKind,
    status: ContactStatus,
    *,
    reason: str,
    detail: dict[str, Any],
    already: tuple[EventKind, ...],
    now: datetime,
) -> bool:
    """A final verdict about one message's recipient (hard bounce, complaint): recorded once
    per message, and the contact ends with `status` and is suppressed."""
    if _already_recorded(session, target.outbox_id, already):
        return False
    if target.contact_id is not None:
        contact = _contact_for_update(session, target.contact_id)
        if contact is not None:
            _end_contact(session, contact, status, reason, now)
    record_event(
        session,
        kind,
        contact_id=target.contact_id,
        run_id=target.run_id,
        outbox_id=target.outbox_id,
        detail=detail,
        occurred_at=now,
    )
    return True


def registered(
    session: Session,
    contact_id: int,
    *,
    campaign: str,
    run_id: int | None = None,
    source: str = "import",
    detail: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> bool:
    """Record that a contact registered for a campaign's event. False when already recorded
    for that campaign (imports run more than once)."""
    existing = session.exec(
        select(Event.id, Event.detail).where(
            Event.contact_id == contact_id, Event.kind == EventKind.REGISTERED
        )
    ).all()
    if any((d or {}).get("campaign") == campaign for _, d in existing):
        return False
    record_event(
        session,
        EventKind.REGISTERED,
        contact_id=contact_id,
        run_id=run_id,
        detail={"campaign": campaign, "source": source, **(detail or {})},
        occurred_at=now,
    )
    return True


# --- Tracking hits: batched, group-committed --------------------------------------------


@dataclass(frozen=True)
class Hit:
    """One tracking request, as the web app saw it. Either `outbox_id` (individual tracking)
    or only `run_id` (anonymous tracking: no contact is stored)."""

    kind: EventKind  # OPEN, CLICK or WEB_VIEW
    occurred_at: datetime
    outbox_id: int | None = None
    run_id: int | None = None
    link_index: int | None = None
    method: str = "GET"
    user_agent: str | None = None
    ip: str | None = None


@lru_cache(maxsize=65536)
def _stored_ip(ip: str | None) -> str | None:
    """Keep only the network (/24 or /48): enough to see a proxy or a gateway, not a person."""
    if not ip:
        return None
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return None
    prefix = 24 if address.version == 4 else 48
    return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False).network_address)


@dataclass
class _Pending:
    row: dict[str, Any]
    hit: Hit


@dataclass
class _History:
    sent_at: datetime | None
    opened: bool = False
    clicks: list[classify.Click] = field(default_factory=list)


class HitCache:
    """What a writer may remember between batches because it never changes: each run's number
    of links (content is frozen at launch) and, for messages already sent, their run, contact
    and time of sending."""

    def __init__(self, size: int = 200_000) -> None:
        self.link_counts: dict[int, int] = {}
        self.messages: OrderedDict[int, tuple[int, int | None, datetime | None]] = OrderedDict()
        self.size = size

    def remember(self, outbox_id: int, message: tuple[int, int | None, datetime | None]) -> None:
        if message[2] is None:
            return  # not sent yet: its sent_at will change
        self.messages[outbox_id] = message
        if len(self.messages) > self.size:
            self.messages.popitem(last=False)


def write_hits(engine: Engine, hits: Sequence[Hit], cache: HitCache | None = None) -> int:
    """Classify and insert a batch of hits in one transaction; returns the rows written.
    Hits whose outbox row no longer exists are dropped (nothing to attach them to)."""
    cache = cache or HitCache()
    link_counts = cache.link_counts
    with Session(engine) as session, session.begin():
        outbox_ids = {h.outbox_id for h in hits if h.outbox_id is not None}
        messages = {oid: cache.messages[oid] for oid in outbox_ids if oid in cache.messages}
        if missing := outbox_ids - messages.keys():
            query = select(
                OutboxMessage.id,
                OutboxMessage.run_id,
                OutboxMessage.contact_id,
                OutboxMessage.sent_at,
            ).where(col(OutboxMessage.id).in_(missing))
            for found in session.exec(query).all():
                assert found[0] is not None
                messages[found[0]] = (found[1], found[2], found[3])
                cache.remember(found[0], messages[found[0]])
        history = {oid: _History(sent_at=m[2]) for oid, m in messages.items()}
        click_ids = {h.outbox_id for h in hits if h.kind == EventKind.CLICK and h.outbox_id}
        if click_ids & messages.keys():
            # What already happened to these messages decides about the clicks.
            past = sa.select(
                col(Event.id),
                col(Event.outbox_id),
                col(Event.kind),
                col(Event.link_index),
                col(Event.occurred_at),
                col(Event.is_machine),
            ).where(
                col(Event.outbox_id).in_(click_ids & messages.keys()),
                col(Event.kind).in_([EventKind.OPEN, EventKind.CLICK]),
            )
            for eid, oid, kind, link, at, machine in session.execute(past).all():
                before = history[oid]
                if kind == EventKind.OPEN and not machine:
                    before.opened = True
                elif kind == EventKind.CLICK and link is not None:
                    before.clicks.append(classify.Click(("old", eid), link, at))

        pending: list[_Pending] = []
        for hit in sorted(hits, key=lambda h: h.occurred_at):
            run_id: int | None = hit.run_id
            contact_id: int | None = None
            sent_at: datetime | None = None
            if hit.outbox_id is not None:
                if hit.outbox_id not in messages:
                    log.warning("tracking hit for a missing outbox message %s", hit.outbox_id)
                    continue
                run_id, contact_id, sent_at = messages[hit.outbox_id]
            since = (hit.occurred_at - sent_at).total_seconds() if sent_at else None
            h = history.get(hit.outbox_id) if hit.outbox_id is not None else None
            if hit.kind == EventKind.CLICK:
                verdict = classify.classify_click(
                    method=hit.method,
                    user_agent=hit.user_agent,
                    ip=hit.ip,
                    seconds_since_delivery=since,
                    opened_before=bool(h and h.opened),
                )
            else:
                verdict = classify.classify_open(
                    method=hit.method,
                    user_agent=hit.user_agent,
                    ip=hit.ip,
                    seconds_since_delivery=since,
                )
            anonymous = hit.outbox_id is None
            row = {
                "kind": hit.kind.value,
                "occurred_at": hit.occurred_at,
                "run_id": run_id,
                "outbox_id": hit.outbox_id,
                "contact_id": contact_id,
                "link_index": hit.link_index,
                "is_machine": verdict.is_machine,
                "machine_reason": verdict.reason,
                # Anonymous tracking stores counts only: nothing that could point to a person.
                "user_agent": None
                if anonymous
                else (hit.user_agent or None) and hit.user_agent[:500],
                "ip": None if anonymous else _stored_ip(hit.ip),
                "detail": {"method": hit.method} if hit.method != "GET" else {},
            }
            item = _Pending(row, hit)
            pending.append(item)
            if h is not None and hit.kind == EventKind.OPEN and not verdict.is_machine:
                h.opened = True
            if h is not None and hit.kind == EventKind.CLICK and hit.link_index is not None:
                h.clicks.append(classify.Click(item, hit.link_index, hit.occurred_at))

        # Link-scanner bursts: mark the new clicks directly and earlier ones by id.
        relabel: list[int] = []
        for oid, seen in history.items():
            if not any(isinstance(c.key, _Pending) for c in seen.clicks):
                continue
            of_run = messages[oid][0]
            count = link_counts.get(of_run)
            if count is None:
                content = session.exec(select(Run.content).where(Run.id == of_run)).first()
                count = link_counts[of_run] = len((content or {}).get("links") or [])
            for key in classify.scanner_burst(seen.clicks, count):
                if isinstance(key, _Pending):
                    key.row["is_machine"] = True
                    key.row["machine_reason"] = "link_scanner_burst"
                elif isinstance(key, tuple):
                    relabel.append(key[1])
        if relabel:
            session.execute(
                sa.update(Event)
                .where(col(Event.id).in_(relabel))
                .values(is_machine=True, machine_reason="link_scanner_burst")
            )
        if pending:
            # Core insert (executemany): the ORM's bulk path costs more per row here.
            session.connection().execute(sa.insert(EVENT_TABLE), [p.row for p in pending])
        return len(pending)


_STOP = object()


class EventWriter:
    """Group-committing writer for tracking hits. `await record(hit)` returns once the hit is
    committed; while one batch is being written the next one gathers."""

    def __init__(self, engine: Engine, *, max_batch: int = 1000) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._cache = HitCache()
        self.written = 0
        self.batches = 0

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="event-writer")

    async def record(self, hit: Hit) -> None:
        """Queue a hit and wait until it is committed (raises if the write failed)."""
        if self._task is None or self._task.done():
            # Not running (or shut down): write this one directly rather than lose it.
            await asyncio.to_thread(write_hits, self.engine, [hit], self._cache)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((hit, done))
        await done

    async def close(self) -> None:
        """Write everything still queued, then stop. Safe to call twice."""
        if self._task is None:
            return
        self._queue.put_nowait(_STOP)
        await self._task
        self._task = None

    async def _run(self) -> None:
        stopping = False
        while not stopping:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            if _STOP in batch:
                stopping = True
                batch = [b for b in batch if b is not _STOP]
                while not self._queue.empty():  # whatever raced in before the stop
                    item = self._queue.get_nowait()
                    if item is not _STOP:
                        batch.append(item)
            if batch:
                await self._write(batch)

    async def _write(self, batch: list[tuple[Hit, asyncio.Future[None]]]) -> None:
        hits = [hit for hit, _ in batch]
        self.batches += 1
        try:
            self.written += await asyncio.to_thread(write_hits, self.engine, hits, self._cache)
        except Exception as exc:
            if len(batch) > 1:
                # One bad hit must not fail the others: write them one by one.
                log.warning("batch of %d hits failed (%s); retrying singly", len(batch), exc)
                for item in batch:
                    await self._write([item])
                return
            log.exception("writing a tracking hit failed")
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        for _, done in batch:
            if not done.done():
                done.set_result(None)
