"""Two-factor sign-in with time-based codes (TOTP, RFC 6238, through pyotp): setting it up,
checking a code once, and turning it off (by the user with a code, by another admin or by
`sdruk users reset-2fa`)."""

from __future__ import annotations

import time

import pyotp
from sqlmodel import Session

from mailer.models import User, utcnow
from mailer.settings import get_settings

ISSUER = "SDRUK konzole"
STEP_SECONDS = 30


def is_enabled(user: User) -> bool:
    return user.totp_enabled_at is not None and bool(user.totp_secret)


def begin(session: Session, user: User) -> str:
    """A new secret for the user, not yet in force (the caller commits); returns it."""
    secret = pyotp.random_base32()
    user.totp_secret = secret
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.add(user)
    return secret


def provisioning_uri(user: User) -> str:
    """The otpauth:// address an authenticator app takes (typed or pasted, no QR code)."""
    assert user.totp_secret
    issuer = f"{ISSUER} ({get_settings().sender_name})"
    return pyotp.TOTP(user.totp_secret).provisioning_uri(name=user.email, issuer_name=issuer)


def check(session: Session, user: User, code: str) -> bool:
    """Whether `code` is the user's current code (one step of clock drift either way), used
    for the first time; a used code is remembered so it cannot be replayed (the caller
    commits)."""
    digits = "".join(ch for ch in code if not ch.isspace())
    if not user.totp_secret or len(digits) != 6 or not digits.isascii() or not digits.isdigit():
        return False
    totp = pyotp.TOTP(user.totp_secret)
    now = int(time.time())
    for offset in (0, -1, 1):
        step = now // STEP_SECONDS + offset
        if totp.at(step * STEP_SECONDS) == digits:
            if user.totp_last_step is not None and step <= user.totp_last_step:
                return False
            user.totp_last_step = step
            session.add(user)
            return True
    return False


def confirm(session: Session, user: User, code: str) -> bool:
    """Put the secret being set up in force when the code from the app matches."""
    if user.totp_secret is None or user.totp_enabled_at is not None:
        return False
    if not check(session, user, code):
        return False
    user.totp_enabled_at = utcnow()
    session.add(user)
    return True


def turn_off(session: Session, user: User) -> None:
    """No second factor any more (the caller commits)."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    session.add(user)
