"""Segments against a model: Hypothesis makes small directories and campaign histories, and every
segment field, the shipped campaigns' segments and reminder audiences, and random combinations
of them are answered both by the real SQL (`recipients_select`, SQLite and PostgreSQL) and by a
few lines of plain Python written from the rules, which must agree.

The model below reads the rules as the product documents them, not as the SQL spells them:
- only active contacts with a legal basis, not on the suppression list, and not opted out of
  the campaign's topic are ever picked;
- library fields are false for a contact without a library;
- received = a sent message of that step's run of the campaign;
- opened / clicked = a person's (not a machine's) open, click or web view / click on any of the
  campaign's runs; "false" only for those whose behaviour can be known: not for a contact who
  denied tracking, nor for one who got a sent message of the campaign that went out
  untracked (individually_tracked false; NULL, an undecided row, counts as known);
- registered = an active registration from the public page (a seat or the waiting list), or
  a REGISTERED event for the campaign (named in its detail or by its run), or a person's
  click on the registration link of one of the campaign's runs, where an event or click at or
  before the contact's latest cancelled registration of the campaign no longer counts;
- attending = a confirmed seat (registered, not wait-listed or cancelled) for the campaign;
  attending_session = n: such a seat at the n-th session;
- joined = the library is a member, or a JOINED event names this contact or a colleague at the
  same library, or an application from the public form (pending or approved, not rejected)
  names this contact or its library.
"""

from __future__ import annotations

import functools
import hashlib
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine

