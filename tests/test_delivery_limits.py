"""Sending limits shared through the database: any window of a limit's length holds at most
that many sends, across workers (processes) and restarts, on SQLite and PostgreSQL; presets and
SMTP_URL options; a run bigger than the daily limit says it spreads over days."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from delivery_support import add_contacts, blueprint, rows
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from smtp_server import SMTPServer, smtp_server
from sqlalchemy import Engine

from mailer.delivery import limits as lim
from mailer.delivery.runs import launch, progress

__all__ = ["smtp_server"]


def _most_in_any_window(times: list[float], window: float) -> int:
    """The oracle: the largest number of sends inside any window of `window` seconds
    (every window that matters starts at a send)."""
    times = sorted(times)
    best = 0
    for i, start in enumerate(times):
        inside = sum(1 for t in times[i:] if t < start + window)
        best = max(best, inside)
    return best


def test_it_reads_presets_and_overrides_from_the_smtp_url() -> None:
    m365 = lim.limits_from_url(
        "smtp://u:p@smtp.office365.com:587?starttls=true&limits=microsoft365"
    )
    assert (m365.per_minute, m365.per_day) == (30, 10_000)
    tighter = lim.limits_from_url("smtp://relay?limits=microsoft365&per_minute=10")
    assert (tighter.per_minute, tighter.per_day) == (10, 10_000)
    assert lim.limits_from_url("smtp://relay", "gmail").per_day == 2_000
    assert not lim.limits_from_url("smtp://relay?limits=none", "gmail").active
    assert m365.describe() == "nejvýš 30 za minutu, 10\u00a0000 za den"
    with pytest.raises(lim.LimitsError, match="Neznámá sada limitů"):
        lim.limits_from_url("smtp://relay?limits=hotmail")
    with pytest.raises(lim.LimitsError, match="kladné"):
        lim.limits_from_url("smtp://relay?per_day=0")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    gaps=st.lists(st.floats(min_value=0.0, max_value=4.0), min_size=1, max_size=60),
    per_minute=st.integers(min_value=1, max_value=6),
    per_second=st.sampled_from([None, 1.0, 2.0]),
)
def test_it_never_lets_more_than_the_limit_into_any_window(
    engine: Engine, gaps: list[float], per_minute: int, per_second: float | None
) -> None:
    """Two workers ask for places at arbitrary moments (a clock that moves as told): the
    reservations granted never put more than the limit into any window, and a refusal's wait
    is exact: asking again after it succeeds."""
    limits = lim.SendLimits(per_minute=per_minute, per_second=per_second)
    scope = f"test-{time.monotonic_ns()}"
    start = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    granted: list[float] = []
    clock = 0.0
    for n, gap in enumerate(gaps):
        clock += gap
        with engine.begin() as conn:
            now = start + timedelta(seconds=clock)
            wait = lim.reserve(conn, scope, limits, f"w{n % 2}", now)
        if wait == 0:
            granted.append(clock)
            continue
        with engine.begin() as conn:
            later = start + timedelta(seconds=clock + wait)
            assert lim.reserve(conn, scope, limits, f"w{n % 2}", later) == 0
        granted.append(clock + wait)
        clock += wait
    assert _most_in_any_window(granted, 60.0) <= per_minute
    if per_second:
        assert _most_in_any_window(granted, 1.0) <= per_second


def _worker(database_url: str, data_dir: Path, smtp_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SDRUK_DATA_DIR": str(data_dir),
        "SECRET_KEY": "test-secret-key",
        "SMTP_URL": smtp_url,
    }
    command = [sys.executable, "-c", "from mailer.cli import main; main()", "send", "--drain"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


PER_MINUTE = 8
RECIPIENTS = 12


@pytest.mark.slow
def test_it_holds_a_per_minute_limit_across_two_workers_and_their_restart(
    engine: Engine, configured: str, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    """Two worker processes share `per_minute=8`. Once the first 8 are out, both are stopped
    and started again: a restart that forgot the budget would send 4 more at once. From the
    times the server took each message, and those recorded in the outbox: never more than 8
    in any minute; and everything arrives once."""
    add_contacts(engine, RECIPIENTS)
    run_id = launch(engine, blueprint()).run_id
    url = smtp_server.url(per_minute=str(PER_MINUTE), concurrency="2")
    first = [_worker(configured, tmp_path / "var", url) for _ in range(2)]
    deadline = time.monotonic() + 120
    while len(smtp_server.messages) < PER_MINUTE and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(smtp_server.messages) == PER_MINUTE
    for worker in first:
        worker.send_signal(signal.SIGTERM)
    for worker in first:
        worker.communicate(timeout=60)
    # The restart: new processes, new worker ids, the same database.
    second = [_worker(configured, tmp_path / "var", url) for _ in range(2)]
    for worker in second:
        out, errors = worker.communicate(timeout=200)
        assert worker.returncode == 0, (out + errors).decode()[-2000:]

    received = smtp_server.messages
    assert sorted(r for m in received for r in m.rcpt_tos) == sorted(
        f"k{i}@knihovna.cz" for i in range(RECIPIENTS)
    )
    assert _most_in_any_window([m.at for m in received], 60.0) <= PER_MINUTE
    sent_at = [r.sent_at.timestamp() for r in rows(engine, run_id).values()]
    assert _most_in_any_window(sent_at, 60.0) <= PER_MINUTE
    # The limit did bind: the run took more than one minute.
    assert max(m.at for m in received) - min(m.at for m in received) > 60
    assert progress(engine, run_id).status == "sent"


def test_it_says_a_run_bigger_than_the_daily_limit_spreads_over_days(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailer import settings as mailer_settings

    add_contacts(engine, 25)
    run_id = launch(engine, blueprint()).run_id
    monkeypatch.setenv("SMTP_URL", "smtp://relay.example:587?starttls=true&per_day=10")
    mailer_settings.get_settings.cache_clear()
    p = progress(engine, run_id)
    assert p.limit_note is not None
    assert "10 zpráv za den" in p.limit_note and "3 dny" in p.limit_note, p.limit_note
    assert p.eta_seconds is not None and p.eta_seconds >= 2 * 86400

    monkeypatch.setenv("SMTP_URL", "smtp://relay.example:587?starttls=true&per_day=1000")
    mailer_settings.get_settings.cache_clear()
    assert progress(engine, run_id).limit_note is None


def test_it_counts_a_day_already_spent_before_the_run(engine: Engine) -> None:
    """Sends recorded earlier today (another run, a worker since restarted) use the budget."""
    limits = lim.SendLimits(per_day=5)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        for k in range(5):
            assert lim.reserve(conn, "relay-x", limits, "old", now - timedelta(hours=k)) == 0
    with engine.begin() as conn:
        room, wait = lim.available(conn, "relay-x", limits, now)
        refused = lim.reserve(conn, "relay-x", limits, "new", now)
    assert room == 0 and refused > 0
    # The oldest of the five (four hours ago) leaves the window first.
    assert abs(wait - (20 * 3600 + lim.margin(86400))) < 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(lim.ledger)).scalar_one() == 5


async def test_it_holds_the_per_domain_concurrency_across_workers(
    engine: Engine, smtp_server: SMTPServer
) -> None:
    """Two workers, each with 3 connections, and a limit of one transaction at a time per
    recipient domain: the server never sees two at once to the same domain."""
    import asyncio

    from delivery_support import options

    from mailer.delivery.send import drain
    from mailer.delivery.transport import transport_from_url

    add_contacts(engine, 10, domain="knihovna.cz")
    add_contacts(engine, 10, prefix="m", domain="mestska.cz")
    run_id = launch(engine, blueprint()).run_id
    smtp_server.handler.data_delay = 0.03
    shared = lim.SendLimits(domain_concurrency=1)

    async def worker(name: str) -> object:
        transport = transport_from_url(smtp_server.url(concurrency="3"))
        return await drain(engine, transport, options(worker_id=name, limits=shared, batch_size=4))

    await asyncio.gather(worker("a"), worker("b"))

    assert len(smtp_server.messages) == 20
    assert smtp_server.handler.peak == {"knihovna.cz": 1, "mestska.cz": 1}
    assert progress(engine, run_id).status == "sent"
