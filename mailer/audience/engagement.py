"""Engagement segment fields, relative to one campaign: received, opened, clicked, registered,
attending, attending_session, joined. Reminder audiences use them ("received the launch, did
not open, not registered"; "has a confirmed seat at workshop 3").

Opens and clicks count people only: events classified as machine (Apple Mail Privacy
Protection, link scanners) are left out. A person's click or web-version view also proves an
open, since many people read with images blocked and so never fetch the pixel.

`opened = false` and `clicked = false` mean "known not to have": a contact whose opens and
clicks in the campaign cannot be known is left out. That is a contact who denied tracking, or
one to whom a message of the campaign went out untracked in a campaign that tracks
individually (`OutboxMessage.individually_tracked` is false). A reminder to "those who did not
open" would otherwise go to them on behaviour inferred from the absence of the tracking they
refused. Goal fields (registered, joined) are facts they reported, and are unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlalchemy.orm import aliased

from mailer.audience.fields import FieldSpec, SegmentContext
from mailer.models import (
    ApplicationStatus,
    Contact,
    Event,
    EventKind,
    EventRegistration,
    Library,
    MembershipApplication,
    MessageStatus,
    OutboxMessage,
    RegistrationStatus,
    Run,
    TrackingConsent,
)

__all__ = ["ENGAGEMENT_FIELDS", "attending_contacts", "registered_contacts"]


def _c(column: Any) -> Any:
    # SQLModel annotates columns with their Python types; this hands SQLAlchemy the column.
    return column


def _campaign_runs(context: SegmentContext, steps: Sequence[str] | None = None) -> sa.Select[Any]:
    query = sa.select(_c(Run.id)).where(_c(Run.campaign) == context.campaign)
    if steps is not None:
        query = query.where(_c(Run.step).in_(list(steps)))
    return query


def _yes_no(values: Sequence[Any], exists: ColumnElement[bool]) -> ColumnElement[bool]:
    # Bool fields get (True,), (False,) or both; the compiler wraps `not` around the result.
    wanted = set(values)
    if wanted == {True, False}:
        return sa.true()
    return exists if True in wanted else sa.not_(exists)


def _received(values: Sequence[Any], context: SegmentContext) -> ColumnElement[bool]:
    """Got a sent message of the run of one of these steps of the campaign."""
    return (
        sa.exists()
        .where(
            _c(OutboxMessage.contact_id) == Contact.id,
            _c(OutboxMessage.status) == MessageStatus.SENT.value,
            _c(OutboxMessage.run_id).in_(_campaign_runs(context, [str(v) for v in values])),
        )
        .correlate(Contact)
    )


def _human_event(kinds: Sequence[EventKind], context: SegmentContext) -> ColumnElement[bool]:
    return (
        sa.exists()
        .where(
            _c(Event.contact_id) == Contact.id,
            _c(Event.kind).in_([k.value for k in kinds]),
            _c(Event.is_machine).is_(sa.false()),
            _c(Event.run_id).in_(_campaign_runs(context)),
        )
        .correlate(Contact)
    )


def untracked(context: SegmentContext) -> ColumnElement[bool]:
    """The contact's opens and clicks in the campaign cannot be known: they denied tracking, or
    a message of the campaign went out to them untracked (see the module docstring)."""
    untracked_message = (
        sa.exists()
        .where(
            _c(OutboxMessage.contact_id) == Contact.id,
            _c(OutboxMessage.status) == MessageStatus.SENT.value,
            _c(OutboxMessage.individually_tracked).is_(sa.false()),
            _c(OutboxMessage.run_id).in_(_campaign_runs(context)),
        )
        .correlate(Contact)
    )
    return sa.or_(_c(Contact.tracking_consent) == TrackingConsent.DENIED.value, untracked_message)


def _known_yes_no(
    values: Sequence[Any], happened: ColumnElement[bool], context: SegmentContext
) -> ColumnElement[bool]:
    # `true`: it happened; `false`: it is known not to have happened (tracked, and no event).
    wanted = set(values)
    parts = []
    if True in wanted:
        parts.append(happened)
    if False in wanted:
        known = sa.not_(untracked(context)) if context.untracked_unknown else sa.true()
        parts.append(sa.and_(sa.not_(happened), known))
    return sa.or_(*parts) if parts else sa.false()


def _opened(values: Sequence[Any], context: SegmentContext) -> ColumnElement[bool]:
    kinds = (EventKind.OPEN, EventKind.CLICK, EventKind.WEB_VIEW)
    return _known_yes_no(values, _human_event(kinds, context), context)


def _clicked(values: Sequence[Any], context: SegmentContext) -> ColumnElement[bool]:
    return _known_yes_no(values, _human_event((EventKind.CLICK,), context), context)


# A registration from the public page that still holds a place: a seat or the waiting list.
_ACTIVE = (RegistrationStatus.REGISTERED.value, RegistrationStatus.WAITLISTED.value)


def _withdrawn_later(campaign: str | None) -> ColumnElement[bool]:
    """The contact of the Event row at hand cancelled a registration of the campaign at or
    after that event: the cancellation is the person's later word, so the event no longer
    counts. Correlated with the Event row of the enclosing select."""
    return (
        sa.exists()
        .where(
            _c(EventRegistration.campaign) == campaign,
            _c(EventRegistration.contact_id) == _c(Event.contact_id),
            _c(EventRegistration.status) == RegistrationStatus.CANCELLED.value,
            _c(EventRegistration.cancelled_at) >= _c(Event.occurred_at),
        )
        .correlate(Event)
    )


def registered_contacts(campaign: str | None, *, since: datetime | None = None) -> sa.Select[Any]:
    """Ids of the contacts who registered for a campaign's event (since a moment, if given),
    by any evidence:
    - an active registration from the public page (a seat or the waiting list: a wait-listed
      person acted, so "register now" reminders leave them alone);
    - a REGISTERED event for the campaign (`sdruk registrations import`, and the record each
      registration from the page leaves);
    - a person's click on the registration link of one of the campaign's messages (the run's
      frozen `content["registration_link"]` says which link index that is; only an external
      `event.registration_url` is such a link).

    A registration cancelled on the page withdraws the goal: an event or click that happened
    before the contact's latest cancellation for the campaign no longer counts (the page's own
    REGISTERED record is older than the cancellation, so it drops out as well), while another
    active registration of the campaign keeps the person registered.

    Clicks are read here, at query time, rather than copied into REGISTERED events when they
    arrive, because classification can still relabel a click as a link scanner's later (a
    burst found with the next clicks): a copy would go on counting a machine as a registrant.
    Reminder audiences and `sdruk schedule` count with this."""
    run = aliased(Run)
    active = sa.select(_c(EventRegistration.contact_id)).where(
        _c(EventRegistration.campaign) == campaign,
        _c(EventRegistration.status).in_(_ACTIVE),
        _c(EventRegistration.contact_id).is_not(None),
    )
    imported = sa.select(_c(Event.contact_id)).where(
        _c(Event.kind) == EventKind.REGISTERED.value,
        _c(Event.contact_id).is_not(None),
        sa.or_(
            _c(Event.detail)["campaign"].as_string() == campaign,
            _c(Event.run_id).in_(sa.select(_c(Run.id)).where(_c(Run.campaign) == campaign)),
        ),
        sa.not_(_withdrawn_later(campaign)),
    )
    clicked = (
        sa.select(_c(Event.contact_id))
        .join(run, _c(run.id) == _c(Event.run_id))
        .where(
            _c(run.campaign) == campaign,
            _c(Event.kind) == EventKind.CLICK.value,
            _c(Event.is_machine).is_(sa.false()),
            _c(Event.contact_id).is_not(None),
            _c(Event.link_index) == _c(run.content)["registration_link"].as_integer(),
            sa.not_(_withdrawn_later(campaign)),
        )
    )
    if since is not None:
        active = active.where(_c(EventRegistration.created_at) >= since)
        imported = imported.where(_c(Event.occurred_at) >= since)
        clicked = clicked.where(_c(Event.occurred_at) >= since)
    # A plain select over the union, so callers can use it with IN or execute it alike.
    every = sa.union(active, imported, clicked).subquery()
    return sa.select(every.c[0])


def attending_contacts(
    campaign: str | None, sessions: Sequence[int] | None = None
) -> sa.Select[Any]:
    """Ids of the contacts with a confirmed seat at the campaign's event (registered on the
    public page, not wait-listed, not cancelled); only at these sessions (1-based numbers, as
    staff count workshops) when given."""
    query = sa.select(_c(EventRegistration.contact_id)).where(
        _c(EventRegistration.campaign) == campaign,
        _c(EventRegistration.status) == RegistrationStatus.REGISTERED.value,
        _c(EventRegistration.contact_id).is_not(None),
    )
    if sessions is not None:
        query = query.where(_c(EventRegistration.session_index).in_([n - 1 for n in sessions]))
    return query


def _registered(values: Sequence[Any], context: SegmentContext) -> ColumnElement[bool]:
    """Registered for this campaign's event (see `registered_contacts`)."""
    return _yes_no(values, _c(Contact.id).in_(registered_contacts(context.campaign)))


