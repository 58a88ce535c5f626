"""The console's calls into the other parts of the pipeline (events, audience), kept in one
place so each page says what it wants and not how another module spells it."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, select

from mailer.audience import membership
from mailer.events import record
from mailer.models import (
    Contact,
    Event,
    EventKind,
    Library,
    Topic,
)


def record_event(
    session: Session,
    kind: EventKind,
    contact_id: int | None,
    *,
    run_id: int | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """An event of a staff action, through the events module's one write path."""
    record.record_event(
        session, kind=kind, contact_id=contact_id, run_id=run_id, detail=detail or {}
    )


def unsubscribe(session: Session, contact: Contact, source: str) -> None:
    """Unsubscribes a contact; their queued messages are skipped in the same transaction."""
    assert contact.id is not None
    record.unsubscribe(session, contact.id, source)


def resubscribe(session: Session, contact: Contact, source: str, evidence: str) -> bool:
    """Back on the list only with recorded consent; bounced or complained contacts stay off."""
    assert contact.id is not None
    return record.resubscribe(session, contact.id, source, evidence=evidence)


def opt_out_topic(session: Session, contact_id: int, topic: str, source: str) -> None:
    record.opt_out_topic(session, contact_id, Topic(topic), source)


def opt_in_topic(session: Session, contact_id: int, topic: str, source: str) -> None:
    record.opt_in_topic(session, contact_id, Topic(topic), source)


def record_join(
    session: Session,
    library: Library,
    *,
    actor: str,
    member_since: int | None,
    contact: int | None,
    note: str,
) -> membership.JoinResult:
    """Records that a library joined SDRUK, as `sdruk libraries join` does (raises
    MembershipError with a Czech message for a bad year or a contact of another library)."""
    return membership.record_join(
        session,
        library,
        actor=actor,
        member_since=membership.parse_year(member_since),
        contact=contact,
        note=note,
    )


def contact_events(session: Session, contact_id: int) -> list[Event]:
    return list(
        session.exec(
            select(Event).where(Event.contact_id == contact_id).order_by(Event.occurred_at.desc())  # type: ignore[attr-defined]
        ).all()
    )
