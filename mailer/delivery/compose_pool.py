"""Composing and DKIM-signing messages ahead of the send loop, in other processes.

Why: one send worker is one asyncio loop, and with DKIM on it is bound by one core; building
the MIME bytes and signing them (RSA-2048) is most of its CPU time per message (see the
README's Benchmarks). Composing is pure (frozen run content + a recipient's plain values →
bytes), so it can run in other processes while the loop does SMTP and the database, and a
machine's second core is put to work. The parent still does everything that has an effect:
claims, pacing, rechecks, the SMTP transaction, the outcome. A pool process can die at any
moment without losing or doubling a message: its chunk is composed again in the parent.

How: the worker's claimed messages are handed over in chunks (plain `Recipient` values and the
run's frozen content, never ORM rows) to a `ProcessPoolExecutor`; each pool process builds its
own `Composer` per run (cached there, the DKIM key loaded from the settings in that process)
and sends back the finished bytes. At most `ahead` messages are composed or being composed and
not yet taken by a sender: memory stays bounded, and a stop wastes little work. Any failure of
the pool (a dead process, a content the process cannot use) falls back to composing in the
parent: a message that cannot be built fails alone, with its reason, exactly as in-process.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mailer.compose.render import Composer, OutgoingMessage, Recipient

log = logging.getLogger(__name__)

__all__ = ["IN_PARENT", "Built", "ComposeAhead", "build_error", "recipient_of"]

# A message the pool did not build (pool down, chunk lost): the parent composes it.
IN_PARENT = "in-parent"

# What a message becomes: its bytes, or the Czech reason it cannot be built.
Built = OutgoingMessage | str


def build_error(exc: BaseException) -> str:
    """The reason recorded for a message that cannot be built (the same in both places)."""
    return f"zprávu nelze sestavit: {exc}"[:1000]


def recipient_of(message: Any) -> Recipient:
    """The plain values compose needs from a claimed outbox message (`outbox.Claimed`)."""
    if message.contact is not None:
        return Recipient.from_rows(message.id, message.contact, message.library)
    # Transactional mail to an address that is no contact (a sign-up to confirm): the neutral
    # salutation.
    return Recipient(outbox_id=message.id, email=message.email)


# --- in the pool process ------------------------------------------------------------------------

_composers: dict[int, Composer] = {}


def _watch_parent(parent: int) -> None:
    # A SIGKILLed worker cannot shut its pool down: its processes must not outlive it.
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


def _start_process(parent: int) -> None:
    # Ctrl+C reaches the whole process group; the parent decides when the pool stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()


def _ready() -> int:
    return os.getpid()


def _compose_chunk(run_id: int, content: Mapping[str, Any], people: list[Recipient]) -> list[Built]:
    """In a pool process: the messages of `people`, in order; a message that cannot be built
    becomes its reason. Raises when the run's composer cannot be made (the parent then
    composes the chunk itself). The content comes with every chunk (pickling ~50 KB per 50
    messages is noise beside their 2.5 MB of bytes back), so any process can take any chunk;
    the composer is made once per run and process."""
    composer = _composers.get(run_id)
    if composer is None:
        composer = Composer(content, run_id)
        composer.shape  # noqa: B018 - the DKIM key now, as the parent does
        _composers[run_id] = composer
    out: list[Built] = []
    for person in people:
        try:
            out.append(composer.message(person))
        except Exception as exc:
            out.append(build_error(exc))
    return out


# --- in the send worker -------------------------------------------------------------------------


class ComposeAhead:
    """Keeps messages of the worker's queue composed ahead, in `processes` pool processes.

    `fill(queue)` hands the first not-yet-composed messages of the queue to the pool;
    `take(id)` gives a sender the future of its message (None when it was never handed
    over: the sender composes it itself). Every future resolves to the message's bytes, its
    reason for failing, or IN_PARENT."""

    def __init__(
        self,
        processes: int,
        *,
        chunk: int = 50,
        ahead: int | None = None,
        contents: Callable[[int], Mapping[str, Any] | None],
    ) -> None:
        self.processes = processes
        self.chunk = max(1, chunk)
        # A chunk per process being built, and as many ready for the senders.
        self.ahead = ahead or self.chunk * processes * 2
        self._contents = contents
        self._pool: ProcessPoolExecutor | None = None
        self._broken = False
        # Until a pool process is up (spawned, modules imported), the senders compose
        # themselves: a short run never waits for the pool.
        self._up = False
        self._futures: dict[int, asyncio.Future[Built]] = {}
        self._chunks: set[asyncio.Future[list[Built]]] = set()
        self.chunks_sent = 0
        self.fallbacks = 0

    @property
    def up(self) -> bool:
        """A pool process is ready to take chunks."""
        return self._up and not self._broken

    def start(self) -> None:
        """Start the processes now (they import the composer while the worker starts)."""
        if self._pool is not None or self._broken:
            return
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(
            self.processes,
            mp_context=context,
            initializer=_start_process,
            initargs=(os.getpid(),),
        )
        for _ in range(self.processes):
            self._pool.submit(_ready).add_done_callback(self._note_up)

    def _note_up(self, ready: Future[int]) -> None:
        # On the pool's own thread: a plain flag, read by the loop on its next fill.
        if not ready.cancelled() and ready.exception() is None:
            self._up = True

    def fill(self, queue: Iterable[Any]) -> None:
        """Hand the first messages of `queue` not yet handed over to the pool, in chunks of
        one run each, until `ahead` messages are under way or ready. The pool starts with the
        first queue that fills a chunk; a few messages alone never cost a process start."""
        if self._broken:
            return
        room = self.ahead - len(self._futures)
        if room < min(self.chunk, self.ahead):
            return  # handed over by whole chunks: one look per chunk's worth of sends
        if self._pool is None:
            if sum(1 for _ in zip(range(self.chunk), queue, strict=False)) >= self.chunk:
                self.start()
            return
        if not self._up:
            return
        batch: list[Any] = []
        for message in queue:
            if message.id in self._futures:
                continue
            if batch and (message.run_id != batch[0].run_id or len(batch) >= self.chunk):
                self._submit(batch)
                batch = []
                if room <= 0:
                    return
            batch.append(message)
            room -= 1
            if room <= 0:
                break
        if batch:
            self._submit(batch)

    def take(self, message_id: int) -> asyncio.Future[Built] | None:
        return self._futures.pop(message_id, None)

    def forget(self, message_id: int) -> None:
        """A message that will not be sent now (skipped, requeued): its work is dropped."""
        future = self._futures.pop(message_id, None)
        if future is not None and not future.done():
            future.cancel()

    def _submit(self, messages: list[Any]) -> None:
        if self._pool is None:
            self.start()
        pool = self._pool
        if pool is None:
            return
        loop = asyncio.get_running_loop()
        run_id = messages[0].run_id
        people = [recipient_of(m) for m in messages]
        content = self._contents(run_id)
        futures = [loop.create_future() for _ in messages]
        for message, future in zip(messages, futures, strict=True):
            self._futures[message.id] = future
        try:
            if content is None:
                raise LookupError(run_id)
            done: Future[list[Built]] = pool.submit(_compose_chunk, run_id, content, people)
        except LookupError:
            # A run whose content the worker could not use: the senders settle it.
            for future in futures:
                future.set_result(IN_PARENT)
            return
        except (BrokenProcessPool, RuntimeError) as exc:
            self._give_up(exc)
            for future in futures:
                future.set_result(IN_PARENT)
            return
        self.chunks_sent += 1
        chunk = asyncio.wrap_future(done, loop=loop)
        self._chunks.add(chunk)
        chunk.add_done_callback(lambda c: self._settle(c, futures, run_id))

    def _settle(
        self, chunk: asyncio.Future[list[Built]], futures: list[asyncio.Future[Built]], run_id: int
    ) -> None:
        self._chunks.discard(chunk)
        results: list[Built]
        if chunk.cancelled():
            results = [IN_PARENT] * len(futures)
        elif (exc := chunk.exception()) is not None:
            if isinstance(exc, BrokenProcessPool):
                self._give_up(exc)
            else:
                # The run's composer could not be made there (or the chunk was lost): the
                # parent composes, with the composer it already checked.
                log.warning("Sestavení zpráv rozesílky %d v jiném procesu selhalo: %s", run_id, exc)
            self.fallbacks += len(futures)
            results = [IN_PARENT] * len(futures)
        else:
            results = chunk.result()
        for future, built in zip(futures, results, strict=True):
            if not future.done():
                future.set_result(built)

    def _give_up(self, exc: BaseException) -> None:
        """A pool process died: composing goes back into the worker for the rest of its run
        (nothing was sent by the pool, so nothing is lost or sent twice)."""
        if not self._broken:
            log.error(
                "Proces pro sestavování zpráv skončil (%s); zprávy se dál sestavují v "
                "pracovníkovi.",
                exc,
            )
        self._broken = True
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop the pool processes and wait for them (no process outlives the worker)."""
        pool, self._pool = self._pool, None
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
