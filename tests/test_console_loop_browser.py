"""The recruitment loop played in Chromium as staff play it: launch the recruitment campaign by
hand in the console, record that one library joined, see the reminder's count drop by exactly
that library's contacts, then let the scheduler's clock move on: the reminder goes out ten days
after the real launch (in the sending window), only to libraries that did not join."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select
from test_console_browser import (  # noqa: F401 (fixture)
    CHROMIUM,
    CHROMIUM_ARGS,
    SHOTS,
    Server,
    _send_in_background,
    server,
)

from mailer.compose.campaigns import load_blueprint
from mailer.models import Contact, MessageStatus, OutboxMessage, Run, ScheduledStep, utcnow
from mailer.scheduling.clock import ManualClock
from mailer.scheduling.overview import schedule_overview
from mailer.scheduling.steps import tick
from mailer.scheduling.sync import sync_blueprints

CAMPAIGN = "join-this-year-2026"
REMINDER = "pripominka"
GRACE = timedelta(hours=24)


def _reminder_count(page: object, base: str) -> int:
    """The reminder's "Příjemců teď" on the campaign page, as staff read it."""
    page.goto(f"{base}/console/campaigns/{CAMPAIGN}")  # type: ignore[attr-defined]
    link = page.locator(f"a[href$='preview?step={REMINDER}']")  # type: ignore[attr-defined]
    row = page.locator("tr", has=link)  # type: ignore[attr-defined]
    text = row.locator("td.n").inner_text()
    return int(re.sub(r"\D", "", text))


def _sent_to(engine: sa.Engine, run_id: int) -> set[int]:
    with Session(engine) as session:
        return {
            cid
            for cid in session.exec(
                select(OutboxMessage.contact_id).where(
                    OutboxMessage.run_id == run_id, OutboxMessage.status == MessageStatus.SENT
                )
            )
            if cid is not None
        }


def _queued_for(engine: sa.Engine, run_id: int) -> set[int]:
    with Session(engine) as session:
        return {
            cid
            for cid in session.exec(
                select(OutboxMessage.contact_id).where(OutboxMessage.run_id == run_id)
            )
            if cid is not None
        }


def test_it_plays_the_recruitment_loop_in_the_browser(
    server: Server,  # noqa: F811 (the fixture imported above)
    tmp_path: Path,
) -> None:
    from playwright.sync_api import expect, sync_playwright

    engine = server.engine
    # The scheduler starts as on a first `make run`: the steps are planned (a launch whose
    # shipped time has passed is missed; staff launch it by hand below).
    sync_blueprints(engine)
    tick(engine, now=utcnow(), grace=GRACE)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 860}, locale="cs-CZ")
            page.on("dialog", lambda dialog: dialog.accept())
            base = server.url
            page.goto(f"{base}/console/")
            page.get_by_label("E-mail").fill(server.email)
            page.get_by_label("Heslo").fill(server.password)
            page.get_by_role("button", name="Přihlásit se").click()
            expect(page.get_by_role("heading", name="Přehled")).to_be_visible()

            # 1. Launch by hand, at once whatever the hour the test runs (the window's wait
            # is tested in test_launch_window.py), and let the worker send it.
            page.goto(f"{base}/console/campaigns/{CAMPAIGN}/launch")
            size = page.locator("#audience-size").inner_text()
            page.locator("#immediately").check()
            page.locator("#launch-now").click()
            expect(page.locator("#total-count")).to_have_text(size)
            worker = _send_in_background(engine)
            expect(page.locator("#sent-count")).to_have_text(size, timeout=120_000)
            worker.join(timeout=60)
            launch_run = int(page.url.rstrip("/").rsplit("/", 1)[1])
            with Session(engine) as session:
                run = session.get(Run, launch_run)
                assert run is not None
                launched_at = run.created_at
                step = session.exec(
                    select(ScheduledStep).where(
                        ScheduledStep.campaign == CAMPAIGN, ScheduledStep.step == "launch"
                    )
                ).one()
            # The launch by hand is the scheduled launch's run.
            assert step.run_id == launch_run and step.launched_at == launched_at
            received = _sent_to(engine, launch_run)

            # A library of the audience with several recipients, as staff would find it.
            with Session(engine) as session:
                by_library: dict[int, set[int]] = {}
                for contact in session.exec(
                    select(Contact).where(col(Contact.id).in_(received))
                ).all():
                    if contact.library_id is not None:
                        by_library.setdefault(contact.library_id, set()).add(contact.id or 0)
            library_id, its_contacts = max(by_library.items(), key=lambda kv: (len(kv[1]), kv[0]))
            assert len(its_contacts) >= 2

            # 2. and 3. Record the join in the console; the reminder's count drops by exactly
            # that library's contacts.
            before = _reminder_count(page, base)
            assert before == len(received)
            page.goto(f"{base}/console/libraries/{library_id}")
            page.get_by_role("button", name="Zaznamenat vstup do SDRUK").click()
            expect(page.get_by_text("Členství knihovny bylo zaznamenáno.")).to_be_visible()
            after = _reminder_count(page, base)
            assert after == before - len(its_contacts)
            page.screenshot(path=str(SHOTS / "smycka-kampan.png"), full_page=True)
        finally:
            browser.close()

    # 4. The scheduler's clock moves on: the reminder is due ten days after the real launch,
    # and starts when the sending window is open then.
    blueprint = load_blueprint(CAMPAIGN)
    due = launched_at + timedelta(days=10)
    starts = blueprint.sending_window.next_open(due)
    overview = schedule_overview(engine, now=utcnow())
    [planned] = [v for v in overview.upcoming if v.campaign == CAMPAIGN and v.step == REMINDER]
    assert planned.due_at == due and planned.starts_at == starts
    assert [(v.step, v.run_id) for v in overview.done if v.campaign == CAMPAIGN] == [
        ("launch", launch_run)
    ]

    clock = ManualClock(starts - timedelta(minutes=1))
    tick(engine, now=clock.now(), grace=GRACE)
    with Session(engine) as session:
        assert (
            session.exec(select(Run).where(Run.campaign == CAMPAIGN, Run.step == REMINDER)).first()
            is None
        )
    clock.set(starts)
    report = tick(engine, now=clock.now(), grace=GRACE)
    [outcome] = [o for o in report.launched if o.campaign == CAMPAIGN and o.step == REMINDER]
    assert outcome.run_id is not None
    reminded = _queued_for(engine, outcome.run_id)
    assert reminded == received - its_contacts
    assert not reminded & its_contacts
    # Once: a later round does not send it again.
    tick(engine, now=clock.advance(timedelta(hours=1)), grace=GRACE)
    with Session(engine) as session:
        assert (
            len(
                session.exec(
                    select(Run).where(Run.campaign == CAMPAIGN, Run.step == REMINDER)
                ).all()
            )
            == 1
        )
