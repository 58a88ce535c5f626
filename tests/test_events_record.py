"""The one write path: batched tracking hits, bounces, complaints, consent and topics."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from events_factory import make_world
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from mailer.audience.contacts import is_suppressed
from mailer.events import record
from mailer.events.record import BounceTarget, EventWriter, Hit
from mailer.models import Contact, Event, EventKind, MessageStatus, OutboxMessage, utcnow

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


def _hit(kind: EventKind, outbox_id: int | None, at_offset: float, **kw: object) -> Hit:
    return Hit(
        kind=kind,
        occurred_at=utcnow() + timedelta(seconds=at_offset),
        outbox_id=outbox_id,
        user_agent=BROWSER,
        ip="185.8.236.4",
        **kw,  # type: ignore[arg-type]
    )


def _count(engine: Engine, **where: object) -> int:
    with Session(engine) as session:
        query = select(func.count()).select_from(Event)
        for name, value in where.items():
            query = query.where(getattr(Event, name) == value)
        return int(session.exec(query).one())


async def test_it_commits_a_burst_of_hits_in_few_transactions(engine: Engine) -> None:
    world = make_world(engine, contacts=5)
    writer = EventWriter(engine)
    await writer.start()
    hits = [_hit(EventKind.OPEN, world.outbox_ids[i % 5], 0) for i in range(300)]
    await asyncio.gather(*(writer.record(h) for h in hits))
    # Every awaited record() is already committed, before close().
    assert _count(engine, kind="open") == 300
    assert writer.batches < 300
    await writer.close()


async def test_it_flushes_waiting_hits_on_close(engine: Engine) -> None:
    world = make_world(engine)
    writer = EventWriter(engine)
    await writer.start()
    waiting = [
        asyncio.create_task(writer.record(_hit(EventKind.OPEN, world.outbox_ids[0], 0)))
        for _ in range(50)
    ]
    await asyncio.sleep(0)  # they are queued, none answered yet
    await writer.close()
    assert all(task.done() and task.exception() is None for task in waiting)
    assert _count(engine) == 50
    # After close a hit is still written (directly), never dropped.
    await writer.record(_hit(EventKind.OPEN, world.outbox_ids[1], 0))
    assert _count(engine) == 51


async def test_it_fails_only_the_hit_that_cannot_be_written(engine: Engine) -> None:
    world = make_world(engine)
    writer = EventWriter(engine)
    await writer.start()
    good = [writer.record(_hit(EventKind.OPEN, world.outbox_ids[0], 0)) for _ in range(5)]
    bad = writer.record(Hit(kind=EventKind.OPEN, occurred_at=utcnow(), run_id=999_999))
    results = await asyncio.gather(*good, bad, return_exceptions=True)
    await writer.close()
    assert results[:5] == [None] * 5
    assert isinstance(results[5], Exception)
    assert _count(engine) == 5


async def test_it_relabels_earlier_clicks_when_a_scanner_burst_shows(engine: Engine) -> None:
    world = make_world(engine)  # three links, sent two hours ago
    writer = EventWriter(engine)
    await writer.start()
    oid = world.outbox_ids[0]
    await writer.record(_hit(EventKind.CLICK, oid, 0.0, link_index=0))
    assert _count(engine, is_machine=True) == 0  # alone, it looks like a person
    await writer.record(_hit(EventKind.CLICK, oid, 0.5, link_index=1))
    await writer.record(_hit(EventKind.CLICK, oid, 1.0, link_index=2))
    # A person, later, on another message: untouched.
    await writer.record(_hit(EventKind.OPEN, world.outbox_ids[1], 0.0))
    await writer.record(_hit(EventKind.CLICK, world.outbox_ids[1], 2.0, link_index=1))
    await writer.close()
    with Session(engine) as session:
        rows = session.exec(select(Event.outbox_id, Event.is_machine, Event.machine_reason)).all()
    assert sorted(rows, key=str) == sorted(
        [(oid, True, "link_scanner_burst")] * 3 + [(world.outbox_ids[1], False, None)] * 2,
        key=str,
    )


async def test_it_calls_a_click_right_after_delivery_without_an_open_a_machine(
    engine: Engine,
) -> None:
    world = make_world(engine, sent_at=utcnow() - timedelta(seconds=30))
    writer = EventWriter(engine)
    await writer.start()
    await writer.record(_hit(EventKind.CLICK, world.outbox_ids[0], 0, link_index=0))
    await writer.record(_hit(EventKind.OPEN, world.outbox_ids[1], 0))
    await writer.record(_hit(EventKind.CLICK, world.outbox_ids[1], 1, link_index=0))
    await writer.close()
    with Session(engine) as session:
        rows = dict(
            session.exec(
                select(Event.outbox_id, Event.machine_reason).where(Event.kind == "click")
            ).all()
        )
    assert rows == {world.outbox_ids[0]: "click_without_open", world.outbox_ids[1]: None}


def _soft(engine: Engine, outbox_id: int, days_ago: float) -> None:
    with Session(engine) as session, session.begin():
        target = BounceTarget.of(session, outbox_id)
        assert target is not None
        now = utcnow() - timedelta(days=days_ago)
        record.soft_bounce(session, target, status="4.2.2", diagnostic="mailbox full", now=now)


def _contact(engine: Engine, contact_id: int) -> Contact:
    with Session(engine) as session:
        contact = session.get(Contact, contact_id)
        assert contact is not None
        return contact


def test_it_suppresses_after_repeated_soft_bounces_spread_over_days(engine: Engine) -> None:
    runs = [make_world(engine, step=f"s{i}", status=MessageStatus.SENT) for i in range(4)]
    # Contact 0 of each run is a different person: use the first run's contacts throughout.
    with Session(engine) as session:
        for world in runs[1:]:
            for oid, cid in zip(world.outbox_ids, runs[0].contact_ids, strict=True):
                row = session.get(OutboxMessage, oid)
                assert row is not None
                session.delete(row)
                session.flush()
                session.add(OutboxMessage(id=oid, run_id=world.run_id, contact_id=cid, email="x"))
        session.commit()
    spread, crowded = runs[0].contact_ids[0], runs[0].contact_ids[1]
    _soft(engine, runs[0].outbox_ids[0], days_ago=9)
    _soft(engine, runs[1].outbox_ids[0], days_ago=5)
    assert _contact(engine, spread).status == "active"
    _soft(engine, runs[2].outbox_ids[0], days_ago=0)
    assert _contact(engine, spread).status == "bounced"
    assert _contact(engine, spread).soft_bounces == 3
    for i, days in enumerate((2.0, 1.0, 0.5, 0.0)):  # four in two days: a full mailbox
        _soft(engine, runs[i].outbox_ids[1], days_ago=days)
    assert _contact(engine, crowded).status == "active"
    assert _contact(engine, crowded).soft_bounces == 4
    with Session(engine) as session:
        assert is_suppressed(session, _contact(engine, spread).email)
        assert not is_suppressed(session, _contact(engine, crowded).email)


def test_it_keeps_a_bounced_contact_bounced_whatever_follows(engine: Engine) -> None:
    world = make_world(engine)
    cid = world.contact_ids[0]
    with Session(engine) as session, session.begin():
        target = BounceTarget.of(session, world.outbox_ids[0])
        assert target is not None
        assert record.hard_bounce(session, target, status="5.1.1")
        assert not record.hard_bounce(session, target, status="5.1.1")  # same DSN again
        assert not record.unsubscribe(session, cid, "one-click")
        assert not record.resubscribe(session, cid, "web", evidence="test")
    assert _contact(engine, cid).status == "bounced"
    assert _count(engine) == 1
    with Session(engine) as session, session.begin():
        target = BounceTarget.of(session, world.outbox_ids[0])
        assert target is not None
        assert record.complaint(session, target)
    assert _contact(engine, cid).status == "complained"  # the stronger status wins


def test_it_records_a_registration_once_per_campaign(engine: Engine) -> None:
    world = make_world(engine)
    cid = world.contact_ids[0]
    with Session(engine) as session, session.begin():
        assert record.registered(session, cid, campaign="konference-2026", run_id=world.run_id)
        assert not record.registered(session, cid, campaign="konference-2026")
        assert record.registered(session, cid, campaign="workshop-vedouci")
    assert _count(engine, kind="registered") == 2


@pytest.mark.parametrize("source", ["one-click", "mailto"])
def test_it_unsubscribes_once_and_skips_only_waiting_messages(engine: Engine, source: str) -> None:
    world = make_world(engine, status=MessageStatus.QUEUED)
    statuses = [MessageStatus.QUEUED, MessageStatus.RETRY, MessageStatus.SENDING]
    others = [make_world(engine, step=f"r{i}", status=s) for i, s in enumerate(statuses)]
    cid = world.contact_ids[0]
    with Session(engine) as session:
        for other in others:
            row = session.get(OutboxMessage, other.outbox_ids[0])
            assert row is not None
            row.contact_id = cid
            session.add(row)
        session.commit()
    with Session(engine) as session, session.begin():
        assert record.unsubscribe(session, cid, source, run_id=world.run_id)
        assert not record.unsubscribe(session, cid, source)
    with Session(engine) as session:
        mine = session.exec(
            select(OutboxMessage.status)
            .where(OutboxMessage.contact_id == cid)
            .order_by(OutboxMessage.id)  # type: ignore[arg-type]
        ).all()
    assert mine == ["skipped", "skipped", "skipped", "sending"]
    assert _count(engine, kind="unsubscribe") == 1
