"""Event registrations from the public page: seats per session with a waiting list, cancelling
(the first on the waiting list moves up and is told), closing registration, and the
participant list staff export.

Seats are counted under a lock on the campaign's `registration_page` row (an UPDATE: a row
lock on PostgreSQL, the write lock on SQLite), so two people taking the last seat at the same
moment cannot both get it; the unique (campaign, session, address) constraint makes a second
registration of the same person impossible whatever the timing."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from mailer.audience.contacts import address_hash
from mailer.compose.campaigns import Blueprint
from mailer.compose.campaigns import Session as EventSession
from mailer.compose.czech import format_moment
from mailer.csvfiles import csv_document
from mailer.delivery.transactional import enqueue
from mailer.events.record import registered as record_registered
from mailer.models import (
    Contact,
    EventRegistration,
    OutboxMessage,
    RegistrationPage,
    RegistrationStatus,
    utcnow,
)
from mailer.signups import notices

ACTIVE = (RegistrationStatus.REGISTERED.value, RegistrationStatus.WAITLISTED.value)
STATUS_LABELS = {
    RegistrationStatus.REGISTERED.value: "přihlášen(a)",
    RegistrationStatus.WAITLISTED.value: "čeká na místo",
    RegistrationStatus.CANCELLED.value: "zrušeno",
}


class RegistrationError(ValueError):
    """A registration that cannot be made (Czech message for the page)."""


@dataclass(frozen=True)
class Registrant:
    name: str
    role: str
    library_name: str
    email: str


@dataclass(frozen=True)
class Outcome:
    registration: EventRegistration
    # False: this address was already registered for the session (nothing new was stored).
    created: bool


def _lock(session: Session, campaign: str) -> RegistrationPage:
    """The campaign's page row, locked until the transaction ends."""
    if session.get(RegistrationPage, campaign) is None:
        try:
            with session.begin_nested():
                session.add(RegistrationPage(campaign=campaign))
        except IntegrityError:
            pass  # created by a concurrent registration
    session.execute(
        sa.update(RegistrationPage)
        .where(col(RegistrationPage.campaign) == campaign)
        .values(changes=col(RegistrationPage.changes) + 1)
    )
    page = session.get(RegistrationPage, campaign, populate_existing=True)
    assert page is not None
    return page


def is_closed(session: Session, campaign: str) -> bool:
    page = session.get(RegistrationPage, campaign)
    return page is not None and page.closed_at is not None


def taken(session: Session, campaign: str) -> dict[int, int]:
    """Registered (not wait-listed) people per session index."""
    rows = session.exec(
        select(EventRegistration.session_index, sa.func.count())
        .where(
            EventRegistration.campaign == campaign,
            EventRegistration.status == RegistrationStatus.REGISTERED.value,
        )
        .group_by(col(EventRegistration.session_index))
    ).all()
    return {index: int(n) for index, n in rows}


def _contact_for(
    session: Session, email: str, outbox_id: int | None
) -> tuple[int | None, int | None]:
    """(contact id, run id): the campaign message's recipient when the link carried one, else
    the directory contact with this address (never told to the person)."""
    if outbox_id is not None:
        message = session.get(OutboxMessage, outbox_id)
        if message is not None and message.email == email:
            return message.contact_id, message.run_id
    contact_id = session.exec(
        select(Contact.id).where(Contact.address_hash == address_hash(email))
    ).first()
    return contact_id, None


def register(
    session: Session,
    blueprint: Blueprint,
    session_index: int,
    person: Registrant,
    *,
    outbox_id: int | None = None,
    ip: str | None = None,
) -> Outcome:
    """Register `person` for one session: a seat while there is one, else the waiting list.
    Sends the confirmation (with the calendar file) or the waiting-list notice. The caller
    commits."""
    assert blueprint.event is not None
    occurrences = blueprint.event.occurrences()
    if not 0 <= session_index < len(occurrences):
        raise RegistrationError("Vyberte prosím termín ze seznamu.")
    page = _lock(session, blueprint.slug)
    if page.closed_at is not None:
        raise RegistrationError("Registrace na tuto akci je uzavřena.")
    existing = session.exec(
        select(EventRegistration).where(
            EventRegistration.campaign == blueprint.slug,
            EventRegistration.session_index == session_index,
            EventRegistration.email == person.email,
        )
    ).first()
    if existing is not None and existing.status in ACTIVE:
        return Outcome(existing, created=False)
    capacity = occurrences[session_index].capacity
    full = capacity is not None and taken(session, blueprint.slug).get(session_index, 0) >= capacity
    status = RegistrationStatus.WAITLISTED if full else RegistrationStatus.REGISTERED
    contact_id, run_id = _contact_for(session, person.email, outbox_id)
    now = utcnow()
    if existing is not None:  # cancelled before: the same row comes back
        registration = existing
        registration.status = status
        registration.created_at = now
        registration.cancelled_at = None
        registration.name, registration.role = person.name, person.role
        registration.library_name = person.library_name
    else:
        registration = EventRegistration(
            campaign=blueprint.slug,
            session_index=session_index,
            status=status,
            name=person.name,
            role=person.role,
            library_name=person.library_name,
            email=person.email,
            contact_id=contact_id,
            run_id=run_id,
            outbox_id=outbox_id,
            ip=ip,
            created_at=now,
        )
    session.add(registration)
    session.flush()
    if registration.contact_id is not None:
        # The campaign's `registered` goal: reminders stop asking this person to register.
        record_registered(
            session,
            registration.contact_id,
            campaign=blueprint.slug,
            run_id=registration.run_id,
            source="web",
            detail={"registration_id": registration.id, "session": session_index},
        )
    _tell(session, blueprint, registration)
    return Outcome(registration, created=True)


