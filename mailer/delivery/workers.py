"""Who is sending: the registry of delivery workers, their heartbeats, and taking over at once
the outbox rows of a worker that died.

A worker is known by its id (by default host:pid), its host and its pid. It registers when it
starts, beats every few seconds and leaves when it stops. Another worker declares it dead when
- it ran on the same host and its pid no longer exists (a SIGKILLed worker is seen at once by
  its restart), or
- its heartbeat is older than `stale_after` (a worker on another machine, or a pid reused by
  another process on this one),
and gives its `sending` rows back to the queue, flagged possible_duplicate, without waiting
for their lease. Rows leased to a worker that never registered still wait for their lease.

Every function takes a Connection in an open transaction, like mailer.delivery.outbox.
"""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Connection

from mailer.delivery import limits
from mailer.delivery import outbox as ob
from mailer.models import DeliveryWorker

workers = DeliveryWorker.__table__  # type: ignore[attr-defined]

__all__ = ["beat", "host_name", "pid_alive", "register", "take_over_dead", "unregister"]


def host_name() -> str:
    return socket.gethostname()[:255]


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is just not ours
    return True


def register(conn: Connection, worker: str, host: str, pid: int, now: datetime) -> None:
    """Record this worker as alive (an earlier incarnation under the same id is replaced)."""
    conn.execute(sa.delete(workers).where(workers.c.id == worker))
    conn.execute(
        sa.insert(workers).values(id=worker, host=host, pid=pid, started_at=now, heartbeat_at=now)
    )


def beat(conn: Connection, worker: str, host: str, pid: int, now: datetime) -> None:
    """A sign of life. A worker declared dead by mistake (a stalled machine) registers again;
    the rows taken from it are no longer its own, and its outcomes for them only count as
    sent (outbox.mark_sent), never as a retry or a failure."""
    updated = conn.execute(
        sa.update(workers).where(workers.c.id == worker).values(heartbeat_at=now)
    ).rowcount
    if not updated:
        register(conn, worker, host, pid, now)


def unregister(conn: Connection, worker: str) -> None:
    limits.release_worker(conn, worker)
    conn.execute(sa.delete(workers).where(workers.c.id == worker))


def take_over_dead(
    conn: Connection, me: str, host: str, now: datetime, stale_after: timedelta
) -> int:
    """Give the rows of dead workers back to the queue and forget those workers. Returns how
    many rows came back."""
    dead: list[str] = []
    for row in conn.execute(sa.select(workers).where(workers.c.id != me)):
        if (row.host == host and not pid_alive(row.pid)) or row.heartbeat_at < now - stale_after:
            dead.append(row.id)
    taken = 0
    for worker in dead:
        taken += ob.reclaim_expired(conn, now, worker=worker)
        limits.release_worker(conn, worker)
        conn.execute(sa.delete(workers).where(workers.c.id == worker))
    return taken
