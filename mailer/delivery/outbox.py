"""The outbox is the queue: claiming due messages under a lease, re-checking their recipients,
and writing what became of them, in batches, without ever losing a state.

States of a message: queued → sending → sent | retry (with its time) | failed | skipped.
`sending` always carries a worker and a lease; a lease that runs out means the worker died,
and the row is claimed again, flagged `possible_duplicate` (its SMTP transaction may have
completed before the death) and counted.

Every function here takes a Connection in an open transaction: the worker decides where
transactions end (one per claim, one per group commit) and where they run (see
mailer.delivery.worker_database).

SQLite has one writer at a time, so a plain conditional UPDATE … RETURNING claims atomically
(and a second worker would only wait its turn). PostgreSQL claims with
`FOR UPDATE SKIP LOCKED`, so any number of workers on any number of machines take disjoint
batches without waiting on each other.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session

from mailer.audience.suppression import address_hash
from mailer.compose.consent import individually_tracked
from mailer.models import (
    TRANSACTIONAL_TOPIC,
    Contact,
    ContactStatus,
    Library,
    MessageStatus,
    OutboxMessage,
    Run,
    RunStatus,
    Suppression,
    TopicOptOut,
)
from mailer.settings import get_settings

outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
runs = Run.__table__  # type: ignore[attr-defined]
contacts = Contact.__table__  # type: ignore[attr-defined]
libraries = Library.__table__  # type: ignore[attr-defined]
suppressions = Suppression.__table__  # type: ignore[attr-defined]
opt_outs = TopicOptOut.__table__  # type: ignore[attr-defined]

# Runs whose messages may be claimed; a paused or cancelled run keeps its rows where they are.
SENDABLE_RUNS = (RunStatus.SCHEDULED.value, RunStatus.SENDING.value)
WAITING = (MessageStatus.QUEUED.value, MessageStatus.RETRY.value)
PENDING = (*WAITING, MessageStatus.SENDING.value)

# Czech reasons staff read in `sdruk runs show` and the console.
SKIP_REASONS = {
    ContactStatus.UNSUBSCRIBED.value: "kontakt se mezitím odhlásil",
    ContactStatus.BOUNCED.value: "adresa mezitím nedoručitelná",
    ContactStatus.COMPLAINED.value: "kontakt si mezitím stěžoval na spam",
    "suppressed": "adresa je na seznamu blokovaných",
    "topic": "kontakt se odhlásil z tématu kampaně",
    "no_basis": "kontakt nemá právní základ pro zasílání",
    "erased": "kontakt byl vymazán",
    "cancelled": "rozesílka zrušena",
}


@dataclass(slots=True)
class Claimed:
    """One claimed message with what compose needs to fill it in."""

    id: int
    run_id: int
    email: str
    attempts: int
    possible_duplicate: bool
    contact: Any  # Contact row (attribute access), None when erased
    library: Any  # Library row or None
    # time.monotonic() of the last look at the contact (the claim, or a later recheck): a
    # message held longer than the worker's recheck_after_seconds is looked at again.
    checked_at: float = field(default_factory=time.monotonic)


@dataclass(slots=True)
class ClaimResult:
    messages: list[Claimed]
    skipped: int
    run_ids: set[int]
    # Frozen content of runs the caller did not know yet (absent from `topics`).
    contents: dict[int, dict[str, Any]] = field(default_factory=dict)


def reclaim_expired(conn: Connection, now: datetime, worker: str | None = None) -> int:
    """Give rows whose lease ran out (or that belonged to `worker`, a previous incarnation of
    this worker id) back to the queue, flagged possible_duplicate. Returns how many.

    Why flag them: the dead worker may have finished the SMTP transaction and died before
    recording it. They are sent again (nothing may be lost) and the flag reports the risk."""
    lapsed = outbox.c.status == MessageStatus.SENDING.value
    if worker is None:
        lapsed = lapsed & (outbox.c.lease_until < now)
    else:
        lapsed = lapsed & (outbox.c.worker == worker)
    # SKIP LOCKED: another worker reclaiming the same rows right now has them; no double count.
    picked = sa.select(outbox.c.id).where(lapsed).with_for_update(skip_locked=True)
    result = conn.execute(
        sa.update(outbox)
        .where(outbox.c.id.in_(picked.scalar_subquery()), lapsed)
        .values(
            status=MessageStatus.QUEUED.value,
            worker=None,
            lease_until=None,
            possible_duplicate=True,
            next_attempt_at=now,
        )
    )
    return int(result.rowcount or 0)


def _claim_state(
    conn: Connection, state: str, worker: str, limit: int, now: datetime, lease: datetime
) -> list[Any]:
    # Runs that may send right now: a handful of rows, read once per claim.
    sendable = sa.select(runs.c.id).where(
        runs.c.status.in_(SENDABLE_RUNS),
        sa.or_(runs.c.scheduled_for.is_(None), runs.c.scheduled_for <= now),
    )
    due = (outbox.c.status == state) & (outbox.c.next_attempt_at <= now)
    # One state per query and order by (next_attempt_at, id): that is the order of
    # ix_outbox_claim (status, next_attempt_at, id), so the database walks the index and stops
    # after `limit` rows instead of sorting every queued row of a million-recipient run.
    picked = (
        sa.select(outbox.c.id)
        .where(due, outbox.c.run_id.in_(sendable.scalar_subquery()))
        .order_by(outbox.c.next_attempt_at, outbox.c.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    # Two statements, not UPDATE … WHERE id IN (SELECT … LIMIT … SKIP LOCKED): PostgreSQL may
    # run such a subquery more than once inside the UPDATE's plan, and every re-run skips the
    # rows the previous one locked, so the LIMIT stops limiting (measured: 1,095 rows claimed
    # for a batch of 40). The ids stay locked by this transaction until it commits.
    # SQLite keeps the single statement: it evaluates the subquery once, and a SELECT before the
    # UPDATE would start a read transaction that cannot always be upgraded to a write one
    # (SQLITE_BUSY when the web app committed in between).
    target: Any = picked.scalar_subquery()
    if conn.dialect.name == "postgresql":
        target = list(conn.execute(picked).scalars())
        if not target:
            return []
    stmt = (
        sa.update(outbox)
        # The repeated condition makes the UPDATE conditional: on SQLite it is what guarantees
        # a row is only ever taken from a waiting state.
        .where(
            outbox.c.id.in_(target),
            _status_of_named_rows(conn, [state]),
            outbox.c.next_attempt_at <= now,
        )
        .values(status=MessageStatus.SENDING.value, worker=worker, lease_until=lease)
        .returning(
            outbox.c.id,
            outbox.c.run_id,
            outbox.c.contact_id,
            outbox.c.email,
            outbox.c.attempts,
            outbox.c.possible_duplicate,
        )
    )
    return list(conn.execute(stmt).all())


def claim(
    conn: Connection,
    *,
    worker: str,
    limit: int,
    now: datetime,
    lease_seconds: float,
    topics: dict[int, str | None],
) -> ClaimResult:
    """Claim up to `limit` due messages (retries first), mark runs that start as sending,
    re-check every recipient and skip those who left since the launch.

    `topics` maps run id → the run's topic; runs missing from it are looked up here."""
    lease = now + timedelta(seconds=lease_seconds)
    rows = _claim_state(conn, MessageStatus.RETRY.value, worker, limit, now, lease)
    if len(rows) < limit:
        rows += _claim_state(
            conn, MessageStatus.QUEUED.value, worker, limit - len(rows), now, lease
        )
    if not rows:
        return ClaimResult([], 0, set())
    run_ids = {r.run_id for r in rows}
    conn.execute(
        sa.update(runs)
        .where(runs.c.id.in_(run_ids), runs.c.status == RunStatus.SCHEDULED.value)
        .values(status=RunStatus.SENDING.value, started_at=now)
    )
    missing = run_ids - topics.keys()
    contents: dict[int, dict[str, Any]] = {}
    if missing:
        for run_id, content in conn.execute(
            sa.select(runs.c.id, runs.c.content).where(runs.c.id.in_(missing))
        ):
            contents[run_id] = content or {}
            topics[run_id] = contents[run_id].get("topic")

    # Transactional mail first (a person waits for it), then in id order.
    rows.sort(key=lambda r: (topics.get(r.run_id) != TRANSACTIONAL_TOPIC, r.id))
    people, verdicts = _verdicts(conn, rows, topics)
    messages: list[Claimed] = []
    skips: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        key = verdicts.get(r.id)
        if key is not None:
            skips[key].append(r.id)
            continue
        contact, library = people.get(r.contact_id, (None, None))
        messages.append(
            Claimed(r.id, r.run_id, r.email, r.attempts, r.possible_duplicate, contact, library)
        )
    skipped = 0
    for key, ids in skips.items():
        skipped += mark_skipped(conn, ids, SKIP_REASONS[key])
    _record_tracking(conn, messages)
    return ClaimResult(messages, skipped, run_ids, contents)


