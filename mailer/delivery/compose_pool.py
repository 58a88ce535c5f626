"""Composing and DKIM-signing messages ahead of the send loop, in other processes.

Why: one send worker is one asyncio loop, and with DKIM on it is bound by one core; building
the MIME bytes and signing them (RSA-2048) is most of its CPU time per message (see the
README's Benchmarks). Composing is pure (frozen run content + a recipient's plain values →
bytes), so it can run in other processes while the loop does SMTP and the database, and a
machine's second core is put to work. The parent still does everything that has an effect:
claims, pacing, rechecks, the SMTP transaction, the outcome. A pool process can die at any
moment without losing or doubling a message: its chunk is composed again in the parent.

How: the worker's claimed messages are handed over in chunks (plain `Recipient` values and the
run's frozen content, never ORM rows) to pool processes (multiprocessing, "spawn": nothing of
the worker's threads, connections or event loop is copied) over one pipe each; each process
builds its own `Composer` per run (cached there, the DKIM key loaded from the settings in that
process) and sends back the finished bytes. Not `ProcessPoolExecutor`: a pool process killed
while writing its answer left the executor's result reader blocked forever (seen in this
module's test), so the worker hung; here each process has its own pipe, read by a thread, and
a death is an end of file there. At most `ahead` messages are composed or being composed and
not yet taken by a sender: memory stays bounded, and a stop wastes little work. Any failure of
the pool (a dead process, a content the process cannot use) falls back to composing in the
parent: a message that cannot be built fails alone, with its reason, exactly as in-process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from multiprocessing.connection import Connection
from typing import Any

from mailer.compose.composer import Composer, OutgoingMessage, Recipient

log = logging.getLogger(__name__)

__all__ = ["IN_PARENT", "Built", "ComposeAhead", "build_error", "make_composer", "recipient_of"]

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


def make_composer(content: Mapping[str, Any], run_id: int) -> Composer:
    """The run's composer, with its message parts and DKIM key made now: a key that cannot
    sign pauses the run with the reason instead of failing its messages one by one."""
    composer = Composer(content, run_id)
    composer.shape  # noqa: B018
    return composer


# --- in the pool process ------------------------------------------------------------------------


def _serve(conn: Connection, parent: int) -> None:
    """A pool process: answer chunks in order until told to stop, or until the worker is gone
    (its end of the pipe closes; a SIGKILLed worker cannot say stop)."""
    # Ctrl+C reaches the whole process group; the worker decides when its pool stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    composers: dict[int, Composer] = {}
    contents: dict[int, Mapping[str, Any]] = {}
    try:
        conn.send(_READY)
        while True:
            chunk = conn.recv()
            if chunk is None:
                return
            run_id, content, people = chunk
            if content is not None:
                contents[run_id] = content
            try:
                composer = composers.get(run_id)
                if composer is None:
                    composer = composers[run_id] = make_composer(contents[run_id], run_id)
            except Exception as exc:
                conn.send(_Failed(f"{type(exc).__name__}: {exc}"))
                continue
            out: list[Built] = []
            for person in people:
                try:
                    out.append(composer.message(person))
                except Exception as exc:
                    out.append(build_error(exc))
            conn.send(out)
    except (EOFError, OSError):
        return


def _watch_parent(parent: int) -> None:
    # Belt and braces beside the pipe: a process busy composing notices a dead worker too.
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(0)


_READY = "ready"


class _Failed(str):
    """A chunk the process could not start on (the run's composer): the parent composes it."""


# --- in the send worker -------------------------------------------------------------------------


class _Process:
    """One pool process, its pipe and the chunks it holds. It answers chunks in the order it
    gets them, so the answers map to the chunks in `pending` in order. A thread reads the
    pipe: the loop never blocks on it, and a process that dies, even in the middle of an
    answer, is seen as the end of the pipe."""

    def __init__(self, owner: ComposeAhead, context: Any) -> None:
        self.owner = owner
        self.loop = asyncio.get_running_loop()
        ours, theirs = context.Pipe(duplex=True)
        self.process = context.Process(
            target=_serve, args=(theirs, os.getpid()), daemon=True, name="sdruk-compose"
        )
        self.process.start()
        theirs.close()  # ours alone now: its end closes when the process dies
        self.conn: Connection = ours
        self.pending: deque[tuple[int, list[asyncio.Future[Built]]]] = deque()
        self.runs: set[int] = set()  # runs whose content this process has
        self.ready = False
        self.reader = threading.Thread(target=self._read, daemon=True, name="sdruk-compose-io")
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                answer = self.conn.recv()
            except (EOFError, OSError):
                self._post(self.owner._died, self, None)
                return
            except Exception as exc:  # an answer that cannot be unpickled: a dead pool too
                self._post(self.owner._died, self, exc)
                return
            self._post(self.owner._answered, self, answer)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: the worker is done
            self.loop.call_soon_threadsafe(fn, *args)

    def send(self, run_id: int, content: Mapping[str, Any], people: list[Recipient]) -> None:
        first = run_id not in self.runs
        self.conn.send((run_id, content if first else None, people))
        self.runs.add(run_id)

    def stop(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.conn.send(None)
        self.process.join(5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.reader.join(5)
        self.conn.close()


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
        self._pool: list[_Process] = []
        self._broken = False
        self._futures: dict[int, asyncio.Future[Built]] = {}
        self.chunks_sent = 0

    @property
    def up(self) -> bool:
        """A pool process is ready to take chunks."""
        return not self._broken and any(p.ready for p in self._pool)

    @property
    def pids(self) -> list[int]:
        return [p.process.pid for p in self._pool if p.process.pid is not None]

    def start(self) -> None:
        """Start the processes now (they import the composer while the worker goes on; until
        one is ready, the senders compose themselves: a short run never waits for it)."""
        if self._pool or self._broken:
            return
        context = multiprocessing.get_context("spawn")
        try:
            for _ in range(self.processes):
                self._pool.append(_Process(self, context))
        except Exception as exc:
            self._give_up(exc)

    def fill(self, queue: Iterable[Any]) -> None:
        """Hand the first messages of `queue` not yet handed over to the pool, in chunks of
        one run each, until `ahead` messages are under way or ready. The pool starts with the
        first queue that fills a chunk; a few messages alone never cost a process start."""
        if self._broken:
            return
        room = self.ahead - len(self._futures)
        if room < min(self.chunk, self.ahead):
            return  # handed over by whole chunks: one look per chunk's worth of sends
        if not self._pool:
            if sum(1 for _ in zip(range(self.chunk), queue, strict=False)) >= self.chunk:
                self.start()
            return
        if not self.up:
            return
        batch: list[Any] = []
        for message in queue:
            if message.id in self._futures:
                continue
            if batch and (message.run_id != batch[0].run_id or len(batch) >= self.chunk):
                self._submit(batch)
                batch = []
                if room <= 0 or self._broken:
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
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in messages]
        for message, future in zip(messages, futures, strict=True):
            self._futures[message.id] = future
        run_id = messages[0].run_id
        content = self._contents(run_id)
        ready = [p for p in self._pool if p.ready]
        if content is None or not ready:
            # A run whose content the worker could not use: the senders settle it.
            _resolve(futures, IN_PARENT)
            return
        process = min(ready, key=lambda p: len(p.pending))
        process.pending.append((run_id, futures))
        try:
            process.send(run_id, content, [recipient_of(m) for m in messages])
        except Exception as exc:  # the process is gone (broken pipe) or a value won't pickle
            self._died(process, exc)
            return
        self.chunks_sent += 1

    def _answered(self, process: _Process, answer: Any) -> None:
        if isinstance(answer, str) and not isinstance(answer, _Failed) and answer == _READY:
            process.ready = True
            return
        if not process.pending:
            return  # answers after a give-up
        run_id, futures = process.pending.popleft()
        if isinstance(answer, _Failed):
            # The run's composer could not be made there: the parent composes, with the
            # composer it already checked.
            log.warning("Sestavení zpráv rozesílky %d v jiném procesu selhalo: %s", run_id, answer)
            process.runs.discard(run_id)
            _resolve(futures, IN_PARENT)
            return
        for future, built in zip(futures, answer, strict=True):
            if not future.done():
                future.set_result(built)

    def _died(self, process: _Process, exc: BaseException | None) -> None:
        if self._broken or process not in self._pool:
            return
        self._give_up(exc or EOFError(f"proces {process.process.pid} skončil"))

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
        for process in self._pool:
            while process.pending:
                _resolve(process.pending.popleft()[1], IN_PARENT)
        # Messages handed over but not taken yet are composed by their senders.
        for future in self._futures.values():
            if not future.done():
                future.set_result(IN_PARENT)

    def close(self) -> None:
        """Stop the pool processes and wait for them (no process outlives the worker)."""
        pool, self._pool = self._pool, []
        for future in self._futures.values():
            future.cancel()
        self._futures.clear()
        for process in pool:
            while process.pending:
                _resolve(process.pending.popleft()[1], IN_PARENT)
            process.stop()


def _resolve(futures: list[asyncio.Future[Built]], value: Built) -> None:
    for future in futures:
        if not future.done():
            future.set_result(value)
