"""A person's click on the registration link counts as registering: it keeps them out of
"not registered" reminders and out of `sdruk schedule`'s audience count. A link scanner's
click does not, including a click that looked human until a scanner burst relabelled it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    GRACE,
    SEND_AT,
    SLUG,
    People,
    add_people,
    campaigns_dir_fixture,
    recipients_of,
    runs,
    send_all,
    steps,
    write_campaign,
)

from mailer.audience.segments import SegmentContext, parse_segment, recipients_select
from mailer.events.record import Hit, write_hits
from mailer.models import Event, EventKind, OutboxMessage, utcnow
from mailer.scheduling.overview import schedule_overview
from mailer.scheduling.steps import tick
from mailer.scheduling.sync import sync_blueprints
from mailer.tokens import Purpose, default_signer
from mailer.web.app import create_app

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel link protection)"
REGISTRATION_URL = "https://sdruk.cz/registrace-test"


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(
        create_app(), base_url="https://kampane.sdruk.test", headers={"User-Agent": BROWSER}
    ) as test_client:
        yield test_client


def _registered(engine: Engine, people: People) -> set[str]:
    segment = parse_segment({"registered": True})
    with Session(engine) as session:
        rows = session.execute(
            recipients_select(segment, topic="events", context=SegmentContext(SLUG))
        ).scalars()
        return people.names({c.id for c in rows})


def test_it_counts_a_persons_click_on_the_registration_link_and_not_a_scanners(
    engine: Engine, campaigns_dir: Path, tmp_path: Path, client: TestClient
) -> None:
    toml = write_campaign(campaigns_dir) / "campaign.toml"
    text = toml.read_text(encoding="utf-8")
    # The shipped event campaigns' reminder audience: opens do not matter, registering does.
    old = 'audience = { received = "launch", joined = false, registered = false, opened = false }'
    assert old in text
    toml.write_text(
        text.replace(old, 'audience = { received = "launch", registered = false }'), "utf-8"
    )
    people = add_people(engine, ["olga", "petra", "romana", "sona"])
    sync_blueprints(engine)
    tick(engine, now=SEND_AT, grace=GRACE)
    [launch] = runs(engine)
    assert launch.id is not None
    send_all(engine, tmp_path)
    # Delivered an hour ago: a click now is not a gateway's check right after delivery.
    with engine.begin() as conn:
        conn.execute(
            sa.update(OutboxMessage)
            .where(col(OutboxMessage.run_id) == launch.id)
            .values(sent_at=utcnow() - timedelta(hours=1))
        )
    links = launch.content["links"]
    registration = launch.content["registration_link"]
    assert links[registration] == REGISTRATION_URL
    # A scanner burst covers every link of a message (three distinct ones when it has more).
    burst = [i for i in range(len(links)) if i != registration][:2]
    assert burst
    outbox = {m.contact_id: m.id for m in _outbox(engine, launch.id)}

    def click(name: str, index: int, user_agent: str = BROWSER) -> None:
        token = default_signer().sign(Purpose.MESSAGE_CLICK, outbox[people[name]])
        response = client.get(
            f"/c/{token}/{index}", headers={"User-Agent": user_agent}, follow_redirects=False
        )
        assert response.status_code == 302
        assert response.headers["location"] == links[index]

    click("olga", registration)
    click("petra", registration, SCANNER)
    click("romana", registration)
    assert _registered(engine, people) == {"olga", "romana"}

    # romana's mail gateway then follows her other links within seconds: a scanner burst,
    # which relabels her earlier click as a machine's too.
    with Session(engine) as session:
        first = session.exec(
            select(Event.occurred_at).where(Event.outbox_id == outbox[people["romana"]])
        ).one()
    write_hits(
        engine,
        [
            Hit(
                kind=EventKind.CLICK,
                occurred_at=first + timedelta(seconds=n + 1),
                outbox_id=outbox[people["romana"]],
                link_index=index,
                user_agent=BROWSER,
            )
            for n, index in enumerate(burst)
        ],
    )
    with Session(engine) as session:
        romana = session.exec(
            select(Event.is_machine).where(Event.outbox_id == outbox[people["romana"]])
        ).all()
    assert romana == [True] * (1 + len(burst))
    assert _registered(engine, people) == {"olga"}

    # `sdruk schedule` counts the reminder's audience by the same rule.
    overview = schedule_overview(engine, now=SEND_AT + timedelta(days=1))
    [upcoming] = [v for v in overview.upcoming if v.step == "pripominka"]
    assert upcoming.audience == 3

    tick(engine, now=SEND_AT + timedelta(days=3), grace=GRACE)
    reminder = steps(engine)["pripominka"]
    assert reminder.run_id is not None
    assert people.names(recipients_of(engine, reminder.run_id)) == {"petra", "romana", "sona"}
    # Nothing is copied into REGISTERED events: the clicks themselves are the record.
    with Session(engine) as session:
        kinds = session.exec(select(Event.kind).distinct()).all()
    assert EventKind.REGISTERED not in kinds


def test_it_freezes_which_link_is_the_registration(campaigns_dir: Path) -> None:
    from mailer.compose.campaigns import load_blueprint
    from mailer.compose.freeze import freeze

    content = freeze(load_blueprint(SLUG))
    assert content["links"][content["registration_link"]] == REGISTRATION_URL
    # A recruitment campaign has no event, so no link counts as registering.
    shipped = Path(__file__).resolve().parent.parent / "campaigns"
    assert freeze(load_blueprint("join-this-year-2026", shipped))["registration_link"] is None


def _outbox(engine: Engine, run_id: int) -> list[OutboxMessage]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxMessage).where(OutboxMessage.run_id == run_id)))
