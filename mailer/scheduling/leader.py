"""Which scheduler process is the active one.

APScheduler's FAQ: a job store must not be shared by several schedulers. With PostgreSQL,
several machines may run `schedule.py --role scheduler`; the one holding a session-level
advisory lock is active, the others stand by and try again every few seconds. The lock lives
as long as its database session, so when the active process dies (or its connection is cut)
PostgreSQL releases it and a standby takes over. With SQLite everything is on one machine, and
an exclusive lock on a file in the data directory plays the same part.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
from pathlib import Path
from typing import IO, Protocol

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

log = logging.getLogger(__name__)


class LeaderLock(Protocol):
    def try_acquire(self) -> bool:
        """Become the active scheduler if nobody is; True when this process holds the lock."""
        ...

    def still_held(self) -> bool:
        """False once the lock is lost (e.g. the database connection died)."""
        ...

    def release(self) -> None: ...


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key from a name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class AdvisoryLock:
    """A PostgreSQL session advisory lock on a connection of its own, held until released or
    until the connection ends. The key includes the schema, so separate installations (and
    test schemas) in one database do not block each other."""

    def __init__(self, engine: Engine, name: str = "sdruk-scheduler") -> None:
        self.engine = engine
        self.name = name
        self._conn: Connection | None = None
        self.key: int | None = None

    def try_acquire(self) -> bool:
        if self._conn is not None:
            return self.still_held()
        conn = self.engine.connect()
        try:
            schema = conn.execute(sa.text("select current_schema()")).scalar_one()
            self.key = lock_key(f"{self.name}:{schema}")
            got = bool(
                conn.execute(sa.text("select pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
            )
            # Leave no transaction open on a connection held for hours.
            conn.commit()
        except Exception:
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def still_held(self) -> bool:
        if self._conn is None:
            return False
        try:
            # A session lock ends only with its session: a live connection still holds it.
            self._conn.execute(sa.text("select 1"))
            self._conn.commit()
        except Exception as exc:
            log.warning("Spojení se zámkem plánovače se přerušilo: %s", exc)
            self._drop()
            return False
        return True

    def release(self) -> None:
        if self._conn is None:
            return
        try:
            self._conn.execute(sa.text("select pg_advisory_unlock(:k)"), {"k": self.key})
            self._conn.commit()
        except Exception as exc:
            log.info("Zámek plánovače se neuvolnil čistě (spojení už nežije): %s", exc)
        self._drop()

    def backend_pid(self) -> int | None:
        """The server process holding the lock (tests cut it to simulate a dead machine)."""
        if self._conn is None:
            return None
        return int(self._conn.execute(sa.text("select pg_backend_pid()")).scalar_one())

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:
                pass
            self._conn = None


class FileLock:
    """An exclusive, non-blocking flock on a file: one active scheduler per data directory."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: IO[str] | None = None

    def try_acquire(self) -> bool:
        if self._fh is not None:
            return True
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = self.path.open("a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return True

    def still_held(self) -> bool:
        return self._fh is not None

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def leader_lock(engine: Engine, data_dir: Path) -> LeaderLock:
    """The right lock for the database in use."""
    if engine.dialect.name == "postgresql":
        return AdvisoryLock(engine)
    return FileLock(data_dir / "scheduler.lock")