def _record_tracking(conn: Connection, messages: Sequence[Claimed]) -> None:
    """Write on each claimed row whether its message will be individually tracked, from the
    contact row the message is composed from (the consent at this moment), so the results know
    which recipients' opens can be known. Written in the claim's own transaction: a row that is
    sent again after a crash is claimed, and so decided, again. Two statements per claim, not
    per message."""
    if not messages:
        return
    policy = get_settings().tracking_without_consent
    run_ids = sorted({m.run_id for m in messages})
    modes = {
        row.id: row.tracking or ""
        for row in conn.execute(
            sa.select(runs.c.id, runs.c.content["tracking"].as_string().label("tracking")).where(
                runs.c.id.in_(run_ids)
            )
        )
    }
    decided: dict[bool, list[int]] = {True: [], False: []}
    for m in messages:
        mode = modes.get(m.run_id, "")
        if mode != "individual":
            continue  # no consent to decide: nobody is tracked individually (left NULL)
        consent = m.contact.tracking_consent if m.contact is not None else None
        decided[individually_tracked(mode, consent, policy)].append(m.id)
    for flag, ids in decided.items():
        if ids:
            conn.execute(
                sa.update(outbox)
                .where(_among(conn, outbox.c.id, ids, sa.BigInteger))
                .values(individually_tracked=flag)
            )


