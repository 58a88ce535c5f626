"""Segment fields: what a field is (`FieldSpec`, built relative to a `SegmentContext`) and the
fields about a contact and its library (type, region, town, membership, tag, topic, legal
basis, e-mail domain).

Each field builds a condition over the `Contact` and `Library` rows of
`mailer.audience.segments.recipients_select`; a subquery must correlate with that `Contact`
(name it, never an unaliased copy of it in its own FROM), or it silently means "any contact".
Campaign-relative fields live in `mailer.audience.engagement`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import ColumnElement

from mailer.models import (
    LIBRARY_TYPE_LABELS,
    REGIONS,
    Contact,
    ContactTag,
    LegalBasis,
    Library,
    Tag,
    Topic,
    TopicOptOut,
)

__all__ = ["BASE_FIELDS", "FieldSpec", "Kind", "SegmentContext", "opted_out"]


@dataclass(frozen=True)
class SegmentContext:
    """What campaign-relative fields (received, opened, …) are relative to."""

    campaign: str | None = None
    # `opened = false` / `clicked = false` leave out contacts whose behaviour cannot be known
    # (mailer.audience.engagement). False only to count how many that leaves out.
    untracked_unknown: bool = True


Kind = Literal["text", "choice", "bool"]
# Builds "the contact's FIELD is one of VALUES" (values already normalised by the spec).
Builder = Callable[[Sequence[Any], SegmentContext], ColumnElement[bool]]


@dataclass(frozen=True)
class FieldSpec:
    """One segment field.

    `build(values, context)` returns a condition meaning "the field is one of values"; the
    compiler adds not/and/or. `choices` (for kind "choice") lists the canonical values;
    `aliases` maps other spellings (compared without case and diacritics) to them.
    `needs_campaign` fields fail without a SegmentContext naming a campaign."""

    description: str
    build: Builder
    kind: Kind = "text"
    choices: Callable[[], Sequence[str]] | None = None
    aliases: Callable[[], Mapping[str, str]] | None = None
    needs_campaign: bool = False


def _col(column: Any) -> Any:
    # SQLModel annotates columns with their Python types; this hands SQLAlchemy the column.
    return column


def opted_out(topic: str) -> ColumnElement[bool]:
    """The contact opted out of a topic."""
    return (
        sa.exists()
        .where(_col(TopicOptOut.contact_id) == Contact.id, _col(TopicOptOut.topic) == topic)
        .correlate(Contact)
    )


def _library_type(values: Sequence[Any], _ctx: SegmentContext) -> ColumnElement[bool]:
    return _col(Library.library_type).in_(values)


def _region(values: Sequence[Any], _ctx: SegmentContext) -> ColumnElement[bool]:
    return _col(Library.region).in_(values)


def _town(values: Sequence[Any], _ctx: SegmentContext) -> ColumnElement[bool]:
    return _col(Library.town).in_(values)


def _member(values: Sequence[Any], _ctx: SegmentContext) -> ColumnElement[bool]:
    # A contact without a library is not a member.
    is_member = sa.func.coalesce(_col(Library.is_member), sa.false())
    return sa.or_(*[is_member.is_(sa.true()) if v else is_member.is_(sa.false()) for v in values])


def _tag(values: Sequence[Any], _ctx: SegmentContext) -> ColumnElement[bool]:
    return (
        sa.exists()
        .where(
            _col(ContactTag.contact_id) == Contact.id,
            _col(ContactTag.tag_id) == Tag.id,
            _col(Tag.name).in_(values),
        )
        .correlate(Contact)
    )


def _topic(values: Sequence[Any], _ctx: SegmentContext) -> ColumnElement[bool]:
    # "Receives topic X" = has not opted out of it; a list = receives at least one of them.
    return sa.or_(*[~opted_out(v) for v in values])


def _legal_basis(values: Sequence[Any], _ctx: SegmentContext) -> ColumnElement[bool]:
    return _col(Contact.legal_basis).in_(values)


def _email_domain(values: Sequence[Any], _ctx: SegmentContext) -> ColumnElement[bool]:
    return sa.or_(
        *[_col(Contact.email).endswith("@" + str(v).lower(), autoescape=True) for v in values]
    )


def _type_aliases() -> dict[str, str]:
    aliases = {label: t.value for t, label in LIBRARY_TYPE_LABELS.items()}
    aliases.update({"obecní": "obecni", "místní": "obecni", "mistni": "obecni"})
    return aliases


def _region_aliases() -> dict[str, str]:
    # "Jihomoravský", "Vysočina", "Praha": the region without the word "kraj".
    aliases = {r.replace("Kraj ", "").replace(" kraj", ""): r for r in REGIONS}
    aliases["Praha"] = "Hlavní město Praha"
    return aliases


BASE_FIELDS: dict[str, FieldSpec] = {
    "library_type": FieldSpec(
        "typ knihovny",
        _library_type,
        kind="choice",
        choices=lambda: [t.value for t in LIBRARY_TYPE_LABELS],
        aliases=_type_aliases,
    ),
    "region": FieldSpec(
        "kraj knihovny", _region, kind="choice", choices=lambda: REGIONS, aliases=_region_aliases
    ),
    "town": FieldSpec("obec knihovny", _town),
    "member": FieldSpec("knihovna je členem SDRUK", _member, kind="bool"),
    "tag": FieldSpec("štítek kontaktu", _tag),
    "topic": FieldSpec(
        "kontakt odebírá téma", _topic, kind="choice", choices=lambda: [t.value for t in Topic]
    ),
    "legal_basis": FieldSpec(
        "právní základ",
        _legal_basis,
        kind="choice",
        choices=lambda: [b.value for b in LegalBasis],
        aliases=lambda: {"oprávněný zájem": "legitimate_interest", "souhlas": "consent"},
    ),
    "email_domain": FieldSpec("doména e-mailové adresy", _email_domain),
}
