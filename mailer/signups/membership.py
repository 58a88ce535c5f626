"""Membership applications sent from the public form: storing them, and staff approving
(membership recorded by `mailer.audience.membership.record_join`, as the console's "Zaznamenat
vstup do SDRUK" and `sdruk libraries join` record it) or rejecting them.

An application counts as the recruitment reminders' goal the moment it is stored (see
`mailer.audience.engagement`, field `joined`), so no reminder asks a library that just
applied to apply; a rejected one stops counting."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from mailer.audience.contacts import address_hash
from mailer.audience.membership import record_join
from mailer.delivery.transactional import enqueue
from mailer.events.record import record_event
from mailer.models import (
    ApplicationStatus,
    AuditEntry,
    Contact,
    EventKind,
    Library,
    MembershipApplication,
    OutboxMessage,
    Run,
    utcnow,
)
from mailer.settings import get_settings
from mailer.signups import notices


class ApplicationError(ValueError):
    """An application that cannot be decided as asked (Czech message for staff)."""


def _audit(session: Session, actor: str, action: str, target: str, **detail: Any) -> None:
    session.add(AuditEntry(actor=actor, action=action, target=target[:300], detail=detail))


@dataclass(frozen=True)
class Applicant:
    """What the public form sends, already checked by the page."""

    library_name: str
    library_type: str
    region: str
    town: str
    siglum: str
    contact_name: str
    contact_role: str
    email: str
    phone: str
    ico: str
    dic: str
    billing_address: str
    consent_text: str


@dataclass(frozen=True)
class Origin:
    """Where an application came from: the campaign message whose link was followed, if any."""

    outbox_id: int | None = None
    ip: str | None = None
    user_agent: str | None = None


def library_by_siglum(session: Session, siglum: str) -> Library | None:
    siglum = siglum.strip().upper()
    if not siglum:
        return None
    return session.exec(select(Library).where(col(Library.siglum) == siglum)).first()


def already_applied(session: Session, outbox_id: int) -> bool:
    return (
        session.exec(
            select(MembershipApplication.id).where(MembershipApplication.outbox_id == outbox_id)
        ).first()
        is not None
    )


def submit(session: Session, applicant: Applicant, origin: Origin) -> MembershipApplication:
    """Store a pending application, count it as the library's reminders' goal at once, confirm
    it to the applicant and tell staff. The caller commits (and catches a second application
    from the same campaign message, refused by the unique outbox id)."""
    contact_id = library_id = run_id = None
    step = None
    if origin.outbox_id is not None:
        message = session.get(OutboxMessage, origin.outbox_id)
        if message is not None:
            run = session.get(Run, message.run_id)
            run_id, step = message.run_id, run.step if run else None
            contact_id = message.contact_id
            contact = session.get(Contact, contact_id) if contact_id else None
            library_id = contact.library_id if contact else None
    if library_id is None:
        found = library_by_siglum(session, applicant.siglum)
        library_id = found.id if found else None
    if contact_id is None:
        digest = address_hash(applicant.email)
        contact_id = session.exec(select(Contact.id).where(Contact.address_hash == digest)).first()
    application = MembershipApplication(
        library_id=library_id,
        contact_id=contact_id,
        outbox_id=origin.outbox_id,
        run_id=run_id,
        step=step,
        library_name=applicant.library_name,
        library_type=applicant.library_type,
        region=applicant.region,
        town=applicant.town,
        siglum=applicant.siglum.strip().upper(),
        contact_name=applicant.contact_name,
        contact_role=applicant.contact_role,
        email=applicant.email,
        phone=applicant.phone,
        ico=applicant.ico,
        dic=applicant.dic,
        billing_address=applicant.billing_address,
        consent_text=applicant.consent_text,
        ip=origin.ip,
        user_agent=(origin.user_agent or "")[:300] or None,
    )
    session.add(application)
    session.flush()
    assert application.id is not None
    record_event(
        session,
        EventKind.APPLIED,
        contact_id=contact_id,
        run_id=run_id,
        outbox_id=origin.outbox_id,
        detail={"application_id": application.id, "library_id": library_id, "step": step},
    )
    enqueue(session, notices.application_received(application), email=application.email)
    enqueue(session, notices.application_for_staff(application), email=get_settings().staff_email)
    return application


def decide(
    session: Session,
    application_id: int,
    *,
    approve: bool,
    actor: str,
    note: str = "",
    send_note: bool = False,
) -> MembershipApplication:
    """Staff approve (membership is recorded as the console records it) or reject a pending
    application, and the applicant's mail with the decision is queued in the same
    transaction: no decision without its mail, and no mail for a decision rolled back. A
    rejection carries staff's note only with `send_note` (the note is written for staff
    first). Raises ApplicationError when it is not pending or has no library."""
    application = session.exec(
        select(MembershipApplication)
        .where(MembershipApplication.id == application_id)
        .with_for_update()
    ).first()
    if application is None:
        raise ApplicationError("Přihláška neexistuje.")
    if application.status != ApplicationStatus.PENDING:
        raise ApplicationError("O přihlášce už bylo rozhodnuto.")
    now = utcnow()
    library = None
    if approve:
        library = session.get(Library, application.library_id) if application.library_id else None
        if library is None:
            raise ApplicationError(
                "Knihovna přihlášky není v adresáři: nejprve ji přiřaďte (podle sigly), "
                "pak přihlášku schvalte."
            )
    # The decision itself is a conditional UPDATE: SQLite has no FOR UPDATE, so two staff
    # deciding at once could both have read "pending"; only one UPDATE finds it still so,
    # and the other is refused before it records anything or queues a second mail.
    status = ApplicationStatus.APPROVED if approve else ApplicationStatus.REJECTED
    claimed = session.connection().execute(
        sa.update(MembershipApplication)
        .where(
            col(MembershipApplication.id) == application_id,
            col(MembershipApplication.status) == ApplicationStatus.PENDING.value,
        )
        .values(status=status.value, decided_at=now, decided_by=actor, decision_note=note[:1000])
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:
        raise ApplicationError("O přihlášce už bylo rozhodnuto.")
    if library is not None:
        record_join(
            session,
            library,
            actor=actor,
            contact=application.contact_id,
            note=note or f"schválená přihláška č. {application.id}",
            run_id=application.run_id,
            now=now,
        )
    else:
        _audit(session, actor, "application_rejected", application.library_name, note=note)
    session.refresh(application)
    if approve:
        notice = notices.application_approved(application)
    else:
        notice = notices.application_rejected(application, note[:1000] if send_note else "")
    enqueue(session, notice, email=application.email, contact_id=application.contact_id)
    return application


def assign_library(
    session: Session, application_id: int, siglum: str, *, actor: str
) -> MembershipApplication:
    """Staff link a pending application to a directory library by its siglum."""
    application = session.get(MembershipApplication, application_id)
    if application is None:
        raise ApplicationError("Přihláška neexistuje.")
    library = library_by_siglum(session, siglum)
    if library is None:
        raise ApplicationError(f"Knihovna se siglou „{siglum.strip().upper()}“ v adresáři není.")
    application.library_id = library.id
    session.add(application)
    _audit(session, actor, "application_library", library.name, application_id=application_id)
    session.flush()
    return application
