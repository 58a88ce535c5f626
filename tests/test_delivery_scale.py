"""Scale-out: four worker processes on PostgreSQL share one run of 20,000 messages through
`FOR UPDATE SKIP LOCKED`; every message goes out exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from delivery_support import add_contacts, blueprint, outbox_ids, rows
from smtp_server import SMTPServer
from sqlalchemy import Engine

from mailer.delivery.runs import launch, progress

RECIPIENTS = 20_000
WORKERS = 4


@pytest.fixture
def sink() -> Iterator[SMTPServer]:
    server = SMTPServer(headers_only=True).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize(
    "database_url", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_it_sends_twenty_thousand_with_four_workers_exactly_once(
    engine: Engine, configured: str, sink: SMTPServer, tmp_path: Path
) -> None:
    add_contacts(engine, RECIPIENTS)
    run_id = launch(engine, blueprint()).run_id
    env = {
        **os.environ,
        "DATABASE_URL": configured,
        "SDRUK_DATA_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "test-secret-key",
        "SMTP_URL": sink.url(),
    }

    def command(n: int) -> list[str]:
        return [
            sys.executable, "-c", "from mailer.cli import main; main()",
            "send", "--drain", "--json", "--worker-id", f"scale-{n}",
            "--concurrency", "8", "--batch", "100",
        ]  # fmt: skip

    workers = [
        subprocess.Popen(command(n), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for n in range(WORKERS)
    ]
    summaries = []
    for worker in workers:
        out, errors = worker.communicate(timeout=300)
        assert worker.returncode == 0, errors.decode()[-2000:]
        summaries.append(json.loads(out))

    received = Counter(outbox_ids([m.data for m in sink.messages]))
    all_rows = rows(engine, run_id)
    assert len(all_rows) == RECIPIENTS
    assert set(received) == set(all_rows)  # zero losses
    assert max(received.values()) == 1  # zero duplicates
    assert sum(s["sent"] for s in summaries) == RECIPIENTS
    # The work really was shared: every worker sent a part of the run.
    assert all(s["sent"] > 0 for s in summaries), summaries
    assert all(r.status == "sent" and not r.possible_duplicate for r in all_rows.values())
    assert progress(engine, run_id).status == "sent"
