"""Blueprints become scheduled steps, and each step runs exactly once: on time, late within
the grace period, or reported missed. The clock is a ManualClock moved by the test."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    GRACE,
    SEND_AT,
    SLUG,
    add_people,
    campaigns_dir_fixture,
    runs,
    send_all,
    steps,
    write_campaign,
)

from mailer.models import AuditEntry, ScheduledStep, StepStatus
from mailer.scheduling.clock import ManualClock
from mailer.scheduling.overview import schedule_overview
from mailer.scheduling.steps import tick
from mailer.scheduling.sync import sync_blueprints


def _tick(engine: Engine, clock: ManualClock) -> None:
    tick(engine, now=clock.now(), grace=GRACE)


def test_it_schedules_each_step_of_a_blueprint(engine: Engine, campaigns_dir: Path) -> None:
    report = sync_blueprints(engine)
    assert not report.invalid
    planned = steps(engine)
    assert set(planned) == {"launch", "pripominka"}
    assert planned["launch"].due_at == SEND_AT
    # Until the launch happens, the reminder counts from send_at.
    assert planned["pripominka"].due_at == SEND_AT + timedelta(days=3)
    assert all(s.status == StepStatus.PENDING for s in planned.values())
    # Syncing again changes nothing.
    again = sync_blueprints(engine)
    assert {s.change for s in again.steps} == {"same"}
    assert len(steps(engine)) == 2


def test_it_reports_a_broken_blueprint_and_schedules_the_others(
    engine: Engine, campaigns_dir: Path
) -> None:
    broken = campaigns_dir / "rozbita-kampan"
    broken.mkdir()
    (broken / "campaign.toml").write_text('name = "Rozbitá"\nkind = "nic"\n', encoding="utf-8")
    report = sync_blueprints(engine)
    assert "rozbita-kampan" in report.invalid
    assert report.invalid["rozbita-kampan"]
    assert set(steps(engine)) == {"launch", "pripominka"}
    assert steps(engine, "rozbita-kampan") == {}


def test_it_launches_on_time(engine: Engine, campaigns_dir: Path, tmp_path: Path) -> None:
    people = add_people(engine, ["alena", "bara", "cecilie"])
    sync_blueprints(engine)
    clock = ManualClock(SEND_AT - timedelta(minutes=1))
    _tick(engine, clock)
    assert runs(engine) == []
    assert steps(engine)["launch"].status == StepStatus.PENDING

    clock.set(SEND_AT)
    _tick(engine, clock)
    launched = steps(engine)["launch"]
    assert launched.status == StepStatus.LAUNCHED
    assert launched.launched_at == SEND_AT
    [run] = runs(engine)
    assert launched.run_id == run.id
    assert run.recipients == len(people.ids)
    assert run.late is False
    # The reminder now counts from the real launch.
    _tick(engine, clock)
    assert steps(engine)["pripominka"].due_at == SEND_AT + timedelta(days=3)


def test_it_runs_each_step_once_whatever_restarts_happen(
    engine: Engine, campaigns_dir: Path, tmp_path: Path
) -> None:
    add_people(engine, ["alena", "bara"])
    clock = ManualClock(SEND_AT - timedelta(hours=1))
    # Before the due time: the process starts, syncs and ticks, and restarts twice.
    for _ in range(3):
        sync_blueprints(engine)
        _tick(engine, clock)
    assert runs(engine) == []

    # During: the process died after claiming the step but before its run existed.
    clock.set(SEND_AT)
    with Session(engine) as session:
        row = session.exec(
            select(ScheduledStep).where(
                ScheduledStep.campaign == SLUG, ScheduledStep.step == "launch"
            )
        ).one()
        row.status = StepStatus.LAUNCHED
        session.add(row)
        session.commit()
    # Restarted, two processes tick at once (a restart racing the old one).
    threads = [threading.Thread(target=_tick, args=(engine, clock)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    _tick(engine, clock)
    assert len(runs(engine)) == 1
    assert steps(engine)["launch"].run_id == runs(engine)[0].id

    # After: more restarts and syncs, later ticks: still one run for the launch.
    send_all(engine, tmp_path)
    for minutes in (1, 30, 60 * 5):
        sync_blueprints(engine)
        clock.set(SEND_AT + timedelta(minutes=minutes))
        _tick(engine, clock)
    assert [r.step for r in runs(engine)] == ["launch"]

    # The reminder, due three days later, also runs once across restarts.
    clock.set(SEND_AT + timedelta(days=3))
    for _ in range(3):
        sync_blueprints(engine)
        _tick(engine, clock)
    assert sorted(r.step for r in runs(engine)) == ["launch", "pripominka"]


def test_it_runs_concurrent_ticks_into_one_run(engine: Engine, campaigns_dir: Path) -> None:
    add_people(engine, ["alena", "bara", "cecilie"])
    sync_blueprints(engine)
    clock = ManualClock(SEND_AT)
    threads = [threading.Thread(target=_tick, args=(engine, clock)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(runs(engine)) == 1
    assert steps(engine)["launch"].status == StepStatus.LAUNCHED


def test_it_runs_a_step_late_within_the_grace_period(engine: Engine, campaigns_dir: Path) -> None:
    add_people(engine, ["alena"])
    sync_blueprints(engine)
    # The scheduler was down at the due time and came back three hours later.
    clock = ManualClock(SEND_AT + timedelta(hours=3))
    _tick(engine, clock)
    launch = steps(engine)["launch"]
    assert launch.status == StepStatus.LATE
    assert launch.note and "zpožděno o 3 h" in launch.note
    [run] = runs(engine)
    assert run.late is True
    assert run.scheduled_for == SEND_AT
    with Session(engine) as session:
        audit = session.exec(select(AuditEntry).where(AuditEntry.action == "step_late")).all()
    assert [a.target for a in audit] == [f"{SLUG}/launch"]
    overview = schedule_overview(engine, now=clock.now())
    assert [(v.campaign, v.step) for v in overview.late] == [(SLUG, "launch")]


def test_it_reports_a_step_missed_beyond_the_grace_period(
    engine: Engine, campaigns_dir: Path
) -> None:
    add_people(engine, ["alena"])
    sync_blueprints(engine)
    clock = ManualClock(SEND_AT + GRACE + timedelta(minutes=1))
    _tick(engine, clock)
    launch = steps(engine)["launch"]
    assert launch.status == StepStatus.MISSED
    assert launch.note and "zmeškáno" in launch.note
    assert runs(engine) == []
    # The reminder of a missed launch waits (staff may still launch by hand) until its own
    # planned time is past the grace period; then it is reported too, not left waiting for ever.
    clock.set(SEND_AT + timedelta(days=3))
    _tick(engine, clock)
    assert steps(engine)["pripominka"].status == StepStatus.PENDING
    clock.set(SEND_AT + timedelta(days=3) + GRACE + timedelta(minutes=1))
    _tick(engine, clock)
    assert steps(engine)["pripominka"].status == StepStatus.MISSED
    assert runs(engine) == []
    overview = schedule_overview(engine, now=clock.now())
    assert {v.step for v in overview.missed} == {"launch", "pripominka"}
    with Session(engine) as session:
        actions = session.exec(select(AuditEntry.action)).all()
    assert actions.count("step_missed") == 2
    # A later tick or sync never revives a missed step.
    sync_blueprints(engine)
    _tick(engine, clock)
    assert runs(engine) == []


def test_it_adopts_a_run_staff_launched_by_hand(engine: Engine, campaigns_dir: Path) -> None:
    from mailer.compose.campaigns import load_blueprint
    from mailer.delivery.runs import launch

    add_people(engine, ["alena"])
    sync_blueprints(engine)
    manual = launch(engine, load_blueprint(SLUG), "launch", actor="staff@sdruk.cz")
    clock = ManualClock(SEND_AT)
    _tick(engine, clock)
    assert [r.id for r in runs(engine)] == [manual.run_id]
    assert steps(engine)["launch"].run_id == manual.run_id


def test_it_moves_a_pending_step_when_the_blueprint_changes(
    engine: Engine, campaigns_dir: Path
) -> None:
    sync_blueprints(engine)
    later = SEND_AT + timedelta(days=1)
    write_campaign(campaigns_dir, send_at=later)
    report = sync_blueprints(engine)
    assert ("launch", "moved") in {(s.step, s.change) for s in report.steps}
    assert steps(engine)["launch"].due_at == later


def test_it_never_launches_a_blueprint_broken_after_sync(
    engine: Engine, campaigns_dir: Path
) -> None:
    add_people(engine, ["alena"])
    sync_blueprints(engine)
    body = campaigns_dir / SLUG / "body.mjml"
    body.write_text(body.read_text(encoding="utf-8") + "{% if %}", encoding="utf-8")
    clock = ManualClock(SEND_AT)
    _tick(engine, clock)
    launch = steps(engine)["launch"]
    assert launch.status == StepStatus.PENDING
    assert launch.note and "neprošla kontrolou" in launch.note
    assert runs(engine) == []
    # Not fixed within the grace period: reported missed, not dropped in silence.
    clock.set(SEND_AT + GRACE + timedelta(minutes=1))
    _tick(engine, clock)
    assert steps(engine)["launch"].status == StepStatus.MISSED
    assert runs(engine) == []
