"""Due steps: the scheduler pays what it owes. A due step is claimed, then launched.

Exactly once, whatever restarts happen, rests on three things, all in the database:
- a step is claimed by a conditional UPDATE (`status = 'pending'`), so of two attempts (a
  restart racing an old process, a standby taking over) only one wins;
- the claimed step then gets its run from delivery's `launch`, which is idempotent per
  (campaign, step) through the run table's unique constraint;
- a claimed step without a run (the process died between the two) is finished by the next
  tick with the same idempotent launch.

A step that was due while the scheduler was down runs when it comes back, if that is within
the grace period (setting, default 24 h), and is marked late; beyond it the step is marked
missed. Either way it is logged, written to the audit log and listed by `sdruk schedule`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.delivery.runs import LAUNCH_NOT_RUN
from mailer.models import AuditEntry, Run, ScheduledStep, StepStatus
from mailer.scheduling.reports import StepOutcome, TickReport
from mailer.scheduling.sources import (
    ACTOR,
    LAUNCH_STEP,
    BlueprintSource,
    CachedBlueprints,
    Delivery,
    Launcher,
    cached,
    campaign_window,
    step_due,
)
from mailer.scheduling.sync import adopt_runs, move_pending
from mailer.scheduling.windows import enforce_windows

log = logging.getLogger(__name__)

# A step claimed this long after it became due counts as late: the on-time path claims within
# one tick (30 s by default), so anything beyond a few minutes means the scheduler was down.
LATE_TOLERANCE = timedelta(minutes=5)


def _fmt_delay(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    parts = [f"{days} d"] if days else []
    if hours:
        parts.append(f"{hours} h")
    if minutes or not parts:
        parts.append(f"{minutes} min")
    return " ".join(parts)


def _audit(session: Session, action: str, target: str, detail: dict[str, Any]) -> None:
    session.add(AuditEntry(actor=ACTOR, action=action, target=target, detail=detail))


def _claim(engine: Engine, step_id: int, status: StepStatus, note: str | None) -> bool:
    """Move a pending step on; True only for the one attempt that did it."""
    with engine.begin() as conn:
        result = conn.execute(
            sa.update(ScheduledStep)
            .where(
                col(ScheduledStep.id) == step_id, col(ScheduledStep.status) == StepStatus.PENDING
            )
            .values(status=status, note=note)
        )
        return result.rowcount == 1


def _set_note(engine: Engine, step_id: int, note: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(ScheduledStep).where(col(ScheduledStep.id) == step_id).values(note=note)
        )


def run_due_steps(
    engine: Engine,
    *,
    now: datetime,
    grace: timedelta,
    source: BlueprintSource | CachedBlueprints | None = None,
    launcher: Launcher | None = None,
) -> TickReport:
    """Claim every step that is due (late or missed as the case is), then launch the claimed
    steps whose sending window is open. Safe to call any number of times, from any process."""
    blueprints = cached(source)
    launcher = launcher or Delivery()
    report = TickReport()
    adopt_runs(engine, blueprints)
    with Session(engine, expire_on_commit=False) as session:
        rows = list(
            session.exec(
                select(ScheduledStep)
                .where(
                    sa.or_(
                        col(ScheduledStep.status) == StepStatus.PENDING,
                        sa.and_(
                            col(ScheduledStep.status).in_([StepStatus.LAUNCHED, StepStatus.LATE]),
                            col(ScheduledStep.run_id).is_(None),
                        ),
                    )
                )
                .order_by(col(ScheduledStep.due_at), col(ScheduledStep.id))
            )
        )
        launch_rows = {
            r.campaign: r
            for r in session.exec(select(ScheduledStep).where(ScheduledStep.step == LAUNCH_STEP))
        }
    # Launches first, so that reminders of a campaign launched in this tick see the launch.
    rows.sort(key=lambda r: (r.step != LAUNCH_STEP, r.due_at))
    for row in rows:
        if row.status == StepStatus.PENDING:
            _consider_pending(engine, row, now, grace, blueprints, launch_rows, report)
    # Re-read: what this tick claimed plus what an earlier process claimed but never launched.
    with Session(engine, expire_on_commit=False) as session:
        claimed = list(
            session.exec(
                select(ScheduledStep)
                .where(
                    col(ScheduledStep.status).in_([StepStatus.LAUNCHED, StepStatus.LATE]),
                    col(ScheduledStep.run_id).is_(None),
                )
                .order_by(col(ScheduledStep.due_at), col(ScheduledStep.id))
            )
        )
    claimed.sort(key=lambda r: r.step != LAUNCH_STEP)
    for row in claimed:
        _launch_claimed(engine, row, now, blueprints, launcher, report)
    return report


def _consider_pending(
    engine: Engine,
    row: ScheduledStep,
    now: datetime,
    grace: timedelta,
    blueprints: CachedBlueprints,
    launch_rows: dict[str, ScheduledStep],
    report: TickReport,
) -> None:
    assert row.id is not None
    blueprint = blueprints.get(row.campaign)
    due = row.due_at
    if row.step != LAUNCH_STEP:
        launch = launch_rows.get(row.campaign)
        if launch is None or launch.launched_at is None:
            # A reminder waits for its launch (its due time then counts from the real launch),
            # also one given up as missed: staff may still launch it by hand. It is missed
            # only once its own planned time is past the grace period.
            if launch is not None and launch.status in (StepStatus.MISSED, StepStatus.FAILED):
                delay = now - campaign_window(blueprint).next_open(row.due_at)
                if delay > grace:
                    note = (
                        f"{LAUNCH_NOT_RUN} a čas připomínky uplynul před {_fmt_delay(delay)}; "
                        "po ručním spuštění kampaně se připomínka znovu naplánuje"
                    )
                    if _claim(engine, row.id, StepStatus.MISSED, note):
                        _report_missed(engine, row, note, report)
            return
        if blueprint is not None:
            try:
                due = step_due(blueprint, blueprint.step(row.step), launch.launched_at)
            except KeyError:
                due = row.due_at
            if due != row.due_at:
                move_pending(engine, row.id, due)
    window = campaign_window(blueprint)
    effective = window.next_open(due)
    if now < effective:
        return
    delay = now - effective
    if delay > grace:
        note = (
            f"zmeškáno: plánovač neběžel, krok byl na řadě před {_fmt_delay(delay)}, "
            f"lhůta pro zpožděné spuštění je {_fmt_delay(grace)}"
        )
        if _claim(engine, row.id, StepStatus.MISSED, note):
            _report_missed(engine, row, note, report)
        return
    if blueprint is not None:
        blueprint = blueprints.checked(row.campaign)
    if blueprint is None:
        # Never launch a blueprint that does not validate; retried each tick until the grace
        # period runs out, then reported missed.
        _set_note(
            engine, row.id, f"kampaň neprošla kontrolou: {blueprints.errors.get(row.campaign)}"
        )
        return
    late = delay > LATE_TOLERANCE
    late_note = f"zpožděno o {_fmt_delay(delay)} (plánovač neběžel)" if late else None
    status = StepStatus.LATE if late else StepStatus.LAUNCHED
    if _claim(engine, row.id, status, late_note) and late:
        log.warning("Krok %s/%s se spouští pozdě: %s", row.campaign, row.step, late_note)
        with Session(engine) as session:
            _audit(session, "step_late", f"{row.campaign}/{row.step}", {"note": late_note})
            session.commit()


def _report_missed(engine: Engine, row: ScheduledStep, note: str, report: TickReport) -> None:
    log.error("Krok %s/%s zmeškán: %s", row.campaign, row.step, note)
    with Session(engine) as session:
        _audit(session, "step_missed", f"{row.campaign}/{row.step}", {"note": note})
        session.commit()
    report.missed.append(
        StepOutcome(row.campaign, row.step, StepStatus.MISSED, row.due_at, note=note)
    )


def _launch_claimed(
    engine: Engine,
    row: ScheduledStep,
    now: datetime,
    blueprints: CachedBlueprints,
    launcher: Launcher,
    report: TickReport,
) -> None:
    assert row.id is not None
    blueprint = blueprints.checked(row.campaign)
    if blueprint is None:
        note = f"kampaň neprošla kontrolou: {blueprints.errors.get(row.campaign)}"
        _fail(engine, row, note, report)
        return
    window = campaign_window(blueprint)
    if not window.is_open(now):
        report.waiting.append(
            StepOutcome(row.campaign, row.step, row.status, row.due_at, note="čeká na okno")
        )
        return
    try:
        result = launcher.launch(engine, blueprint, row.step, now=now)
    except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
        # The database is unreachable or busy: the claim stands and the next tick tries again.
        log.warning("Krok %s/%s: chyba databáze, zkusím znovu: %s", row.campaign, row.step, exc)
        return
    except Exception as exc:
        _fail(engine, row, f"spuštění selhalo: {type(exc).__name__}: {exc}", report)
        return
    run_id = int(result.run_id)
    late = row.status == StepStatus.LATE
    with engine.begin() as conn:
        conn.execute(
            sa.update(ScheduledStep)
            .where(col(ScheduledStep.id) == row.id, col(ScheduledStep.run_id).is_(None))
            .values(run_id=run_id, launched_at=now)
        )
        if getattr(result, "created", True):
            # A run staff launched by hand meanwhile keeps its own times.
            conn.execute(
                sa.update(Run)
                .where(col(Run.id) == run_id)
                .values(scheduled_for=row.due_at, late=late)
            )
    log.info(
        "Krok %s/%s spuštěn: běh %s, %s příjemců", row.campaign, row.step, run_id, result.recipients
    )
    report.launched.append(
        StepOutcome(
            row.campaign, row.step, row.status, row.due_at, run_id, int(result.recipients), row.note
        )
    )


def _fail(engine: Engine, row: ScheduledStep, note: str, report: TickReport) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(ScheduledStep)
            .where(col(ScheduledStep.id) == row.id, col(ScheduledStep.run_id).is_(None))
            .values(status=StepStatus.FAILED, note=note[:1000])
        )
    log.error("Krok %s/%s selhal: %s", row.campaign, row.step, note)
    with Session(engine) as session:
        _audit(session, "step_failed", f"{row.campaign}/{row.step}", {"note": note[:1000]})
        session.commit()
    report.failed.append(
        StepOutcome(row.campaign, row.step, StepStatus.FAILED, row.due_at, note=note)
    )


def tick(
    engine: Engine,
    *,
    now: datetime,
    grace: timedelta,
    source: BlueprintSource | CachedBlueprints | None = None,
    launcher: Launcher | None = None,
) -> TickReport:
    """One round of the scheduler: due steps, then the sending windows of running runs."""
    source = cached(source)
    launcher = launcher or Delivery()
    report = run_due_steps(engine, now=now, grace=grace, source=source, launcher=launcher)
    return enforce_windows(engine, now=now, source=source, launcher=launcher, report=report)


def pending_due_times(
    engine: Engine, *, source: BlueprintSource | CachedBlueprints | None = None
) -> dict[int, datetime]:
    """Pending step id -> when it may start (its due time moved into its sending window):
    the scheduler sets a timer for each, so a step starts on time rather than at a tick."""
    blueprints = cached(source)
    with Session(engine) as session:
        rows = list(
            session.exec(select(ScheduledStep).where(ScheduledStep.status == StepStatus.PENDING))
        )
    due: dict[int, datetime] = {}
    for row in rows:
        assert row.id is not None
        window = campaign_window(blueprints.get(row.campaign))
        due[row.id] = window.next_open(row.due_at)
    return due
