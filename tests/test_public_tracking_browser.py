"""Denying tracking from a real message, in a real browser (Debian's Chromium via Playwright)
at a phone's and a desktop's width: a contact opens the preferences page from the message they
received through the in-process SMTP server, answers "no" to the tracking question, and their
next message (another run, sent through the same server) carries no open pixel and no personal
click link, while a colleague's message of the same run still does. The page passes axe-core
with no serious or critical violation before and after answering."""

from __future__ import annotations

import asyncio
import email
import re
import threading
from email import policy
from typing import Any

import pytest
from smtp_server import SMTPServer, smtp_server
from sqlmodel import Session, col, select
from test_console_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, Server, server

from mailer.compose.campaigns import load_blueprint
from mailer.delivery.runs import launch
from mailer.models import Contact, OutboxMessage
from mailer.tokens import Purpose, Signer

pytestmark = pytest.mark.browser
__all__ = ["server", "smtp_server"]

EVENT = "knihovny-soucasnosti-2027"  # tracking = individual
PHONE = {"width": 375, "height": 812}
DESKTOP = {"width": 1280, "height": 900}
SIGNER = Signer([b"browser-test-key"])  # the server fixture's SECRET_KEY


def _send(server: Server, relay: SMTPServer) -> None:
    from mailer.delivery.send import WorkerOptions, drain
    from mailer.delivery.transport import transport_from_url

    transport = transport_from_url(relay.url(concurrency="8"))
    # In a thread of its own: Playwright's sync API keeps an event loop on this one.
    worker = threading.Thread(
        target=asyncio.run,
        args=(drain(server.engine, transport, WorkerOptions(worker_id="consent-test")),),
    )
    worker.start()
    worker.join()


def _html(relay: SMTPServer, to: str, run_id: int) -> str:
    """The HTML part of the message of run `run_id` that `to` received."""
    for received in relay.received_by(to):
        message = email.message_from_bytes(received.data, policy=policy.default)
        if re.match(rf"<sdruk\.{run_id}\.", str(message["Message-ID"])):
            return str(message.get_body(("html",)).get_content())  # type: ignore[union-attr]
    raise AssertionError(f"{to} received no message of run {run_id}")


def _tokens(html: str, path: str) -> list[str]:
    return re.findall(rf"/{path}/([A-Za-z0-9_-]+)", html)


def _purposes(tokens: list[str]) -> set[Purpose]:
    return {p for t in tokens for p in Purpose if SIGNER.verify(p, t)}


def _axe(page: Any, what: str) -> None:
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{what}: {bad}"


@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_a_contact_denies_tracking_and_their_next_message_has_none(
    server: Server, smtp_server: SMTPServer, width: str
) -> None:
    from playwright.sync_api import expect, sync_playwright

    first = launch(server.engine, load_blueprint(EVENT)).run_id
    _send(server, smtp_server)
    with Session(server.engine) as session:
        person, colleague = session.exec(
            select(Contact)
            .join(OutboxMessage, col(OutboxMessage.contact_id) == col(Contact.id))
            .where(OutboxMessage.run_id == first, OutboxMessage.status == "sent")
            .order_by(col(Contact.id))
            .limit(2)
        ).all()
    before = _html(smtp_server, person.email, first)
    assert _purposes(_tokens(before, "o")) == {Purpose.OPEN}  # tracked until they say no
    preferences = re.search(r'href="([^"]+/p/[^"]+)"', before)
    assert preferences, "the message links no preferences page"

    viewport = PHONE if width == "phone" else DESKTOP
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=viewport, locale="cs-CZ")
            page.goto(preferences.group(1).replace("&amp;", "&"))
            question = page.get_by_role("group", name=re.compile("Smíme u zpráv zjišťovat"))
            expect(question).to_be_visible()
            expect(page.get_by_text(re.compile("počítáme jen anonymně"))).to_be_visible()
            _axe(page, "nastavení odběru")
            page.get_by_label("Ne, nesledujte mě").check()
            page.get_by_role("button", name="Uložit odpověď").click()
            expect(page.get_by_role("status")).to_contain_text("sledování nechcete")
            expect(page.get_by_label("Ne, nesledujte mě")).to_be_checked()
            _axe(page, "nastavení odběru po odpovědi")
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / f"sledovani-{width}.png"), full_page=True)
        finally:
            browser.close()

    second = launch(server.engine, load_blueprint(EVENT), "14-dni-pred").run_id
    _send(server, smtp_server)

    after = _html(smtp_server, person.email, second)
    assert "/o/" not in after
    clicks = _tokens(after, "c")
    assert clicks and _purposes(clicks) == {Purpose.CLICK_ANONYMOUS}
    assert _purposes(_tokens(after, "v")) == {Purpose.WEB_VERSION_ANONYMOUS}
    assert _purposes(_tokens(after, "p")) == {Purpose.PREFERENCES}  # still theirs
    # The colleague in the same run, who said nothing, is still tracked by default.
    theirs = _html(smtp_server, colleague.email, second)
    assert _purposes(_tokens(theirs, "o")) == {Purpose.OPEN}
    assert _purposes(_tokens(theirs, "c")) == {Purpose.MESSAGE_CLICK}
    with Session(server.engine) as session:
        tracked = dict(
            session.exec(
                select(OutboxMessage.contact_id, OutboxMessage.individually_tracked).where(
                    OutboxMessage.run_id == second,
                    col(OutboxMessage.contact_id).in_([person.id, colleague.id]),
                )
            ).all()
        )
    assert tracked == {person.id: False, colleague.id: True}
