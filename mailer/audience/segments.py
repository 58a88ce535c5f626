"""Segments: a filter over contacts and their library, compiled to one SQLAlchemy select.

This is the only place that decides who receives mail. Whatever a segment says, the select
leaves out contacts that are not active, are suppressed, have no legal basis, or opted out of
the campaign's topic.

Syntax (a TOML table or a dict; keys are fields, ANDed):
    library_type = ["mestska", "obecni"]     # list = in
    member = false                            # scalar = equals
    region = { not = "Hlavní město Praha" }   # not equal / not in
    any = [ { tag = "vip" }, { member = true } ]   # OR of sub-segments
    all = [ ... ]                             # AND of sub-segments
    not = { town = "Brno" }                   # negation of a sub-segment
On the command line: `--where FIELD=V1,V2` and `--where FIELD!=V` (ANDed).

The fields themselves live in `mailer.audience.fields` (about the contact and its library) and
`mailer.audience.engagement` (relative to a campaign); `register_field` adds more.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Select
from sqlmodel import Session

from mailer.audience.engagement import ENGAGEMENT_FIELDS
from mailer.audience.fields import BASE_FIELDS, FieldSpec, SegmentContext, opted_out
from mailer.models import Contact, ContactStatus, Library, Suppression, Topic

__all__ = [
    "MAX_CONDITIONS",
    "MAX_DEPTH",
    "MAX_VALUES",
    "FieldSpec",
    "Segment",
    "SegmentContext",
    "SegmentError",
    "count",
    "field_specs",
    "parse_segment",
    "parse_where",
    "recipients_select",
    "register_field",
]


class SegmentError(ValueError):
    """A segment that cannot be understood; the message (Czech) names the field or value."""


# Bounds on what a segment may hold. Real segments nest two or three levels and name a few
# dozen values; without bounds a blueprint with a hundred nested `not` passed the check and
# then overflowed the recursion of every place that compiled it to SQL.
MAX_DEPTH = 8  # levels of any / all / not below the segment table
MAX_CONDITIONS = 200  # field conditions, and separately tables, in one segment
MAX_VALUES = 1000  # values in all the segment's lists together


@dataclass
class _Budget:
    """What a segment has used so far while it is parsed."""

    conditions: int = 0
    tables: int = 0
    values: int = 0

    def table(self, path: str, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise SegmentError(
                f"„{path}“: segment je vnořený příliš hluboko (nejvýše {MAX_DEPTH} úrovní "
                "any / all / not). Zjednodušte ho."
            )
        self.tables += 1
        if self.tables > MAX_CONDITIONS:
            raise SegmentError(
                f"Segment má příliš mnoho podmínek a skupin (nejvýše {MAX_CONDITIONS}). "
                "Zjednodušte ho, třeba seznamem hodnot místo mnoha podmínek."
            )

    def condition(self, count: int) -> None:
        self.conditions += 1
        self.values += count
        if self.conditions > MAX_CONDITIONS:
            raise SegmentError(
                f"Segment má příliš mnoho podmínek (nejvýše {MAX_CONDITIONS}). "
                "Zjednodušte ho, třeba seznamem hodnot místo mnoha podmínek."
            )
        if self.values > MAX_VALUES:
            raise SegmentError(
                f"Segment má příliš mnoho hodnot (nejvýše {MAX_VALUES} ve všech seznamech "
                "dohromady). Rozdělte ho, nebo použijte štítek."
            )


_FIELDS: dict[str, FieldSpec] = {**BASE_FIELDS, **ENGAGEMENT_FIELDS}
_SPECIAL = ("any", "all", "not")


def register_field(name: str, spec: FieldSpec) -> None:
    """Add (or replace) a segment field."""
    if name in _SPECIAL:
        raise ValueError(f"{name!r} is reserved in the segment syntax")
    _FIELDS[name] = spec


def field_specs() -> dict[str, FieldSpec]:
    """The registered fields, by name (a copy)."""
    return dict(_FIELDS)


def _col(column: Any) -> Any:
    # SQLModel annotates columns with their Python types; this hands SQLAlchemy the column.
    return column


# --- the parsed form -----------------------------------------------------------------------


@dataclass(frozen=True)
class Condition:
    field: str
    values: tuple[Any, ...]
    negated: bool = False


@dataclass(frozen=True)
class Group:
    op: Literal["all", "any", "not"]
    parts: tuple[Node, ...]


Node = Condition | Group


@dataclass(frozen=True)
class Segment:
    """A parsed segment: `root` is the condition tree, `definition` the dict it came from."""

    root: Group
    definition: dict[str, Any] = field(default_factory=dict)

    def fields(self) -> set[str]:
        """Names of the fields the segment uses."""
        found: set[str] = set()

        def walk(node: Node) -> None:
            if isinstance(node, Condition):
                found.add(node.field)
            else:
                for part in node.parts:
                    walk(part)

        walk(self.root)
        return found


def _fold(text: str) -> str:
    """Case- and diacritics-insensitive form, for matching what staff type."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


