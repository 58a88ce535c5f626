"""A staff member who is not a programmer writes a workshop invitation in the console, in real
Chromium: starts from the event starter, writes a heading, Markdown text with a link, an
uploaded image with alt text, event details and a button, picks a saved segment and sees its
count, adds a reminder "2 days before, to those not registered", previews on a phone, sends a
test and schedules it. Then, on a fake clock, the scheduler launches the campaign and the
reminder on time, and every message passes the MIME, SpamAssassin, vocative and accessibility
checks the shipped campaigns pass. Screenshots of the editor go to $SDRUK_SCREENSHOTS."""

from __future__ import annotations

import asyncio
import io
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from PIL import Image
from sqlmodel import Session, col, select
from test_compose_spam import MAX_SCORE, scores, spamassassin
from test_console_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, Server, server  # noqa: F401

from mailer import settings as mailer_settings
from mailer.audience.segments import count, parse_segment
from mailer.compose import czech, store
from mailer.compose.accessibility import check_html
from mailer.compose.campaigns import load_blueprint
from mailer.compose.check import check_blueprint
from mailer.compose.composer import Recipient
from mailer.delivery.send import WorkerOptions, drain
from mailer.delivery.transport import transport_from_url
from mailer.models import AuditEntry, Contact, Library, OutboxMessage, Run, SavedSegment
from mailer.scheduling.registrations import import_registrations
from mailer.scheduling.steps import tick
from mailer.web.console.auth import create_user

pytestmark = pytest.mark.browser

EDITOR = "jana.redaktorka@sdruk.cz"
PASSWORD = "heslo-pro-redaktorku-42"
SEGMENT = {"library_type": ["mestska", "obecni"], "region": "Jihomoravský kraj"}
# Past working days: the scheduler runs on a fake clock, the sender on the real one, which
# sends a run only once its time has come.
SEND_AT = "2026-10-05T09:30"  # a Monday
EVENT_START, EVENT_END = "2026-10-21T09:30", "2026-10-21T15:00"  # a Wednesday
REGISTRATION = "https://sdruk.cz/dilna-komunitni-centrum"
PRAGUE = czech.PRAGUE


def _photo(path: Path) -> Path:
    """A 2400 px photo with camera metadata, as staff would upload it."""
    image = Image.new("RGB", (2400, 1350), (214, 196, 160))
    for x in range(0, 2400, 40):
        for y in range(0, 1350, 90):
            image.putpixel((x, y), (90, 60, 40))
    exif = image.getexif()
    exif[0x010F] = "Fotoaparát"
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif, quality=80)
    path.write_bytes(out.getvalue())
    return path


