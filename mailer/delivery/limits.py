"""Sending limits that hold across every worker and every restart: messages per second,
minute, hour and day towards one relay, kept in the database as a ledger of sends.

Why in the database: a relay counts what our account sent, whichever worker sent it and
whether that worker restarted since. Microsoft 365 blocks an account for a day after 10,000
recipients; a budget kept in each process's memory (listmonk's most reported throttling bug)
multiplies by the workers and starts again at every restart.

How: every message, right before its SMTP transaction, reserves its place in the ledger of
its scope (the relay). The reservation takes the scope's lock row first (PostgreSQL: a row
lock held to commit; SQLite: the write lock, since the transaction's first statement writes),
counts the sends of each window, and records the send only when every window has room. So
in any window of a limit's length there are at most that many reservations, across workers.

The window a reservation counts is a little longer than the limit's own (`margin`): the relay
sees a message a moment after its reservation (connect, envelope, body), and a send reserved
at 59.9 s must not reach the relay in the same minute as the one reserved at 0.
Clocks: reservations carry the worker's clock; workers on several machines need NTP, and the
margin absorbs small skew.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import sqlalchemy as sa
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from mailer.models import DomainSlot, SendLedger, SendLimitScope

ledger = SendLedger.__table__  # type: ignore[attr-defined]
scopes = SendLimitScope.__table__  # type: ignore[attr-defined]
slots = DomainSlot.__table__  # type: ignore[attr-defined]

__all__ = [
    "PRESETS",
    "URL_OPTIONS",
    "LimitsError",
    "SendLimits",
    "available",
    "limits_from_url",
    "purge",
    "release_slot",
    "reserve",
    "scope_for_url",
    "spread",
    "take_slot",
]

WINDOWS = (("per_second", 1.0), ("per_minute", 60.0), ("per_hour", 3600.0), ("per_day", 86400.0))
_UNITS = {"per_second": "za sekundu", "per_minute": "za minutu", "per_hour": "za hodinu"}


class LimitsError(ValueError):
    """Limits that cannot be used as written; the message says why, in Czech."""


@dataclass(frozen=True)
class SendLimits:
    """Messages per window towards one relay (None: no limit in that window), and SMTP
    transactions at once per recipient domain (across every worker)."""

    per_second: float | None = None
    per_minute: float | None = None
    per_hour: float | None = None
    per_day: float | None = None
    domain_concurrency: int | None = None
    preset: str | None = None

    def windows(self) -> list[tuple[float, int]]:
        """(window seconds, messages) of every limit that is set."""
        out = []
        for name, seconds in WINDOWS:
            value = getattr(self, name)
            if value:
                # A rate below one message a window (0.5 a second) becomes one per longer window.
                if value < 1:
                    out.append((seconds / value, 1))
                else:
                    out.append((seconds, int(value)))
        return out

    @property
    def active(self) -> bool:
        return bool(self.windows())

    @property
    def rate(self) -> float | None:
        """The highest sustained rate (messages a second) the limits allow."""
        rates = [limit / seconds for seconds, limit in self.windows()]
        return min(rates) if rates else None

    def merged(self, **overrides: float | int | None) -> SendLimits:
        """These limits with every override that is not None."""
        changes: dict[str, Any] = {k: v for k, v in overrides.items() if v is not None}
        return replace(self, **changes)

    def describe(self) -> str:
        """Czech, for staff: "nejvýš 30 zpráv za minutu, 10 000 za den"."""
        parts = []
        for name, _ in WINDOWS:
            value = getattr(self, name)
            if value:
                unit = _UNITS.get(name, "za den")
                parts.append(f"{_number(value)} {unit}")
        text = "nejvýš " + ", ".join(parts) if parts else "bez limitu"
        if self.domain_concurrency:
            text += f"; nejvýš {self.domain_concurrency} spojení na jednu cílovou doménu"
        return text


def _number(value: float) -> str:
    if value == int(value):
        return f"{int(value):,}".replace(",", "\u00a0")
    return f"{value:g}".replace(".", ",")


# Published limits of common relays. Microsoft 365 (Exchange Online): 10,000 recipients a day
# and 30 messages a minute per mailbox. Google Workspace (smtp.gmail.com with a user account):
# 2,000 messages a day. Seznam publishes no figure for bulk sending from its mailboxes: these
# are conservative values to confirm with Seznam. `generic`: polite towards an unknown relay.
PRESETS: Mapping[str, SendLimits] = {
    "microsoft365": SendLimits(per_minute=30, per_day=10_000, preset="microsoft365"),
    "gmail": SendLimits(per_minute=60, per_day=2_000, preset="gmail"),
    "seznam": SendLimits(per_minute=20, per_day=1_000, preset="seznam"),
    "generic": SendLimits(per_second=5, domain_concurrency=4, preset="generic"),
}

# Query parameters of SMTP_URL that set limits (the transport ignores them).
URL_OPTIONS = frozenset({"limits", *(name for name, _ in WINDOWS), "domain_concurrency"})


def limits_from_url(url: str, default_preset: str = "") -> SendLimits:
    """The limits SMTP_URL asks for: `?limits=microsoft365` (a preset) and/or
    `per_second`, `per_minute`, `per_hour`, `per_day`, `domain_concurrency`, which override
    the preset's values. `default_preset` (SEND_LIMITS) applies when the URL names none."""
    query = parse_qs(urlsplit(url).query) if "?" in url else {}
    name = (query.get("limits", [""])[-1] or default_preset).strip().lower()
    base = SendLimits()
    if name and name != "none":
        if name not in PRESETS:
            raise LimitsError(
                f"Neznámá sada limitů {name!r}; platné: {', '.join(sorted(PRESETS))}, none."
            )
        base = PRESETS[name]
    overrides: dict[str, float | int | None] = {}
    for field in fields(SendLimits):
        if field.name not in query or field.name == "preset":
            continue
        raw = query[field.name][-1]
        try:
            value = float(raw.replace(",", "."))
        except ValueError as exc:
            raise LimitsError(f"SMTP_URL: {field.name}={raw!r} musí být číslo.") from exc
        if not math.isfinite(value) or value <= 0:
            raise LimitsError(f"SMTP_URL: {field.name} musí být kladné číslo.")
        overrides[field.name] = int(value) if field.name == "domain_concurrency" else value
    return base.merged(**overrides)


