"""Subscribing to the association's news with double opt-in: a sign-up is stored as a request
and confirmed from a signed link (valid 7 days) that only the address's owner receives.
Confirming records consent with its time, source, IP and the form's wording, sets the chosen
topics and sends the welcome message, the same for everyone.

Nothing here tells the person whether the address was already known: the sign-up always
answers alike and always sends the same confirmation mail."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from sqlmodel import Session, select

from mailer.audience import tracking_consent as consent
from mailer.audience.contacts import address_hash
from mailer.delivery.transactional import enqueue
from mailer.events import record
from mailer.models import (
    Contact,
    ContactStatus,
    LegalBasis,
    LegalBasisRecord,
    SubscriptionRequest,
    Topic,
    utcnow,
)
from mailer.signups import notices
from mailer.tokens import Purpose, Signer

LINK_LIFETIME = timedelta(days=7)
SOURCE = "webový formulář odběru novinek (dvojí potvrzení)"


@dataclass(frozen=True)
class SignUp:
    email: str
    first_name: str
    last_name: str
    library_name: str
    topics: list[str]
    consent_text: str
    # The answer to the tracking question (TrackingConsent value) and its wording, if answered.
    tracking_consent: str | None = None
    tracking_wording: str | None = None


def request(
    session: Session, signup: SignUp, signer: Signer, *, ip: str | None, user_agent: str | None
) -> SubscriptionRequest:
    """Store the sign-up and send the confirmation link. The caller commits."""
    pending = SubscriptionRequest(
        email=signup.email,
        first_name=signup.first_name,
        last_name=signup.last_name,
        library_name=signup.library_name,
        topics=list(signup.topics),
        consent_text=signup.consent_text,
        tracking_consent=signup.tracking_consent,
        tracking_wording=signup.tracking_wording,
        ip=ip,
        user_agent=(user_agent or "")[:300] or None,
    )
    session.add(pending)
    session.flush()
    assert pending.id is not None
    token = signer.sign(Purpose.CONFIRM_SUBSCRIPTION, pending.id, int(time.time()))
    # To the address only, never to a contact: the message is the same whoever owns it.
    enqueue(session, notices.subscription_confirm(token), email=signup.email)
    return pending


def verify_link(signer: Signer, token: str, now: float | None = None) -> tuple[int, bool] | None:
    """(request id, still valid) for a genuine link; None for an altered or foreign one."""
    ids = signer.verify(Purpose.CONFIRM_SUBSCRIPTION, token)
    if not ids or len(ids) != 2:
        return None
    issued = ids[1]
    current = time.time() if now is None else now
    return ids[0], 0 <= current - issued <= LINK_LIFETIME.total_seconds()


def confirm(
    session: Session, request_id: int, signer: Signer, *, ip: str | None
) -> SubscriptionRequest | None:
    """Confirm a sign-up (idempotent: a second confirmation changes nothing and sends nothing).
    None when the request is gone."""
    pending = session.get(SubscriptionRequest, request_id)
    if pending is None:
        return None
    if pending.confirmed_at is not None:
        return pending
    now = utcnow()
    evidence = (
        f"potvrzeno {now.isoformat(timespec='seconds')} z IP {ip or 'neznámé'}; "
        f"přihlášeno {pending.created_at.isoformat(timespec='seconds')} z IP "
        f"{pending.ip or 'neznámé'}; témata: {', '.join(pending.topics) or 'žádné'}; "
        f"znění souhlasu: {pending.consent_text}"
    )
    contact = session.exec(
        select(Contact).where(Contact.address_hash == address_hash(pending.email))
    ).first()
    if contact is None:
        contact = Contact(
            email=pending.email,
            first_name=pending.first_name,
            last_name=pending.last_name,
            legal_basis=LegalBasis.CONSENT,
        )
        session.add(contact)
        session.flush()
    assert contact.id is not None
    if contact.status == ContactStatus.UNSUBSCRIBED:
        record.resubscribe(session, contact.id, SOURCE, evidence=evidence, now=now)
    elif contact.status == ContactStatus.ACTIVE:
        contact.legal_basis = LegalBasis.CONSENT
        contact.updated_at = now
        session.add(contact)
        session.add(
            LegalBasisRecord(
                contact_id=contact.id,
                basis=LegalBasis.CONSENT,
                source=SOURCE,
                evidence=evidence[:2000],
                recorded_at=now,
            )
        )
    # A bounced or complained address stays off: an objection is final.
    if pending.tracking_consent is not None:
        # Recorded when confirmed, as the consent to mailing is: the address's owner answered.
        consent.record_consent(
            session,
            contact,
            pending.tracking_consent,
            source=consent.SOURCE_SUBSCRIBE,
            wording=pending.tracking_wording,
            ip=pending.ip,
            now=now,
        )
    for topic in Topic:
        if topic.value in pending.topics:
            record.opt_in_topic(session, contact.id, topic, SOURCE, now=now)
        else:
            record.opt_out_topic(session, contact.id, topic, SOURCE, now=now)
    pending.confirmed_at = now
    pending.confirmed_ip = ip
    pending.contact_id = contact.id
    session.add(pending)
    session.flush()
    preferences = signer.sign(Purpose.CONTACT_PREFERENCES, contact.id)
    enqueue(
        session, notices.subscription_welcome(preferences, pending.first_name), email=pending.email
    )
    return pending
