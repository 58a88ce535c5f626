"""Console sessions kept in the database: the cookie carries a random token, the table its
hash, the user, the CSRF token and the expiry. Signing out revokes the session at once in
every worker, so a copied cookie is worthless afterwards; a password change and "sign out
everywhere" revoke all of a user's sessions."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col

from mailer.models import ConsoleSession, User, utcnow

SESSION_LIFETIME = timedelta(hours=12)  # one working day; staff sign in again the next morning
# Time to type the code from the authenticator app after the password.
PENDING_LIFETIME = timedelta(minutes=10)
# last_seen_at is written at most this often, not on every request.
TOUCH_EVERY = timedelta(minutes=5)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def start(
    session: Session,
    user: User,
    ip: str | None,
    user_agent: str | None,
    *,
    second_factor_pending: bool = False,
) -> str:
    """A new session for `user` (the caller commits); returns the cookie's token. A session
    waiting for the second factor opens only the code page."""
    assert user.id is not None
    token = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        ConsoleSession(
            token_hash=_digest(token),
            user_id=user.id,
            csrf=secrets.token_urlsafe(24),
            created_at=now,
            last_seen_at=now,
            expires_at=now + (PENDING_LIFETIME if second_factor_pending else SESSION_LIFETIME),
            second_factor_pending=second_factor_pending,
            ip=(ip or None) and ip[:64],
            user_agent=(user_agent or None) and user_agent[:300],
        )
    )
    return token


def find(session: Session, token: str | None) -> ConsoleSession | None:
    """The live session of a cookie: not revoked, not expired; None otherwise."""
    if not token or len(token) > 200:
        return None
    row = session.get(ConsoleSession, _digest(token))
    now = utcnow()
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if now - row.last_seen_at > TOUCH_EVERY:
        row.last_seen_at = now
        session.add(row)
        session.commit()
    return row


def revoke(session: Session, row: ConsoleSession) -> None:
    """End one session (the caller commits)."""
    row.revoked_at = utcnow()
    session.add(row)


def revoke_all(session: Session, user_id: int) -> int:
    """End every live session of a user (the caller commits); how many there were."""
    result = session.execute(
        sa.update(ConsoleSession)
        .where(
            col(ConsoleSession.user_id) == user_id,
            col(ConsoleSession.revoked_at).is_(None),
        )
        .values(revoked_at=utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def purge_expired(session: Session) -> int:
    """Delete sessions that ended more than a day ago (the caller commits). Run at each
    sign-in, so the table holds about a day of sessions."""
    cutoff = utcnow() - timedelta(days=1)
    result = session.execute(
        sa.delete(ConsoleSession).where(
            sa.or_(
                col(ConsoleSession.expires_at) < cutoff,
                col(ConsoleSession.revoked_at) < cutoff,
            )
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
