"""The console in a real browser: Debian's headless Chromium driven by Playwright against a
real uvicorn serving the app. Signs in, imports a CSV with a bad row, previews a campaign,
launches it to the capture transport while a worker sends, watches the count reach the total,
and opens the results. Saves screenshots of the main pages to var/screenshots/, or to
$SDRUK_SCREENSHOTS (`make screenshots` refreshes the ones the README shows)."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from mailer import db as mailer_db
from mailer import settings as mailer_settings
from mailer.audience.contacts import import_contacts
from mailer.compose.campaigns import load_blueprint
from mailer.db import make_engine
from mailer.migrations import upgrade
from mailer.web.console import ensure_demo_admin

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
# Outside the tracked tree by default, so a test run leaves git clean.
SHOTS = Path(os.environ.get("SDRUK_SCREENSHOTS", ROOT / "var" / "screenshots"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
FIXTURE = ROOT / "mailer" / "fixtures" / "libraries.csv"
CAMPAIGN = "join-this-year-2026"


def _require_chromium() -> None:
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is missing (Debian package chromium; make system installs it)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the Python package playwright is not installed"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {problem}")
        pytest.skip(problem)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    engine: Engine
    email: str
    password: str
    data_dir: Path


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    _require_chromium()
    port = _free_port()
    data_dir = tmp_path / "var"
    env = {
        "DATABASE_URL": f"sqlite:///{data_dir / 'sdruk.db'}",
        "SDRUK_DATA_DIR": str(data_dir),
        "SECRET_KEY": "browser-test-key",
        "BASE_URL": f"http://127.0.0.1:{port}",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("SMTP_URL", raising=False)
    mailer_settings.get_settings.cache_clear()
    mailer_db._engine_for.cache_clear()
    engine = make_engine(env["DATABASE_URL"])
    upgrade(engine)
    import_contacts(engine, FIXTURE)
    email, password = ensure_demo_admin(engine)
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "mailer.web.app:create_app",
            "--factory",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, **env},
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("uvicorn did not start") from None
                time.sleep(0.1)
        yield Server(f"http://127.0.0.1:{port}", engine, email, password, data_dir)
    finally:
        process.terminate()
        process.wait(timeout=15)
        engine.dispose()
        mailer_settings.get_settings.cache_clear()
        mailer_db._engine_for.cache_clear()


def _send_in_background(engine: Engine) -> threading.Thread:
    """The worker `sdruk send` runs, in this process: drains the outbox to the capture folder."""
    from mailer.delivery.send import WorkerOptions, drain
    from mailer.delivery.transport import transport_from_url

    transport = transport_from_url(mailer_settings.get_settings().resolved_smtp_url())

    def work() -> None:
        # A pause before sending, so the page shows the run while it is still going.
        time.sleep(1.0)
        asyncio.run(drain(engine, transport, WorkerOptions(worker_id="browser-test")))

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def _simulate_the_following_days(engine: Engine, run_id: int) -> dict[str, int]:
    """What recipients do over the next days, written through the events write path with
    their later timestamps: people's opens and clicks (anonymous tracking: counted per run),
    Apple's proxy opens, and two one-click unsubscribes."""
    from sqlmodel import Session, col, select

    from mailer.events import record
    from mailer.models import EventKind, OutboxMessage

    counts = {"open": 0, "click": 0, "machine": 0}
    with Session(engine) as session:
        messages = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.run_id == run_id)
            .order_by(col(OutboxMessage.id))
        ).all()
        start = max(m.sent_at for m in messages if m.sent_at)
        for i in range(180):
            # Most people read within the first day, fewer later: the curve staff expect.
            when = start + timedelta(minutes=7 * i + (i * i) // 4)
            record.record_event(session, EventKind.OPEN, run_id=run_id, occurred_at=when)
            counts["open"] += 1
            if i % 4 == 0:
                record.record_event(
                    session,
                    EventKind.CLICK,
                    run_id=run_id,
                    link_index=0,
                    occurred_at=when + timedelta(minutes=2),
                )
                counts["click"] += 1
        for i in range(40):
            record.record_event(
                session,
                EventKind.OPEN,
                run_id=run_id,
                is_machine=True,
                machine_reason="apple_mpp",
                occurred_at=start + timedelta(seconds=3 + i),
            )
            counts["machine"] += 1
        for message in messages[5:7]:
            assert message.contact_id is not None
            record.unsubscribe(
                session,
                message.contact_id,
                "one-click",
                run_id=run_id,
                outbox_id=message.id,
                now=start + timedelta(hours=20),
            )
        session.commit()
    return counts


BAD_CSV = (
    "email,first_name,last_name,role,library,library_type,town,region,consent\n"
    "reditelka@knihovna-hostivice.example,Alena,Svobodová,ředitelka,"
    "Městská knihovna Hostivice,mestska,Hostivice,Středočeský kraj,legitimate_interest\n"
    "chybna-adresa-bez-zavinace,Karel,Chybný,knihovník,"
    "Městská knihovna Hostivice,mestska,Hostivice,Středočeský kraj,legitimate_interest\n"
)


def test_it_runs_a_campaign_from_the_browser(server: Server, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    upload = tmp_path / "nove-kontakty.csv"
    upload.write_text(BAD_CSV, encoding="utf-8")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, locale="cs-CZ")
            page.on("dialog", lambda dialog: dialog.accept())
            base = server.url

            # Sign in: an anonymous visit lands on the sign-in form.
            page.goto(f"{base}/console/")
            expect(page.get_by_role("heading", name="Přihlášení do konzole")).to_be_visible()
            page.screenshot(path=str(SHOTS / "prihlaseni.png"))
            page.get_by_label("E-mail").fill(server.email)
            page.get_by_label("Heslo").fill(server.password)
            page.get_by_role("button", name="Přihlásit se").click()
            expect(page.get_by_role("heading", name="Přehled")).to_be_visible()

            # Contacts, filtered.
            page.goto(f"{base}/console/contacts?library_type=obecni&member=ne")
            expect(page.get_by_text("Nalezeno")).to_be_visible()
            page.screenshot(path=str(SHOTS / "kontakty.png"))

            # Import with a bad row: the good row imports, the bad one is reported.
            page.goto(f"{base}/console/contacts/import")
            page.set_input_files("input[type=file]", str(upload))
            page.get_by_label("importovat").check()
            page.get_by_role("button", name="Nahrát").click()
            problems = page.locator("#import-problems")
            expect(problems).to_contain_text("3")
            expect(page.get_by_text("Odmítnuté řádky (1)")).to_be_visible()
            page.screenshot(path=str(SHOTS / "import.png"), full_page=True)

            # Segment builder: the count follows the form.
            page.goto(f"{base}/console/segments/new")
            count = page.locator("[data-segment-count]")
            everyone = count.inner_text()
            page.get_by_label("obecní/místní").check()
            expect(count).not_to_have_text(everyone)
            expect(page.locator("[data-segment-sample] li").first).to_be_visible()
            page.screenshot(path=str(SHOTS / "segment.png"), full_page=True)

            # Preview of the campaign at both widths.
            page.goto(f"{base}/console/campaigns/{CAMPAIGN}/preview")
            frames = page.locator(".preview-frames iframe")
            expect(frames).to_have_count(2)
            expect(page.frame_locator("iframe.mobile").locator("body")).to_contain_text(
                "Sdružení knihoven"
            )
            page.screenshot(path=str(SHOTS / "nahled.png"))

            # Launch to the capture transport, confirmed with the audience size.
            page.goto(f"{base}/console/campaigns/{CAMPAIGN}/launch")
            size = page.locator("#audience-size").inner_text()
            page.screenshot(path=str(SHOTS / "spusteni.png"))
            # At once, whatever the time of day the test runs (the window is tested apart).
            page.locator("#immediately").check()
            page.locator("#launch-now").click()
            expect(
                page.get_by_role(
                    "heading", name=f"Rozesílka: {load_blueprint(CAMPAIGN).name} – hlavní rozeslání"
                )
            ).to_be_visible()
            expect(page.locator("#total-count")).to_have_text(size)
            worker = _send_in_background(server.engine)
            expect(page.locator("#sent-count")).to_have_text(size, timeout=120_000)
            page.screenshot(path=str(SHOTS / "rozesilka.png"))
            worker.join(timeout=60)

            # A library of the audience joins: staff record it on the library's page.
            run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
            activity = _simulate_the_following_days(server.engine, run_id)
            page.goto(f"{base}/console/contacts?library_type=obecni&member=ne")
            page.locator("table a[href^='/console/libraries/']").first.click()
            page.get_by_role("button", name="Zaznamenat vstup do SDRUK").click()
            expect(page.get_by_text("Členství knihovny bylo zaznamenáno.")).to_be_visible()
            page.screenshot(path=str(SHOTS / "knihovna.png"))
            page.locator("table a[href^='/console/contacts/']").first.click()
            expect(page.get_by_role("heading", name="Odeslané zprávy")).to_be_visible()
            expect(page.locator("table").first).to_contain_text(load_blueprint(CAMPAIGN).name)
            page.screenshot(path=str(SHOTS / "kontakt.png"), full_page=True)

            # Results of the run: people apart from machines, the joining credited.
            page.goto(f"{base}/console/runs/{run_id}/results")
            expect(page.get_by_role("heading", name="Trychtýř")).to_be_visible()
            funnel = page.locator("#funnel")
            expect(funnel).to_contain_text(size)
            expect(funnel.locator(".row", has_text="Otevřeno lidmi")).to_contain_text(
                str(activity["open"])
            )
            expect(funnel.locator(".row", has_text="Vstoupilo do SDRUK")).to_contain_text("1")
            expect(page.get_by_text("automatická otevření")).to_be_visible()
            expect(page.locator("#by-type")).to_contain_text("obecní/místní")
            expect(page.locator("svg polyline")).to_have_count(4)
            page.screenshot(path=str(SHOTS / "vysledky.png"), full_page=True)

            # The captured messages are readable in the console.
            page.goto(f"{base}/console/outbox")
            page.locator("table a").first.click()
            expect(page.locator("iframe.desktop")).to_be_visible()
            page.screenshot(path=str(SHOTS / "zachycena-zprava.png"))

            page.goto(f"{base}/console/audit")
            expect(page.locator("table")).to_contain_text("spuštění kampaně")
            page.screenshot(path=str(SHOTS / "zaznam-cinnosti.png"))

            page.goto(f"{base}/console/")
            expect(page.locator("main table").first).to_contain_text(load_blueprint(CAMPAIGN).name)
            page.screenshot(path=str(SHOTS / "prehled.png"), full_page=True)
        finally:
            browser.close()
    captured = list((server.data_dir / "outbox").glob("*.eml"))
    assert len(captured) == int(size.replace("\xa0", "").replace(" ", ""))
