"""Counters for the public forms' rate limits, and one-time marks for spent proofs of work,
kept in the database: every web process (and a restarted one) sees the same counts.

Each key counts hits in fixed windows; a hit is judged on a sliding estimate, the previous
window's count weighted by how much of it still overlaps the last `seconds`, plus the current
window's count. So a client cannot double its share by sending at a window's edge, and each
hit costs one read and one conditional upsert (INSERT … ON CONFLICT DO UPDATE … WHERE …
RETURNING, on SQLite and PostgreSQL alike), atomic however many processes race on it.
A refused hit is not counted, so a flood does not prolong its own refusal.

Rows carry the moment after which nothing reads them; when a hit opens a new row, the expired
ones are deleted through an index, in a transaction of their own, at most once a minute per
process (the moment of the last pruning is only an economy: forgetting it costs one more
delete, nothing else)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql, sqlite

from mailer.models import FormRateCounter

COUNTERS: sa.Table = FormRateCounter.__table__  # type: ignore[attr-defined]
PRUNE_EVERY = 60  # seconds
_last_pruned: dict[str, float] = {}


@dataclass(frozen=True)
class Limit:
    """At most `count` hits in any `seconds`."""

    count: int
    seconds: int


def _insert(conn: Connection) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(COUNTERS)


def hit(engine: Engine, key: str, limit: Limit, now: float | None = None) -> bool:
    """Count a hit on `key` (already a hash); False when it is over the limit (then it is not
    counted)."""
    now = time.time() if now is None else now
    size = limit.seconds
    start = int(now // size) * size
    with engine.begin() as conn:
        previous = conn.execute(
            sa.select(COUNTERS.c.count).where(
                COUNTERS.c.key == key, COUNTERS.c.window_start == start - size
            )
        ).scalar()
        overlap = 1 - (now - start) / size
        # The current window may hold fewer hits than this for one more to pass.
        room = math.ceil(limit.count - (previous or 0) * overlap)
        if room <= 0:
            return False
        upsert = _insert(conn).values(
            key=key, window_start=start, count=1, expires_at=start + 2 * size
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=[COUNTERS.c.key, COUNTERS.c.window_start],
            set_={"count": COUNTERS.c.count + 1},
            where=COUNTERS.c.count < room,
        ).returning(COUNTERS.c.count)
        counted = conn.execute(upsert).scalar()
    if counted == 1:
        _prune_now_and_then(engine, now)
    return counted is not None


def take_once(engine: Engine, key: str, lifetime: int, now: float | None = None) -> bool:
    """Mark `key` used for `lifetime` seconds; False when it already was (a replay)."""
    now = time.time() if now is None else now
    with engine.begin() as conn:
        # A mark that expired but was not yet pruned is taken over, not refused.
        mark = _insert(conn).values(
            key=key, window_start=0, count=1, expires_at=int(now) + lifetime
        )
        mark = mark.on_conflict_do_update(
            index_elements=[COUNTERS.c.key, COUNTERS.c.window_start],
            set_={"expires_at": mark.excluded.expires_at},
            where=COUNTERS.c.expires_at < int(now),
        ).returning(COUNTERS.c.count)
        taken = conn.execute(mark).scalar()
    if taken is not None:
        _prune_now_and_then(engine, now)
    return taken is not None


def _prune_now_and_then(engine: Engine, now: float) -> None:
    database = engine.url.render_as_string()
    if abs(now - _last_pruned.get(database, -math.inf)) >= PRUNE_EVERY:
        _last_pruned[database] = now
        prune(engine, now)


def prune(engine: Engine, now: float | None = None) -> int:
    """Delete the rows nothing reads any more; how many."""
    now = time.time() if now is None else now
    with engine.begin() as conn:
        result = conn.execute(sa.delete(COUNTERS).where(COUNTERS.c.expires_at < int(now)))
    return int(result.rowcount or 0)
