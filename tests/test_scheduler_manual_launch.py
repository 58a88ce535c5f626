"""A launch by hand is that step's run: the scheduled step is linked to it (also one the
scheduler had already given up as missed), reminders after the launch count from the real
launch, and a reminder is missed only when its own time passed while no scheduler ran.
A launch by hand racing a scheduler tick still gives one run per step."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    GRACE,
    SEND_AT,
    SLUG,
    add_people,
    campaigns_dir_fixture,
    runs,
    steps,
)

from mailer.compose.campaigns import load_blueprint
from mailer.delivery.runs import launch
from mailer.models import StepStatus
from mailer.scheduling.clock import ManualClock
from mailer.scheduling.overview import schedule_overview
from mailer.scheduling.steps import tick
from mailer.scheduling.sync import sync_blueprints

REMINDER_AFTER = timedelta(days=3)  # the test campaign's `after_launch`


def _tick(engine: Engine, clock: ManualClock) -> None:
    tick(engine, now=clock.now(), grace=GRACE)


def test_it_links_a_launch_by_hand_to_the_step_the_scheduler_had_missed(
    engine: Engine, campaigns_dir: Path
) -> None:
    add_people(engine, ["alena", "bara"])
    sync_blueprints(engine)
    # First start long after the shipped launch time: the launch is missed.
    clock = ManualClock(SEND_AT + timedelta(days=2))
    _tick(engine, clock)
    _tick(engine, clock)
    assert steps(engine)["launch"].status == StepStatus.MISSED
    # Its reminder waits for a launch; its own time has not passed, so it is not missed.
    assert steps(engine)["pripominka"].status == StepStatus.PENDING

    manual_at = clock.advance(timedelta(hours=1))
    manual = launch(engine, load_blueprint(SLUG), "launch", actor="jana@sdruk.cz", now=manual_at)
    launch_step = steps(engine)["launch"]
    assert launch_step.status == StepStatus.LAUNCHED
    assert launch_step.run_id == manual.run_id
    assert launch_step.launched_at == manual_at
    assert launch_step.note and "ručně" in launch_step.note and "jana@sdruk.cz" in launch_step.note
    # The reminder is due relative to the real launch, at once (not only after the next tick).
    assert steps(engine)["pripominka"].due_at == manual_at + REMINDER_AFTER

    overview = schedule_overview(engine, now=clock.now())
    assert [(v.step, v.run_id) for v in overview.done] == [("launch", manual.run_id)]
    assert overview.missed == []

    # Neither a tick nor a sync launches the step again; the reminder runs 3 days later.
    _tick(engine, clock)
    sync_blueprints(engine)
    assert [r.id for r in runs(engine)] == [manual.run_id]
    # Three days after a Thursday is a Sunday: it starts when the sending window opens.
    starts = load_blueprint(SLUG).sending_window.next_open(manual_at + REMINDER_AFTER)
    assert starts > manual_at + REMINDER_AFTER
    clock.set(starts - timedelta(minutes=1))
    _tick(engine, clock)
    assert steps(engine)["pripominka"].status == StepStatus.PENDING
    clock.set(starts)
    _tick(engine, clock)
    reminder = steps(engine)["pripominka"]
    assert reminder.status == StepStatus.LAUNCHED
    assert [r.step for r in runs(engine)] == ["launch", "pripominka"]


def test_it_brings_back_reminders_missed_only_because_the_launch_had_not_run(
    engine: Engine, campaigns_dir: Path
) -> None:
    add_people(engine, ["alena"])
    sync_blueprints(engine)
    # Nobody launched anything for a week: the launch, then its reminder's planned time, passed.
    clock = ManualClock(SEND_AT + REMINDER_AFTER + GRACE + timedelta(hours=1))
    _tick(engine, clock)
    _tick(engine, clock)
    assert steps(engine)["launch"].status == StepStatus.MISSED
    assert steps(engine)["pripominka"].status == StepStatus.MISSED

    manual = launch(engine, load_blueprint(SLUG), "launch", actor="jana@sdruk.cz", now=clock.now())
    reminder = steps(engine)["pripominka"]
    assert reminder.status == StepStatus.PENDING
    assert reminder.due_at == clock.now() + REMINDER_AFTER
    overview = schedule_overview(engine, now=clock.now())
    assert overview.missed == []
    assert [v.step for v in overview.upcoming] == ["pripominka"]
    assert steps(engine)["launch"].run_id == manual.run_id


def test_it_brings_back_such_reminders_on_sync_for_a_run_made_before_the_link(
    engine: Engine, campaigns_dir: Path
) -> None:
    """Databases where a launch by hand was not linked yet (or a run made by another path):
    `sdruk campaigns sync` links it and brings its reminders back."""
    from sqlalchemy import update

    from mailer.models import ScheduledStep

    add_people(engine, ["alena"])
    sync_blueprints(engine)
    clock = ManualClock(SEND_AT + REMINDER_AFTER + GRACE + timedelta(hours=1))
    manual = launch(engine, load_blueprint(SLUG), "launch", actor="jana@sdruk.cz", now=clock.now())
    # As an older version left it: the steps missed, not linked to the run.
    with engine.begin() as conn:
        conn.execute(
            update(ScheduledStep)
            .where(ScheduledStep.campaign == SLUG)  # type: ignore[arg-type]
            .values(
                status=StepStatus.MISSED,
                run_id=None,
                launched_at=None,
                note="úvodní rozeslání kampaně neproběhlo, připomínka nemá komu navazovat",
            )
        )
    sync_blueprints(engine)
    assert steps(engine)["launch"].run_id == manual.run_id
    reminder = steps(engine)["pripominka"]
    assert reminder.status == StepStatus.PENDING
    assert reminder.due_at == clock.now() + REMINDER_AFTER


def test_it_misses_a_reminder_only_when_its_own_time_passed_while_no_scheduler_ran(
    engine: Engine, campaigns_dir: Path
) -> None:
    add_people(engine, ["alena"])
    sync_blueprints(engine)
    clock = ManualClock(SEND_AT)
    _tick(engine, clock)
    launched = steps(engine)["launch"]
    assert launched.status == StepStatus.LAUNCHED and launched.launched_at == SEND_AT
    # The scheduler was down from then until well after the reminder's time plus the grace.
    clock.set(SEND_AT + REMINDER_AFTER + GRACE + timedelta(minutes=5))
    _tick(engine, clock)
    reminder = steps(engine)["pripominka"]
    assert reminder.status == StepStatus.MISSED
    assert reminder.note and "zmeškáno" in reminder.note


def test_it_gives_one_run_when_a_launch_by_hand_races_a_tick(
    engine: Engine, campaigns_dir: Path
) -> None:
    add_people(engine, ["alena", "bara", "cecilie"])
    sync_blueprints(engine)
    clock = ManualClock(SEND_AT)
    start = threading.Barrier(3)
    errors: list[BaseException] = []

    def by_hand() -> None:
        start.wait()
        try:
            launch(engine, load_blueprint(SLUG), "launch", actor="jana@sdruk.cz", now=SEND_AT)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def scheduler() -> None:
        start.wait()
        try:
            _tick(engine, clock)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=f) for f in (by_hand, scheduler, scheduler)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _tick(engine, clock)
    [run] = runs(engine)
    assert steps(engine)["launch"].run_id == run.id
    assert steps(engine)["launch"].status == StepStatus.LAUNCHED
