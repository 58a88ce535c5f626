"""Crash safety: a worker subprocess is SIGKILLed at random moments while it sends, then
restarted. Afterwards every recipient got the message (lost = 0), and the only duplicates are
messages that were in flight at a kill: at most `concurrency` per kill, every one flagged.

Each incarnation has its own id (host:pid) and a lease of ten minutes: the restart must see the
dead pid and take its rows over at once, not wait for the lease."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from delivery_support import add_contacts, blueprint, outbox_ids, rows
from smtp_server import SMTPServer, smtp_server
from sqlalchemy import Engine

from mailer.delivery.runs import launch, progress

__all__ = ["smtp_server"]

CONCURRENCY = 8
KILLS = 3
RECIPIENTS = 1200


def _worker(
    database_url: str, data_dir: Path, smtp_url: str, compose_processes: int = 0
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SDRUK_DATA_DIR": str(data_dir),
        "SECRET_KEY": "test-secret-key",
        "SMTP_URL": smtp_url,
        "SEND_COMPOSE_PROCESSES": str(compose_processes),
    }
    command = [
        sys.executable, "-c", "from mailer.cli import main; main()",
        "send", "--drain", "--json",
        "--concurrency", str(CONCURRENCY), "--batch", "40", "--lease", "600", "--retry-base", "0",
    ]  # fmt: skip
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:
        return []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def test_it_loses_nothing_when_a_worker_is_killed_mid_send(
    engine: Engine, configured: str, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    _kill_and_finish(engine, configured, smtp_server, tmp_path, compose_processes=0)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_it_loses_nothing_when_a_worker_composing_in_a_pool_is_killed(
    engine: Engine, configured: str, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    """The same with compose processes (mailer.delivery.compose_pool): the guarantee is the
    same, and the pool processes of a killed worker exit by themselves. Each incarnation waits
    for its pool to start before it is killed, and sends all the while: a slower relay and a
    longer run keep the run unfinished through the three kills however fast the machine."""
    smtp_server.handler.data_delay = 0.01  # at most CONCURRENCY / 0.01 = 800 messages a second
    _kill_and_finish(
        engine, configured, smtp_server, tmp_path, compose_processes=1, recipients=5 * RECIPIENTS
    )


def _kill_and_finish(
    engine: Engine,
    configured: str,
    smtp_server: SMTPServer,
    tmp_path: Path,
    *,
    compose_processes: int,
    recipients: int = RECIPIENTS,
) -> None:
    add_contacts(engine, recipients)
    run_id = launch(engine, blueprint()).run_id
    url = smtp_server.url()
    rng = random.Random(os.environ.get("CRASH_SEED", "4"))

    kills = 0
    pool_processes: set[int] = set()
    for _ in range(KILLS):
        before = len(smtp_server.messages)
        worker = _worker(configured, tmp_path / "var", url, compose_processes)
        # Kill at a random moment once it is really sending (not while it starts up).
        deadline = time.monotonic() + 60
        while len(smtp_server.messages) < before + 20 and time.monotonic() < deadline:
            if worker.poll() is not None:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.4))
        if compose_processes:
            # Its compose processes are up (the pool starts with the first full chunk).
            while len(_children(worker.pid)) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(rng.uniform(0.0, 0.3))
        if worker.poll() is None:
            pool_processes.update(_children(worker.pid))
            worker.send_signal(signal.SIGKILL)
            kills += 1
        worker.wait(30)
    # No process of a killed worker lives on (its pool and the resource tracker).
    until = time.monotonic() + 15
    while any(_alive(p) for p in pool_processes) and time.monotonic() < until:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pool_processes)
    if compose_processes:
        assert pool_processes
    assert kills >= 1, "the worker finished before it could be killed"
    assert len(smtp_server.messages) < recipients  # the kills really interrupted the run

    final = _worker(configured, tmp_path / "var", url, compose_processes)
    out, errors = final.communicate(timeout=120)
    assert final.returncode == 0, errors.decode()
    summary = json.loads(out)

    all_rows = rows(engine, run_id)
    received = Counter(outbox_ids([m.data for m in smtp_server.messages]))
    duplicated = {oid for oid, n in received.items() if n > 1}
    lost = set(all_rows) - set(received)
    extra = sum(received.values()) - len(received)

    assert lost == set()
    assert all(r.status == "sent" for r in all_rows.values())
    assert extra <= kills * CONCURRENCY, (extra, kills)
    # Reported, not hidden: every message that went out twice carries the flag.
    assert all(all_rows[oid].possible_duplicate for oid in duplicated)
    p = progress(engine, run_id)
    assert p.status == "sent" and p.possible_duplicates >= len(duplicated)
    # The killed workers composed in their pools (their compose processes were up when they
    # were killed, `pool_processes` above); the final one may not start its pool at all when
    # fewer than a chunk's worth of messages are left, so its own count proves nothing.
    assert summary["reclaimed"] >= 1
    print(f"kills={kills} received={sum(received.values())} duplicates={extra} "
          f"flagged={p.possible_duplicates}")  # fmt: skip


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_it_gives_back_unsent_messages_on_sigterm(
    engine: Engine, configured: str, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    add_contacts(engine, 600)
    run_id = launch(engine, blueprint()).run_id
    worker = _worker(configured, tmp_path / "var", smtp_server.url())
    deadline = time.monotonic() + 60
    while len(smtp_server.messages) < 20 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.send_signal(signal.SIGTERM)
    out, errors = worker.communicate(timeout=60)
    # Stopped before the run finished: a script is told so (exit code 4), not "all done".
    assert worker.returncode == 4, errors.decode()
    assert json.loads(out)["interrupted"] is True

    all_rows = rows(engine, run_id)
    statuses = Counter(r.status for r in all_rows.values())
    # Graceful: nothing left under a lease, nothing flagged, and what was sent is recorded.
    assert statuses["sending"] == 0
    assert statuses["sent"] == len(smtp_server.messages) == json.loads(out)["sent"]
    assert statuses["queued"] == 600 - statuses["sent"] > 0
    assert not any(r.possible_duplicate for r in all_rows.values())
