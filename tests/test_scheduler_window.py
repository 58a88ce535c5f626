"""The sending window: working days 8:00–17:00 in Prague, no Czech public holidays; steps
due outside it wait, and runs still sending when it closes pause and resume."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine
from sqlmodel import Session
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    GRACE,
    SLUG,
    add_people,
    campaigns_dir_fixture,
    runs,
    steps,
    write_campaign,
)

from mailer.compose.window import (
    DEFAULT_WINDOW,
    SendingWindow,
    WindowError,
    is_public_holiday,
    window_from,
)
from mailer.models import Run, RunStatus, StepStatus
from mailer.scheduling.clock import ManualClock
from mailer.scheduling.steps import tick
from mailer.scheduling.sync import sync_blueprints
from mailer.scheduling.windows import QUIET_PREFIX

PRAGUE = ZoneInfo("Europe/Prague")


def at(y: int, m: int, d: int, hh: int = 0, mm: int = 0) -> datetime:
    return datetime(y, m, d, hh, mm, tzinfo=PRAGUE)


@pytest.mark.parametrize(
    ("day", "holiday"),
    [
        (date(2026, 4, 3), True),  # Good Friday (Velký pátek), computed from Easter
        (date(2026, 4, 6), True),  # Easter Monday
        (date(2027, 3, 26), True),  # Good Friday of the next year moves
        (date(2027, 3, 29), True),
        (date(2026, 12, 24), True),  # Štědrý den
        (date(2026, 9, 28), True),
        (date(2026, 4, 7), False),
        (date(2027, 4, 2), False),
    ],
)
def test_it_knows_czech_public_holidays(day: date, holiday: bool) -> None:
    assert is_public_holiday(day) is holiday


def test_it_opens_only_on_working_days_in_working_hours() -> None:
    w = DEFAULT_WINDOW
    assert w.is_open(at(2026, 3, 3, 8, 0))
    assert w.is_open(at(2026, 3, 3, 16, 59))
    assert not w.is_open(at(2026, 3, 3, 17, 0))
    assert not w.is_open(at(2026, 3, 3, 7, 59))
    assert not w.is_open(at(2026, 3, 7, 10, 0))  # Saturday
    assert not w.is_open(at(2026, 4, 3, 10, 0))  # Good Friday
    # The window is Prague time whatever zone the instant is given in (UTC+1 in March).
    assert w.is_open(datetime(2026, 3, 3, 7, 30, tzinfo=ZoneInfo("UTC")))


def test_it_finds_the_next_window() -> None:
    w = DEFAULT_WINDOW
    assert w.next_open(at(2026, 3, 3, 10, 0)) == at(2026, 3, 3, 10, 0)
    assert w.next_open(at(2026, 3, 3, 18, 0)) == at(2026, 3, 4, 8, 0)
    assert w.next_open(at(2026, 3, 6, 17, 30)) == at(2026, 3, 9, 8, 0)  # Friday -> Monday
    # Thursday evening before Easter: Good Friday, the weekend and Easter Monday are skipped.
    assert w.next_open(at(2026, 4, 2, 17, 0)) == at(2026, 4, 7, 8, 0)
    # Across the switch to summer time (29 March 2026) the window is still 8:00 local.
    assert w.next_open(at(2026, 3, 27, 18, 0)).astimezone(PRAGUE).time() == time(8, 0)


def test_it_reads_a_custom_window_and_rejects_nonsense() -> None:
    w = window_from(
        {"start": "07:30", "end": "19:00", "days": ["po", "út", "st", "čt", "pá", "so"]}
    )
    assert w.is_open(at(2026, 3, 7, 18, 0))  # Saturday allowed
    assert not w.is_open(at(2026, 3, 7, 19, 0))
    assert not window_from({"holidays": False}).is_sending_day(date(2026, 3, 7))
    assert window_from({"holidays": False}).is_open(at(2026, 4, 3, 10, 0))  # Good Friday
    assert not window_from(False).enabled
    assert window_from(None) is DEFAULT_WINDOW
    assert window_from(True) is DEFAULT_WINDOW
    with pytest.raises(WindowError, match="den") as bad_day:
        window_from({"days": ["pondělí"]})
    assert bad_day.value.key == "days"
    with pytest.raises(WindowError, match="začátek"):
        window_from({"start": "18:00", "end": "08:00"})
    with pytest.raises(WindowError, match="neznámý klíč") as typo:
        window_from({"weekends": True})  # the old quiet-hours key is not silently ignored
    assert typo.value.key == "weekends"
    assert SendingWindow(enabled=False).next_open(at(2026, 4, 3, 3, 0)) == at(2026, 4, 3, 3, 0)


def test_it_takes_the_window_from_the_blueprint(campaigns_dir: Path) -> None:
    from mailer.compose.campaigns import load_blueprint

    assert load_blueprint(SLUG).sending_window == DEFAULT_WINDOW
    write_campaign(
        campaigns_dir,
        window='[sending_window]\nstart = "09:00"\nend = "19:00"\n'
        'days = ["po", "út", "st", "čt", "pá", "so"]\n',
    )
    w = load_blueprint(SLUG).sending_window
    assert w.is_open(at(2026, 3, 7, 18, 30))  # a Saturday evening, allowed by this campaign
    assert not w.is_open(at(2026, 3, 7, 19, 0))
    assert not w.is_open(at(2026, 3, 9, 8, 30))
    assert not w.is_open(at(2026, 4, 3, 10, 0))  # holidays = true unless said otherwise


def test_it_launches_any_time_without_a_window(engine: Engine, campaigns_dir: Path) -> None:
    saturday_night = at(2026, 3, 7, 23, 0)
    write_campaign(campaigns_dir, send_at=saturday_night, window="sending_window = false\n")
    add_people(engine, ["alena"])
    sync_blueprints(engine)
    assert steps(engine)["launch"].due_at == saturday_night
    tick(engine, now=saturday_night, grace=GRACE)
    assert steps(engine)["launch"].status == StepStatus.LAUNCHED
    assert len(runs(engine)) == 1


def test_it_holds_a_launch_due_on_a_weekend_until_monday(
    engine: Engine, campaigns_dir: Path
) -> None:
    saturday = at(2026, 3, 7, 10, 0)
    write_campaign(campaigns_dir, send_at=saturday)
    add_people(engine, ["alena"])
    sync_blueprints(engine)
    clock = ManualClock(saturday)
    for hours in (0, 6, 24, 45):  # Saturday, Saturday evening, Sunday, Monday 7:00
        clock.set(saturday + timedelta(hours=hours))
        tick(engine, now=clock.now(), grace=GRACE)
        assert runs(engine) == []
    clock.set(at(2026, 3, 9, 8, 0))
    tick(engine, now=clock.now(), grace=GRACE)
    launch = steps(engine)["launch"]
    # Due on Saturday as the blueprint says, started on Monday: waiting for the window is not
    # being late (nor missed, though Saturday is more than the 24 h grace ago).
    assert launch.due_at == saturday
    assert launch.status == StepStatus.LAUNCHED
    assert launch.note is None
    assert len(runs(engine)) == 1


def test_it_holds_a_launch_over_easter(engine: Engine, campaigns_dir: Path) -> None:
    thursday_evening = at(2026, 4, 2, 18, 0)
    write_campaign(campaigns_dir, send_at=thursday_evening)
    add_people(engine, ["alena"])
    sync_blueprints(engine)
    tick(engine, now=at(2026, 4, 3, 10, 0), grace=GRACE)  # Good Friday, office hours
    tick(engine, now=at(2026, 4, 6, 10, 0), grace=GRACE)  # Easter Monday
    assert runs(engine) == []
    tick(engine, now=at(2026, 4, 7, 8, 1), grace=GRACE)
    assert steps(engine)["launch"].status == StepStatus.LAUNCHED
    assert len(runs(engine)) == 1


def test_it_pauses_a_run_at_the_end_of_the_window_and_resumes_it(
    engine: Engine, campaigns_dir: Path
) -> None:
    from mailer.delivery.runs import pause

    late_afternoon = at(2026, 3, 3, 16, 50)
    write_campaign(campaigns_dir, send_at=late_afternoon)
    add_people(engine, ["alena", "bara"])
    sync_blueprints(engine)
    tick(engine, now=late_afternoon, grace=GRACE)
    [run] = runs(engine)
    assert run.status in (RunStatus.SCHEDULED, RunStatus.SENDING)

    report = tick(engine, now=at(2026, 3, 3, 17, 0), grace=GRACE)
    assert report.paused_runs == [run.id]
    [run] = runs(engine)
    assert run.status == RunStatus.PAUSED
    assert run.status_reason and run.status_reason.startswith(QUIET_PREFIX)
    # Night: stays paused.
    assert tick(engine, now=at(2026, 3, 4, 3, 0), grace=GRACE).resumed_runs == []
    report = tick(engine, now=at(2026, 3, 4, 8, 0), grace=GRACE)
    assert report.resumed_runs == [run.id]
    [run] = runs(engine)
    assert run.status in (RunStatus.SCHEDULED, RunStatus.SENDING)

    # A run staff paused themselves is theirs: the window never resumes it.
    assert run.id is not None
    pause(engine, run.id, "obsluha: kontrola textu")
    tick(engine, now=at(2026, 3, 4, 17, 30), grace=GRACE)
    tick(engine, now=at(2026, 3, 5, 9, 0), grace=GRACE)
    with Session(engine) as session:
        again = session.get(Run, run.id)
        assert again is not None
        assert again.status == RunStatus.PAUSED
        assert again.status_reason == "obsluha: kontrola textu"


def test_it_finds_the_latest_window_at_or_before_a_moment() -> None:
    w = DEFAULT_WINDOW
    assert w.latest_open(at(2026, 3, 3, 10, 0)) == at(2026, 3, 3, 10, 0)  # open: itself
    assert w.latest_open(at(2026, 3, 3, 18, 0)) == at(2026, 3, 3, 8, 0)  # that day's window
    assert w.latest_open(at(2026, 3, 3, 7, 0)) == at(2026, 3, 2, 8, 0)  # before it: the day before
    assert w.latest_open(at(2026, 3, 7, 9, 30)) == at(2026, 3, 6, 8, 0)  # Saturday -> Friday
    assert w.latest_open(at(2026, 3, 9, 7, 0)) == at(2026, 3, 6, 8, 0)  # Monday dawn -> Friday
    # Easter Monday morning: Easter Monday and Good Friday are skipped back to Thursday.
    assert w.latest_open(at(2026, 4, 6, 10, 0)) == at(2026, 4, 2, 8, 0)
    assert SendingWindow(enabled=False).latest_open(at(2026, 4, 6, 3, 0)) == at(2026, 4, 6, 3, 0)
