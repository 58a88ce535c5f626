"""The suppression list: hashes of addresses never to be mailed again.

Only a hash of the normalised address is kept, so an entry survives GDPR erasure of the
contact. Segments leave out suppressed addresses whatever the contact's status says."""

from __future__ import annotations

import hashlib

from sqlmodel import Session

from mailer.audience.addresses import InvalidAddress, normalize_email
from mailer.models import Suppression


def address_hash(email: str) -> str:
    """sha256 hex of the normalised address: what the suppression list keeps."""
    try:
        normal = normalize_email(email)
    except InvalidAddress:
        # Suppressing garbage must still work (a bounce may quote a broken address).
        normal = email.strip().lower()
    return hashlib.sha256(normal.encode()).hexdigest()


def suppress(session: Session, email: str, reason: str) -> None:
    """Put an address on the suppression list (idempotent; the first reason is kept)."""
    digest = address_hash(email)
    if session.get(Suppression, digest) is None:
        session.add(Suppression(address_hash=digest, reason=reason[:32]))
        session.flush()


def is_suppressed(session: Session, email: str) -> bool:
    """Whether an address is on the suppression list."""
    return session.get(Suppression, address_hash(email)) is not None
