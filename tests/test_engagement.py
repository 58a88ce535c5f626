"""Engagement segment fields count people, relative to one campaign."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    SLUG,
    add_people,
    campaigns_dir_fixture,
    play_story,
)

from mailer.audience.segments import (
    SegmentContext,
    SegmentError,
    count,
    parse_segment,
    recipients_select,
)


def _names(engine: Engine, people: object, definition: dict[str, object]) -> set[str]:
    segment = parse_segment(definition)
    with Session(engine) as session:
        rows = session.execute(
            recipients_select(segment, topic="events", context=SegmentContext(SLUG))
        ).scalars()
        return people.names({c.id for c in rows})  # type: ignore[attr-defined]


def test_it_answers_each_engagement_field(
    engine: Engine, campaigns_dir: Path, tmp_path: Path
) -> None:
    people, _run = play_story(engine, tmp_path)
    everyone_sent = {"alena", "bara", "cecilie", "dana", "eva", "frantiska", "hana", "ivana"}
    # gita unsubscribed: no segment ever picks her again.
    assert _names(engine, people, {"received": "launch"}) == everyone_sent
    assert _names(engine, people, {"received": {"not": "launch"}}) == {"jana"}
    # People's opens only; a person's click proves an open.
    assert _names(engine, people, {"opened": True}) == {"alena", "cecilie", "ivana"}
    assert _names(engine, people, {"received": "launch", "opened": False}) == {
        "bara", "dana", "eva", "frantiska", "hana"
    }  # fmt: skip
    assert _names(engine, people, {"clicked": True}) == {"cecilie", "ivana"}
    # dana by the registration system's export, ivana by a person's click on the registration
    # link (bara's scanner clicked another link).
    assert _names(engine, people, {"registered": True}) == {"dana", "ivana"}
    # The membership of eva's library covers her colleague too.
    assert _names(engine, people, {"joined": True}) == {"eva", "frantiska"}
    assert _names(engine, people, {"received": "launch", "registered": False, "joined": False}) == {
        "alena", "bara", "cecilie", "hana"
    }  # fmt: skip


def test_it_needs_a_campaign_for_campaign_fields(engine: Engine, campaigns_dir: Path) -> None:
    add_people(engine, ["alena"])
    with Session(engine) as session, pytest.raises(SegmentError, match="opened"):
        count(session, parse_segment({"opened": False}))
    with Session(engine) as session:
        # joined is about the library, not a campaign.
        assert count(session, parse_segment({"joined": False})) == 1


def test_it_rejects_a_wrong_engagement_value(engine: Engine) -> None:
    with pytest.raises(SegmentError, match="opened"):
        parse_segment({"opened": "možná"})
