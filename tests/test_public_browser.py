"""The public pages in a real browser (Debian's Chromium via Playwright) at a phone's and a
desktop's width: a library follows the button of a recruitment message to its pre-filled form
and applies, its reminders stop at once, staff approve it and the run's funnel shows it
joined; people register for a workshop until it is full, the next waits, a cancellation moves
them up. Every page passes axe-core with no serious or critical violation and works without
JavaScript, except the proof of work, which says why it needs it. Screenshots go to
var/screenshots/public (or $SDRUK_SCREENSHOTS)."""

from __future__ import annotations

import asyncio
import email
import re
import shutil
import threading
from collections.abc import Iterator
from email import policy
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select
from test_console_browser import CHROMIUM, CHROMIUM_ARGS, ROOT, SHOTS, Server, server

from mailer import settings as mailer_settings
from mailer.audience.segments import SegmentContext, parse_segment, recipients_select
from mailer.compose.campaigns import load_blueprint
from mailer.delivery.runs import launch
from mailer.models import Contact, EventRegistration, Library, OutboxMessage

pytestmark = pytest.mark.browser
__all__ = ["server"]

RECRUITMENT = "join-this-year-2026"
WORKSHOPS = "leadership-workshops-2027"
PUBLIC_SHOTS = SHOTS / "public"
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}