def _verdicts(
    conn: Connection, rows: Sequence[Any], topics: dict[int, str | None]
) -> tuple[dict[int, tuple[Any, Any]], dict[int, str]]:
    """The re-check of recipients: for rows with `id`, `run_id` and `contact_id`, the contacts
    (with their libraries) and, per row that must not go out, its SKIP_REASONS key.

    Status, legal basis, suppression and topic opt-outs may all have changed since the launch
    materialised the run. One query for any number of rows (and a second one only when some
    contact left one of the runs' topics)."""
    contact_ids = sorted({r.contact_id for r in rows if r.contact_id is not None})
    run_topics = sorted({t for r in rows if (t := topics.get(r.run_id))})
    people, suppressed, leaving = _load_people(conn, contact_ids, run_topics)
    opted_out = _opted_out(conn, leaving) if leaving else set()
    verdicts: dict[int, str] = {}
    asked = [r for r in rows if topics.get(r.run_id) == TRANSACTIONAL_TOPIC]
    if asked:
        verdicts.update(_transactional_verdicts(conn, asked, people))
    for r in rows:
        if topics.get(r.run_id) == TRANSACTIONAL_TOPIC:
            continue
        person = people.get(r.contact_id) if r.contact_id is not None else None
        if person is None:
            verdicts[r.id] = "erased"
            continue
        contact = person[0]
        if contact.status != ContactStatus.ACTIVE.value:
            verdicts[r.id] = contact.status if contact.status in SKIP_REASONS else "erased"
        elif contact.legal_basis is None:
            verdicts[r.id] = "no_basis"
        elif contact.id in suppressed:
            verdicts[r.id] = "suppressed"
        elif contact.id in leaving and (contact.id, topics.get(r.run_id)) in opted_out:
            verdicts[r.id] = "topic"
    return people, verdicts


