"""Membership in SDRUK: recording that a library joined (one function for the console's
„Zaznamenat vstup do SDRUK“, `sdruk libraries join`, an approved application and a directory
import that turns membership on) or left (`sdruk libraries leave`), and the rule that credits
a joining to a campaign.

Who recorded a membership is kept (`Library.membership_source`): a directory import ends only
a membership the directory itself recorded or has since listed. One recorded by staff stands
until the directory lists it too, or until staff record the resignation.

The credit rule: a joining counts for the recruitment campaign (a run frozen with
`kind = "recruitment"`, as the blueprint's `kind` says) whose message reached the library most
recently before it joined, or for none. Event invitations and newsletters never get it, however
recently they were sent: they did not ask the library to join.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from mailer.events.record import record_event
from mailer.models import (
    AuditEntry,
    Contact,
    Event,
    EventKind,
    Library,
    MessageStatus,
    OutboxMessage,
    Run,
    utcnow,
)

__all__ = [
    "IMPORT",
    "RECRUITMENT",
    "STAFF",
    "JoinResult",
    "LeaveResult",
    "MembershipError",
    "credited_campaign",
    "find_library",
    "parse_year",
    "record_join",
    "record_leave",
]

RECRUITMENT = "recruitment"  # the blueprint kind, frozen in each run's content["kind"]
# Who recorded a membership (Library.membership_source).
IMPORT = "import"  # the directory file
STAFF = "staff"  # the console, `sdruk libraries join`, an approved application
FIRST_YEAR = 1990  # the association's predecessors; an earlier year is a typing error
_MAX_ID = 2**31 - 1  # the tables' INTEGER keys (32-bit on PostgreSQL)


class MembershipError(ValueError):
    """Membership that cannot be recorded as asked; the message (Czech) says why."""


@dataclass(frozen=True)
class JoinResult:
    """What `record_join` did. `recorded` is False when the library was already a member and
    nothing changed; the credit is then the one recorded before, if any."""

    library_id: int
    library: str
    siglum: str | None
    member_since: int | None
    joined_at: datetime | None
    recorded: bool
    contact_id: int | None
    contact_email: str | None
    run_id: int | None
    campaign: str | None
    campaign_name: str | None
    step: str | None

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["joined_at"] = self.joined_at.isoformat() if self.joined_at else None
        return data


def _reached(library_id: Any, before: Any, *columns: str) -> sa.Select[Any]:
    """The latest recruitment run that reached the library before a moment: the run's
    `columns`. Arguments are values or columns of the caller's query."""
    # Aliases throughout: inside a statement that already has Contact, Run and an outbox in
    # its FROM (the results query), a bare table here would correlate with the caller's row
    # instead of meaning "any message to this library".
    message = aliased(OutboxMessage)
    reached = aliased(Contact)
    run = aliased(Run)
    return (
        sa.select(*[getattr(run, name) for name in columns])
        .select_from(message)
        .join(reached, col(reached.id) == col(message.contact_id))
        .join(run, col(run.id) == col(message.run_id))
        .where(
            col(reached.library_id) == library_id,
            col(message.status) == MessageStatus.SENT.value,
            col(message.sent_at) <= before,
            col(run.content)["kind"].as_string() == RECRUITMENT,
        )
        .order_by(col(message.sent_at).desc(), col(message.id).desc())
        .limit(1)
    )


def credited_campaign(library_id: Any, joined_at: Any) -> ColumnElement[Any]:
    """The slug of the campaign a joining is credited to (see the module docstring), or NULL,
    as a scalar subquery; the arguments are values or columns of the caller's query."""
    return _reached(library_id, joined_at, "campaign").scalar_subquery()


def _credit(session: Session, library_id: int, joined_at: datetime) -> Any:
    return session.execute(
        _reached(library_id, joined_at, "id", "campaign", "step", "content")
    ).first()


def _run(session: Session, run_id: int) -> Any:
    return session.execute(
        sa.select(col(Run.id), col(Run.campaign), col(Run.step), col(Run.content)).where(
            col(Run.id) == run_id
        )
    ).first()


def parse_year(value: Any, *, now: datetime | None = None) -> int | None:
    """A membership year as staff type it ("2026", " 2026 "); None when empty. The year of
    joining may be next year at most (a library joining in December for January)."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    latest = (now or utcnow()).year + 1
    if not (text.isascii() and text.isdigit()) or not FIRST_YEAR <= int(text) <= latest:
        raise MembershipError(
            f"Rok členství „{text}“ není platný: zadejte rok od {FIRST_YEAR} do {latest}, "
            "např. 2026."
        )
    return int(text)


def _row_id(text: str) -> int | None:
    """An id typed as plain digits that a row can have, or None."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(_MAX_ID)):
        return None
    value = int(text)
    return value if 1 <= value <= _MAX_ID else None


def find_library(session: Session, key: str) -> Library:
    """A library by its siglum (any case) or by its number in the console."""
    text = key.strip()
    if text:
        by_siglum = session.exec(
            select(Library).where(sa.func.upper(col(Library.siglum)) == text.upper())
        ).first()
        if by_siglum is not None:
            return by_siglum
        if _row_id(text) is not None:
            by_id = session.get(Library, _row_id(text))
            if by_id is not None:
                return by_id
    raise MembershipError(
        f"Knihovna „{text}“ v adresáři není. Zadejte její siglu (např. BOA001) nebo číslo "
        "knihovny z adresy její stránky v konzoli (/console/libraries/ČÍSLO)."
    )


