"""`sdruk send --drain` ends only when its runs are finished or paused, says which, and tells a
script by its exit code; a dead worker's rows are taken over at once (a dead pid on this host,
a stale heartbeat elsewhere), not when their lease runs out."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from delivery_support import add_contacts, blueprint, options, rows
from smtp_server import SMTPServer, smtp_server
from sqlalchemy import Engine

from mailer.delivery import outbox as ob
from mailer.delivery import workers
from mailer.delivery.runs import launch, progress
from mailer.delivery.send import drain
from mailer.delivery.transport import transport_from_url
from mailer.models import utcnow

__all__ = ["smtp_server"]


def _dead_pid() -> int:
    """The pid of a process that has just ended."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _lease_to(
    engine: Engine, run_id: int, worker: str, host: str, pid: int, beat_ago: float
) -> int:
    """Every message of the run held by `worker`, with a lease far in the future."""
    now = utcnow()
    with engine.begin() as conn:
        workers.register(conn, worker, host, pid, now - timedelta(seconds=beat_ago))
        conn.execute(
            sa.update(ob.outbox)
            .where(ob.outbox.c.run_id == run_id)
            .values(status="sending", worker=worker, lease_until=now + timedelta(hours=1))
        )
        conn.execute(sa.update(ob.runs).where(ob.runs.c.id == run_id).values(status="sending"))
    return len(rows(engine, run_id))


async def _drain_within(engine: Engine, server: SMTPServer, seconds: float = 60, **kw: object):  # type: ignore[no-untyped-def]
    # The leases above run for an hour: a drain that waited for them would not end in time.
    transport = transport_from_url(server.url(concurrency="4"))
    return await asyncio.wait_for(drain(engine, transport, options(**kw)), seconds)


async def test_it_waits_for_a_retry_before_the_drain_ends(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 3)
    smtp_server.fail("rcpt", "k0@knihovna.cz", "450 4.2.1 Slow down", times=1)
    run_id = launch(engine, blueprint()).run_id

    waits: list[ob.WaitingWork] = []
    transport = transport_from_url(smtp_server.url(concurrency="4"))
    stats = await asyncio.wait_for(
        drain(engine, transport, options(retry_base_seconds=0.5), on_wait=waits.append), 60
    )

    row = next(r for r in rows(engine, run_id).values() if r.email == "k0@knihovna.cz")
    assert (row.status, row.attempts) == ("sent", 2)
    # It said what it waited for: the one message due again.
    assert waits and waits[0].pending == 1 and waits[0].next_due is not None
    assert progress(engine, run_id).status == "sent"
    assert stats.finished_runs == [run_id] and not stats.interrupted


async def test_it_takes_over_at_once_the_rows_of_a_dead_worker_on_this_host(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 12)
    run_id = launch(engine, blueprint()).run_id
    held = _lease_to(engine, run_id, "stroj:1", workers.host_name(), _dead_pid(), beat_ago=0)

    stats = await _drain_within(engine, smtp_server)

    assert stats.reclaimed == held == 12
    assert all(r.status == "sent" and r.possible_duplicate for r in rows(engine, run_id).values())
    assert len(smtp_server.messages) == 12
    with engine.connect() as conn:
        assert conn.execute(sa.select(workers.workers.c.id)).scalars().all() == []


async def test_it_takes_over_the_rows_of_a_silent_worker_on_another_host(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 5)
    run_id = launch(engine, blueprint()).run_id
    # Another machine: its pid means nothing here, only its heartbeat counts.
    _lease_to(engine, run_id, "jinde:7", "jiny-stroj", os.getpid(), beat_ago=120)

    stats = await _drain_within(engine, smtp_server, dead_after_seconds=30)

    assert stats.reclaimed == 5
    assert progress(engine, run_id).status == "sent"


async def test_it_leaves_live_workers_alone(engine: Engine) -> None:
    add_contacts(engine, 4)
    run_id = launch(engine, blueprint()).run_id
    _lease_to(engine, run_id, "tady:zivy", workers.host_name(), os.getpid(), beat_ago=0)
    now = utcnow()
    with engine.begin() as conn:
        workers.register(conn, "jinde:zivy", "jiny-stroj", 1, now)
        taken = workers.take_over_dead(conn, "ja", workers.host_name(), now, timedelta(seconds=30))
    assert taken == 0
    assert {r.status for r in rows(engine, run_id).values()} == {"sending"}


def _sdruk_send(
    database_url: str, data_dir: Path, smtp_url: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SDRUK_DATA_DIR": str(data_dir),
        "SECRET_KEY": "test-secret-key",
        "SMTP_URL": smtp_url,
    }
    command = [sys.executable, "-c", "from mailer.cli import main; main()", "send", "--drain"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_it_exits_3_and_says_why_when_a_run_paused(
    engine: Engine, configured: str, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    add_contacts(engine, 5)
    run_id = launch(engine, blueprint()).run_id
    smtp_server.fail("mail", "*", "554 5.7.1 Sender blocked")

    done = _sdruk_send(configured, tmp_path / "var", smtp_server.url())

    assert done.returncode == 3, done.stdout + done.stderr
    assert f"Rozesílka {run_id} je pozastavená" in done.stdout
    assert "5.7.1 Sender blocked" in done.stdout


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_it_exits_0_and_says_so_when_every_run_finished(
    engine: Engine, configured: str, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    add_contacts(engine, 5)
    run_id = launch(engine, blueprint()).run_id

    done = _sdruk_send(configured, tmp_path / "var", smtp_server.url())

    assert done.returncode == 0, done.stdout + done.stderr
    assert f"Rozesílka {run_id}: dokončena." in done.stdout
    assert len(smtp_server.messages) == 5


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_it_reports_the_run_states_and_exit_code_in_json(
    engine: Engine, configured: str, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    add_contacts(engine, 2)
    run_id = launch(engine, blueprint()).run_id
    smtp_server.fail("mail", "*", "554 5.7.1 Sender blocked")
    env = {
        **os.environ,
        "DATABASE_URL": configured,
        "SDRUK_DATA_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "test-secret-key",
        "SMTP_URL": smtp_server.url(),
    }
    command = [
        sys.executable,
        "-c",
        "from mailer.cli import main; main()",
        "send",
        "--drain",
        "--json",
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    summary = json.loads(done.stdout)
    assert done.returncode == summary["exit_code"] == 3
    assert summary["run_states"] == {str(run_id): "paused"}