def _tell(session: Session, blueprint: Blueprint, registration: EventRegistration) -> None:
    if registration.status == RegistrationStatus.REGISTERED:
        notice = notices.registration_confirmed(blueprint, registration)
    else:
        notice = notices.registration_waitlisted(blueprint, registration)
    enqueue(session, notice, email=registration.email, contact_id=registration.contact_id)


def cancel(
    session: Session, blueprint: Blueprint, registration_id: int
) -> EventRegistration | None:
    """Cancel a registration (idempotent). A freed seat goes to the first on the session's
    waiting list, who is told by e-mail. None when the registration does not exist."""
    registration = session.get(EventRegistration, registration_id)
    if registration is None or registration.campaign != blueprint.slug:
        return None
    _lock(session, blueprint.slug)
    session.refresh(registration)
    if registration.status == RegistrationStatus.CANCELLED:
        return registration
    had_seat = registration.status == RegistrationStatus.REGISTERED
    registration.status = RegistrationStatus.CANCELLED
    registration.cancelled_at = utcnow()
    session.add(registration)
    session.flush()
    if had_seat:
        promote(session, blueprint, registration.session_index)
    return registration


def promote(session: Session, blueprint: Blueprint, session_index: int) -> list[EventRegistration]:
    """Move wait-listed people up while the session has free seats, first come first served;
    each is told. The caller holds the lock (register/cancel) and commits."""
    assert blueprint.event is not None
    capacity = blueprint.event.occurrences()[session_index].capacity
    moved: list[EventRegistration] = []
    while True:
        seated = taken(session, blueprint.slug).get(session_index, 0)
        if capacity is not None and seated >= capacity:
            return moved
        waiting = session.exec(
            select(EventRegistration)
            .where(
                EventRegistration.campaign == blueprint.slug,
                EventRegistration.session_index == session_index,
                EventRegistration.status == RegistrationStatus.WAITLISTED.value,
            )
            .order_by(col(EventRegistration.created_at), col(EventRegistration.id))
            .limit(1)
        ).first()
        if waiting is None:
            return moved
        waiting.status = RegistrationStatus.REGISTERED
        waiting.promoted_at = utcnow()
        session.add(waiting)
        session.flush()
        enqueue(
            session,
            notices.registration_promoted(blueprint, waiting),
            email=waiting.email,
            contact_id=waiting.contact_id,
        )
        moved.append(waiting)


def set_closed(session: Session, campaign: str, closed: bool, actor: str) -> None:
    page = _lock(session, campaign)
    page.closed_at = utcnow() if closed else None
    page.closed_by = actor if closed else None
    session.add(page)
    session.flush()


def participants(session: Session, campaign: str) -> list[EventRegistration]:
    return list(
        session.exec(
            select(EventRegistration)
            .where(EventRegistration.campaign == campaign)
            .order_by(
                col(EventRegistration.session_index),
                col(EventRegistration.status),
                col(EventRegistration.created_at),
            )
        ).all()
    )


def session_label(occurrence: EventSession) -> str:
    return f"{occurrence.title}, {format_moment(occurrence.start)}, {occurrence.venue}"


def participants_csv(blueprint: Blueprint, rows: list[EventRegistration]) -> str:
    """The list for staff's spreadsheet: Czech headers, `;`, BOM (mailer.csvfiles)."""
    assert blueprint.event is not None
    occurrences = blueprint.event.occurrences()
    header = ["Termín", "Stav", "Jméno", "Funkce", "Knihovna", "E-mail", "Registrace"]
    return csv_document(
        header,
        (
            [
                session_label(occurrences[r.session_index])
                if r.session_index < len(occurrences)
                else str(r.session_index + 1),
                STATUS_LABELS.get(r.status, r.status),
                r.name,
                r.role,
                r.library_name,
                r.email,
                format_moment(r.created_at),
            ]
            for r in rows
        ),
    )