def spread(limits: SendLimits, remaining: int) -> tuple[str | None, float | None]:
    """What the limits mean for `remaining` messages: a Czech note when the daily limit
    spreads them over several days (else None), and the least time they can take."""
    from mailer.compose.czech import plural

    rate = limits.rate
    least = remaining / rate if rate and remaining else None
    if not limits.per_day or remaining <= limits.per_day:
        return None, least
    per_day = int(limits.per_day)
    days = math.ceil(remaining / per_day)
    note = (
        f"Denní limit odesílání je {_number(per_day)} zpráv za den: zbývajících "
        f"{_number(remaining)} {plural(remaining, 'zprávu', 'zprávy', 'zpráv')} rozešleme "
        f"postupně, potrvá to nejméně {days} {plural(days, 'den', 'dny', 'dní')}."
    )
    return note, max(least or 0.0, (days - 1) * 86400.0)


def scope_for_url(url: str) -> str:
    """The ledger a transport's sends count in: one per relay account (user, host, port)."""
    parts = urlsplit(url)
    if parts.scheme in ("smtp", "smtps"):
        user = f"{parts.username}@" if parts.username else ""
        return f"{parts.scheme}://{user}{parts.hostname}:{parts.port or ''}"[:300]
    return parts.scheme or "relay"


def margin(window: float) -> float:
    """Extra seconds a window counts (see the module docstring): 2 % of it, at most 2 s."""
    return min(2.0, window * 0.02)


def _lock(conn: Connection, scope: str, now: datetime) -> None:
    # Insert-if-missing, then update: the UPDATE takes the row lock on PostgreSQL and, being
    # the transaction's first write on SQLite, the database's write lock.
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(scopes).values(scope=scope, touched_at=now).on_conflict_do_nothing())
    conn.execute(sa.update(scopes).where(scopes.c.scope == scope).values(touched_at=now))


def _wait_for_room(
    conn: Connection, scope: str, limits: SendLimits, now: datetime, room_needed: int = 1
) -> tuple[int, float]:
    """(messages that fit now in every window, seconds until one more fits when none does)."""
    room = math.inf
    wait = 0.0
    for seconds, limit in limits.windows():
        span = timedelta(seconds=seconds + margin(seconds))
        in_window = (ledger.c.scope == scope) & (ledger.c.at > now - span)
        count = conn.execute(sa.select(sa.func.count()).where(in_window)).scalar_one()
        room = min(room, limit - count)
        if count >= limit:
            # The send that must leave the window before one more fits.
            leaving = conn.execute(
                sa.select(ledger.c.at)
                .where(in_window)
                .order_by(ledger.c.at)
                .offset(count - limit)
                .limit(1)
            ).scalar_one()
            wait = max(wait, (leaving + span - now).total_seconds())
    return (max(int(room), 0) if room != math.inf else 1_000_000), wait


def reserve(conn: Connection, scope: str, limits: SendLimits, worker: str, now: datetime) -> float:
    """Reserve one send in `scope` now: 0 when it is recorded (the message may go), else the
    seconds to wait before asking again (nothing recorded). Run it in its own transaction."""
    _lock(conn, scope, now)
    room, wait = _wait_for_room(conn, scope, limits, now)
    if room <= 0:
        return max(wait, 0.01)
    conn.execute(sa.insert(ledger).values(scope=scope, at=now, worker=worker[:120]))
    return 0.0


def take_slot(
    conn: Connection, domain: str, limit: int, worker: str, now: datetime, hold: float
) -> int | None:
    """A place for one SMTP transaction to `domain` among every worker's (at most `limit` at
    once): its id, or None when they are all taken. Run it in its own transaction; give the
    place back with `release_slot`. A place not given back lapses after `hold` seconds."""
    _lock(conn, f"domain:{domain}"[:300], now)
    taken = slots.c.domain == domain
    conn.execute(sa.delete(slots).where(taken, slots.c.until < now))
    count = conn.execute(sa.select(sa.func.count()).where(taken)).scalar_one()
    if count >= limit:
        return None
    until = now + timedelta(seconds=hold)
    return int(
        conn.execute(
            sa.insert(slots)
            .values(domain=domain[:255], worker=worker[:120], until=until)
            .returning(slots.c.id)
        ).scalar_one()
    )


def release_slot(conn: Connection, slot_id: int) -> None:
    conn.execute(sa.delete(slots).where(slots.c.id == slot_id))


def release_worker(conn: Connection, worker: str) -> None:
    """Every place a (dead) worker held."""
    conn.execute(sa.delete(slots).where(slots.c.worker == worker))


def available(conn: Connection, scope: str, limits: SendLimits, now: datetime) -> tuple[int, float]:
    """How many sends fit in `scope` now, and, when none does, the seconds until one does.
    Advisory (no lock): the feeder claims no more than this; `reserve` decides."""
    return _wait_for_room(conn, scope, limits, now)


def purge(conn: Connection, now: datetime) -> int:
    """Forget sends older than the longest window (a day) and its margin."""
    cutoff = now - timedelta(days=1, seconds=margin(86400) + 60)
    return int(conn.execute(sa.delete(ledger).where(ledger.c.at < cutoff)).rowcount or 0)
