"""Engagement segment fields, relative to one campaign: received, opened, clicked, registered,
joined. Reminder audiences use them ("received the launch, did not open, not registered").

Opens and clicks count people only: events classified as machine (Apple Mail Privacy
Protection, link scanners) are left out. A person's click or web-version view also proves an
open, since many people read with images blocked and so never fetch the pixel.
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
    Library,
    MembershipApplication,
    MessageStatus,
    OutboxMessage,
    Run,
)

__all__ = ["ENGAGEMENT_FIELDS", "registered_contacts"]


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


def _opened(values: Sequence[Any], context: SegmentContext) -> ColumnElement[bool]:
    kinds = (EventKind.OPEN, EventKind.CLICK, EventKind.WEB_VIEW)
    return _yes_no(values, _human_event(kinds, context))


def _clicked(values: Sequence[Any], context: SegmentContext) -> ColumnElement[bool]:
    return _yes_no(values, _human_event((EventKind.CLICK,), context))


def registered_contacts(campaign: str | None, *, since: datetime | None = None) -> sa.Select[Any]:
    """Ids of the contacts who registered for a campaign's event (since a moment, if given),
    by either evidence:
    - a REGISTERED event for the campaign (`sdruk registrations import`);
    - a person's click on the registration link of one of the campaign's messages (the run's
      frozen `content["registration_link"]` says which link index that is).

    Clicks are read here, at query time, rather than copied into REGISTERED events when they
    arrive, because classification can still relabel a click as a link scanner's later (a
    burst found with the next clicks): a copy would go on counting a machine as a registrant.
    Reminder audiences and `sdruk schedule` count with this."""
    run = aliased(Run)
    imported = sa.select(_c(Event.contact_id)).where(
        _c(Event.kind) == EventKind.REGISTERED.value,
        _c(Event.contact_id).is_not(None),
        sa.or_(
            _c(Event.detail)["campaign"].as_string() == campaign,
            _c(Event.run_id).in_(sa.select(_c(Run.id)).where(_c(Run.campaign) == campaign)),
        ),
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
        )
    )
    if since is not None:
        imported = imported.where(_c(Event.occurred_at) >= since)
        clicked = clicked.where(_c(Event.occurred_at) >= since)
    # A plain select over the union, so callers can use it with IN or execute it alike.
    both = sa.union(imported, clicked).subquery()
    return sa.select(both.c[0])


def _registered(values: Sequence[Any], context: SegmentContext) -> ColumnElement[bool]:
    """Registered for this campaign's event (see `registered_contacts`)."""
    return _yes_no(values, _c(Contact.id).in_(registered_contacts(context.campaign)))


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
        "otevřel(a) některou zprávu kampaně (jen lidé, ne roboti)",
        _opened,
        kind="bool",
        needs_campaign=True,
    ),
    "clicked": FieldSpec(
        "klikl(a) na odkaz v kampani (jen lidé, ne skenery odkazů)",
        _clicked,
        kind="bool",
        needs_campaign=True,
    ),
    "registered": FieldSpec(
        "zaregistroval(a) se na akci kampaně", _registered, kind="bool", needs_campaign=True
    ),
    "joined": FieldSpec(
        "knihovna kontaktu vstoupila do SDRUK nebo podala přihlášku", _joined, kind="bool"
    ),
}