_TRUE = {"ano", "true", "1", "yes", "a", "y"}
_FALSE = {"ne", "false", "0", "no", "n"}


def parse_bool(value: Any) -> bool | None:
    """True/False from a TOML bool or what staff write (ano/ne, yes/no, true/false, 1/0)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return {1: True, 0: False}.get(value)
    if isinstance(value, str):
        folded = _fold(value)
        if folded in _TRUE:
            return True
        if folded in _FALSE:
            return False
    return None


def _valid_list(spec: FieldSpec) -> str:
    if spec.kind == "bool":
        return "true, false (ano, ne)"
    if spec.choices is not None:
        return ", ".join(f"„{c}“" for c in spec.choices())
    return "libovolný text"


def _normalise_value(name: str, spec: FieldSpec, value: Any) -> Any:
    if spec.kind == "bool":
        parsed = parse_bool(value)
        if parsed is None:
            raise SegmentError(
                f"Pole „{name}“: hodnota „{value}“ není platná. "
                f"Platné hodnoty: {_valid_list(spec)}."
            )
        return parsed
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise SegmentError(
            f"Pole „{name}“: hodnota {value!r} má být text. Platné hodnoty: {_valid_list(spec)}."
        )
    text = str(value).strip()
    if spec.kind == "choice" and spec.choices is not None:
        choices = list(spec.choices())
        lookup = {_fold(c): c for c in choices}
        if spec.aliases is not None:
            lookup.update({_fold(k): v for k, v in spec.aliases().items()})
        canonical = lookup.get(_fold(text))
        if canonical is None:
            raise SegmentError(
                f"Pole „{name}“: hodnota „{text}“ není platná. Platné hodnoty: {_valid_list(spec)}."
            )
        return canonical
    if not text:
        raise SegmentError(f"Pole „{name}“: prázdná hodnota.")
    return text


def _unknown_field(name: str) -> SegmentError:
    valid = ", ".join(sorted(_FIELDS))
    return SegmentError(
        f"Neznámé pole segmentu „{name}“. Platná pole: {valid}; "
        "a spojky any (nebo), all (a zároveň), not (ne)."
    )


def _parse_values(name: str, spec: FieldSpec, raw: Any, budget: _Budget) -> tuple[Any, ...]:
    items = list(raw) if isinstance(raw, list | tuple) else [raw]
    budget.condition(len(items))
    if not items:
        raise SegmentError(f"Pole „{name}“: prázdný seznam hodnot.")
    return tuple(dict.fromkeys(_normalise_value(name, spec, v) for v in items))


def _parse_table(data: Mapping[str, Any], path: str, budget: _Budget, depth: int = 0) -> Group:
    if not isinstance(data, Mapping):
        raise SegmentError(f"{path}: segment má být tabulka (pole = hodnota), ne {data!r}.")
    budget.table(path, depth)
    parts: list[Node] = []
    for key, raw in data.items():
        where = f"{path}.{key}" if path != "segment" else key
        if key in ("any", "all"):
            if not isinstance(raw, list) or not raw:
                raise SegmentError(f"„{where}“ má být neprázdný seznam tabulek, např. [{{...}}].")
            subs = tuple(
                _parse_table(sub, f"{where}[{i}]", budget, depth + 1) for i, sub in enumerate(raw)
            )
            parts.append(Group("any" if key == "any" else "all", subs))
        elif key == "not":
            if not isinstance(raw, Mapping):
                raise SegmentError(f"„{where}“ má být tabulka, např. not = {{ member = true }}.")
            parts.append(Group("not", (_parse_table(raw, where, budget, depth + 1),)))
        else:
            spec = _FIELDS.get(key)
            if spec is None:
                raise _unknown_field(key)
            negated = False
            if isinstance(raw, Mapping):
                if set(raw) != {"not"}:
                    raise SegmentError(
                        f"Pole „{key}“: v tabulce je dovolen jen klíč „not“, "
                        f"např. {key} = {{ not = ... }}; nalezeno: {', '.join(map(str, raw))}."
                    )
                negated, raw = True, raw["not"]
            parts.append(Condition(key, _parse_values(key, spec, raw, budget), negated))
    return Group("all", tuple(parts))


def parse_segment(data: Mapping[str, Any] | None) -> Segment:
    """Parse a segment dict (a blueprint's `[segment]` table). An empty one selects everyone
    who may be mailed. A dict holding only a `segment` table is unwrapped."""
    data = dict(data or {})
    if set(data) == {"segment"} and isinstance(data["segment"], Mapping):
        data = dict(data["segment"])
    return Segment(_parse_table(data, "segment", _Budget()), data)


def parse_where(options: Sequence[str]) -> Segment:
    """Parse `FIELD=V1,V2` / `FIELD!=V` options (ANDed) into a segment."""
    clauses: list[dict[str, Any]] = []
    for option in options:
        if "=" not in option:
            raise SegmentError(
                f"Podmínka „{option}“ nemá tvar POLE=HODNOTA nebo POLE!=HODNOTA "
                "(více hodnot oddělte čárkou)."
            )
        name, value = option.split("=", 1)
        negated = name.endswith("!")
        name = name.removesuffix("!").strip()
        if name not in _FIELDS:
            raise _unknown_field(name)
        values: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
        if not values:
            raise SegmentError(f"Podmínka „{option}“: chybí hodnota.")
        if _FIELDS[name].kind == "bool":
            values = [_normalise_value(name, _FIELDS[name], v) for v in values]
        item: Any = values[0] if len(values) == 1 else values
        clauses.append({name: {"not": item} if negated else item})
    names = [next(iter(c)) for c in clauses]
    # A flat table when every field appears once (reads like a blueprint), else `all`.
    definition: dict[str, Any] = (
        {k: v for c in clauses for k, v in c.items()}
        if len(set(names)) == len(names)
        else {"all": clauses}
    )
    return parse_segment(definition)


# --- compiling to SQL ----------------------------------------------------------------------


def _compile(node: Node, context: SegmentContext) -> ColumnElement[bool]:
    if isinstance(node, Condition):
        spec = _FIELDS.get(node.field)
        if spec is None:
            raise _unknown_field(node.field)
        if spec.needs_campaign and context.campaign is None:
            raise SegmentError(
                f"Pole „{node.field}“ má smysl jen v kampani (připomínky); zde kampaň chybí."
            )
        cond = spec.build(node.values, context)
        return _negate(cond) if node.negated else cond
    parts = [_compile(p, context) for p in node.parts]
    if node.op == "not":
        return _negate(parts[0])
    if node.op == "any":
        return sa.or_(*parts)
    return sa.and_(sa.true(), *parts)


def _negate(cond: ColumnElement[bool]) -> ColumnElement[bool]:
    # NOT of NULL is NULL: a contact without a library must count as "not in Praha".
    return sa.not_(sa.func.coalesce(cond, sa.false()))


def recipients_select(
    segment: Segment,
    *,
    topic: str | None = None,
    context: SegmentContext | None = None,
) -> Select[Any]:
    """One select of the Contact rows a segment picks, ordered by Contact.id.

    Library (and Suppression) are outer-joined, so callers may `.add_columns(Library)`.
    Always leaves out contacts that are not active, suppressed, without a legal basis, or
    opted out of `topic`."""
    context = context or SegmentContext()
    if topic is not None and topic not in {t.value for t in Topic}:
        valid = ", ".join(t.value for t in Topic)
        raise SegmentError(f"Neznámé téma „{topic}“. Platná témata: {valid}.")
    conditions: list[ColumnElement[bool]] = [
        _col(Contact.status) == ContactStatus.ACTIVE.value,
        _col(Contact.legal_basis).is_not(None),
        _compile(segment.root, context),
        # Suppressed addresses: an anti-join, joined after the library, so that the lookup
        # runs only for contacts the segment keeps (about twice as fast on SQLite as a
        # correlated NOT EXISTS, which is checked for every active contact).
        _col(Suppression.address_hash).is_(None),
    ]
    if topic is not None:
        conditions.append(~opted_out(topic))
    return (
        sa.select(Contact)
        .select_from(
            sa.outerjoin(Contact, Library, _col(Contact.library_id) == Library.id).outerjoin(
                Suppression, _col(Suppression.address_hash) == Contact.address_hash
            )
        )
        .where(*conditions)
        .order_by(_col(Contact.id))
    )


def count(
    session: Session,
    segment: Segment,
    *,
    topic: str | None = None,
    context: SegmentContext | None = None,
) -> int:
    """How many contacts the segment picks (after the always-applied exclusions)."""
    stmt = recipients_select(segment, topic=topic, context=context)
    counted = stmt.with_only_columns(sa.func.count(_col(Contact.id)), maintain_column_froms=False)
    return int(session.execute(counted.order_by(None)).scalar_one())
