"""Run results: people and machines apart, per link, by library type and region."""

from __future__ import annotations

import json

from events_factory import LINKS, make_world
from sqlalchemy import Engine
from sqlmodel import Session

from mailer.events import record
from mailer.events.record import BounceTarget
from mailer.events.stats import run_stats
from mailer.models import EventKind, MessageStatus, OutboxMessage


def _scenario(engine: Engine) -> tuple[int, list[int]]:
    """Three recipients: a person who opens and clicks, an Apple MPP prefetch then an
    unsubscribe, and a gateway-scanned address that hard-bounces; a fourth never sent."""
    world = make_world(engine, contacts=4)
    a, b, c, d = world.outbox_ids
    ca, cb, _, _ = world.contact_ids
    with Session(engine) as session, session.begin():
        d_row = session.get(OutboxMessage, d)
        assert d_row is not None
        d_row.status = MessageStatus.FAILED
        ids = {"run_id": world.run_id}
        record.record_event(session, EventKind.OPEN, outbox_id=a, contact_id=ca, **ids)
        record.record_event(session, EventKind.OPEN, outbox_id=a, contact_id=ca, **ids)
        for link in (1, 1, 0):
            record.record_event(
                session, EventKind.CLICK, outbox_id=a, contact_id=ca, link_index=link, **ids
            )
        record.record_event(
            session, EventKind.OPEN, outbox_id=b, is_machine=True, machine_reason="apple_mpp", **ids
        )
        for link in (0, 1, 2):
            record.record_event(
                session,
                EventKind.CLICK,
                outbox_id=c,
                link_index=link,
                is_machine=True,
                machine_reason="link_scanner_burst",
                **ids,
            )
        record.unsubscribe(session, cb, "one-click", run_id=world.run_id, outbox_id=b)
        target = BounceTarget.of(session, c)
        assert target is not None
        record.hard_bounce(session, target, status="5.1.1")
    return world.run_id, world.outbox_ids


def test_it_counts_people_and_machines_apart(engine: Engine) -> None:
    run_id, _ = _scenario(engine)
    with Session(engine) as session:
        stats = run_stats(session, run_id)
    summary = {
        k: getattr(stats, k)
        for k in (
            "recipients",
            "sent",
            "failed",
            "bounced",
            "hard_bounces",
            "unique_human_opens",
            "human_opens",
            "machine_opens",
            "machine_only_recipients",
            "unique_human_clicks",
            "human_clicks",
            "machine_clicks",
            "unsubscribes",
            "complaints",
        )
    }
    assert summary == {
        "recipients": 4,
        "sent": 3,
        "failed": 1,
        "bounced": 1,
        "hard_bounces": 1,
        "unique_human_opens": 1,
        "human_opens": 2,
        "machine_opens": 1,
        "machine_only_recipients": 2,
        "unique_human_clicks": 1,
        "human_clicks": 3,
        "machine_clicks": 3,
        "unsubscribes": 1,
        "complaints": 0,
    }
    assert [(lk.url, lk.people, lk.human_clicks, lk.machine_clicks) for lk in stats.links] == [
        (LINKS[0], 1, 1, 1),
        (LINKS[1], 1, 2, 1),
        (LINKS[2], 0, 0, 1),
    ]


def test_it_breaks_results_down_by_library_type_and_region(engine: Engine) -> None:
    run_id, _ = _scenario(engine)
    with Session(engine) as session:
        stats = run_stats(session, run_id)
    by_type = {
        g.label: (g.recipients, g.sent, g.opened, g.clicked, g.unsubscribed, g.bounced)
        for g in stats.by_library_type
    }
    assert by_type == {
        "krajská": (1, 1, 0, 0, 0, 1),
        "městská": (2, 1, 1, 1, 0, 0),
        "obecní/místní": (1, 1, 0, 0, 1, 0),
    }
    assert {g.key: g.opened for g in stats.by_region} == {
        "Jihomoravský kraj": 1,
        "Kraj Vysočina": 0,
        "Zlínský kraj": 0,
    }
    assert json.loads(json.dumps(stats.as_json()))["by_region"][0]["key"] == "Jihomoravský kraj"


def test_it_prints_run_stats_on_the_command_line(engine: Engine) -> None:
    from typer.testing import CliRunner

    from mailer.cli import app

    run_id, _ = _scenario(engine)
    runner = CliRunner()
    as_json = runner.invoke(app, ["runs", "stats", str(run_id), "--json"])
    assert as_json.exit_code == 0, as_json.output
    data = json.loads(as_json.output)
    assert (data["unique_human_opens"], data["machine_opens"], data["unsubscribes"]) == (1, 1, 1)
    table = runner.invoke(app, ["runs", "stats", str(run_id)], env={"COLUMNS": "160"})
    assert table.exit_code == 0, table.output
    assert "Otevřeli lidé (unikátní)" in table.output
    assert "Podle kraje" in table.output and "Kraj Vysočina" in table.output
    missing = runner.invoke(app, ["runs", "stats", "999999"])
    assert missing.exit_code == 1
