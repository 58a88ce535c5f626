"""A worker outlives transient database faults during a claim (a killed connection, a database
locked for longer than the busy timeout): it retries with backoff, logs in Czech, and every
message still goes out exactly once."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from delivery_support import add_contacts, blueprint, options, outbox_ids, rows
from smtp_server import SMTPServer, smtp_server
from sqlalchemy import Engine, event

from mailer.db import make_engine
from mailer.delivery.runs import launch
from mailer.delivery.send import Worker, drain, work_forever
from mailer.delivery.transport import transport_from_url
from mailer.models import Run

__all__ = ["smtp_server"]

CLAIM_FAILED = "Převzetí zpráv z fronty selhalo kvůli dočasné chybě databáze"


def _assert_each_sent_once(engine: Engine, server: SMTPServer, run_id: int) -> None:
    outbox = rows(engine, run_id)
    assert sorted(outbox_ids([m.data for m in server.messages])) == sorted(outbox)
    assert all(r.status == "sent" and r.attempts == 1 for r in outbox.values())
    assert not any(r.possible_duplicate for r in outbox.values())


# Each fault is one database's own, so each test runs on that database only.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
async def test_it_retries_a_claim_whose_postgresql_connection_was_killed(
    engine: Engine, smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    add_contacts(engine, 5)
    run_id = launch(engine, blueprint()).run_id
    killed: list[int] = []
    blocker = engine.connect()
    blocker.begin()
    # The run row locked: the worker's claim (which marks the run sending) waits on it, in the
    # middle of its transaction, with the messages it picked already updated.
    blocker.execute(sa.select(Run).where(Run.id == run_id).with_for_update())  # type: ignore[arg-type]
    waiting = sa.text(
        "select pid from pg_stat_activity where datname = current_database()"
        " and wait_event_type = 'Lock' and pid <> pg_backend_pid()"
    )

    def kill_the_waiting_claim() -> None:
        try:
            for _ in range(600):
                # A transaction of its own each time: pg_stat_activity is a snapshot per
                # transaction.
                with engine.begin() as conn:
                    pids = list(conn.execute(waiting).scalars())
                    for pid in pids:
                        conn.execute(sa.text("select pg_terminate_backend(:p)"), {"p": pid})
                if pids:
                    killed.extend(pids)
                    return
                time.sleep(0.05)
        finally:
            blocker.rollback()
            blocker.close()

    caplog.set_level(logging.WARNING, logger="mailer.delivery.send")
    transport = transport_from_url(smtp_server.url(concurrency="2"))
    stats, _ = await asyncio.gather(
        drain(engine, transport, options()), asyncio.to_thread(kill_the_waiting_claim)
    )

    assert killed, "the claim never waited on the locked run"
    assert CLAIM_FAILED in caplog.text
    _assert_each_sent_once(engine, smtp_server, run_id)
    assert stats.sent == 5 and stats.finished_runs == [run_id]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_it_retries_a_claim_while_sqlite_is_locked_longer_than_the_busy_timeout(
    engine: Engine, smtp_server: SMTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    add_contacts(engine, 5)
    launch(engine, blueprint())
    # The worker's own engine gives up on a lock after 100 ms instead of 30 s.
    worker_engine = make_engine(str(engine.url))

    @event.listens_for(worker_engine, "connect")
    def _short_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.execute("PRAGMA busy_timeout=100")

    caplog.set_level(logging.WARNING, logger="mailer.delivery.send")
    stop = asyncio.Event()
    transport = transport_from_url(smtp_server.url(concurrency="2"))
    worker = asyncio.create_task(
        work_forever(worker_engine, transport, options(poll_seconds=0.05), stop=stop)
    )

    async def until(condition: Callable[[], bool]) -> None:
        for _ in range(600):
            if condition() or worker.done():
                return
            await asyncio.sleep(0.05)

    lock = sqlite3.connect(engine.url.database or "", isolation_level=None, timeout=30)
    locked = False
    try:
        # The launch is sent: the worker is past its start and idle, polling with claims.
        await until(lambda: len(smtp_server.messages) == 5)
        lock.execute("BEGIN EXCLUSIVE")
        locked = True
        # Each claim now waits 100 ms for the lock and fails.
        await until(lambda: CLAIM_FAILED in caplog.text)
        lock.execute("COMMIT")
        locked = False
        assert CLAIM_FAILED in caplog.text
        reminder = launch(engine, blueprint(), step="pripominka").run_id
        await until(lambda: len(smtp_server.messages) == 10)
        assert not worker.done(), worker.exception()
    finally:
        if locked:
            lock.execute("ROLLBACK")
        lock.close()
        stop.set()
        await asyncio.gather(worker, return_exceptions=True)
        worker_engine.dispose()

    reminder_ids = set(rows(engine, reminder))
    received = [i for i in outbox_ids([m.data for m in smtp_server.messages]) if i in reminder_ids]
    assert sorted(received) == sorted(reminder_ids)
    assert all(r.status == "sent" and r.attempts == 1 for r in rows(engine, reminder).values())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_it_waits_its_turn_when_another_writer_holds_sqlite_during_a_run(
    engine: Engine, smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker does its short database work on its own thread only when SQLite is free
    that instant; while another connection writes (the web app recording clicks, say), the
    same work waits its turn on the database thread. Nothing is lost or sent twice."""
    add_contacts(engine, 120)
    run_id = launch(engine, blueprint()).run_id
    waited: list[int] = []
    inline_call = Worker._inline_call

    def watched(self: Worker, fn: Callable[[Any], Any]) -> Any:
        result = inline_call(self, fn)
        if result is None and self._inline is not None:
            waited.append(1)  # busy that instant: handed to the database thread
        return result

    monkeypatch.setattr(Worker, "_inline_call", watched)
    stop_writer = threading.Event()
    writes = 0

    def other_writer() -> None:
        nonlocal writes
        conn = sqlite3.connect(engine.url.database or "", isolation_level=None, timeout=30)
        try:
            while not stop_writer.is_set():
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("UPDATE run SET status_reason = status_reason WHERE id = ?", (run_id,))
                time.sleep(0.02)
                conn.execute("COMMIT")
                writes += 1
                time.sleep(0.005)
        finally:
            conn.close()

    writer = threading.Thread(target=other_writer)
    writer.start()
    try:
        transport = transport_from_url(smtp_server.url(concurrency="4"))
        stats = await drain(engine, transport, options(batch_size=10))
    finally:
        stop_writer.set()
        writer.join()
    assert writes > 5 and waited
    assert stats.sent == 120 and stats.finished_runs == [run_id]
    _assert_each_sent_once(engine, smtp_server, run_id)
