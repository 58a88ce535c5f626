"""The sign-in throttle, kept in the database so it holds across workers and restarts.

Failures count per account and client address together: after a few, that pair waits for a
growing delay. So an attacker at one address slows down only their own attempts, and the real
user, at their own address, keeps signing in. Two wider counters catch the rest: many
addresses guessing one account, and one address trying many accounts. They delay only pairs
that have never signed in successfully, so neither can shut out a user who has signed in from
their address before (an office behind one shared address included)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from mailer.models import SignInThrottle, utcnow
from mailer.web.pages import client_network

ANYWHERE = ""  # the address of the account-wide counter
ANY_ACCOUNT = ""  # the account of the address-wide counter
# Failures forgotten after this long without another.
WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class Rule:
    """After `free` failures, each further one blocks for twice as long as the previous one,
    from `base` up to `cap`."""

    free: int
    base: timedelta
    cap: timedelta

    def block(self, failures: int) -> timedelta | None:
        over = failures - self.free
        if over < 0:
            return None
        return min(self.base * (2 ** min(over, 20)), self.cap)


PAIR = Rule(free=5, base=timedelta(seconds=30), cap=timedelta(hours=1))
ACCOUNT = Rule(free=20, base=timedelta(seconds=30), cap=timedelta(minutes=15))
ADDRESS = Rule(free=30, base=timedelta(seconds=30), cap=timedelta(minutes=15))


def _key(account: str, address: str) -> tuple[str, str]:
    # An IPv6 client counts by its /64, as the public forms' limits count it.
    return account.strip().lower()[:320], (client_network(address) if address else "neznámá")[:64]


def _row(session: Session, account: str, address: str) -> SignInThrottle:
    row = session.get(SignInThrottle, (account, address))
    if row is None:
        row = SignInThrottle(account=account, address=address)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:
            # Another worker created it in the meantime.
            found = session.get(SignInThrottle, (account, address))
            assert found is not None
            row = found
    return row


def _wait_text(until: datetime, now: datetime) -> str:
    seconds = max(1, int((until - now).total_seconds()))
    if seconds < 90:
        return f"{seconds} s"
    return f"{(seconds + 59) // 60} min"


def refusal(session: Session, account: str, address: str) -> str | None:
    """Why this account may not try to sign in from this address now (Czech), or None."""
    account, address = _key(account, address)
    now = utcnow()
    pair = session.get(SignInThrottle, (account, address))
    blocks = [pair.blocked_until if pair else None]
    if pair is None or pair.last_success_at is None:
        for key in ((account, ANYWHERE), (ANY_ACCOUNT, address)):
            row = session.get(SignInThrottle, key)
            blocks.append(row.blocked_until if row else None)
    until = max((b for b in blocks if b is not None and b > now), default=None)
    if until is None:
        return None
    return (
        "Příliš mnoho neúspěšných pokusů o přihlášení. "
        f"Zkuste to znovu za {_wait_text(until, now)}."
    )


def record_failure(session: Session, account: str, address: str) -> None:
    """Count a failed attempt (wrong password, unknown account, wrong code) on all three
    counters and commit."""
    account, address = _key(account, address)
    now = utcnow()
    for key, rule in (
        ((account, address), PAIR),
        ((account, ANYWHERE), ACCOUNT),
        ((ANY_ACCOUNT, address), ADDRESS),
    ):
        row = _row(session, *key)
        if row.last_failure_at is None or now - row.last_failure_at > WINDOW:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        block = rule.block(row.failures)
        row.blocked_until = now + block if block else None
        session.add(row)
    session.commit()


def record_success(session: Session, account: str, address: str) -> None:
    """The pair signed in: its failures are forgiven and it is known from now on (the caller
    commits)."""
    account, address = _key(account, address)
    row = _row(session, account, address)
    row.failures = 0
    row.blocked_until = None
    row.last_success_at = utcnow()
    session.add(row)


def forgive(session: Session, account: str) -> None:
    """A new password was set: the account's counters start again (the caller commits)."""
    session.execute(
        sa.delete(SignInThrottle).where(
            col(SignInThrottle.account) == account.strip().lower()[:320]
        )
    )


def purge_stale(session: Session) -> int:
    """Forget counters without a failure for longer than WINDOW that never signed in (the
    caller commits); known pairs stay, since they exempt the real user from wide delays."""
    cutoff = utcnow() - WINDOW
    result = session.execute(
        sa.delete(SignInThrottle).where(
            col(SignInThrottle.last_success_at).is_(None),
            sa.or_(
                col(SignInThrottle.last_failure_at).is_(None),
                col(SignInThrottle.last_failure_at) < cutoff,
            ),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