from mailer.audience.segments import SegmentContext, parse_segment, recipients_select
from mailer.compose.campaigns import load_blueprints
from mailer.models import (
    Contact,
    ContactTag,
    Event,
    EventRegistration,
    LegalBasisRecord,
    Library,
    MembershipApplication,
    OutboxMessage,
    Run,
    Suppression,
    Tag,
    TopicOptOut,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "campaigns"
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _shipped() -> dict[str, dict[str, Any]]:
    """Each shipped campaign as its TOML says: topic, segment and the reminders' audiences (as
    the parts ANDed with the segment). A `before_session` reminder is a step per session,
    named `<name>-<n>`, whose audience adds that session's confirmed seats."""
    found = {}
    for path in sorted(SHIPPED.glob("*/campaign.toml")):
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
        sessions = len(raw.get("event", {}).get("sessions", [])) or 1
        reminders: dict[str, list[dict[str, Any]]] = {}
        for r in raw.get("reminder", []):
            audience = [r["audience"]] if r.get("audience") else []
            if "before_session" in r:
                for n in range(1, sessions + 1):
                    reminders[f"{r['name']}-{n}"] = [*audience, {"attending_session": n}]
            else:
                reminders[r["name"]] = audience
        found[path.parent.name] = {
            "topic": raw["topic"],
            "segment": raw.get("segment", {}),
            "reminders": reminders,
            "sessions": sessions,
        }
    return found


CAMPAIGNS = _shipped()
SLUGS = sorted(CAMPAIGNS)
STEPS = {slug: ["launch", *c["reminders"]] for slug, c in CAMPAIGNS.items()}
ALL_STEPS = sorted({s for steps in STEPS.values() for s in steps})
TYPES = ["mestska", "obecni", "krajska"]
SESSIONS = max(c["sessions"] for c in CAMPAIGNS.values())
REGISTRATION_STATUSES = ["registered", "waitlisted", "cancelled"]
REGIONS = ["Jihomoravský kraj", "Hlavní město Praha"]
TOWNS = ["Brno", "Tišnov"]
TAGS = ["vip", "porada"]
TOPICS = ["membership", "events", "newsletter"]
BASES = ["legitimate_interest", "consent"]
DOMAINS = ["knihovna.cz", "mesto.cz"]
STATUSES = ["active", "active", "active", "unsubscribed", "bounced", "complained"]
APPLICATION_STATUSES = ["pending", "approved", "rejected"]
CONSENTS = ["unknown", "unknown", "granted", "denied"]
EVENT_KINDS = ["open", "click", "web_view", "registered", "joined", "unsubscribe"]


# --- the world: what Hypothesis generates --------------------------------------------------


@dataclass(frozen=True)
class Lib:
    id: int
    library_type: str
    region: str
    town: str
    is_member: bool


@dataclass(frozen=True)
class Person:
    id: int
    email: str
    library_id: int | None
    status: str
    legal_basis: str | None
    suppressed: bool
    opted_out: frozenset[str]
    tags: frozenset[str]
    tracking_consent: str = "unknown"


@dataclass(frozen=True)
class RunOf:
    id: int
    campaign: str
    step: str
    registration_link: int | None


@dataclass(frozen=True)
class Message:
    run_id: int
    contact_id: int
    status: str
    individually_tracked: bool | None = None


@dataclass(frozen=True)
class Happening:
    kind: str
    contact_id: int | None
    run_id: int | None
    is_machine: bool
    link_index: int | None
    campaign_named: str | None  # detail["campaign"], as `sdruk registrations import` writes
    minute: int = 0  # when, in minutes after NOW


@dataclass(frozen=True)
class Registration:
    """A registration from the public page (`event_registration`)."""

    contact_id: int | None
    campaign: str
    session_index: int
    status: str
    minute: int  # made
    cancelled_minute: int  # when cancelled (status "cancelled" only)


@dataclass(frozen=True)
class Application:
    library_id: int | None
    contact_id: int | None
    status: str


@dataclass(frozen=True)
class World:
    libraries: tuple[Lib, ...]
    people: tuple[Person, ...]
    runs: tuple[RunOf, ...]
    messages: tuple[Message, ...]
    events: tuple[Happening, ...]
    applications: tuple[Application, ...] = ()
    registrations: tuple[Registration, ...] = ()


@st.composite
def worlds(draw: st.DrawFn) -> World:
    libraries = tuple(
        Lib(
            i + 1,
            draw(st.sampled_from(TYPES)),
            draw(st.sampled_from(REGIONS)),
            draw(st.sampled_from(TOWNS)),
            draw(st.booleans()),
        )
        for i in range(draw(st.integers(0, 4)))
    )
    library_ids = [lib.id for lib in libraries]
    people = tuple(
        Person(
            i + 1,
            f"c{i + 1}@{draw(st.sampled_from(DOMAINS))}",
            draw(st.none() | st.sampled_from(library_ids)) if library_ids else None,
            draw(st.sampled_from(STATUSES)),
            draw(st.sampled_from([None, *BASES, *BASES])),
            draw(st.booleans()) and draw(st.booleans()),
            frozenset(draw(st.sets(st.sampled_from(TOPICS), max_size=2))),
            frozenset(draw(st.sets(st.sampled_from(TAGS), max_size=2))),
            draw(st.sampled_from(CONSENTS)),
        )
        for i in range(draw(st.integers(1, 8)))
    )
    pairs = [(slug, step) for slug in SLUGS for step in STEPS[slug]]
    chosen = draw(st.lists(st.sampled_from(pairs), unique=True, max_size=4))
    runs = tuple(
        RunOf(i + 1, slug, step, draw(st.none() | st.integers(0, 2)))
        for i, (slug, step) in enumerate(chosen)
    )
    person_ids = [p.id for p in people]
    run_ids = [r.id for r in runs]
    messages: tuple[Message, ...] = ()
    if runs:
        sent = draw(
            st.lists(
                st.tuples(st.sampled_from(run_ids), st.sampled_from(person_ids)),
                unique=True,
                max_size=12,
            )
        )
        messages = tuple(
            Message(
                run_id,
                contact_id,
                draw(st.sampled_from(["sent", "sent", "failed", "queued"])),
                draw(st.sampled_from([True, True, False, None])),
            )
            for run_id, contact_id in sent
        )
    events = tuple(
        draw(
            st.lists(
                st.builds(
                    Happening,
                    kind=st.sampled_from(EVENT_KINDS),
                    contact_id=st.none() | st.sampled_from(person_ids),
                    run_id=st.none() | st.sampled_from(run_ids) if run_ids else st.none(),
                    is_machine=st.booleans(),
                    link_index=st.none() | st.integers(0, 2),
                    campaign_named=st.none() | st.sampled_from(SLUGS),
                    minute=st.integers(0, 6),
                ),
                max_size=12,
            )
        )
    )
    applications = tuple(
        draw(
            st.lists(
                st.builds(
                    Application,
                    library_id=st.none() | st.sampled_from(library_ids)
                    if library_ids
                    else st.none(),
                    contact_id=st.none() | st.sampled_from(person_ids),
                    status=st.sampled_from(APPLICATION_STATUSES),
                ),
                max_size=2,
            )
        )
    )
    registrations = tuple(
        draw(
            st.lists(
                st.builds(
                    Registration,
                    contact_id=st.none() | st.sampled_from(person_ids),
                    campaign=st.sampled_from(SLUGS),
                    session_index=st.integers(0, SESSIONS - 1),
                    status=st.sampled_from(REGISTRATION_STATUSES),
                    minute=st.integers(0, 6),
                    cancelled_minute=st.integers(0, 6),
                ),
                max_size=5,
                # The page keeps one row per session and address (unique constraint).
                unique_by=lambda r: (r.contact_id or 0, r.campaign, r.session_index),
            )
        )
    )
    return World(libraries, people, runs, messages, events, applications, registrations)


# --- segments: every field, and random combinations ----------------------------------------

FIELD_VALUES: dict[str, list[Any]] = {
    "library_type": [*TYPES, TYPES[:2]],
    "region": REGIONS,
    "town": TOWNS,
    "member": [True, False],
    "tag": [*TAGS, TAGS],
    "topic": [*TOPICS, TOPICS[:2]],
    "legal_basis": BASES,
    "email_domain": DOMAINS,
    "received": [*ALL_STEPS, ["launch", ALL_STEPS[-1]]],
    "opened": [True, False],
    "clicked": [True, False],
    "registered": [True, False],
    "attending": [True, False],
    "attending_session": [*range(1, SESSIONS + 1), [1, SESSIONS]],
    "joined": [True, False],
}


def every_field() -> Iterator[dict[str, Any]]:
    """Each field with each value: as is, negated in place, and under `not`."""
    for name, values in FIELD_VALUES.items():
        for value in values:
            yield {name: value}
            yield {name: {"not": value}}
            yield {"not": {name: value}}


leaves = st.sampled_from(list(FIELD_VALUES.items())).flatmap(
    lambda item: st.sampled_from(item[1]).flatmap(
        lambda value: st.sampled_from([{item[0]: value}, {item[0]: {"not": value}}])
    )
)


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            merged.setdefault(key, value)
    return merged


segments = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
        st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
        inner.map(lambda x: {"not": x}),
        st.lists(inner, min_size=2, max_size=3).map(_merge),
    ),
    max_leaves=6,
)


