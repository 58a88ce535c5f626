"""Where a send worker's database work runs, and how it outlives a database hiccup.

On PostgreSQL always on the worker's database thread. On SQLite, claims and group commits run on
the event loop's own thread whenever the database is free that instant (a connection without
busy timeout), else on the database thread, which waits its turn; the work is short, and the
hop through the thread cost more than the work. Transient faults (lost connection, lock,
deadlock, failover) are retried with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from sqlalchemy import Connection, Engine
from sqlalchemy import exc as sa_exc

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["WorkerDatabase", "transient"]


class WorkerDatabase:
    """The database side of mailer.delivery.send.Worker: its database thread, its inline
    SQLite connection and retries on transient faults. The worker sets the attributes below."""

    engine: Engine
    _db: ThreadPoolExecutor
    _inline: Connection | None
    _stop: asyncio.Event | None

    async def _db_call(self, fn: Callable[[Connection], T]) -> T:
        def run() -> T:
            with self.engine.begin() as conn:
                return fn(conn)

        return await asyncio.get_running_loop().run_in_executor(self._db, run)

    async def _db_retry(self, fn: Callable[[Connection], T], what: str) -> T | None:
        """`fn` in its own transaction, tried again with backoff while the database has a
        transient fault (connection dropped, "database is locked", deadlock, failover): a
        worker, the embedded one too, must outlive a database hiccup. None when the worker is
        told to stop while waiting. Any other error is a bug and is raised."""
        delay = 0.5
        while True:
            try:
                return await self._db_call(fn)
            except sa_exc.DBAPIError as exc:
                if not transient(exc):
                    raise
                log.warning(
                    "%s selhalo kvůli dočasné chybě databáze (%s), zkouším znovu za %.1f s.",
                    what,
                    str(exc.orig or exc).strip().splitlines()[0][:200],
                    delay,
                )
            if self._stop is not None and self._stop.is_set():
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for((self._stop or asyncio.Event()).wait(), delay)
            delay = min(delay * 2, 30.0)

    def _inline_call(self, fn: Callable[[Connection], T]) -> T | None:
        """SQLite: `fn` in its own transaction on the event loop's own thread, when the
        database is free this very instant; None when it is not (the caller then takes the
        database thread, which waits its turn). `fn` never returns None.

        Why: the worker's own database work (claims, group commits) is short, but the round
        trip through the database thread (queue, wake-up, the GIL shared with the busy loop,
        the loop's wake-up) took milliseconds, and every sender waits for a group commit
        before handing over its next message. This connection has no busy timeout, so work
        that would have to wait for another writer never blocks the loop."""
        conn = self._inline
        if conn is None:
            return None
        try:
            with conn.begin():
                return fn(conn)
        except sa_exc.OperationalError as exc:
            if _lock_wait(exc):
                return None
            raise

    def _open_inline(self) -> None:
        if self.engine.dialect.name != "sqlite":
            return
        conn = self.engine.connect()
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute("PRAGMA busy_timeout = 0")
        self._inline = conn

    def _close_inline(self) -> None:
        conn, self._inline = self._inline, None
        if conn is not None:
            # Not back to the pool with its busy timeout of zero: closed instead.
            conn.invalidate()
            conn.close()


def _lock_wait(exc: sa_exc.OperationalError) -> bool:
    """SQLite's "database is locked" (SQLITE_BUSY or SQLITE_LOCKED, any extended code)."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (5, 6)


def transient(exc: sa_exc.DBAPIError) -> bool:
    """A fault that passes: lost connection, lock timeout, deadlock, serialization failure
    (psycopg's TransactionRollback is an OperationalError), SQLite's "database is locked"."""
    return exc.connection_invalidated or isinstance(
        exc, (sa_exc.OperationalError, sa_exc.InterfaceError)
    )
