"""Segments: the syntax, the SQL they compile to, and the exclusions they always apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.audience.contacts import import_contacts, suppress
from mailer.audience.segments import (
    MAX_CONDITIONS,
    MAX_DEPTH,
    MAX_VALUES,
    SegmentContext,
    SegmentError,
    count,
    parse_segment,
    parse_where,
    recipients_select,
)
from mailer.models import Contact, TopicOptOut

HEADER = "email,first_name,library,library_type,town,region,member,consent,status,tags"
LINES = [
    "a@praha.example,Adam,MK Praha,mestska,Praha,Hlavní město Praha,ano,consent,active,vip",
    "b@brno.example,Bára,MK Brno,mestska,Brno,Jihomoravský kraj,ne,legitimate_interest,active,",
    "c@lhota.example,Cyril,OK Lhota,obecni,Lhota,Zlínský kraj,ne,legitimate_interest,active,vip;x",
    "d@lhota.example,Dana,OK Lhota,obecni,Lhota,Zlínský kraj,ne,,active,",
    "e@lhota.example,Eva,OK Lhota,obecni,Lhota,Zlínský kraj,ne,consent,unsubscribed,",
    "f@vedecka.example,Filip,VK Olomouc,vedecka,Olomouc,Olomoucký kraj,ano,consent,active,",
    "g@bez-knihovny.example,Gita,,,,,,consent,active,",
]


@pytest.fixture
def loaded(engine: Engine, tmp_path: Path) -> Engine:
    path = tmp_path / "k.csv"
    path.write_text("\n".join([HEADER, *LINES]) + "\n", encoding="utf-8")
    assert import_contacts(engine, path).rejected == []
    return engine


def emails(engine: Engine, data: dict | None = None, **kw: object) -> list[str]:  # type: ignore[type-arg]
    with Session(engine) as session:
        stmt = recipients_select(parse_segment(data or {}), **kw)  # type: ignore[arg-type]
        return [c.email.split("@")[0] for c in session.exec(stmt).scalars()]  # type: ignore[call-overload]


def test_it_leaves_out_inactive_and_basisless_contacts_whatever_the_segment(loaded: Engine) -> None:
    # d has no legal basis, e unsubscribed.
    assert emails(loaded) == ["a", "b", "c", "f", "g"]


def test_it_filters_by_equals_in_and_not(loaded: Engine) -> None:
    assert emails(loaded, {"library_type": "obecni"}) == ["c"]
    assert emails(loaded, {"library_type": ["mestska", "vedecka"]}) == ["a", "b", "f"]
    # A contact without a library is "not in Praha" too.
    assert emails(loaded, {"region": {"not": "Hlavní město Praha"}}) == ["b", "c", "f", "g"]
    assert emails(loaded, {"town": {"not": ["Praha", "Brno"]}}) == ["c", "f", "g"]
    assert emails(loaded, {"member": False}) == ["b", "c", "g"]
    assert emails(loaded, {"member": True, "library_type": "vedecka"}) == ["f"]
    assert emails(loaded, {"tag": "vip"}) == ["a", "c"]
    assert emails(loaded, {"legal_basis": "consent"}) == ["a", "f", "g"]
    assert emails(loaded, {"email_domain": "brno.example"}) == ["b"]


def test_it_combines_with_any_all_and_not(loaded: Engine) -> None:
    assert emails(loaded, {"any": [{"tag": "vip"}, {"member": True}]}) == ["a", "c", "f"]
    assert emails(loaded, {"all": [{"member": False}, {"tag": "x"}]}) == ["c"]
    assert emails(loaded, {"not": {"any": [{"tag": "vip"}, {"town": "Brno"}]}}) == ["f", "g"]
    # A blueprint's [segment] table arrives wrapped.
    wrapped = {"segment": {"library_type": ["mestska", "obecni"], "member": False}}
    assert emails(loaded, wrapped) == ["b", "c"]


def test_it_leaves_out_suppressed_and_topic_opt_outs(loaded: Engine) -> None:
    with Session(loaded) as session:
        suppress(session, "A@praha.example", "erasure")
        c = session.exec(select(Contact).where(Contact.email == "c@lhota.example")).one()
        session.add(TopicOptOut(contact_id=c.id, topic="events"))
        session.commit()
    assert emails(loaded) == ["b", "c", "f", "g"]
    assert emails(loaded, topic="events") == ["b", "f", "g"]
    assert emails(loaded, {"topic": "events"}) == ["b", "f", "g"]
    assert emails(loaded, {"topic": {"not": "events"}}) == ["c"]


def test_it_counts_what_it_selects(loaded: Engine) -> None:
    with Session(loaded) as session:
        assert count(session, parse_where(["library_type=mestska,obecni", "member=ne"])) == 2
        assert count(session, parse_where(["region!=Praha", "tag=vip"])) == 1
        assert count(session, parse_where([])) == 5


def test_it_reads_where_options() -> None:
    segment = parse_where(["library_type=mestska,obecni", "member=ne", "region!=Praha"])
    assert segment.definition == {
        "library_type": ["mestska", "obecni"],
        "member": False,
        "region": {"not": "Praha"},
    }
    twice = parse_where(["tag!=a", "tag!=b"])
    assert twice.definition == {"all": [{"tag": {"not": "a"}}, {"tag": {"not": "b"}}]}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"typ": "obecni"}, ["„typ“", "library_type", "region"]),
        ({"library_type": "hradni"}, ["„hradni“", "„mestska“", "„obecni“"]),
        ({"region": "Bavorsko"}, ["„Bavorsko“", "Kraj Vysočina"]),
        ({"member": "možná"}, ["„member“", "true, false"]),
        ({"region": {"je": "Praha"}}, ["„region“", "not"]),
        ({"any": {"member": True}}, ["any"]),
        ({"topic": "sport"}, ["„sport“", "membership"]),
        ({"tag": []}, ["„tag“", "prázdný"]),
    ],
)
def test_it_names_the_wrong_field_or_value_and_lists_valid_ones(
    data: dict,
    expected: list[str],  # type: ignore[type-arg]
) -> None:
    with pytest.raises(SegmentError) as error:
        parse_segment(data)
    for text in expected:
        assert text in str(error.value)


@pytest.mark.parametrize("option", ["library_type", "regio=Praha", "member=", "member=snad"])
def test_it_rejects_bad_where_options(option: str) -> None:
    with pytest.raises(SegmentError):
        parse_where([option])


def test_it_rejects_an_unknown_topic() -> None:
    with pytest.raises(SegmentError, match="sport"):
        recipients_select(parse_segment({}), topic="sport")


def test_it_orders_by_contact_id_and_accepts_a_context(loaded: Engine) -> None:
    stmt = recipients_select(parse_segment({"member": True}), context=SegmentContext("nabor"))
    with Session(loaded) as session:
        ids = [c.id for c in session.exec(stmt).scalars()]  # type: ignore[call-overload]
    assert ids == sorted(ids) and len(ids) == 2


def _nested_not(depth: int) -> dict[str, object]:
    node: dict[str, object] = {"member": False}
    for _ in range(depth):
        node = {"not": node}
    return node


def test_it_refuses_a_segment_nested_too_deep_with_a_czech_reason(loaded: Engine) -> None:
    # 100 nested `not` once passed the check and then broke every place that compiled it.
    with pytest.raises(SegmentError) as caught:
        parse_segment(_nested_not(100))
    assert "vnořen" in str(caught.value) and str(MAX_DEPTH) in str(caught.value)
    # The deepest allowed nesting still parses and compiles to the right people.
    deepest = _nested_not(MAX_DEPTH - 1)
    # An odd number of `not` around "member = false" means "member"; even means "not member".
    expected = ["a", "f"] if (MAX_DEPTH - 1) % 2 else ["b", "c", "g"]
    assert emails(loaded, deepest) == expected
    with pytest.raises(SegmentError):
        parse_segment({"any": [{"all": [_nested_not(MAX_DEPTH)]}]})


def test_it_refuses_a_segment_with_too_many_conditions_or_values() -> None:
    many = {"any": [{"town": f"Obec {i}"} for i in range(MAX_CONDITIONS + 1)]}
    with pytest.raises(SegmentError, match="podmínek"):
        parse_segment(many)
    parse_segment({"any": [{"town": f"Obec {i}"} for i in range(MAX_CONDITIONS - 1)]})
    with pytest.raises(SegmentError, match="hodnot"):
        parse_segment({"town": [f"Obec {i}" for i in range(MAX_VALUES + 1)]})
    parse_segment({"town": [f"Obec {i}" for i in range(MAX_VALUES)]})
    # Values spread over many small lists count together.
    spread = {"any": [{"town": [f"{j}-{i}" for i in range(60)]} for j in range(60)]}
    with pytest.raises(SegmentError, match="hodnot"):
        parse_segment(spread)