@dataclass(frozen=True)
class Question:
    """A segment asked within a campaign, for a topic."""

    definition: Mapping[str, Any]
    campaign: str
    topic: str | None


questions = st.builds(
    Question,
    definition=segments,
    campaign=st.sampled_from(SLUGS),
    topic=st.none() | st.sampled_from(TOPICS),
)


CAMPAIGN_FIELDS = {"received", "opened", "clicked", "registered", "attending"}


def fixed_questions() -> list[Question]:
    """Every field (those relative to a campaign in every shipped campaign), and each shipped
    step's whole audience (the campaign's segment AND the reminder's audience), for the
    campaign's topic."""
    asked = []
    for definition in every_field():
        relative = bool(CAMPAIGN_FIELDS & set(str(definition)))
        for slug in SLUGS if relative else SLUGS[:1]:
            asked.append(Question(definition, slug, None))
    for slug, campaign in CAMPAIGNS.items():
        asked.append(Question(campaign["segment"], slug, campaign["topic"]))
        for parts in campaign["reminders"].values():
            asked.append(Question({"all": parts}, slug, campaign["topic"]))
            asked.append(Question({"all": [campaign["segment"], *parts]}, slug, campaign["topic"]))
    return asked


FIXED = fixed_questions()


# --- the model ---------------------------------------------------------------------------