def _transactional_verdicts(
    conn: Connection, rows: Sequence[Any], people: dict[int, tuple[Any, Any]]
) -> dict[int, str]:
    """Mail a person asked for goes to an unsubscribed contact, to one without a legal basis
    for campaigns and to an address that is no contact at all; not to an address that
    bounced, complained, was erased or was blocked by staff."""
    hashes = {r.id: address_hash(r.email) for r in rows}
    blocked = {
        row.address_hash
        for row in conn.execute(
            sa.select(suppressions.c.address_hash, suppressions.c.reason).where(
                suppressions.c.address_hash.in_(sorted(set(hashes.values()))),
                suppressions.c.reason != ContactStatus.UNSUBSCRIBED.value,
            )
        )
    }
    verdicts: dict[int, str] = {}
    for r in rows:
        person = people.get(r.contact_id) if r.contact_id is not None else None
        if r.contact_id is not None and person is None:
            verdicts[r.id] = "erased"
        elif person is not None and person[0].status in (
            ContactStatus.BOUNCED.value,
            ContactStatus.COMPLAINED.value,
        ):
            verdicts[r.id] = person[0].status
        elif hashes[r.id] in blocked:
            verdicts[r.id] = "suppressed"
    return verdicts


@dataclass(slots=True, frozen=True)
class _Held:
    id: int
    run_id: int
    contact_id: int | None
    email: str


def recheck(
    conn: Connection, messages: Sequence[Claimed], topics: dict[int, str | None]
) -> dict[int, str]:
    """Re-check claimed messages that waited in a worker (pacing): message id → Czech reason
    for each one whose contact left since its claim. Writes nothing; the worker settles them
    as skipped through its usual group commit."""
    held = [
        _Held(m.id, m.run_id, m.contact.id if m.contact is not None else None, m.email)
        for m in messages
    ]
    _, verdicts = _verdicts(conn, held, topics)
    return {message_id: SKIP_REASONS[key] for message_id, key in verdicts.items()}


# What compose and the re-check read of a contact and its library: only these columns, since
# every datetime column a claim reads costs a parse per row.
_CONTACT_COLUMNS = [
    contacts.c[name]
    for name in (
        "id",
        "email",
        "first_name",
        "last_name",
        "role",
        "gender",
        "salutation",
        "library_id",
        "status",
        "legal_basis",
        "tracking_consent",
    )
]
_LIBRARY_COLUMNS = [
    libraries.c[name] for name in ("id", "name", "library_type", "region", "town", "is_member")
]


def _among(conn: Connection, column: Any, values: Sequence[Any], sql_type: Any) -> Any:
    """`column IN values` for hundreds of values passed as one parameter (a JSON array on
    SQLite, an array on PostgreSQL). Why not `in_()`: SQLAlchemy coerces, binds and renders
    every value as its own parameter, hundreds of them on every claim."""
    if conn.dialect.name == "sqlite":
        listed = sa.func.json_each(sa.bindparam(None, json.dumps(list(values)), sa.String))
        return column.in_(sa.select(listed.table_valued("value").c.value).scalar_subquery())
    return column == sa.any_(sa.bindparam(None, list(values), ARRAY(sql_type)))