def _axe(page: Any, what: str) -> None:
    """No serious or critical accessibility problem (axe-core) on the page."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    bad = [
        f"{v['id']} ({v['impact']}): {v['help']} {[n['target'] for n in v['nodes']][:3]}"
        for v in results.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert not bad, f"{what}: {bad}"


def _drain(engine: sa.Engine) -> None:
    transport = transport_from_url(mailer_settings.get_settings().resolved_smtp_url())
    asyncio.run(drain(engine, transport, WorkerOptions(worker_id="editor-test")))


def _local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=PRAGUE)


def _messages(folder: Path) -> list[tuple[Path, bytes]]:
    return sorted((p, p.read_bytes()) for p in folder.rglob("*.eml"))


def test_a_staff_member_writes_schedules_and_sends_a_workshop_invitation(
    server: Server,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    engine = server.engine
    with Session(engine) as session:
        create_user(session, EDITOR, "editor", PASSWORD, name="Jana Redaktorka")
        session.add(
            SavedSegment(name="Městské a obecní knihovny v Jihomoravském kraji", definition=SEGMENT)
        )
        session.commit()
        expected = count(session, parse_segment(SEGMENT), topic="events")
    assert expected > 3
    photo = _photo(tmp_path / "dilna.jpg")
    SHOTS.mkdir(parents=True, exist_ok=True)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1440, "height": 1000}, locale="cs-CZ")
        page.goto(f"{server.url}/console/login")
        page.fill("input[name=email]", EDITOR)
        page.fill("input[name=password]", PASSWORD)
        page.click("form button")
        page.goto(f"{server.url}/console/campaigns")
        page.click("#new-campaign")
        page.get_by_label("Pozvánka na akci").check()
        page.fill("#n-name", "Dílna: Knihovna jako komunitní centrum")
        page.click("#create-from-starter")
        expect(page.locator(".notice.ok")).to_contain_text("Kampaň je založená")
        slug = page.url.split("/campaigns/")[1].split("/")[0]

        page.fill("#f-subject", "Pozvánka na dílnu Knihovna jako komunitní centrum")
        page.fill("#f-send-at", SEND_AT)
        page.fill("#ev-title", "Knihovna jako komunitní centrum")
        page.fill("#ev-start", EVENT_START)
        page.fill("#ev-end", EVENT_END)
        page.fill("#ev-venue", "Brno, Moravská zemská knihovna")
        page.fill("#ev-address", "Kounicova 65a, 601 87 Brno")
        page.fill("#ev-registration", REGISTRATION)
        page.fill("#b-0-text", "Knihovna jako komunitní centrum")
        page.fill(
            "#b-3-markdown",
            "Na dílně ukážeme, jak z knihovny udělat místo setkávání celé obce. "
            "Program najdete na [stránce dílny](https://sdruk.cz/dilna-komunitni-centrum/program). "
            "Účast je pro členské knihovny **zdarma**.",
        )
        # An image block, moved up under the heading; the photo is uploaded from the block.
        page.get_by_role("button", name="Obrázek", exact=True).click()
        expect(page.locator(".notice.ok")).to_contain_text("Přidán blok")
        image_block = page.locator(".block").last
        index = int(image_block.get_attribute("data-block") or "0")
        page.fill(f"#b-{index}-alt", "Knihovnice a čtenáři při besedě v knihovně")
        page.set_input_files(f"#b-{index}-upload", str(photo))
        expect(image_block.locator(".upload-status")).to_have_text("Obrázek je nahraný a vložený.")
        for _ in range(index - 1):
            page.click(f"button[aria-label='Posunout blok {index + 1 - _} nahoru']")
        assert page.locator(".block").nth(1).get_attribute("data-block") == "1"
        expect(page.locator("#b-1-alt")).to_have_value("Knihovnice a čtenáři při besedě v knihovně")

        # The audience: a saved segment, with its live count.
        page.select_option("#f-saved", label="Městské a obecní knihovny v Jihomoravském kraji")
        expect(page.locator("[data-count=launch]")).to_have_text(
            f"{expected:,}".replace(",", "\xa0")
        )

        # The starter's reminder goes; staff add their own: 2 days before, not registered.
        page.click("button[value='remove-reminder:0']")
        page.click("#add-reminder")
        page.select_option("#r-0-when", "before_event")
        page.fill("#r-0-days", "2")
        page.select_option("#r-0-audience", "not-registered")
        page.fill("#r-0-subject", "Pozítří začíná dílna Knihovna jako komunitní centrum")
        page.fill("#r-0-opening", "už pozítří začíná dílna ")
        page.click("#r-0-opening")
        page.keyboard.press("End")
        page.get_by_role("button", name="Název akce").click()  # from the picker
        page.keyboard.type(" a zatím jsme od vás nedostali registraci.")
        page.fill("#f-summary", "Pozvánka na březnovou dílnu")
        page.click("#save")
        expect(page.locator(".notice.ok")).to_contain_text("Uloženo")
        expect(page.locator("#settings-problems")).to_have_count(0)
        expect(page.locator(".block.has-problem")).to_have_count(0)

        _axe(page, "editor")
        # Preview of the reminder on a phone.
        page.wait_for_selector("body[data-preview-ready]", state="attached")
        page.select_option("#p-step", "2-dny-pred")
        mobile = page.frame_locator("iframe.mobile")
        expect(mobile.locator("body")).to_contain_text(
            "už pozítří začíná dílna Knihovna jako komunitní centrum a zatím"
        )
        expect(
            mobile.locator("img[alt='Knihovnice a čtenáři při besedě v knihovně']")
        ).to_have_count(1)
        page.select_option("#p-step", "launch")
        expect(mobile.locator("body")).to_contain_text("Knihovna jako komunitní centrum")
        page.wait_for_timeout(800)
        page.screenshot(path=str(SHOTS / "editor.png"), full_page=False)
        page.locator("section:has(#blocks)").screenshot(path=str(SHOTS / "editor-bloky.png"))
        page.set_viewport_size({"width": 375, "height": 812})
        page.wait_for_timeout(300)
        page.screenshot(path=str(SHOTS / "editor-mobil.png"), full_page=False)
        page.set_viewport_size({"width": 1440, "height": 1000})

        # A test to the signed-in user, then hand it to the scheduler.
        page.click("#test-send")
        expect(page.locator(".notice.ok")).to_contain_text("Zkušební e-mail byl odeslán")
        page.goto(f"{server.url}/console/campaigns/{slug}/edit")
        page.click("#schedule")
        expect(page.locator(".notice.ok")).to_contain_text("naplánována")
        browser.close()

    outbox = server.data_dir / "outbox"
    [(_, test_message)] = _messages(outbox)
    assert EDITOR in message_from_bytes(test_message, policy=policy.default)["To"]
    with Session(engine) as session:
        actions = set(session.exec(select(AuditEntry.action)).all())
    assert {"campaign.save", "test_send", "schedule"} <= actions

    # Messages from here on as production writes them: links on the association's domain.
    monkeypatch.setenv("BASE_URL", "https://kampane.sdruk.cz")
    mailer_settings.get_settings.cache_clear()
    blueprint = load_blueprint(slug)
    assert blueprint.revision == store.latest(engine, slug).number  # type: ignore[union-attr]
    assert check_blueprint(slug) == []
    grace = timedelta(hours=24)
    tick(engine, now=_local(SEND_AT) - timedelta(minutes=1), grace=grace)
    with Session(engine) as session:
        assert session.exec(select(Run)).all() == []
    tick(engine, now=_local(SEND_AT) + timedelta(seconds=30), grace=grace)
    _drain(engine)
    with Session(engine) as session:
        [launch] = session.exec(select(Run)).all()
        launched_to = session.exec(
            select(OutboxMessage.contact_id).where(OutboxMessage.run_id == launch.id)
        ).all()
    assert launch.recipients == expected and launch.content["revision"] == blueprint.revision

    # One library registers; the reminder goes 2 days before the event to the others.
    with Session(engine) as session:
        registered = session.get(Contact, launched_to[0])
        assert registered is not None
    csv = tmp_path / "registrace.csv"
    csv.write_text(f"email\n{registered.email}\n", encoding="utf-8")
    import_registrations(engine, csv, campaign=slug)
    due = _local(EVENT_START) - timedelta(days=2)
    tick(engine, now=due - timedelta(minutes=1), grace=grace)
    with Session(engine) as session:
        assert len(session.exec(select(Run)).all()) == 1
    tick(engine, now=due + timedelta(seconds=30), grace=grace)
    _drain(engine)
    with Session(engine) as session:
        reminder = session.exec(select(Run).where(Run.step == "2-dny-pred")).one()
        reminded = set(
            session.exec(
                select(OutboxMessage.contact_id).where(OutboxMessage.run_id == reminder.id)
            ).all()
        )
        contacts = {
            c.email: (c, session.get(Library, c.library_id) if c.library_id else None)
            for c in session.exec(select(Contact).where(col(Contact.id).in_(launched_to))).all()
        }
    assert reminded == set(launched_to) - {registered.id}

    sent = [data for path, data in _messages(outbox) if data != test_message]
    assert len(sent) == expected + expected - 1
    for data in sent:
        message = message_from_bytes(data, policy=policy.default)
        assert isinstance(message, EmailMessage)
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "<https://kampane.sdruk.cz/" in message["List-Unsubscribe"]
        html_part = message.get_body(preferencelist=("html",))
        text_part = message.get_body(preferencelist=("plain",))
        assert html_part is not None and text_part is not None
        calendar = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
        assert len(calendar) == 1 and "Knihovna jako komunitní centrum" in calendar[0].get_content()
        html = html_part.get_content()
        assert check_html(html) == []
        assert "/media/" in html and "Knihovnice a čtenáři při besedě v knihovně" in html
        to = str(message["To"])
        address = to[to.find("<") + 1 : to.rfind(">")] if "<" in to else to
        contact, library = contacts[address]
        salutation = Recipient.from_rows(0, contact, library).salutation()
        assert salutation.startswith("Vážen") and salutation in text_part.get_content()
        assert f">{salutation}</p>" in html
    # SpamAssassin on one message of each step and the test.
    firsts = [sent[0], sent[-1], test_message]
    binary = spamassassin()
    for score, report in scores(binary, firsts, tmp_path):
        assert score <= MAX_SCORE, report
