"""The first run makes sense on any date: `sdruk demo` at a fake "today" in different months
moves the demo's schedule to that day (without touching the shipped files), plays a past
recruitment run with results, and leaves nothing missed, late or due at once. Twice is
the same as once."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.audience.contacts import import_contacts
from mailer.cli.demo import FIXTURE
from mailer.compose import store
from mailer.compose.campaigns import load_blueprint
from mailer.demo import DEMO_AUTHOR, RECRUITMENT, demo_shift, prepare_demo, shift_text
from mailer.events.stats import run_stats
from mailer.models import Contact, Event, EventKind, Library, Run, TrackingConsentRecord
from mailer.scheduling.clock import ManualClock
from mailer.scheduling.overview import schedule_overview
from mailer.scheduling.steps import tick

ROOT = Path(__file__).resolve().parent.parent
GRACE = timedelta(hours=24)


def _shipped_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted((ROOT / "campaigns").rglob("*")):
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_it_moves_dates_by_whole_weeks_and_years_in_text_only() -> None:
    text = (
        'name = "Přidejte se ještě letos (2026)"\n'
        "send_at = 2026-11-26T09:30:00\n"
        'registration_url = "https://sdruk.cz/knihovny-soucasnosti-2027"\n'
    )
    moved = shift_text(text, timedelta(weeks=10), 1)
    assert 'letos (2027)"' in moved
    assert "send_at = 2027-02-04T09:30:00" in moved
    assert "knihovny-soucasnosti-2027" in moved
    send_at = datetime(2026, 11, 26, 8, 30, tzinfo=UTC)
    for now in (datetime(2026, 3, 1, tzinfo=UTC), datetime(2028, 2, 29, 23, 59, tzinfo=UTC)):
        shift = demo_shift(send_at, now)
        assert shift % timedelta(weeks=1) == timedelta(0)
        assert timedelta(days=2) <= now - (send_at + shift) < timedelta(days=9)


@pytest.mark.parametrize(
    "today",
    [
        datetime(2026, 3, 10, 19, 0, tzinfo=UTC),  # before the shipped dates
        datetime(2026, 11, 29, 22, 8, tzinfo=UTC),  # a Sunday night, just after the launch
        datetime(2027, 7, 20, 6, 0, tzinfo=UTC),  # months after all of them
    ],
    ids=["march-2026", "november-2026", "july-2027"],
)
def test_it_sets_up_a_coherent_demo_on_any_date(engine: Engine, today: datetime) -> None:
    shipped = _shipped_digest()
    import_contacts(engine, FIXTURE)
    clock = ManualClock(today)
    first = prepare_demo(engine, now=clock.now())
    assert first.run_id is not None and first.launched_at is not None

    # The past run: sent days ago, with results to look at.
    assert timedelta(days=2) <= today - first.launched_at < timedelta(days=9)
    with Session(engine) as session:
        stats = run_stats(session, first.run_id)
    assert stats.sent == stats.recipients > 700
    assert stats.human_opens > 100 and stats.machine_opens > 10 and stats.human_clicks > 10
    assert stats.machine_clicks > 0
    assert stats.hard_bounces == 1 and stats.unsubscribes == 1
    assert stats.joined_libraries == first.joined == 3
    # Some contacts answered the tracking question, each answer with its evidence.
    with Session(engine) as session:
        consents = [c.tracking_consent for c in session.exec(select(Contact))]
        evidence = session.exec(select(TrackingConsentRecord)).all()
    assert consents.count("granted") > 5 and consents.count("denied") > 5
    assert len(evidence) == first.tracking_answers == len(consents) - consents.count("unknown")

    # The schedule: nothing missed, late or failed; the launch is linked to the past run; every
    # other step lies ahead, the first reminder ten days after the real launch.
    overview = schedule_overview(engine, now=today)
    assert overview.missed == [] and overview.late == [] and overview.failed == []
    assert [(v.campaign, v.step, v.run_id) for v in overview.done] == [
        (RECRUITMENT, "launch", first.run_id)
    ]
    # Every step of the three campaigns but the recruitment launch, the workshops' registrants'
    # reminders one per session.
    shipped_steps = sum(
        len(load_blueprint(slug).steps)
        for slug in (RECRUITMENT, "knihovny-soucasnosti-2027", "leadership-workshops-2027")
    )
    assert len(overview.upcoming) == shipped_steps - 1 == 15
    workshops = load_blueprint("leadership-workshops-2027")
    assert workshops.event is not None
    by_step = {(v.campaign, v.step): v for v in overview.upcoming}
    for number, occurrence in enumerate(workshops.event.sessions, start=1):
        planned = by_step[("leadership-workshops-2027", f"prakticke-informace-{number}")]
        # Two days before its session, or the last sending window before that (the demo's
        # dates can put it on a weekend or a public holiday).
        meant = occurrence.start - timedelta(days=2)
        window = workshops.sending_window
        assert planned.due_at <= meant and window.is_open(planned.due_at)
        assert planned.due_at == meant or meant - planned.due_at < timedelta(days=7)
    assert all(v.starts_at is not None and v.starts_at > today for v in overview.upcoming)
    reminder = next(v for v in overview.upcoming if v.step == "pripominka")
    assert reminder.due_at == first.launched_at + timedelta(days=10)
    assert reminder.audience is not None and 0 < reminder.audience < stats.sent
    # The event campaigns' own dates moved with their schedule.
    conference = load_blueprint("knihovny-soucasnosti-2027")
    assert conference.event is not None and conference.event.start > conference.send_at > today

    # The scheduler's first round at that moment launches nothing and misses nothing.
    report = tick(engine, now=clock.now(), grace=GRACE)
    assert report.launched == [] and report.missed == [] and report.failed == []

    # Twice is the same as once (make run again, which imports the directory again), even a
    # day later.
    clock.advance(timedelta(days=1))
    import_contacts(engine, FIXTURE)
    again = prepare_demo(engine, now=clock.now())
    with Session(engine) as session:
        assert run_stats(session, first.run_id).joined_libraries == 3
        joined = [
            d["library_id"]
            for d in session.exec(select(Event.detail).where(Event.kind == EventKind.JOINED))
        ]
        assert len(joined) == 3
        assert all(session.get(Library, i).is_member for i in joined)  # type: ignore[union-attr]
    assert again.shift is None and again.moved == [] and again.run_id is None
    with Session(engine) as session:
        assert len(session.exec(select(Run)).all()) == 1
    authors = [r.author for r in store.history(engine, RECRUITMENT)]
    assert authors.count(DEMO_AUTHOR) == (1 if first.moved else 0)
    assert _shipped_digest() == shipped