def _load_people(
    conn: Connection, contact_ids: Sequence[int], run_topics: Sequence[str]
) -> tuple[dict[int, tuple[Any, Any]], set[int], set[int]]:
    """Contacts with their libraries (contact id → (contact, library or None)), the ids of
    those whose address is suppressed, and of those who left one of `run_topics`."""
    if not contact_ids:
        return {}, set(), set()
    suppressed = (
        sa.select(suppressions.c.address_hash)
        .where(suppressions.c.address_hash == contacts.c.address_hash)
        .exists()
    )
    leaving: Any = sa.false()
    if run_topics:
        leaving = (
            sa.select(opt_outs.c.contact_id)
            .where(opt_outs.c.contact_id == contacts.c.id, opt_outs.c.topic.in_(run_topics))
            .exists()
        )
    stmt = (
        sa.select(
            *_CONTACT_COLUMNS,
            *(column.label(f"lib_{column.name}") for column in _LIBRARY_COLUMNS),
            suppressed.label("suppressed"),
            leaving.label("leaving"),
        )
        .select_from(contacts.outerjoin(libraries, libraries.c.id == contacts.c.library_id))
        .where(_among(conn, contacts.c.id, contact_ids, sa.BigInteger))
    )
    people: dict[int, tuple[Any, Any]] = {}
    suppressed_ids: set[int] = set()
    leaving_ids: set[int] = set()
    # Many recipients share a library: one object each.
    libraries_seen: dict[int, _Library] = {}
    # Core rows, not ORM objects: hydrating a Contact and a Library per recipient would cost
    # more than composing the message. Rows answer attribute access like the models.
    for row in conn.execute(stmt):
        library = None
        if (library_id := row.lib_id) is not None:
            library = libraries_seen.get(library_id)
            if library is None:
                library = libraries_seen[library_id] = _Library(
                    library_id,
                    row.lib_name,
                    row.lib_library_type,
                    row.lib_region,
                    row.lib_town,
                    bool(row.lib_is_member),
                )
        people[row.id] = (row, library)
        if row.suppressed:
            suppressed_ids.add(row.id)
        if row.leaving:
            leaving_ids.add(row.id)
    return people, suppressed_ids, leaving_ids


@dataclass(slots=True, frozen=True)
class _Library:
    """The library of a claimed recipient, as compose reads it."""

    id: int
    name: str
    library_type: str
    region: str
    town: str
    is_member: bool


def _opted_out(conn: Connection, contact_ids: Iterable[int]) -> set[tuple[int, str]]:
    stmt = sa.select(opt_outs.c.contact_id, opt_outs.c.topic).where(
        opt_outs.c.contact_id.in_(sorted(contact_ids))
    )
    return {(row.contact_id, row.topic) for row in conn.execute(stmt)}


# --- recording outcomes -----------------------------------------------------------------------


def _mine(worker: str) -> Any:
    # Only the worker holding the row may settle it: if its lease ran out and another worker
    # took the row over, that worker's outcome is the one that counts.
    return (
        (outbox.c.id == sa.bindparam("b_id"))
        & (outbox.c.worker == worker)
        & (outbox.c.status == MessageStatus.SENDING.value)
    )


# Delivered messages are recorded with one statement per group commit, not one per message:
# the rows travel as one JSON array (SQLite) or two arrays (PostgreSQL). Why: the sqlite3
# module releases and retakes the GIL around every statement step, and under a busy event loop
# each retake waits its turn; measured in the send loop, a per-row executemany cost 36 µs a
# message where the unit of work is about 8. On PostgreSQL it is one round trip instead of one
# per message.
_SENT_SQLITE = sa.text(
    "UPDATE outbox_message SET status = 'sent', sent_at = :at, attempts = attempts + 1, "
    "smtp_response = j.value ->> 1, error = NULL, lease_until = NULL "
    "FROM json_each(:items) AS j WHERE outbox_message.id = j.value ->> 0"
).bindparams(sa.bindparam("at", type_=outbox.c.sent_at.type))
_SENT_POSTGRESQL = sa.text(
    "UPDATE outbox_message SET status = 'sent', sent_at = :at, "
    "attempts = outbox_message.attempts + 1, smtp_response = v.reply, error = NULL, "
    "lease_until = NULL "
    "FROM unnest(CAST(:ids AS bigint[]), CAST(:replies AS text[])) AS v(id, reply) "
    "WHERE outbox_message.id = v.id"
).bindparams(sa.bindparam("at", type_=outbox.c.sent_at.type))


