"""Results when some messages went out untracked (their contacts denied tracking): the share
of delivered messages tracked individually, and opens and clicks rated over tracked messages
only, alike in `run_stats`, the console's results page and `sdruk runs stats`."""

from __future__ import annotations

import csv
import io

from events_factory import make_world
from sqlalchemy import Engine
from sqlmodel import Session

from mailer.events import record
from mailer.events.stats import run_report, run_stats, tracking_share
from mailer.models import EventKind, OutboxMessage
from mailer.web.console.results import funnel_rows, results_csv


def _world(engine: Engine, untracked: int, contacts: int = 5) -> tuple[int, list[int]]:
    world = make_world(engine, contacts=contacts)
    with Session(engine) as session, session.begin():
        for i, oid in enumerate(world.outbox_ids):
            row = session.get(OutboxMessage, oid)
            assert row is not None
            row.individually_tracked = i >= untracked
        # Two of the tracked recipients open, one of them clicks.
        for oid, cid in list(zip(world.outbox_ids, world.contact_ids, strict=True))[untracked:][:2]:
            record.record_event(
                session, EventKind.OPEN, outbox_id=oid, contact_id=cid, run_id=world.run_id
            )
        oid, cid = world.outbox_ids[untracked], world.contact_ids[untracked]
        record.record_event(
            session,
            EventKind.CLICK,
            outbox_id=oid,
            contact_id=cid,
            link_index=0,
            run_id=world.run_id,
        )
    return world.run_id, world.outbox_ids


def test_it_counts_the_share_of_delivered_messages_tracked_individually(engine: Engine) -> None:
    run_id, _ = _world(engine, untracked=1)
    with Session(engine) as session:
        stats = run_stats(session, run_id)
    assert (stats.sent, stats.delivered) == (5, 5)
    assert (stats.tracked_sent, stats.tracked_delivered) == (4, 4)
    assert stats.unique_human_opens == 2
    share = tracking_share(stats)
    assert share is not None
    assert share.startswith("Jednotlivě sledováno: 4 z 5 doručených zpráv (80 %)")
    assert "jen souhrnná čísla" in share


def test_it_rates_opens_over_tracked_messages_only(engine: Engine) -> None:
    run_id, _ = _world(engine, untracked=3)
    with Session(engine) as session:
        report = run_report(session, run_id)
    funnel = {row[0]: row for row in funnel_rows(report.stats)}
    # 2 opened of the 2 tracked messages, not of the 5 sent.
    assert funnel["opened"][2] == 2 and funnel["opened"][4] == 2
    assert funnel["sent"][4] == 5
    groups_total = sum(g.tracked_sent for g in report.stats.by_library_type)
    assert groups_total == 2
    # In the CSV an untracked recipient's open is unknown (empty), not "ne".
    rows = list(csv.reader(io.StringIO(results_csv(report).lstrip("\ufeff")), delimiter=";"))
    assert rows[0][7] == "otevřeno"
    opened_column = [row[7] for row in rows[1:]]
    assert opened_column.count("") == 3
    assert sorted(opened_column[3:]) == ["ano", "ano"]


def test_it_counts_messages_sent_before_the_record_as_the_run_tracked(engine: Engine) -> None:
    world = make_world(engine, contacts=3)
    with Session(engine) as session:
        stats = run_stats(session, world.run_id)
    assert stats.tracked_delivered == stats.delivered == 3
    assert tracking_share(stats) == "Jednotlivě sledováno: 3 z 3 doručených zpráv (100 %)."


def test_it_says_nothing_of_shares_for_anonymous_runs(engine: Engine) -> None:
    world = make_world(engine, contacts=2, content={"tracking": "anonymous"})
    with Session(engine) as session:
        stats = run_stats(session, world.run_id)
    assert stats.tracked_sent == 0
    assert tracking_share(stats) is None
