"""Chaos: `schedule.py --role all` sends a scheduled campaign and its reminder while opens,
clicks (HTTP) and bounces (DSN over SMTP) come in, and is SIGKILLed at random moments 20 times,
restarted each time. In the end every recipient got each step exactly once, apart from
duplicates that are flagged possible_duplicate and number at most the SMTP concurrency per
kill; every open, click and bounce that was answered is in the database."""

from __future__ import annotations

import email
import os
import random
import re
import smtplib
import socket
import threading
import time
from collections import Counter
from datetime import datetime, timedelta
from email import policy
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa
from delivery_support import add_contacts, outbox_ids
from smtp_server import SMTPServer, smtp_server
from sqlalchemy import Engine
from test_inbound import postfix_dsn
from test_scheduler_leader import Process

from mailer.models import Event, OutboxMessage, Run

__all__ = ["smtp_server"]

ROOT = Path(__file__).resolve().parent.parent
PRAGUE = ZoneInfo("Europe/Prague")
KILLS = 20
CONCURRENCY = 4
RECIPIENTS = 150

CAMPAIGN = """\
name = "Zkouška odolnosti"
kind = "event"
topic = "events"
subject = "Pozvánka: {{{{ event.title }}}}"
preheader = "Program a registrace uvnitř."
send_at = {send_at}
tracking = "individual"
sending_window = false

[segment]
library_type = "mestska"

[event]
title = "Zkouška odolnosti 2027"
start = 2027-03-10T09:00:00
end = 2027-03-11T13:00:00
venue = "Olomouc"
registration_url = "https://sdruk.cz/registrace-test"

[[reminder]]
name = "pripominka"
at = {reminder_at}
subject = "Připomínka: {{{{ event.title }}}}"
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _local(at: datetime) -> str:
    return at.astimezone(PRAGUE).replace(tzinfo=None).isoformat(timespec="seconds")


class Traffic:
    """Recipients' mail clients and their mail servers: opens and clicks over HTTP, soft
    bounces (DSN) over SMTP, against whatever process is up. Only what was answered counts."""

    def __init__(self, server: SMTPServer, base_url: str, inbound_port: int) -> None:
        self.server = server
        self.base_url = base_url
        self.inbound_port = inbound_port
        self.answered: list[tuple[str, int]] = []  # (event kind, outbox id)
        self.stop = threading.Event()
        self.rng = random.Random(7)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _links(self, data: bytes) -> tuple[str | None, list[str]]:
        message = email.message_from_bytes(data, policy=policy.default)
        html_part = message.get_body(("html",))
        html = html_part.get_content() if html_part is not None else ""
        base = re.escape(self.base_url)
        pixel = re.search(rf'src="({base}/o/[^"]+)"', html)
        clicks = re.findall(rf'href="({base}/c/[^"]+)"', html)
        return (pixel.group(1) if pixel else None), clicks

    def _run(self) -> None:
        client = httpx.Client(timeout=5, follow_redirects=False)
        while not self.stop.is_set():
            received = self.server.messages
            if not received:
                time.sleep(0.05)
                continue
            message = self.rng.choice(received)
            [oid] = outbox_ids([message.data])
            pixel, clicks = self._links(message.data)
            try:
                if pixel and self.rng.random() < 0.6:
                    if client.get(pixel).status_code == 200:
                        self.answered.append(("open", oid))
                elif clicks and client.get(self.rng.choice(clicks)).status_code in (302, 303):
                    self.answered.append(("click", oid))
                if self.rng.random() < 0.1:
                    rcpt = message.rcpt_tos[0]
                    with smtplib.SMTP("127.0.0.1", self.inbound_port, timeout=5) as smtp:
                        smtp.sendmail("", [message.mail_from], postfix_dsn(oid, rcpt, "4.2.2"))
                    self.answered.append(("bounce_soft", oid))
            except (httpx.HTTPError, OSError, smtplib.SMTPException):
                pass  # the process is down: nothing was answered, nothing is owed
            time.sleep(0.02)
        client.close()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_it_keeps_every_promise_through_twenty_kills(
    engine: Engine, configured: str, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    add_contacts(engine, RECIPIENTS)
    now = datetime.now(PRAGUE)
    folder = tmp_path / "campaigns" / "zkouska-odolnosti"
    folder.mkdir(parents=True)
    (folder / "campaign.toml").write_text(
        CAMPAIGN.format(
            send_at=_local(now + timedelta(seconds=2)),
            reminder_at=_local(now + timedelta(seconds=40)),
        ),
        encoding="utf-8",
    )
    (folder / "body.mjml").write_text(
        (ROOT / "campaigns" / "knihovny-soucasnosti-2027" / "body.mjml").read_text("utf-8"),
        encoding="utf-8",
    )
    web_port, inbound_port = _free_port(), _free_port()
    base_url = f"http://127.0.0.1:{web_port}"
    env = {
        **os.environ,
        "DATABASE_URL": configured,
        "SDRUK_DATA_DIR": str(tmp_path / "var"),
        "SDRUK_CAMPAIGNS_DIR": str(tmp_path / "campaigns"),
        "SECRET_KEY": "test-secret-key",
        "BASE_URL": base_url,
        "INBOUND_PORT": str(inbound_port),
        "SMTP_URL": smtp_server.url(concurrency=str(CONCURRENCY)),
        # The test's own server: the launch gate warns instead of refusing (no https, no DKIM).
        "SMTP_TEST_RELAY": "true",
        "SDRUK_SCHEDULER_TICK_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    # A relay that takes its time: a step takes seconds to send, so kills land mid-send.
    smtp_server.handler.data_delay = 0.08
    traffic = Traffic(smtp_server, base_url, inbound_port)
    traffic.thread.start()
    rng = random.Random(os.environ.get("CHAOS_SEED", "14"))
    kills = 0
    try:
        for _ in range(KILLS):
            process = Process(env, tmp_path, role="all")
            if rng.random() < 0.8:
                # Mostly while it works (once its roles run), sometimes while it starts up.
                process.wait_for("spuštěné role", timeout=30)
            time.sleep(rng.uniform(0.0, 5.0))
            if process.proc.poll() is None:
                process.proc.kill()
                kills += 1
            process.proc.wait(timeout=30)
        before_final = len(smtp_server.messages)
        final = Process(env, tmp_path, role="all")
        try:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                if _runs_done(engine) == {"launch": "sent", "pripominka": "sent"}:
                    break
                time.sleep(0.5)
            # Let a few more hits in while everything is up.
            time.sleep(2)
        finally:
            traffic.stop.set()
            traffic.thread.join(timeout=30)
            final.proc.terminate()
            final.proc.wait(timeout=60)
    finally:
        traffic.stop.set()

    assert kills >= KILLS - 2, kills
    assert _runs_done(engine) == {"launch": "sent", "pripominka": "sent"}, final.seen[-30:]
    received = Counter(outbox_ids([m.data for m in smtp_server.messages]))
    with engine.connect() as conn:
        outbox = OutboxMessage.__table__  # type: ignore[attr-defined]
        runs = Run.__table__  # type: ignore[attr-defined]
        rows = conn.execute(
            sa.select(
                outbox.c.id,
                outbox.c.contact_id,
                outbox.c.status,
                outbox.c.possible_duplicate,
                runs.c.step,
            ).join(runs, runs.c.id == outbox.c.run_id)
        ).all()
        events = Event.__table__  # type: ignore[attr-defined]
        recorded = {
            (row.kind, row.outbox_id)
            for row in conn.execute(sa.select(events.c.kind, events.c.outbox_id))
        }
    for step in ("launch", "pripominka"):
        mine = [r for r in rows if r.step == step]
        # Every recipient of the segment has the step once, and it was delivered.
        assert len(mine) == RECIPIENTS == len({r.contact_id for r in mine}), step
        assert all(r.status == "sent" for r in mine), Counter(r.status for r in mine)
        assert all(received[r.id] >= 1 for r in mine), step
        duplicated = [r for r in mine if received[r.id] > 1]
        assert all(r.possible_duplicate for r in duplicated), step
    extra = sum(n - 1 for n in received.values())
    assert extra <= kills * CONCURRENCY, (extra, kills)
    missing = [hit for hit in traffic.answered if hit not in recorded]
    assert traffic.answered and not missing, missing[:10]
    kinds = Counter(kind for kind, _ in traffic.answered)
    assert kinds["open"] and kinds["click"] and kinds["bounce_soft"], kinds
    print(
        f"kills={kills} before_final={before_final} received={sum(received.values())} "
        f"duplicates={extra} hits={dict(kinds)}"
    )


def _runs_done(engine: Engine) -> dict[str, str]:
    runs = Run.__table__  # type: ignore[attr-defined]
    with engine.connect() as conn:
        return {row.step: row.status for row in conn.execute(sa.select(runs.c.step, runs.c.status))}