def mark_sent(conn: Connection, items: Sequence[tuple[int, str]], now: datetime) -> None:
    """(id, server reply) of delivered messages. Deliberately not conditional on the lease: the
    message did go out, and the record must say so whoever holds the row now."""
    if not items:
        return
    if conn.dialect.name == "sqlite":
        rows = json.dumps([[i, reply[:1000]] for i, reply in items], ensure_ascii=False)
        conn.execute(_SENT_SQLITE, {"at": now, "items": rows})
    else:
        ids = [i for i, _ in items]
        replies = [reply[:1000] for _, reply in items]
        conn.execute(_SENT_POSTGRESQL, {"at": now, "ids": ids, "replies": replies})


def mark_retry(conn: Connection, worker: str, items: Sequence[tuple[int, str, datetime]]) -> None:
    """(id, reason, when to try again) of temporary failures."""
    if not items:
        return
    conn.execute(
        sa.update(outbox)
        .where(_mine(worker))
        .values(
            status=MessageStatus.RETRY.value,
            attempts=outbox.c.attempts + 1,
            next_attempt_at=sa.bindparam("b_at"),
            error=sa.bindparam("b_error"),
            worker=None,
            lease_until=None,
        ),
        [{"b_id": i, "b_error": e[:1000], "b_at": at} for i, e, at in items],
    )


def mark_failed(conn: Connection, worker: str, items: Sequence[tuple[int, str]]) -> None:
    """(id, reason) of messages that will not be tried again."""
    if not items:
        return
    conn.execute(
        sa.update(outbox)
        .where(_mine(worker))
        .values(
            status=MessageStatus.FAILED.value,
            attempts=outbox.c.attempts + 1,
            error=sa.bindparam("b_error"),
            lease_until=None,
        ),
        [{"b_id": i, "b_error": e[:1000]} for i, e in items],
    )


def release(conn: Connection, worker: str, ids: Sequence[int], now: datetime) -> int:
    """Give claimed but unsent messages back to the queue, unblamed (shutdown, a paused run,
    a policy refusal that is not the recipient's fault)."""
    if not ids:
        return 0
    result = conn.execute(
        sa.update(outbox)
        .where(
            outbox.c.id.in_(ids),
            outbox.c.worker == worker,
            outbox.c.status == MessageStatus.SENDING.value,
        )
        .values(
            status=MessageStatus.QUEUED.value, worker=None, lease_until=None, next_attempt_at=now
        )
    )
    return int(result.rowcount or 0)


def release_unheld(conn: Connection, worker: str, held: set[int], now: datetime) -> int:
    """After a claim whose answer was lost: rows leased to `worker` that it does not hold
    (`held`: everything it received and has not settled) go back to the queue, unflagged,
    since they never reached the worker."""
    lost = (outbox.c.status == MessageStatus.SENDING.value) & (outbox.c.worker == worker)
    ids = [i for i in conn.execute(sa.select(outbox.c.id).where(lost)).scalars() if i not in held]
    for chunk in _chunks(ids, 1000):
        conn.execute(
            sa.update(outbox)
            .where(outbox.c.id.in_(chunk), lost)
            .values(
                status=MessageStatus.QUEUED.value,
                worker=None,
                lease_until=None,
                next_attempt_at=now,
            )
        )
    return len(ids)


def _status_of_named_rows(conn: Connection, states: Sequence[str]) -> Any:
    """`status IN states` for a statement that names its rows by id. On SQLite the status is
    wrapped so the planner cannot use ix_outbox_claim for it: it would walk every row in those
    states (all the queued rows of a run) and test each against the ids, instead of looking
    the ids up (measured: 5 ms a claim with 20,000 queued, growing with the run)."""
    status: Any = outbox.c.status
    if conn.dialect.name == "sqlite":
        status = status + ""
    return status.in_(states)


def mark_skipped(conn: Connection, ids: Sequence[int], reason: str) -> int:
    if not ids:
        return 0
    result = conn.execute(
        sa.update(outbox)
        .where(outbox.c.id.in_(ids), _status_of_named_rows(conn, PENDING))
        .values(status=MessageStatus.SKIPPED.value, error=reason, worker=None, lease_until=None)
    )
    return int(result.rowcount or 0)


