"""Composing ahead in pool processes (mailer.delivery.compose_pool), against the in-process
SMTP server on both databases: the pool's messages are the ones the loop would build (DKIM
signed, verifiable), a message that cannot be built fails alone with its reason, a pool process
that dies costs nothing (no message lost or sent twice), and no pool process outlives the
worker."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from delivery_support import add_contacts, blueprint, options, outbox_ids, rows
from dkim_verifiers import dkimpy_verify
from smtp_server import SMTPServer, smtp_server
from sqlalchemy import Engine

from mailer import settings as mailer_settings
from mailer.compose.dkim import RSA, generate_key, load_key
from mailer.delivery.runs import launch, progress
from mailer.delivery.send import Stats, Worker
from mailer.delivery.transport import transport_from_url

__all__ = ["smtp_server"]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def _pool_pids(worker: Worker) -> list[int]:
    return worker._ahead.pids if worker._ahead is not None else []


async def _worker(engine: Engine, server: SMTPServer, **overrides: Any) -> Worker:
    """A worker whose pool is already up: a short run would otherwise be over, composed in
    the loop, before the pool processes have started."""
    values: dict[str, Any] = {"compose_processes": 1, "compose_chunk": 5, "batch_size": 40}
    values.update(overrides)
    worker = Worker(engine, transport_from_url(server.url(concurrency="4")), options(**values))
    assert worker._ahead is not None
    worker._ahead.start()
    until = time.monotonic() + 60
    while not worker._ahead.up and time.monotonic() < until:
        await asyncio.sleep(0.05)
    return worker


@pytest.fixture
def dkim_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """DKIM on for this test (the pool processes read it from the settings, as production
    does); returns the TXT record that verifies its signatures."""
    key = tmp_path / "dkim.pem"
    key.write_bytes(generate_key(RSA, 2048))
    monkeypatch.setenv("DKIM_SELECTOR", "pool2026")
    monkeypatch.setenv("DKIM_PRIVATE_KEY_FILE", str(key))
    mailer_settings.get_settings.cache_clear()
    return load_key(key, "pool2026", "sdruk.cz").txt_record()


async def test_it_sends_pool_built_messages_signed_and_once_each(
    engine: Engine, smtp_server: SMTPServer, dkim_key: str
) -> None:
    add_contacts(engine, 120)
    run_id = launch(engine, blueprint()).run_id
    stats = await (await _worker(engine, smtp_server)).run(drain=True)

    received = smtp_server.messages
    assert Counter(outbox_ids([m.data for m in received])) == Counter(set(rows(engine, run_id)))
    assert all(r.status == "sent" for r in rows(engine, run_id).values())
    # Most of them came from the pool (the first few are built in the loop while it starts).
    assert stats.composed_ahead > 60, stats
    records = {"pool2026._domainkey.sdruk.cz": dkim_key}
    assert all(dkimpy_verify(m.data, records) == [True] for m in received)
    assert progress(engine, run_id).status == "sent"


async def test_it_fails_a_message_that_cannot_be_built_alone_with_its_reason(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 30)
    bad = add_contacts(engine, 2, prefix="spatna;adresa")
    add_contacts(engine, 30, prefix="m")
    run_id = launch(engine, blueprint()).run_id
    # The bad addresses sit in the middle of the queue, inside chunks the pool builds.
    stats = await (await _worker(engine, smtp_server)).run(drain=True)

    all_rows = rows(engine, run_id)
    failed = {oid: r for oid, r in all_rows.items() if r.status == "failed"}
    assert {r.contact_id for r in failed.values()} == set(bad)
    assert all("zprávu nelze sestavit" in r.error for r in failed.values())
    assert stats.sent == 60 and stats.failed == 2 and stats.composed_ahead > 0
    assert sorted(outbox_ids([m.data for m in smtp_server.messages])) == sorted(
        oid for oid, r in all_rows.items() if r.status == "sent"
    )


async def test_it_loses_and_doubles_nothing_when_a_pool_process_dies(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 200)
    run_id = launch(engine, blueprint()).run_id
    worker = await _worker(engine, smtp_server, compose_processes=2)
    killed: list[int] = []

    def kill_pool(stats: Stats) -> None:
        if not killed and stats.composed_ahead >= 10:
            for pid in _pool_pids(worker):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)

    worker.on_progress = kill_pool
    stats = await worker.run(drain=True)

    assert killed, "the pool never built a message"
    received = Counter(outbox_ids([m.data for m in smtp_server.messages]))
    assert received == Counter(set(rows(engine, run_id))), "every message exactly once"
    assert all(
        r.status == "sent" and not r.possible_duplicate for r in rows(engine, run_id).values()
    )
    assert stats.sent == 200
    assert progress(engine, run_id).status == "sent"


async def test_it_leaves_no_pool_process_behind_when_stopped(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    add_contacts(engine, 300)
    run_id = launch(engine, blueprint()).run_id
    worker = await _worker(engine, smtp_server)
    stop = asyncio.Event()
    pids: set[int] = set()

    def stop_midway(stats: Stats) -> None:
        pids.update(_pool_pids(worker))
        if stats.composed_ahead >= 20:
            stop.set()

    worker.on_progress = stop_midway
    stats = await worker.run(drain=True, stop=stop)

    assert stats.interrupted and pids
    assert not any(_alive(pid) for pid in pids)
    statuses = Counter(r.status for r in rows(engine, run_id).values())
    # Composed ahead but not sent: back in the queue, nothing under a lease, nothing flagged.
    assert statuses["sending"] == 0 and statuses["queued"] > 0
    assert statuses["sent"] == len(smtp_server.messages) == stats.sent


def test_its_pool_processes_die_with_a_killed_worker(tmp_path: Path) -> None:
    """A SIGKILLed worker cannot stop its pool: the pool processes notice and exit."""
    script = (
        "import os, sys, time\n"
        "from mailer.delivery.compose_pool import ComposeAhead\n"
        "import asyncio\n"
        "async def main():\n"
        "    ahead = ComposeAhead(2, contents=lambda run_id: None)\n"
        "    ahead.start()\n"
        "    while not ahead.up: await asyncio.sleep(0.05)\n"
        "    print(' '.join(map(str, ahead.pids)), flush=True)\n"
        "    await asyncio.sleep(600)\n"
        "asyncio.run(main())\n"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=Path(__file__).parent.parent
    )
    assert worker.stdout is not None
    pids = [int(p) for p in worker.stdout.readline().split()]
    assert len(pids) == 2 and all(_alive(pid) for pid in pids)
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    until = time.monotonic() + 10
    while any(_alive(pid) for pid in pids) and time.monotonic() < until:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in pids)
