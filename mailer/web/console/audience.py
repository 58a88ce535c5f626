"""The audience of a campaign step as staff see it before a launch: how many contacts it
would go to now, a sample of them, and why a reminder to those who did not open leaves out
contacts whose opens cannot be known (they denied tracking)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from mailer.audience.segments import (
    SegmentContext,
    SegmentError,
    count,
    parse_segment,
    recipients_select,
)
from mailer.models import Contact, Library

__all__ = ["audience", "audience_contacts", "untracked_note"]


def audience(session: Session, blueprint: Any, step: str) -> tuple[int | None, str | None]:
    """How many contacts a step would go to now, or why that cannot be said."""
    try:
        segment = parse_segment(blueprint.audience_for(step))
        return count(
            session, segment, topic=blueprint.topic, context=SegmentContext(campaign=blueprint.slug)
        ), None
    except SegmentError as exc:
        return None, str(exc)


def _mentions(definition: Any, names: set[str]) -> bool:
    if isinstance(definition, dict):
        return any(k in names or _mentions(v, names) for k, v in definition.items())
    if isinstance(definition, list):
        return any(_mentions(v, names) for v in definition)
    return False


def untracked_note(session: Session, blueprint: Any, step: str) -> str | None:
    """Why a step's audience leaves out contacts whose opens or clicks cannot be known (those
    who denied tracking, see mailer.audience.engagement), in Czech; None if it leaves out none."""
    definition = blueprint.audience_for(step)
    if not _mentions(definition, {"opened", "clicked"}):
        return None  # the common case: no second count
    try:
        segment = parse_segment(definition)
        asked = SegmentContext(campaign=blueprint.slug)
        loose = SegmentContext(campaign=blueprint.slug, untracked_unknown=False)
        left_out = count(session, segment, topic=blueprint.topic, context=loose) - count(
            session, segment, topic=blueprint.topic, context=asked
        )
    except SegmentError:
        return None
    if left_out <= 0:
        return None
    if left_out == 1:
        return (
            "U 1 kontaktu nevíme, zda zprávu otevřel(a) nebo na odkaz klikl(a): sledování "
            "odmítl(a), nebo k němu nedal(a) souhlas. Připomínka pro ty, kdo neotevřeli, mu "
            "proto nepřijde."
        )
    return (
        f"U {left_out} kontaktů nevíme, zda zprávu otevřeli nebo na odkaz klikli: sledování "
        "odmítli, nebo k němu nedali souhlas. Připomínka pro ty, kdo neotevřeli, jim proto "
        "nepřijde."
    )


def audience_contacts(
    session: Session, blueprint: Any, step: str, limit: int = 40
) -> list[tuple[Contact, Library | None]]:

    try:
        segment = parse_segment(blueprint.audience_for(step))
        stmt = recipients_select(
            segment, topic=blueprint.topic, context=SegmentContext(campaign=blueprint.slug)
        )
    except SegmentError:
        return []
    return [(c, lib) for c, lib in session.execute(stmt.add_columns(Library).limit(limit)).all()]