def extend_leases(conn: Connection, worker: str, ids: Sequence[int], until: datetime) -> None:
    """Heartbeat: the worker still holds these rows, so nobody may reclaim them yet."""
    for chunk in _chunks(list(ids), 1000):
        conn.execute(
            sa.update(outbox)
            .where(
                outbox.c.id.in_(chunk),
                outbox.c.worker == worker,
                outbox.c.status == MessageStatus.SENDING.value,
            )
            .values(lease_until=until)
        )


def run_statuses(conn: Connection, run_ids: Iterable[int]) -> dict[int, str]:
    ids = list(run_ids)
    if not ids:
        return {}
    rows = conn.execute(sa.select(runs.c.id, runs.c.status).where(runs.c.id.in_(ids)))
    return {row.id: row.status for row in rows}


def pause_run(conn: Connection, run_id: int, reason: str) -> bool:
    """A run that is sending stops being claimed; staff see the reason."""
    result = conn.execute(
        sa.update(runs)
        .where(runs.c.id == run_id, runs.c.status.in_(SENDABLE_RUNS))
        .values(status=RunStatus.PAUSED.value, status_reason=reason[:1000])
    )
    return bool(result.rowcount)


def finish_runs(conn: Connection, now: datetime) -> list[int]:
    """Runs that are sending and have nothing left waiting or in flight become sent."""
    pending = sa.exists().where(outbox.c.run_id == runs.c.id, outbox.c.status.in_(PENDING))
    done = [
        row.id
        for row in conn.execute(
            sa.select(runs.c.id).where(runs.c.status == RunStatus.SENDING.value, ~pending)
        )
    ]
    if done:
        conn.execute(
            sa.update(runs)
            .where(runs.c.id.in_(done), runs.c.status == RunStatus.SENDING.value)
            .values(status=RunStatus.SENT.value, finished_at=now, status_reason=None)
        )
    return done


@dataclass(slots=True, frozen=True)
class WaitingWork:
    """What still stands between a drain and its end: messages of runs that may send now
    (waiting or in flight anywhere), and when the earliest waiting one falls due."""

    pending: int
    next_due: datetime | None


def waiting_work(conn: Connection, now: datetime) -> WaitingWork:
    """Messages not yet settled in runs that may send now (sending, or scheduled and due).
    Paused, cancelled and future runs are not waited for."""
    active = sa.select(runs.c.id).where(
        runs.c.status.in_(SENDABLE_RUNS),
        sa.or_(runs.c.scheduled_for.is_(None), runs.c.scheduled_for <= now),
    )
    in_active = outbox.c.run_id.in_(active.scalar_subquery())
    pending = conn.execute(
        sa.select(sa.func.count()).where(outbox.c.status.in_(PENDING), in_active)
    ).scalar_one()
    due = conn.execute(
        sa.select(sa.func.min(outbox.c.next_attempt_at)).where(
            outbox.c.status.in_(WAITING), in_active
        )
    ).scalar()
    return WaitingWork(int(pending), due)


def next_due(conn: Connection, now: datetime) -> datetime | None:
    """When the earliest waiting message of a sendable run falls due (None: nothing waits)."""
    stmt = sa.select(sa.func.min(outbox.c.next_attempt_at)).where(
        outbox.c.status.in_(WAITING),
        outbox.c.run_id.in_(
            sa.select(runs.c.id).where(runs.c.status.in_(SENDABLE_RUNS)).scalar_subquery()
        ),
    )
    return conn.execute(stmt).scalar()


def backoff(attempt: int, base_seconds: float, cap_seconds: float = 6 * 3600) -> timedelta:
    """Exponential backoff with ±20 % jitter, so a relay that was down is not hit by every
    retry in the same second when it comes back."""
    delay = min(base_seconds * (2 ** max(attempt - 1, 0)), cap_seconds)
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))


def session_on(conn: Connection) -> Session:
    """An ORM session inside the worker's transaction, for events.record's functions."""
    return Session(bind=conn, expire_on_commit=False)


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