def _contact(session: Session, library: Library, contact: int | str | None) -> Contact | None:
    """Who sent the application: a contact of the library by id (a number, as the console's
    form sends it) or e-mail, or without one the library's first contact."""
    text = "" if contact is None else str(contact).strip()
    if not text:
        return session.exec(
            select(Contact).where(Contact.library_id == library.id).order_by(col(Contact.id))
        ).first()
    if text.isascii() and text.isdigit():
        number = _row_id(text)
        found = session.get(Contact, number) if number is not None else None
    else:
        found = session.exec(
            select(Contact).where(sa.func.lower(col(Contact.email)) == text.lower())
        ).first()
    if found is None or found.library_id != library.id:
        raise MembershipError(
            f"Kontakt „{text}“ nepatří ke knihovně „{library.name}“. Zadejte e-mail "
            "některého z jejích kontaktů, nebo kontakt vynechte."
        )
    return found


def _earlier(session: Session, library: Library) -> JoinResult:
    """The result for a library that is already a member: what was recorded then."""
    assert library.id is not None
    event = session.exec(
        select(Event)
        .where(
            Event.kind == EventKind.JOINED.value,
            col(Event.detail)["library_id"].as_integer() == library.id,
        )
        .order_by(col(Event.occurred_at).desc())
    ).first()
    run = session.get(Run, event.run_id) if event and event.run_id else None
    contact = session.get(Contact, event.contact_id) if event and event.contact_id else None
    return JoinResult(
        library_id=library.id,
        library=library.name,
        siglum=library.siglum,
        member_since=library.member_since,
        joined_at=library.joined_at,
        recorded=False,
        contact_id=contact.id if contact else None,
        contact_email=contact.email if contact else None,
        run_id=run.id if run else None,
        campaign=run.campaign if run else None,
        campaign_name=(run.content or {}).get("name") if run else None,
        step=run.step if run else None,
    )


def record_join(
    session: Session,
    library: Library,
    *,
    actor: str,
    member_since: int | None = None,
    contact: int | str | None = None,
    note: str = "",
    run_id: int | None = None,
    now: datetime | None = None,
    source: str = STAFF,
) -> JoinResult:
    """The library joined SDRUK: it becomes a member (reminders stop at all its addresses), a
    JOINED event names who applied and the campaign credited, and the audit trail says who
    recorded it. Adds to the caller's transaction; recording a member again changes nothing.

    `contact` is a contact id or e-mail of that library (default: its first contact).
    `run_id` credits a known run instead of the rule: the campaign message whose link an
    approved application came from. `source` says who recorded it (IMPORT or STAFF)."""
    assert library.id is not None
    if library.is_member:
        return _earlier(session, library)
    now = now or utcnow()
    applicant = _contact(session, library, contact)
    credit = _credit(session, library.id, now) if run_id is None else _run(session, run_id)
    library.is_member = True
    library.member_since = member_since or now.year
    library.joined_at = now
    library.membership_source = source
    library.updated_at = now
    session.add(library)
    record_event(
        session,
        EventKind.JOINED,
        contact_id=applicant.id if applicant else None,
        run_id=credit.id if credit else None,
        occurred_at=now,
        detail={
            "library_id": library.id,
            "by": actor,
            "note": note.strip(),
            "member_since": library.member_since,
        },
    )
    session.add(
        AuditEntry(
            actor=actor,
            action="membership",
            target=library.name[:300],
            at=now,
            detail={"library_id": library.id, "run_id": credit.id if credit else None},
        )
    )
    return JoinResult(
        library_id=library.id,
        library=library.name,
        siglum=library.siglum,
        member_since=library.member_since,
        joined_at=now,
        recorded=True,
        contact_id=applicant.id if applicant else None,
        contact_email=applicant.email if applicant else None,
        run_id=credit.id if credit else None,
        campaign=credit.campaign if credit else None,
        campaign_name=(credit.content or {}).get("name") if credit else None,
        step=credit.step if credit else None,
    )


@dataclass(frozen=True)
class LeaveResult:
    """What `record_leave` did; `recorded` is False when the library was not a member."""

    library_id: int
    library: str
    siglum: str | None
    recorded: bool


def record_leave(
    session: Session,
    library: Library,
    *,
    actor: str,
    note: str = "",
    now: datetime | None = None,
) -> LeaveResult:
    """The library left SDRUK: it is no longer a member and the audit trail says who recorded
    it. Earlier JOINED events stay, as history and as the credit they gave. Adds to the
    caller's transaction; recording it for a non-member changes nothing."""
    assert library.id is not None
    if not library.is_member:
        return LeaveResult(library.id, library.name, library.siglum, recorded=False)
    now = now or utcnow()
    library.is_member = False
    library.member_since = None
    library.membership_source = None
    library.updated_at = now
    session.add(library)
    session.add(
        AuditEntry(
            actor=actor,
            action="membership_end",
            target=library.name[:300],
            at=now,
            detail={"library_id": library.id, "note": note.strip()},
        )
    )
    return LeaveResult(library.id, library.name, library.siglum, recorded=True)