def _attending(values: Sequence[Any], context: SegmentContext) -> ColumnElement[bool]:
    """Holds a confirmed seat at some session of this campaign's event."""
    return _yes_no(values, _c(Contact.id).in_(attending_contacts(context.campaign)))


def session_numbers(values: Sequence[Any]) -> list[int]:
    """Session numbers of an `attending_session` condition; a value that is not a whole number
    from 1 up matches no session (the campaign check reports it by name)."""
    numbers = []
    for value in values:
        text = str(value).strip()
        if text.isdigit() and 0 < int(text) < 10_000:
            numbers.append(int(text))
    return numbers


def _attending_session(values: Sequence[Any], context: SegmentContext) -> ColumnElement[bool]:
    """Holds a confirmed seat at one of these sessions (numbers from 1, in the order of
    `[[event.sessions]]`)."""
    numbers = session_numbers(values)
    if not numbers:
        return sa.false()
    return _c(Contact.id).in_(attending_contacts(context.campaign, numbers))


def _joined(values: Sequence[Any], _context: SegmentContext) -> ColumnElement[bool]:
    """The contact's library is a member (recorded by import or in the console), membership
    was recorded as a JOINED event of the contact or of a colleague at the same library, or
    the contact or its library applied from the public form (an application not rejected):
    a library that joined or applied stops receiving recruitment reminders at all its
    addresses."""
    # The aliases are the other rows (the library, the contact the event names); the bare
    # Contact is the recipient's row of recipients_select, correlated by name. One level of
    # EXISTS only: a nested IN (SELECT ... WHERE ... = contact.library_id) would not correlate
    # through the EXISTS and would mean "any library joined".
    library = aliased(Library)
    joiner = aliased(Contact)
    member = (
        sa.exists()
        .where(_c(library.id) == Contact.library_id, _c(library.is_member).is_(sa.true()))
        .correlate(Contact)
    )
    joined_event = (
        sa.exists()
        .where(
            _c(Event.kind) == EventKind.JOINED.value,
            _c(joiner.id) == _c(Event.contact_id),
            sa.or_(
                _c(joiner.id) == Contact.id,
                sa.and_(
                    _c(joiner.library_id).is_not(None),
                    _c(joiner.library_id) == Contact.library_id,
                ),
            ),
        )
        .correlate(Contact)
    )
    # Applied from the public form: the goal is reached at once, before staff decide; a
    # rejected application stops counting.
    applied = (
        sa.exists()
        .where(
            _c(MembershipApplication.status) != ApplicationStatus.REJECTED.value,
            sa.or_(
                _c(MembershipApplication.contact_id) == Contact.id,
                sa.and_(
                    _c(MembershipApplication.library_id).is_not(None),
                    _c(MembershipApplication.library_id) == Contact.library_id,
                ),
            ),
        )
        .correlate(Contact)
    )
    return _yes_no(values, sa.or_(member, joined_event, applied))