class Model:
    """The rules, in plain Python over the world."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.libraries = {lib.id: lib for lib in world.libraries}
        self.people = {p.id: p for p in world.people}
        self.runs = {r.id: r for r in world.runs}

    def picks(self, question: Question) -> set[int]:
        return {
            p.id
            for p in self.world.people
            if p.status == "active"
            and p.legal_basis is not None
            and not p.suppressed
            and (question.topic is None or question.topic not in p.opted_out)
            and self.holds(question.definition, p, question.campaign)
        }

    def holds(self, definition: Mapping[str, Any], p: Person, campaign: str) -> bool:
        for key, value in definition.items():
            if key == "any":
                ok = any(self.holds(sub, p, campaign) for sub in value)
            elif key == "all":
                ok = all(self.holds(sub, p, campaign) for sub in value)
            elif key == "not":
                ok = not self.holds(value, p, campaign)
            elif isinstance(value, Mapping):
                ok = not self.field(key, value["not"], p, campaign)
            else:
                ok = self.field(key, value, p, campaign)
            if not ok:
                return False
        return True

    def field(self, name: str, raw: Any, p: Person, campaign: str) -> bool:
        values = list(raw) if isinstance(raw, list) else [raw]
        lib = self.libraries.get(p.library_id) if p.library_id is not None else None
        if name == "library_type":
            return lib is not None and lib.library_type in values
        if name == "region":
            return lib is not None and lib.region in values
        if name == "town":
            return lib is not None and lib.town in values
        if name == "member":
            return (lib is not None and lib.is_member) in values
        if name == "tag":
            return bool(p.tags & set(values))
        if name == "topic":
            return any(t not in p.opted_out for t in values)
        if name == "legal_basis":
            return p.legal_basis in values
        if name == "email_domain":
            return p.email.split("@")[1] in [v.lower() for v in values]
        if name == "received":
            return self.received(p, campaign, values)
        if name == "attending_session":
            return self.attending(p, campaign, {int(v) for v in values})
        if name in ("opened", "clicked"):
            kinds = {"open", "click", "web_view"} if name == "opened" else {"click"}
            did = self.human(p, campaign, kinds)
            # "No" only where it can be known: tracked, and nothing happened.
            return (True in values and did) or (
                False in values and not did and not self.untracked(p, campaign)
            )
        # The rest are yes/no.
        checks = {
            "registered": lambda: self.registered(p, campaign),
            "attending": lambda: self.attending(p, campaign, None),
            "joined": lambda: self.joined(p, lib),
        }
        return checks[name]() in values

    def _of_campaign(self, run_id: int | None, campaign: str) -> bool:
        return run_id is not None and self.runs[run_id].campaign == campaign

    def received(self, p: Person, campaign: str, steps: list[str]) -> bool:
        return any(
            m.contact_id == p.id
            and m.status == "sent"
            and self._of_campaign(m.run_id, campaign)
            and self.runs[m.run_id].step in steps
            for m in self.world.messages
        )

    def untracked(self, p: Person, campaign: str) -> bool:
        return p.tracking_consent == "denied" or any(
            m.contact_id == p.id
            and m.status == "sent"
            and m.individually_tracked is False
            and self._of_campaign(m.run_id, campaign)
            for m in self.world.messages
        )

    def human(self, p: Person, campaign: str, kinds: set[str]) -> bool:
        return any(
            e.contact_id == p.id
            and e.kind in kinds
            and not e.is_machine
            and self._of_campaign(e.run_id, campaign)
            for e in self.world.events
        )

    def _pages(self, p: Person, campaign: str) -> list[Registration]:
        return [
            r for r in self.world.registrations if r.contact_id == p.id and r.campaign == campaign
        ]

    def attending(self, p: Person, campaign: str, sessions: set[int] | None) -> bool:
        return any(
            r.status == "registered" and (sessions is None or r.session_index + 1 in sessions)
            for r in self._pages(p, campaign)
        )

    def registered(self, p: Person, campaign: str) -> bool:
        pages = self._pages(p, campaign)
        if any(r.status != "cancelled" for r in pages):
            return True
        # The person's latest word: evidence from before their last cancellation is void.
        cancelled = [r.cancelled_minute for r in pages if r.status == "cancelled"]
        last_cancel = max(cancelled, default=-1)
        for e in self.world.events:
            if e.contact_id != p.id or e.minute <= last_cancel:
                continue
            if e.kind == "registered" and (
                e.campaign_named == campaign or self._of_campaign(e.run_id, campaign)
            ):
                return True
            if (
                e.kind == "click"
                and not e.is_machine
                and self._of_campaign(e.run_id, campaign)
                and e.link_index is not None
                and e.run_id is not None
                and e.link_index == self.runs[e.run_id].registration_link
            ):
                return True
        return False

    def joined(self, p: Person, lib: Lib | None) -> bool:
        if lib is not None and lib.is_member:
            return True
        for e in self.world.events:
            if e.kind != "joined" or e.contact_id is None:
                continue
            joiner = self.people[e.contact_id]
            if joiner.id == p.id:
                return True
            if p.library_id is not None and joiner.library_id == p.library_id:
                return True
        for a in self.world.applications:
            if a.status == "rejected":
                continue
            if a.contact_id == p.id or (p.library_id is not None and a.library_id == p.library_id):
                return True
        return False


# --- the database side ---------------------------------------------------------------------

TABLES = [
    EventRegistration,
    MembershipApplication,
    Event,
    OutboxMessage,
    Run,
    ContactTag,
    Tag,
    TopicOptOut,
    Suppression,
    LegalBasisRecord,
    Contact,
    Library,
]


def _table(model: Any) -> sa.Table:
    return model.__table__  # type: ignore[no-any-return]


def _hash(email: str) -> str:
    return hashlib.sha256(email.strip().lower().encode()).hexdigest()


def store(conn: Connection, world: World) -> None:
    """Replace whatever the previous example left with this world, in a few bulk inserts."""
    for model in TABLES:
        conn.execute(sa.delete(_table(model)))

    def insert(model: Any, rows: list[dict[str, Any]]) -> None:
        if rows:
            conn.execute(sa.insert(_table(model)), rows)

    stamp = {"created_at": NOW, "updated_at": NOW}
    insert(
        Library,
        [
            {
                "id": lib.id,
                "name": f"Knihovna {lib.id}",
                "library_type": lib.library_type,
                "region": lib.region,
                "town": lib.town,
                "is_member": lib.is_member,
                **stamp,
            }
            for lib in world.libraries
        ],
    )
    insert(
        Contact,
        [
            {
                "id": p.id,
                "email": p.email,
                "address_hash": _hash(p.email),
                "first_name": "Jana",
                "last_name": "Nováková",
                "role": "",
                "library_id": p.library_id,
                "status": p.status,
                "legal_basis": p.legal_basis,
                "tracking_consent": p.tracking_consent,
                "soft_bounces": 0,
                **stamp,
            }
            for p in world.people
        ],
    )
    insert(
        Suppression,
        [
            {"address_hash": _hash(p.email), "reason": "hard_bounce", "created_at": NOW}
            for p in world.people
            if p.suppressed
        ],
    )
    insert(
        TopicOptOut,
        [
            {"contact_id": p.id, "topic": t, "created_at": NOW}
            for p in world.people
            for t in sorted(p.opted_out)
        ],
    )
    insert(Tag, [{"id": i + 1, "name": name} for i, name in enumerate(TAGS)])
    insert(
        ContactTag,
        [
            {"contact_id": p.id, "tag_id": TAGS.index(t) + 1}
            for p in world.people
            for t in sorted(p.tags)
        ],
    )
    insert(
        Run,
        [
            {
                "id": r.id,
                "campaign": r.campaign,
                "step": r.step,
                "status": "sent",
                "content": {
                    "links": ["https://sdruk.cz/a", "https://sdruk.cz/b", "https://sdruk.cz/c"],
                    "registration_link": r.registration_link,
                },
                "recipients": 0,
                "late": False,
                "created_at": NOW,
            }
            for r in world.runs
        ],
    )
    emails = {p.id: p.email for p in world.people}
    insert(
        OutboxMessage,
        [
            {
                "run_id": m.run_id,
                "contact_id": m.contact_id,
                "email": emails[m.contact_id],
                "status": m.status,
                "attempts": 1,
                "possible_duplicate": False,
                "individually_tracked": m.individually_tracked,
                "sent_at": NOW if m.status == "sent" else None,
            }
            for m in world.messages
        ],
    )
    insert(
        Event,
        [
            {
                "kind": e.kind,
                "occurred_at": NOW + timedelta(minutes=e.minute),
                "run_id": e.run_id,
                "contact_id": e.contact_id,
                "link_index": e.link_index,
                "is_machine": e.is_machine,
                "detail": {"campaign": e.campaign_named} if e.campaign_named else {},
            }
            for e in world.events
        ],
    )
    _store_applications(conn, world)
    insert(
        EventRegistration,
        [
            {
                "campaign": r.campaign,
                "session_index": r.session_index,
                "status": r.status,
                "name": "Jana Nováková",
                "role": "",
                "library_name": "",
                "email": f"r{r.contact_id}@knihovna.cz",
                "contact_id": r.contact_id,
                "created_at": NOW + timedelta(minutes=r.minute),
                "cancelled_at": (
                    NOW + timedelta(minutes=r.cancelled_minute) if r.status == "cancelled" else None
                ),
            }
            for r in world.registrations
        ],
    )


def _select(question: Question) -> sa.Select[Any]:
    return recipients_select(
        parse_segment(question.definition),
        topic=question.topic,
        context=SegmentContext(question.campaign),
    )


def _store_applications(conn: Connection, world: World) -> None:
    rows = [
        {
            "status": a.status,
            "library_id": a.library_id,
            "contact_id": a.contact_id,
            "library_name": "Knihovna z přihlášky",
            "library_type": "obecni",
            "region": REGIONS[0],
            "town": TOWNS[0],
            "siglum": "",
            "contact_name": "Jana Nováková",
            "contact_role": "",
            "email": "prihlaska@knihovna.cz",
            "phone": "",
            "ico": "",
            "dic": "",
            "billing_address": "",
            "consent_text": "Souhlasím.",
            "created_at": NOW,
            "decision_note": "",
        }
        for a in world.applications
    ]
    if rows:
        conn.execute(sa.insert(_table(MembershipApplication)), rows)


def sql_picks(conn: Connection, question: Question) -> set[int]:
    """The contacts the product's select picks, asked on its own."""
    select_ = _select(question).with_only_columns(_table(Contact).c.id)
    return set(conn.execute(select_).scalars())


