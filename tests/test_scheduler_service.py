"""The running scheduler (APScheduler with its job store in the project's database) launches
a due step once, also across restarts; `schedule.py` runs every role and stops cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from pathlib import Path

import httpx
import sqlalchemy as sa
from sqlalchemy import Engine
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    SEND_AT,
    add_people,
    campaigns_dir_fixture,
    runs,
    steps,
)
from test_scheduler_leader import Process

from mailer.models import StepStatus
from mailer.scheduling.clock import ManualClock
from mailer.scheduling.leader import FileLock
from mailer.scheduling.service import APSCHEDULER_TABLE, SchedulerRole
from mailer.settings import get_settings


async def _run_until_launched(engine: Engine, tmp_path: Path, clock: ManualClock) -> None:
    settings = get_settings()
    lines: list[str] = []
    role = SchedulerRole(
        engine,
        settings,
        clock=clock,
        lock=FileLock(tmp_path / "scheduler.lock"),
        say=lines.append,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(role.run(stop))
    try:
        for _ in range(300):
            # Active, one round done, and the launch has its run.
            done = role.runtime is not None and role.runtime.last_report is not None
            if done and steps(engine)["launch"].run_id:
                break
            await asyncio.sleep(0.1)
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=30)
    assert "Plánovač je aktivní." in lines


async def test_it_launches_through_apscheduler_once_across_restarts(
    engine: Engine, campaigns_dir: Path, tmp_path: Path
) -> None:
    add_people(engine, ["alena", "bara"])
    clock = ManualClock(SEND_AT)
    await _run_until_launched(engine, tmp_path, clock)
    assert steps(engine)["launch"].status == StepStatus.LAUNCHED
    assert len(runs(engine)) == 1
    with engine.connect() as conn:
        job_ids = set(conn.execute(sa.text(f"select id from {APSCHEDULER_TABLE}")).scalars())
    assert "tick" in job_ids
    # Restarted: the job store is reloaded, the step is not launched again.
    await _run_until_launched(engine, tmp_path, clock)
    assert len(runs(engine)) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_it_runs_every_role_in_one_process_and_stops_on_sigterm(
    configured: str, tmp_path: Path
) -> None:
    port = _free_port()
    (tmp_path / "campaigns").mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": configured,
        "SDRUK_DATA_DIR": str(tmp_path / "var"),
        "SDRUK_CAMPAIGNS_DIR": str(tmp_path / "campaigns"),
        "SECRET_KEY": "test-secret-key",
        "BASE_URL": f"http://127.0.0.1:{port}",
        "INBOUND_PORT": str(_free_port()),
        "PYTHONUNBUFFERED": "1",
    }
    process = Process(env, tmp_path, role="all")
    try:
        assert process.wait_for("Konzole pro obsluhu:"), process.seen
        assert process.wait_for("Plánovač je aktivní."), process.seen
        assert process.wait_for("Příjem pošty pro"), process.seen
        response = httpx.get(f"http://127.0.0.1:{port}/console/", follow_redirects=False)
        assert response.status_code < 500
        process.proc.send_signal(signal.SIGTERM)
        assert process.proc.wait(timeout=60) == 0, process.seen
        assert process.wait_for("Ukončeno."), process.seen
    finally:
        process.stop()