ENGAGEMENT_FIELDS: dict[str, FieldSpec] = {
    "received": FieldSpec(
        "dostal(a) zprávu daného kroku kampaně (např. „launch“)", _received, needs_campaign=True
    ),
    "opened": FieldSpec(
        "otevřel(a) některou zprávu kampaně (jen lidé, ne roboti; „ne“ jen u sledovaných: "
        "kdo sledování odmítl, o tom nevíme)",
        _opened,
        kind="bool",
        needs_campaign=True,
    ),
    "clicked": FieldSpec(
        "klikl(a) na odkaz v kampani (jen lidé, ne skenery odkazů; „ne“ jen u sledovaných)",
        _clicked,
        kind="bool",
        needs_campaign=True,
    ),
    "registered": FieldSpec(
        "zaregistroval(a) se na akci kampaně", _registered, kind="bool", needs_campaign=True
    ),
    "attending": FieldSpec(
        "má potvrzené místo na akci kampaně (ne čekací listina, ne zrušená registrace)",
        _attending,
        kind="bool",
        needs_campaign=True,
    ),
    "attending_session": FieldSpec(
        "má potvrzené místo na daném termínu akce (číslo termínu od 1)",
        _attending_session,
        needs_campaign=True,
    ),
    "joined": FieldSpec(
        "knihovna kontaktu vstoupila do SDRUK nebo podala přihlášku", _joined, kind="bool"
    ),
}