# One type object for every tag: a new one per literal costs SQLAlchemy a cache-key build each.
_NUMBER = sa.Integer()


def batched_selects(asked: list[Question]) -> list[sa.CompoundSelect]:
    """The same selects, many per round trip: each as a part of a UNION ALL that tags its
    rows with the question's number (SQLite allows 500 parts)."""
    return [
        sa.union_all(
            *[
                _select(question)
                .with_only_columns(sa.literal(i, _NUMBER).label("q"), _table(Contact).c.id)
                .order_by(None)
                for i, question in enumerate(asked[start : start + 100], start)
            ]
        )
        for start in range(0, len(asked), 100)
    ]


@functools.cache
def fixed_selects() -> list[sa.CompoundSelect]:
    # Built once: the questions do not change between examples, and building and hashing
    # these statements costs far more than running them on a handful of rows.
    return batched_selects(FIXED)


def sql_answers(
    conn: Connection, asked: list[Question], selects: list[sa.CompoundSelect]
) -> list[set[int]]:
    answers: list[set[int]] = [set() for _ in asked]
    for select_ in selects:
        for number, contact_id in conn.execute(select_):
            answers[number].add(contact_id)
    return answers


def compare(
    conn: Connection,
    world: World,
    asked: list[Question],
    selects: list[sa.CompoundSelect] | None = None,
) -> None:
    model = Model(world)
    answers = sql_answers(conn, asked, selects or batched_selects(asked))
    for question, batched in zip(asked, answers, strict=True):
        expected = model.picks(question)
        if batched == expected:
            continue
        got = sql_picks(conn, question)  # asked alone, as the product asks it
        note(f"question: {question}; batched answer {sorted(batched)}")
        raise AssertionError(
            f"segment {dict(question.definition)} in {question.campaign} "
            f"(topic {question.topic}): SQL picks {sorted(got)}, the model "
            f"{sorted(expected)}; only SQL {sorted(got - expected)}, "
            f"only the model {sorted(expected - got)}"
        )


