"""One active scheduler: on PostgreSQL an advisory lock elects it and a standby takes over when
it dies; on SQLite a file lock keeps a second process on the same data standing by."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import sqlalchemy as sa

from mailer.db import make_engine
from mailer.migrations import upgrade
from mailer.scheduling.leader import AdvisoryLock, FileLock

ROOT = Path(__file__).resolve().parent.parent
ACTIVE = "Plánovač je aktivní."
STANDBY = "Plánovač je v záloze"


def test_it_hands_the_advisory_lock_to_a_standby_when_the_holder_dies(postgres_url: str) -> None:
    first_engine, second_engine = make_engine(postgres_url), make_engine(postgres_url)
    admin = make_engine(postgres_url)
    first, second = AdvisoryLock(first_engine), AdvisoryLock(second_engine)
    try:
        assert first.try_acquire()
        assert not second.try_acquire()
        assert first.still_held()
        # The active machine dies: its database session ends and the lock with it.
        pid = first.backend_pid()
        with admin.begin() as conn:
            conn.execute(sa.text("select pg_terminate_backend(:p)"), {"p": pid})
        assert not first.still_held()
        assert second.try_acquire()
        assert not first.try_acquire()
    finally:
        first.release()
        second.release()
        for e in (first_engine, second_engine, admin):
            e.dispose()


def test_it_keeps_one_scheduler_per_data_directory(tmp_path: Path) -> None:
    first, second = FileLock(tmp_path / "scheduler.lock"), FileLock(tmp_path / "scheduler.lock")
    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


class Process:
    """A `schedule.py --role …` subprocess whose output lines are collected."""

    def __init__(self, env: dict[str, str], cwd: Path, role: str = "scheduler") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "schedule.py"), "--role", role],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.seen):
                return True
            try:
                self.seen.append(self.lines.get(timeout=0.2))
            except queue.Empty:
                if self.proc.poll() is not None and self.lines.empty():
                    return any(text in line for line in self.seen)
        return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def test_it_lets_a_standby_process_take_over_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    engine = make_engine(postgres_url)
    upgrade(engine)
    engine.dispose()
    (tmp_path / "campaigns").mkdir()
    env = {
        **os.environ,
        "DATABASE_URL": postgres_url,
        "SDRUK_DATA_DIR": str(tmp_path / "var"),
        "SDRUK_CAMPAIGNS_DIR": str(tmp_path / "campaigns"),
        "SECRET_KEY": "test-secret-key",
        "SDRUK_STANDBY_POLL_SECONDS": "0.5",
        "PYTHONUNBUFFERED": "1",
    }
    first = Process(env, tmp_path)
    try:
        assert first.wait_for(ACTIVE), first.seen
        second = Process(env, tmp_path)
        try:
            assert second.wait_for(STANDBY), second.seen
            assert not any(ACTIVE in line for line in second.seen)
            first.proc.send_signal(signal.SIGKILL)
            first.proc.wait(timeout=30)
            assert second.wait_for(ACTIVE), second.seen
            # A graceful stop of the new active one.
            second.proc.send_signal(signal.SIGTERM)
            assert second.proc.wait(timeout=60) == 0
            assert second.wait_for("Ukončeno."), second.seen
        finally:
            second.stop()
    finally:
        first.stop()
