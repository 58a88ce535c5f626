"""The send loop: claim due outbox messages, compose each one, hand it to the transport and
record what happened, with pacing and with the fault rules of the issue.

One worker = one asyncio loop + one database thread:
- the feeder claims batches (leased rows) and keeps a small local queue full;
- `concurrency` sender tasks each take a message, wait for the pacer, compose it with the run's
  cached Composer and send it;
- the recorder writes outcomes in group commits. A sender hands its next message over (the
  final dot of DATA) only once the outcome of its previous one is committed; the envelope and
  the body go out while that commit is under way. So at any moment each sender has at most one
  message that may be delivered without its fate in the database: a SIGKILL can re-send at
  most `concurrency` messages, and those come back flagged possible_duplicate when their lease
  is reclaimed. (A message killed before its dot is dropped by the server: never delivered.)

Its parts live beside it: the pacer in mailer.delivery.pacing, what an SMTP result means in
mailer.delivery.outcomes, the group commit of outcomes in mailer.delivery.recording, where the
database work runs (the database thread, or inline on SQLite) in
mailer.delivery.worker_database, composing ahead in mailer.delivery.compose_pool.

Fault rules: 2xx sent; 4xx or no reply → retry with exponential backoff until max_attempts,
then failed; 5xx from RCPT or DATA → failed, and 5.1.x (no such mailbox) also marks the contact
bounced and suppressed; 5.7.x, or any 5xx at connect/MAIL (our account or our sender is
refused) → the run pauses with the reason and the message goes back to the queue unblamed; too
many errors in a row → the run pauses itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

from mailer.compose.composer import Composer
from mailer.delivery import limits as lim
from mailer.delivery import outbox as ob
from mailer.delivery import recording, workers
from mailer.delivery.compose_pool import (
    IN_PARENT,
    Built,
    ComposeAhead,
    build_error,
    make_composer,
    recipient_of,
)
from mailer.delivery.outcomes import (
    BOUNCED,
    FAILED,
    REQUEUE,
    RETRY,
    SENT,
    SKIPPED,
    Outcome,
    judge,
    pause_reason,
)
from mailer.delivery.pacing import Pacer
from mailer.delivery.transport import NO_REPLY, SendResult, Transport
from mailer.delivery.worker_database import WorkerDatabase, transient
from mailer.models import RunStatus, utcnow

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = [
    "Stats",
    "Worker",
    "WorkerOptions",
    "default_worker_id",
    "drain",
    "run",
    "work_forever",
]


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class WorkerOptions:
    worker_id: str = field(default_factory=default_worker_id)
    # Claimed per round trip. Small enough that a crash strands few rows under a lease.
    batch_size: int = 200
    lease_seconds: float = 120.0
    max_attempts: int = 5
    # First retry after this many seconds, then doubling (5, 10, 20, 40 minutes by default).
    retry_base_seconds: float = 300.0
    # Sending limits shared by every worker through the database (mailer.delivery.limits),
    # counted in the ledger of `limit_scope` (the relay account). The three below override
    # single values of `limits` (the command line's --rate, --rate-hour, --domain-concurrency).
    limits: lim.SendLimits = field(default_factory=lim.SendLimits)
    limit_scope: str = "relay"
    rate_per_second: float | None = None
    rate_per_hour: float | None = None
    # At most this many transactions at once to one recipient domain (None: no limit).
    domain_concurrency: int | None = None

    def effective_limits(self) -> lim.SendLimits:
        return self.limits.merged(
            per_second=self.rate_per_second,
            per_hour=self.rate_per_hour,
            domain_concurrency=self.domain_concurrency,
        )

    max_consecutive_errors: int = 25
    poll_seconds: float = 2.0
    # Signs of life in the worker registry, and how old the last one may be before other
    # workers take this one's rows over (a dead pid on the same host is seen at once).
    heartbeat_seconds: float = 5.0
    dead_after_seconds: float = 30.0
    # A sender whose connection just failed waits this long before its next message, so a relay
    # that is down is not hammered by every sender in a tight loop.
    connect_error_pause: float = 1.0
    # A claimed message that waited longer than this in the worker (pacing, per-domain limits)
    # has its contact looked at again right before its SMTP transaction; see Worker._deliver.
    recheck_after_seconds: float = 1.0
    # Processes that compose and sign messages ahead of the send loop
    # (mailer.delivery.compose_pool); 0: the loop composes each message itself. None: the
    # SEND_COMPOSE_PROCESSES setting.
    compose_processes: int | None = None
    # Messages handed to a compose process at a time (amortises the hand-over).
    compose_chunk: int = 50


@dataclass
class Stats:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    bounced: int = 0
    skipped: int = 0
    released: int = 0
    # Rows reclaimed from a dead worker (ours at start, or anyone's whose lease ran out).
    reclaimed: int = 0
    # Of the messages this worker sent, how many carried the possible_duplicate flag.
    sent_possible_duplicates: int = 0
    # Messages composed ahead by the compose processes (the rest were composed in the loop).
    composed_ahead: int = 0
    paused_runs: dict[int, str] = field(default_factory=dict)
    finished_runs: list[int] = field(default_factory=list)
    # Runs this worker claimed messages of: the runs a drain reports on at its end.
    touched_runs: set[int] = field(default_factory=set)
    # Stopped by a signal (or its caller) before the work was done.
    interrupted: bool = False

    @property
    def settled(self) -> int:
        return self.sent + self.failed + self.skipped

    def as_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            "retried": self.retried,
            "failed": self.failed,
            "bounced": self.bounced,
            "skipped": self.skipped,
            "reclaimed": self.reclaimed,
            "sent_possible_duplicates": self.sent_possible_duplicates,
            "composed_ahead": self.composed_ahead,
            "paused_runs": {str(k): v for k, v in self.paused_runs.items()},
            "finished_runs": self.finished_runs,
            "runs": sorted(self.touched_runs),
            "interrupted": self.interrupted,
        }


class Worker(WorkerDatabase):
    # Seconds between looks at the status of the runs being sent (pause/cancel by staff).
    STATUS_EVERY = 0.25
    # How long the recorder may wait for more outcomes before a group commit.
    COALESCE_SECONDS = 0.001

    def __init__(
        self,
        engine: Engine,
        transport: Transport,
        options: WorkerOptions | None = None,
        *,
        on_progress: Callable[[Stats], None] | None = None,
        on_wait: Callable[[ob.WaitingWork], None] | None = None,
    ) -> None:
        self.engine = engine
        # A drain with nothing to send now is told what it waits for (when that changes).
        self.on_wait = on_wait
        self._last_wait: ob.WaitingWork | None = None
        self.transport = transport
        self.options = options or WorkerOptions()
        self.stats = Stats()
        self.on_progress = on_progress
        self.limits = self.options.effective_limits()
        self.pacer = Pacer(self.limits, self._reserve, self._take_slot, self._release_slot)
        # When the shared limits have no room: seconds until they have (the feeder waits).
        self._budget_wait = 0.0
        self._db = ThreadPoolExecutor(1, thread_name_prefix="sdruk-db")
        self._inline: Connection | None = None
        self._queue: deque[ob.Claimed] = deque()
        self._held: set[int] = set()
        self._in_flight = 0
        self._pending: list[Outcome] = []
        self._pauses: dict[int, str] = {}
        self._blocked: dict[int, str] = {}  # run id → status (paused/cancelled) seen
        self._composers: dict[int, Composer] = {}
        self._ahead: ComposeAhead | None = None
        processes = self.options.compose_processes
        if processes is None:
            from mailer.settings import get_settings

            processes = get_settings().send_compose_processes
        if processes > 0:
            # Chunks of at most a quarter of a claim, so that a claim feeds every process.
            chunk = min(self.options.compose_chunk, max(1, self.options.batch_size // 4))
            self._ahead = ComposeAhead(processes, chunk=chunk, contents=self._content_of)
        self._topics: dict[int, str | None] = {}
        self._errors_in_row: dict[int, int] = {}
        self._wake_recorder = asyncio.Event()
        self._wake_feeder = asyncio.Event()
        self._job_ready = asyncio.Event()
        self._stopping = False
        self._closing = False
        self._last_heartbeat = time.monotonic()
        self._last_status_check = 0.0
        self._last_reclaim = 0.0
        self._stop: asyncio.Event | None = None
        self._host = workers.host_name()
        # Messages a recheck found gone after another sender had taken them: id → reason.
        self._gone: dict[int, str] = {}

    # -- public --

    async def run(self, *, drain: bool, stop: asyncio.Event | None = None) -> Stats:
        stop = stop or asyncio.Event()
        self._stop = stop
        wid = self.options.worker_id

        def start(conn: Connection) -> int:
            now = utcnow()
            # A previous incarnation of this worker id died holding rows: they are ours to
            # redo. So are those of any worker found dead (see mailer.delivery.workers).
            taken = ob.reclaim_expired(conn, now, worker=wid)
            workers.register(conn, wid, self._host, os.getpid(), now)
            return taken + workers.take_over_dead(conn, wid, self._host, now, self._dead_after)

        taken = await self._db_retry(start, "Převzetí zpráv po pádu") or 0
        self._note_taken(taken)
        self._open_inline()
        heart = asyncio.create_task(self._heartbeat(stop))
        recorder = asyncio.create_task(self._recorder())
        senders = [
            asyncio.create_task(self._sender()) for _ in range(max(1, self.transport.concurrency))
        ]
        stopper = asyncio.create_task(stop.wait())
        try:
            await self._feed(drain, stopper)
        finally:
            self._stopping = True
            self.pacer.stopping = True
            self._job_ready.set()
            await asyncio.gather(*senders, return_exceptions=True)
            if self._ahead is not None:
                try:
                    self._ahead.close()
                except Exception:
                    log.exception("Procesy pro sestavování zpráv nelze zastavit")
            # Whatever is still only claimed goes back to the queue, unblamed.
            leftovers = list(self._queue)
            self._queue.clear()
            for message in leftovers:
                self._settle_later(Outcome(message, REQUEUE))
            self._closing = True
            self._wake_recorder.set()
            await recorder
            self._close_inline()
            stopper.cancel()
            finished = await self._db_retry(self._finish, "Uzavření rozesílek")
            self.stats.finished_runs.extend(finished or [])
            heart.cancel()
            await asyncio.gather(heart, return_exceptions=True)
            await self._db_retry(lambda c: workers.unregister(c, wid), "Odhlášení pracovníka")
            self.stats.interrupted = stop.is_set()
            await self.transport.close()
            self._db.shutdown(wait=True)
            self._report()
        return self.stats

    async def _reserve(self) -> float | None:
        scope, limits, wid = self.options.limit_scope, self.limits, self.options.worker_id
        return await self._db_retry(
            lambda c: lim.reserve(c, scope, limits, wid, utcnow()), "Rezervace limitu odesílání"
        )

    async def _take_slot(self, domain: str) -> int | None:
        limit, wid = self.limits.domain_concurrency or 1, self.options.worker_id
        hold = self.options.lease_seconds
        return await self._db_retry(
            lambda c: lim.take_slot(c, domain, limit, wid, utcnow(), hold),
            "Místo pro spojení na doménu",
        )

    async def _release_slot(self, slot: int) -> None:
        await self._db_retry(lambda c: lim.release_slot(c, slot), "Uvolnění místa pro doménu")

    @property
    def _dead_after(self) -> timedelta:
        return timedelta(seconds=self.options.dead_after_seconds)

    def _note_taken(self, taken: int) -> None:
        if taken:
            self.stats.reclaimed += taken
            log.warning("Převzato %d zpráv po pádu jiného pracovníka.", taken)
            self._wake_feeder.set()

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        """Every few seconds: a sign of life, and the rows of dead workers back to the queue."""
        wid, host, pid = self.options.worker_id, self._host, os.getpid()

        def work(conn: Connection) -> int:
            now = utcnow()
            workers.beat(conn, wid, host, pid, now)
            if self.limits.active:
                lim.purge(conn, now)
            return workers.take_over_dead(conn, wid, host, now, self._dead_after)

        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.options.heartbeat_seconds)
            if stop.is_set():
                return
            self._note_taken(await self._db_retry(work, "Známka života pracovníka") or 0)

    # -- feeder --

    def _claim_size(self) -> int:
        size = self.options.batch_size
        rate = self.pacer.rate
        if rate:
            # Never hold more than a third of a lease's worth of sending: the heartbeat keeps
            # leases alive anyway, but a stalled worker should strand little.
            size = min(size, max(1, int(rate * self.options.lease_seconds / 3)))
        return size

    async def _feed(self, drain: bool, stopper: asyncio.Task[Any]) -> None:
        low_water = max(self.transport.concurrency * 2, self._claim_size() // 2)
        last_finish = 0.0
        while not stopper.done():
            if len(self._queue) < low_water:
                got = await self._claim()
                if got < self._claim_size() and time.monotonic() - last_finish > 5:
                    # The queue is running dry: mark runs with nothing left as sent.
                    last_finish = time.monotonic()
                    done = await self._db_retry(self._finish, "Uzavření rozesílek")
                    self.stats.finished_runs.extend(done or [])
                if got:
                    continue
                if not self._queue and self._in_flight == 0 and not self._pending:
                    # Nothing claimable and nothing of ours under way.
                    finished = await self._db_retry(self._finish, "Uzavření rozesílek")
                    self.stats.finished_runs.extend(finished or [])
                    wait = self.options.poll_seconds
                    if drain:
                        # A drain ends only when every run that may send now is finished or
                        # paused: it waits for retries that are not due yet, and for messages
                        # other workers hold (taken over at once if those workers are dead).
                        work = await self._db_retry(
                            lambda c: ob.waiting_work(c, utcnow()), "Hledání další zprávy"
                        )
                        if work is None or work.pending == 0:
                            return
                        if self.on_wait and work != self._last_wait:
                            self._last_wait = work
                            self.on_wait(work)
                        if work.next_due is not None:
                            until_due = (work.next_due - utcnow()).total_seconds()
                            wait = min(wait, max(until_due, 0.05))
                    if self._budget_wait > 0:
                        # The shared limits are spent: claim again when a place frees up.
                        wait = min(self.options.poll_seconds, max(self._budget_wait, 0.05))
                    self._wake_feeder.clear()
                    await self._sleep(stopper, wait, self._wake_feeder)
                    continue
            self._wake_feeder.clear()
            await self._sleep(stopper, 0.2, self._wake_feeder)

    @staticmethod
    def _finish(conn: Connection) -> list[int]:
        return ob.finish_runs(conn, utcnow())

    @staticmethod
    async def _sleep(
        stopper: asyncio.Task[Any], seconds: float, event: asyncio.Event | None = None
    ) -> None:
        waits: list[asyncio.Future[Any]] = [stopper]
        waker = asyncio.ensure_future(event.wait()) if event else None
        if waker:
            waits.append(waker)
        await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        if waker:
            waker.cancel()

    async def _claim(self) -> int:
        size = self._claim_size()
        reclaim = time.monotonic() - self._last_reclaim > self.options.lease_seconds / 4
        topics = dict(self._topics)
        wid = self.options.worker_id
        lease = self.options.lease_seconds

        # Set after a failed claim: a snapshot of what this worker holds (read here, in the
        # event loop, not on the database thread while senders change it).
        unheld_check: list[set[int]] = []

        limits, scope = self.limits, self.options.limit_scope
        ahead = self.transport.concurrency

        def work(conn: Connection) -> tuple[int, ob.ClaimResult]:
            # The time of this attempt: a retry after an outage must not hand out leases that
            # already ran out (another worker would reclaim, and send, the same rows).
            now = utcnow()
            want = size
            if limits.active:
                # No more than the shared limits let out now: claimed rows would only wait
                # under a lease (for a day, with a daily limit) while others could not take them.
                # A few beyond the room keep the senders ready for the next free place; they
                # are re-checked before sending if they wait long (see _deliver).
                room, wait = lim.available(conn, scope, limits, now)
                self._budget_wait = wait if room <= 0 else 0.0
                want = min(size, room + ahead) if room > 0 else 0
            if unheld_check:
                # The failed claim may have committed before the connection dropped: rows
                # leased to us that we never received go back to the queue now (not sent, so
                # not flagged possible_duplicate) instead of waiting for their lease to run out.
                ob.release_unheld(conn, wid, unheld_check[0], now)
            reclaimed = ob.reclaim_expired(conn, now) if reclaim else 0
            if want <= 0:
                return reclaimed, ob.ClaimResult([], 0, set())
            result = ob.claim(
                conn, worker=wid, limit=want, now=now, lease_seconds=lease, topics=topics
            )
            return reclaimed, result

        got: tuple[int, ob.ClaimResult] | None
        try:
            got = self._inline_call(work)
            if got is None:
                got = await self._db_call(work)
        except sa_exc.DBAPIError as exc:
            if not transient(exc):
                raise
            log.warning(
                "Převzetí zpráv z fronty selhalo kvůli dočasné chybě databáze (%s).",
                str(exc.orig or exc).strip().splitlines()[0][:200],
            )
            unheld_check.append(set(self._held))
            # Nothing of the failed claim was received, so nothing can be sent twice; the
            # retry goes through _db_retry (backoff, interrupted by stop).
            got = await self._db_retry(work, "Převzetí zpráv z fronty")
            if got is None:
                return 0
        reclaimed, result = got
        if reclaim:
            self._last_reclaim = time.monotonic()
        self._topics.update(topics)
        if reclaimed:
            self.stats.reclaimed += reclaimed
            log.warning("Znovu převzato %d zpráv po pádu jiného pracovníka.", reclaimed)
        for run_id, content in result.contents.items():
            try:
                self._composers[run_id] = make_composer(content, run_id)
            except Exception as exc:
                # Content this code cannot fill (e.g. frozen by another version): nothing of
                # the run can go out. Pause it for staff; its messages go back unblamed.
                log.exception("Obsah rozesílky %d nelze použít", run_id)
                self._topics.pop(run_id, None)
                self._pause(run_id, f"Obsah rozesílky nelze použít: {exc}")
        self.stats.skipped += result.skipped
        self.stats.touched_runs |= result.run_ids
        for message in result.messages:
            self._held.add(message.id)
            self._queue.append(message)
            # A run resumed after a pause is sendable again.
            self._blocked.pop(message.run_id, None)
        if result.messages:
            self._job_ready.set()
            if self._ahead is not None:
                self._ahead.fill(self._queue)
        if result.skipped and self.on_progress:
            self.on_progress(self.stats)
        return len(result.messages) + result.skipped

    # -- senders --

    async def _next(self) -> ob.Claimed | None:
        while True:
            if self._stopping:
                return None
            if self._queue:
                message = self._queue.popleft()
                if len(self._queue) < self.transport.concurrency * 2:
                    self._wake_feeder.set()
                if self._ahead is not None:
                    self._ahead.fill(self._queue)
                return message
            self._job_ready.clear()
            self._wake_feeder.set()
            await self._job_ready.wait()

    async def _sender(self) -> None:
        # The group commit that records this sender's previous outcome. The next message is
        # handed over (its final dot) only once that is done, so a SIGKILL finds at most one
        # message per sender delivered but not on record; its envelope and body go out while
        # the commit is under way.
        recorded: asyncio.Future[None] | None = None
        while True:
            message = await self._next()
            if message is None:
                break
            if message.run_id in self._blocked:
                self._forget(message)
                self._settle_later(self._blocked_outcome(message))
                continue
            self._in_flight += 1
            try:
                try:
                    outcome = await self._deliver(message, recorded)
                except Exception as exc:
                    # A bug must not silently cost a sender (or leave the row leased): the
                    # message is retried later like any temporary failure, and logged.
                    log.exception("Neočekávaná chyba při odesílání zprávy %d", message.id)
                    outcome = self._count_error(
                        Outcome(message, RETRY, f"vnitřní chyba: {exc}"[:1000], utcnow())
                    )
                recorded = self._record(outcome)
            finally:
                self._in_flight -= 1
                self._forget(message)
            if outcome.no_reply and self.options.connect_error_pause:
                await asyncio.sleep(self.options.connect_error_pause)
        if recorded is not None:
            await recorded

    def _blocked_outcome(self, message: ob.Claimed) -> Outcome:
        if self._blocked[message.run_id] == RunStatus.CANCELLED.value:
            return Outcome(message, SKIPPED, ob.SKIP_REASONS["cancelled"])
        return Outcome(message, REQUEUE)

    async def _deliver(
        self, message: ob.Claimed, recorded: asyncio.Future[None] | None = None
    ) -> Outcome:
        domain = message.email.rpartition("@")[2].lower()
        place = await self.pacer.acquire(domain)
        if place is None:
            return Outcome(message, REQUEUE)  # stopping while it waited for the limits
        try:
            if message.run_id in self._blocked:
                return self._blocked_outcome(message)
            # The promise "unsubscribed means no more mail" must hold for messages already
            # claimed: with rate or per-domain limits they can wait here for tens of seconds.
            # Why this design: at full speed a claimed message goes out within milliseconds, so
            # the hot path pays only a clock read; only a message that waited longer than
            # recheck_after_seconds costs a query, and that one query re-checks every stale
            # message of the local queue too (one query per batch, not per message). The
            # alternative (unsubscribe also skipping `sending` rows, a per-message flag read
            # before DATA) would cost a query per message at full speed.
            reason = self._gone.pop(message.id, None) if self._gone else None
            if reason is None and (
                time.monotonic() - message.checked_at > self.options.recheck_after_seconds
            ):
                try:
                    reason = await self._recheck(message)
                except sa_exc.DBAPIError as exc:
                    if not transient(exc):
                        raise
                    # Unchecked means unsent: back to the queue, unblamed, claimed again later.
                    log.warning(
                        "Kontrola příjemce před odesláním selhala (%s); zpráva %d se vrací do "
                        "fronty.",
                        str(exc.orig or exc).strip().splitlines()[0][:200],
                        message.id,
                    )
                    return Outcome(message, REQUEUE)
            if reason is not None:
                return Outcome(message, SKIPPED, reason)
            composed = await self._build(message)
            if isinstance(composed, str):
                # A message that cannot be built fails alone, with the reason; a broken
                # template fails them all and trips the errors-in-a-row pause.
                return self._count_error(Outcome(message, FAILED, composed))
            result = await self.transport.send(
                composed.envelope_from,
                [composed.to],
                composed.data,
                dot_safe=composed.dot_safe,
                handover_after=None if recorded is None or recorded.done() else recorded,
            )
        finally:
            await self.pacer.release(place)
        return self._outcome(message, result)

    async def _build(self, message: ob.Claimed) -> Built:
        """The message's bytes (composed ahead by the pool, or here), or why it cannot be
        built."""
        ahead = self._ahead.take(message.id) if self._ahead is not None else None
        if ahead is not None:
            built = await ahead
            if built is not IN_PARENT:
                self.stats.composed_ahead += 1
                if isinstance(built, str):
                    log.error("Zpráva %d: %s", message.id, built)
                return built
        try:
            return self._composers[message.run_id].message(recipient_of(message))
        except Exception as exc:
            log.exception("Zprávu %d nelze sestavit", message.id)
            return build_error(exc)

    def _forget(self, message: ob.Claimed) -> None:
        if self._ahead is not None:
            self._ahead.forget(message.id)

    def _content_of(self, run_id: int) -> Any:
        composer = self._composers.get(run_id)
        return composer.content if composer is not None else None

    async def _recheck(self, message: ob.Claimed) -> str | None:
        """Look at the contact of `message` again, with every queued message that has waited
        at least half as long; those found gone are settled as skipped. Returns the reason
        `message` must not go out, or None."""
        now = time.monotonic()
        stale_at = now - self.options.recheck_after_seconds / 2
        batch = [message, *(m for m in self._queue if m.checked_at < stale_at)]
        topics = dict(self._topics)
        verdicts = await self._db_call(lambda c: ob.recheck(c, batch, topics))
        for m in batch:
            m.checked_at = now
        queued = {m.id for m in self._queue}
        for m in batch[1:]:
            reason = verdicts.get(m.id)
            if reason is None:
                continue
            if m.id in queued:
                self._queue.remove(m)
                self._forget(m)
                self._settle_later(Outcome(m, SKIPPED, reason))
            else:
                # Another sender took it from the queue while we asked: it looks here.
                self._gone[m.id] = reason
        return verdicts.get(message.id)

    def _outcome(self, message: ob.Claimed, result: SendResult) -> Outcome:
        verdict = judge(result)
        if verdict == SENT:
            self._errors_in_row[message.run_id] = 0
            return Outcome(message, SENT, result.describe())
        text = result.describe()
        if verdict == "policy":
            self._pause(message.run_id, pause_reason(result))
            return Outcome(message, REQUEUE, text)
        if verdict == RETRY:
            attempt = message.attempts + 1
            if attempt >= self.options.max_attempts:
                outcome = Outcome(message, FAILED, f"vzdáno po {attempt} pokusech: {text}")
            else:
                delay = ob.backoff(attempt, self.options.retry_base_seconds)
                outcome = Outcome(message, RETRY, text, utcnow() + delay)
            outcome.no_reply = result.code == NO_REPLY
        else:
            outcome = Outcome(message, verdict, text, enhanced=result.enhanced)
        return self._count_error(outcome)

    def _count_error(self, outcome: Outcome) -> Outcome:
        run_id = outcome.message.run_id
        errors = self._errors_in_row.get(run_id, 0) + 1
        self._errors_in_row[run_id] = errors
        if errors >= self.options.max_consecutive_errors:
            self._pause(
                run_id,
                f"Příliš mnoho chyb za sebou ({errors}); poslední: {outcome.text}",
            )
        return outcome

    def _pause(self, run_id: int, reason: str) -> None:
        if run_id not in self._blocked:
            log.warning("Rozesílka %d se pozastavuje: %s", run_id, reason)
            self._blocked[run_id] = RunStatus.PAUSED.value
            self._pauses[run_id] = reason[:1000]
            self._wake_recorder.set()

    def _record(self, outcome: Outcome) -> asyncio.Future[None]:
        """Queue the outcome for the next group commit; the future is done once it is
        committed (group commits go in order, so every outcome queued before it is, too)."""
        outcome.done = asyncio.get_running_loop().create_future()
        self._pending.append(outcome)
        self._wake_recorder.set()
        return outcome.done

    def _settle_later(self, outcome: Outcome) -> None:
        self._pending.append(outcome)
        self._wake_recorder.set()

    # -- recorder --

    async def _recorder(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_recorder.wait(), self.options.lease_seconds / 6)
            self._wake_recorder.clear()
            # Let the replies already on the wire settle first: a group commit costs about the
            # same for one outcome as for ten, and at full speed they arrive microseconds apart.
            if len(self._pending) * 2 < self.transport.concurrency and not self._closing:
                await asyncio.sleep(self.COALESCE_SECONDS)
            await self._flush()
            if self._closing and not self._pending and not self._pauses:
                return

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        pauses, self._pauses = self._pauses, {}
        heartbeat = time.monotonic() - self._last_heartbeat > self.options.lease_seconds / 3
        settled = {o.message.id for o in batch}
        held = [i for i in self._held if i not in settled] if heartbeat else []
        # Paused or cancelled by staff? Asked a few times a second, not on every group commit
        # (thousands a second at full speed, each a query that mostly answers "still sending").
        look = time.monotonic() - self._last_status_check >= self.STATUS_EVERY
        watch = {m.run_id for m in self._queue} if look else set()
        if not (batch or pauses or held or watch):
            return
        wid = self.options.worker_id
        lease = self.options.lease_seconds

        def work(conn: Connection) -> dict[int, str]:
            now = utcnow()
            recording.write(conn, wid, batch, now)
            for run_id, reason in pauses.items():
                ob.pause_run(conn, run_id, reason)
            if held:
                ob.extend_leases(conn, wid, held, now + timedelta(seconds=lease))
            return ob.run_statuses(conn, watch)

        delay = 0.5
        while True:
            try:
                inline = self._inline_call(work)
                statuses = inline if inline is not None else await self._db_call(work)
                break
            except (sa_exc.OperationalError, sa_exc.InterfaceError):
                # The database is away: keep every outcome and try again. Nothing is answered
                # before it is committed, so a crash now can only re-send what is in flight.
                log.exception("Zápis stavu zpráv selhal, zkouším znovu za %.1f s", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
        if heartbeat:
            self._last_heartbeat = time.monotonic()
        if look:
            self._last_status_check = time.monotonic()
        for run_id, status in statuses.items():
            if status not in ob.SENDABLE_RUNS:
                self._blocked[run_id] = status
        for run_id, reason in pauses.items():
            self.stats.paused_runs[run_id] = reason
        self._count(batch)
        for outcome in batch:
            self._held.discard(outcome.message.id)
            if outcome.done is not None and not outcome.done.done():
                outcome.done.set_result(None)
        if self.on_progress and batch:
            self.on_progress(self.stats)

    def _count(self, batch: list[Outcome]) -> None:
        s = self.stats
        for o in batch:
            if o.kind == SENT:
                s.sent += 1
                s.sent_possible_duplicates += o.message.possible_duplicate
            elif o.kind == RETRY:
                s.retried += 1
            elif o.kind == FAILED:
                s.failed += 1
            elif o.kind == BOUNCED:
                s.failed += 1
                s.bounced += 1
            elif o.kind == SKIPPED:
                s.skipped += 1
            elif o.kind == REQUEUE:
                s.released += 1

    def _report(self) -> None:
        s = self.stats
        log.info(
            "Pracovník %s: odesláno %d, opakovat %d, selhalo %d (z toho neexistující adresy %d), "
            "přeskočeno %d, převzato po pádu %d",
            self.options.worker_id,
            s.sent,
            s.retried,
            s.failed,
            s.bounced,
            s.skipped,
            s.reclaimed,
        )


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run a worker coroutine on uvloop when it is installed (it comes with uvicorn[standard]):
    the send loop is bound by event-loop overhead per SMTP command, which uvloop cuts."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency, but optional here
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def drain(
    engine: Engine,
    transport: Transport,
    options: WorkerOptions | None = None,
    *,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[Stats], None] | None = None,
    on_wait: Callable[[ob.WaitingWork], None] | None = None,
) -> Stats:
    """Send until every run that may send now is finished or paused (waiting for retries and
    for messages other workers hold), then return what was done."""
    worker = Worker(engine, transport, options, on_progress=on_progress, on_wait=on_wait)
    return await worker.run(drain=True, stop=stop)


async def work_forever(
    engine: Engine,
    transport: Transport,
    options: WorkerOptions | None = None,
    *,
    stop: asyncio.Event | None = None,
    on_progress: Callable[[Stats], None] | None = None,
) -> Stats:
    """Send until `stop` is set (SIGTERM in the CLI), polling for due work when idle."""
    worker = Worker(engine, transport, options, on_progress=on_progress)
    return await worker.run(drain=False, stop=stop)