EXAMPLES = settings(
    max_examples=50,
    deadline=None,
    # One migrated schema per test function; each example clears and refills it.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@EXAMPLES
@given(world=worlds())
def test_it_answers_every_field_and_shipped_audience_like_the_model(
    engine: Engine, world: World
) -> None:
    with engine.begin() as conn:
        store(conn, world)
        compare(conn, world, FIXED, fixed_selects())


@EXAMPLES
@given(world=worlds(), asked=st.lists(questions, min_size=1, max_size=4))
def test_it_answers_combined_segments_like_the_model(
    engine: Engine, world: World, asked: list[Question]
) -> None:
    with engine.begin() as conn:
        store(conn, world)
        compare(conn, world, asked)


def test_it_reads_the_shipped_audiences_as_launches_do() -> None:
    # The model combines a reminder's audience with the campaign's segment as the TOML reads;
    # the product's blueprints must do the same, or the fixed questions test the wrong thing.
    for blueprint in load_blueprints(SHIPPED):
        campaign = CAMPAIGNS[blueprint.slug]
        assert blueprint.audience_for("launch") == campaign["segment"]
        for name, parts in campaign["reminders"].items():
            assert blueprint.audience_for(name) == {"all": [campaign["segment"], *parts]}


@pytest.mark.parametrize("slug", SLUGS)
def test_it_has_reminders_to_compare(slug: str) -> None:
    # Guards the differential tests against an empty shipped folder reading as "all agree".
    assert CAMPAIGNS[slug]["reminders"], slug