@pytest.fixture
def small_workshops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The shipped campaigns, the workshops with one seat each (set before the server starts)."""
    folder = tmp_path / "kampane"
    shutil.copytree(ROOT / "campaigns", folder)
    toml = folder / WORKSHOPS / "campaign.toml"
    text = toml.read_text(encoding="utf-8")
    toml.write_text(re.sub(r"capacity = 25[^\n]*", "capacity = 1", text), encoding="utf-8")
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(folder))
    mailer_settings.get_settings.cache_clear()
    yield folder


def _drain(server: Server) -> None:
    from mailer.delivery.send import WorkerOptions, drain
    from mailer.delivery.transport import transport_from_url

    transport = transport_from_url(mailer_settings.get_settings().resolved_smtp_url())
    # In a thread of its own: Playwright's sync API keeps an event loop on this one.
    worker = threading.Thread(
        target=asyncio.run,
        args=(drain(server.engine, transport, WorkerOptions(worker_id="public-test")),),
    )
    worker.start()
    worker.join()


def _captured(server: Server, to: str) -> list[email.message.EmailMessage]:
    found = []
    for path in sorted((server.data_dir / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=policy.default)
        if message["To"] == to:
            found.append(message)
    return found  # type: ignore[return-value]


def _html(message: Any) -> str:
    return str(message.get_body(("html",)).get_content())


def _axe(page: Any, what: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{what}: {bad}"


def _reminder_audience(server: Server) -> set[str]:
    segment = parse_segment(load_blueprint(RECRUITMENT).audience_for("pripominka"))
    with Session(server.engine) as session:
        rows = session.execute(
            recipients_select(segment, topic="membership", context=SegmentContext(RECRUITMENT))
        ).scalars()
        return {c.email for c in rows}


def _shot(page: Any, name: str) -> None:
    PUBLIC_SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(PUBLIC_SHOTS / name), full_page=True)


@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_a_library_applies_from_the_message_and_staff_approve(
    small_workshops: Path, server: Server, width: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    run_id = launch(server.engine, load_blueprint(RECRUITMENT)).run_id
    _drain(server)
    with Session(server.engine) as session:
        contact, library = session.exec(
            select(Contact, Library)
            .join(OutboxMessage, col(OutboxMessage.contact_id) == col(Contact.id))
            .join(Library, col(Library.id) == col(Contact.library_id))
            .where(OutboxMessage.run_id == run_id, col(Library.siglum).is_not(None))
            .order_by(col(Contact.id))
        ).first()  # type: ignore[misc]
    assert contact.email in _reminder_audience(server)
    message = _captured(server, contact.email)[0]
    button = re.search(
        r'href="([^"]+/chceme-byt-clenem/[^"]+)"[^>]*>\s*Chceme být členem', _html(message)
    )
    assert button, "the recruitment message has no button to the form"

    viewport = PHONE if width == "phone" else DESKTOP
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=viewport, locale="cs-CZ")
            page.goto(button.group(1).replace("&amp;", "&"))
            expect(page.get_by_role("heading", name="Chceme být členem")).to_be_visible()
            expect(page.get_by_label("Název knihovny")).to_have_value(library.name)
            expect(page.get_by_label("Sigla knihovny")).to_have_value(library.siglum)
            expect(page.get_by_label("E-mail")).to_have_value(contact.email)
            _axe(page, "přihláška")
            _shot(page, f"prihlaska-{width}.png")
            page.get_by_label("IČO").fill("00069922")
            page.get_by_label("Fakturační adresa").fill("Náměstí 1, 272 01 Kladno")
            page.get_by_label(re.compile("Souhlasím se stanovami")).check()
            page.get_by_label(re.compile("Souhlasím se zpracováním")).check()
            expect(page.get_by_text("Ověřeno, formulář můžete odeslat.")).to_be_visible(
                timeout=30_000
            )
            page.get_by_role("button", name="Odeslat přihlášku").click()
            expect(page.get_by_role("heading", name="Děkujeme za přihlášku")).to_be_visible()
            _axe(page, "poděkování")
            # Reminders stop at once for every address of the library.
            assert contact.email not in _reminder_audience(server)

            # Staff approve it in the console.
            page.goto(f"{server.url}/console/login")
            page.get_by_label("E-mail").fill(server.email)
            page.get_by_label("Heslo").fill(server.password)
            page.get_by_role("button", name="Přihlásit se").click()
            page.goto(f"{server.url}/console/applications")
            _shot(page, f"konzole-prihlasky-{width}.png")
            page.get_by_role("link", name=library.name).first.click()
            expect(page.get_by_text("Z kampaně")).to_be_visible()
            page.get_by_label("Poznámka").fill("Vítejte mezi námi")
            page.get_by_role("button", name="Schválit a zapsat členství").click()
            expect(page.get_by_text("Přihláška je schválena")).to_be_visible()
            _shot(page, f"konzole-prihlaska-{width}.png")
            page.goto(f"{server.url}/console/runs/{run_id}/results")
            joined = page.locator("tr, li, div").filter(has_text="Vstoupilo do SDRUK").last
            expect(joined).to_contain_text("1")
        finally:
            browser.close()
    with Session(server.engine) as session:
        found = session.get(Library, library.id)
        assert found is not None and found.is_member
    # The applicant hears the decision.
    _drain(server)
    subjects = [m["Subject"] for m in _captured(server, contact.email)]
    assert subjects[-1] == "Přihláška knihovny do Sdružení knihoven ČR je schválena"


@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_a_workshop_fills_waitlists_and_a_cancellation_moves_up(
    small_workshops: Path, server: Server, width: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    viewport = PHONE if width == "phone" else DESKTOP
    page_url = f"{server.url}/registrace/{WORKSHOPS}"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            for name, address in (("Anna Malá", "anna@knihovna.example"),
                                  ("Boris Velký", "boris@knihovna.example")):  # fmt: skip
                page = browser.new_page(viewport=viewport, locale="cs-CZ")
                page.goto(page_url)
                if address.startswith("anna"):
                    _axe(page, "registrace")
                    _shot(page, f"registrace-{width}.png")
                else:
                    expect(
                        page.get_by_text("obsazeno, zapíšeme vás na čekací listinu").first
                    ).to_be_visible()
                page.get_by_label(re.compile("Vedení a motivace týmu")).check()
                page.get_by_label("Jméno a příjmení").fill(name)
                page.get_by_label("E-mail").fill(address)
                expect(page.get_by_text("Ověřeno, formulář můžete odeslat.")).to_be_visible(
                    timeout=30_000
                )
                page.get_by_role("button", name="Registrovat se").click()
                expect(page.get_by_role("heading", name="Děkujeme za registraci")).to_be_visible()
                page.close()
            _drain(server)
            with Session(server.engine) as session:
                states = dict(
                    session.exec(select(EventRegistration.email, EventRegistration.status)).all()
                )
            assert states == {
                "anna@knihovna.example": "registered",
                "boris@knihovna.example": "waitlisted",
            }
            confirmation = _captured(server, "anna@knihovna.example")[0]
            assert confirmation["List-Unsubscribe"] is None
            assert any(part.get_content_type() == "text/calendar" for part in confirmation.walk())
            cancel = re.search(r'href="([^"]+/zrusit-registraci/[^"]+)"', _html(confirmation))
            assert cancel
            page = browser.new_page(viewport=viewport, locale="cs-CZ")
            page.goto(cancel.group(1))
            _axe(page, "zrušení registrace")
            page.get_by_role("button", name="Zrušit registraci").click()
            expect(page.get_by_role("heading", name="Registrace zrušena")).to_be_visible()
            _drain(server)
            moved_up = _captured(server, "boris@knihovna.example")
            assert [m["Subject"].split(":")[0] for m in moved_up] == [
                "Čekací listina",
                "Uvolnilo se místo",
            ]
        finally:
            browser.close()


def test_the_pages_work_without_javascript_except_the_proof_of_work(
    small_workshops: Path, server: Server
) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(java_script_enabled=False, viewport=PHONE, locale="cs-CZ")
            page = context.new_page()
            pages = (
                ("/chceme-byt-clenem", "Chceme být členem"),
                (f"/registrace/{WORKSHOPS}", "Registrace: Workshopy leadershipu 2027"),
            )
            for path, heading in pages:
                page.goto(server.url + path)
                expect(page.get_by_role("heading", name=heading)).to_be_visible()
                expect(
                    page.get_by_text("Pro odeslání formuláře zapněte prosím JavaScript")
                ).to_be_visible()
                expect(page.get_by_label("E-mail")).to_be_editable()
            # Submitting without the proof of work explains itself and stores nothing.
            page.get_by_label(re.compile("Vedení a motivace týmu")).check()
            page.get_by_label("Jméno a příjmení").fill("Bez Skriptu")
            page.get_by_label("E-mail").fill("bez@knihovna.example")
            page.get_by_role("button", name="Registrovat se").click()
            expect(page.get_by_role("heading", name="Ověření se nezdařilo")).to_be_visible()
            _shot(page, "bez-javascriptu.png")
        finally:
            browser.close()
    with Session(server.engine) as session:
        assert session.exec(select(EventRegistration)).first() is None


def test_a_person_subscribes_confirms_and_gets_the_welcome(
    small_workshops: Path, server: Server
) -> None:
    from playwright.sync_api import expect, sync_playwright

    address = "nova.ctenarka@knihovna.example"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=PHONE, locale="cs-CZ")
            page.goto(f"{server.url}/odber")
            _axe(page, "odběr")
            _shot(page, "odber-phone.png")
            page.get_by_label("E-mail").fill(address)
            page.get_by_label("Jméno").fill("Jana")
            page.get_by_label("Členství a nábor").uncheck()
            page.get_by_label(re.compile("Souhlasím, aby mi")).check()
            expect(page.get_by_text("Ověřeno, formulář můžete odeslat.")).to_be_visible(
                timeout=30_000
            )
            page.get_by_role("button", name="Přihlásit se k odběru").click()
            expect(
                page.get_by_role("heading", name="Zkontrolujte prosím svou schránku")
            ).to_be_visible()
            _axe(page, "odběr odeslán")
            _drain(server)
            [confirmation] = _captured(server, address)
            assert confirmation["List-Unsubscribe"] is None
            link = re.search(r'href="([^"]+/odber/potvrdit/[^"]+)"', _html(confirmation))
            assert link
            page.goto(link.group(1))
            _axe(page, "potvrzení odběru")
            page.get_by_role("button", name="Potvrdit odběr").click()
            expect(page.get_by_role("heading", name="Odběr je potvrzený")).to_be_visible()
            _drain(server)
            welcome = _captured(server, address)[-1]
            assert welcome["Subject"] == "Vítejte mezi odběrateli novinek Sdružení knihoven ČR"
        finally:
            browser.close()
    with Session(server.engine) as session:
        contact = session.exec(select(Contact).where(Contact.email == address)).one()
        assert contact.legal_basis == "consent"
