"""Rewording an automatic e-mail in a real browser (Debian's Chromium via Playwright) at a
phone's and a desktop's width: staff open „Automatické e-maily“, change the subscription
welcome with a placeholder, preview it at both widths, save it, and the next person who
confirms a subscription gets the new text. Every page passes axe-core with no serious or
critical violation."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, col, select
from test_console_browser import CHROMIUM, CHROMIUM_ARGS, Server, server
from test_public_browser import DESKTOP, PHONE, _axe, _captured, _drain, _html, _shot

from mailer.models import TRANSACTIONAL_CAMPAIGN, OutboxMessage, Run
from mailer.signups.subscriptions import SignUp, request
from mailer.tokens import default_signer

pytestmark = pytest.mark.browser
__all__ = ["server"]

PARAGRAPH = "{{ jmeno }}, děkujeme, že čtete naše novinky. Jednou měsíčně, nic víc."


def _confirm_link(server: Server, address: str) -> str:
    with Session(server.engine) as session:
        request(
            session,
            SignUp(
                email=address,
                first_name="Alžběta",
                last_name="Dvořáková",
                library_name="",
                topics=["newsletter"],
                consent_text="Souhlasím se zasíláním novinek.",
            ),
            default_signer(),
            ip=None,
            user_agent=None,
        )
        session.commit()
        content = session.exec(
            select(Run.content)
            .join(OutboxMessage, col(OutboxMessage.run_id) == col(Run.id))
            .where(Run.campaign == TRANSACTIONAL_CAMPAIGN, OutboxMessage.email == address)
        ).one()
    return str(content["values"]["message"]["button_url"])


@pytest.mark.parametrize("width", ["phone", "desktop"])
def test_staff_reword_the_welcome_preview_it_and_the_next_welcome_says_it(
    server: Server, width: str, tmp_path: Path
) -> None:
    from playwright.sync_api import expect, sync_playwright

    address = "alzbeta.dvorakova@knihovna.example"
    confirm = _confirm_link(server, address)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=PHONE if width == "phone" else DESKTOP)
            page.goto(f"{server.url}/console/login")
            page.get_by_label("E-mail").fill(server.email)
            page.get_by_label("Heslo").fill(server.password)
            page.get_by_role("button", name="Přihlásit se").click()
            page.get_by_role("link", name="Automatické e-maily").click()
            expect(page.get_by_role("heading", name="Automatické e-maily")).to_be_visible()
            _axe(page, "automatické e-maily")
            page.get_by_role("link", name="Přivítání nového odběratele").click()
            expect(page.get_by_text("{{ jmeno }}").first).to_be_visible()

            page.get_by_label("Odstavce").fill(PARAGRAPH)
            page.get_by_label("Nadpis").fill("Vítejte, {{ jmeno }}")
            page.get_by_role("button", name="Zobrazit náhled").click()
            for frame in ("iframe.desktop", "iframe.mobile"):
                preview = page.frame_locator(frame)
                expect(
                    preview.get_by_text("Jana, děkujeme, že čtete naše novinky.")
                ).to_be_visible()
            mobile = page.locator("iframe.mobile").bounding_box()
            assert mobile is not None
            if width == "desktop":
                assert round(mobile["width"]) == 375
            else:  # on the phone the frame fits the screen, and nothing scrolls sideways
                assert mobile["width"] <= 375
                assert page.evaluate("document.documentElement.scrollWidth") <= 375
            _axe(page, "úprava automatického e-mailu s náhledem")
            _shot(page, f"automaticky-email-{width}.png")

            # A misspelt placeholder is refused with its field and line, the text kept.
            page.get_by_label("Nadpis").fill("Vítejte, {{ jmenoo }}")
            page.get_by_role("button", name="Uložit text").click()
            expect(page.get_by_role("alert").last).to_contain_text(
                "Nadpis, řádek 1: neznámý zástupný text {{ jmenoo }}"
            )
            expect(page.get_by_label("Nadpis")).to_have_value("Vítejte, {{ jmenoo }}")
            _axe(page, "odmítnutý text")
            page.get_by_label("Nadpis").fill("Vítejte, {{ jmeno }}")
            page.get_by_role("button", name="Uložit text").click()
            expect(page.get_by_text("Text je uložený.")).to_be_visible()
            expect(page.get_by_label("Odstavce")).to_have_value(PARAGRAPH)

            # The next welcome: the person confirms the subscription.
            page.goto(confirm)
            page.get_by_role("button", name="Potvrdit odběr").click()
            expect(page.get_by_role("heading", name="Odběr je potvrzený")).to_be_visible()
        finally:
            browser.close()
    _drain(server)
    welcome = _captured(server, address)[-1]
    assert welcome["Subject"] == "Vítejte mezi odběrateli novinek Sdružení knihoven ČR"
    html = _html(welcome)
    assert "Alžběta, děkujeme, že čtete naše novinky. Jednou měsíčně, nic víc." in html
    assert "Vítejte, Alžběta" in html
    assert "odběr je potvrzený" not in html
