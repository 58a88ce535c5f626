"""A reminder reaches exactly the right people: those who received the launch and have not
joined, not registered, not unsubscribed, and not opened (people's opens, not machines')."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    GRACE,
    SEND_AT,
    campaigns_dir_fixture,
    play_story,
    recipients_of,
    runs,
    steps,
)

from mailer.models import StepStatus
from mailer.scheduling.clock import ManualClock
from mailer.scheduling.overview import schedule_overview
from mailer.scheduling.steps import tick
from mailer.scheduling.sync import sync_blueprints


def test_it_sends_the_reminder_to_exactly_the_right_people(
    engine: Engine, campaigns_dir: Path, tmp_path: Path
) -> None:
    sync_blueprints(engine)
    people, launch_run = play_story(engine, tmp_path)
    clock = ManualClock(SEND_AT + timedelta(hours=1))
    tick(engine, now=clock.now(), grace=GRACE)
    # The launch run made by hand in the story is the scheduler's launch: not launched again.
    assert steps(engine)["launch"].run_id == launch_run

    # Before the reminder is due, the overview counts its audience as of now.
    overview = schedule_overview(engine, now=clock.now())
    [upcoming] = [v for v in overview.upcoming if v.step == "pripominka"]
    assert upcoming.audience == 2

    clock.set(SEND_AT + timedelta(days=3))
    tick(engine, now=clock.now(), grace=GRACE)
    reminder = steps(engine)["pripominka"]
    assert reminder.status == StepStatus.LAUNCHED
    assert reminder.run_id is not None
    # alena, cecilie, ivana opened (ivana by clicking the registration link, which also counts
    # as registering); bara's open and click were machines'; dana registered by import; eva's
    # library joined, so neither she nor her colleague frantiska; gita unsubscribed; jana
    # never received the launch.
    assert people.names(recipients_of(engine, reminder.run_id)) == {"bara", "hana"}
    assert [r.step for r in runs(engine)] == ["launch", "pripominka"]
