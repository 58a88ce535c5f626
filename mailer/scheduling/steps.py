"""What the scheduler owes and pays: blueprints become ScheduledStep rows, due steps launch.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.compose.czech import format_moment
from mailer.compose.window import DEFAULT_WINDOW, SendingWindow
from mailer.models import AuditEntry, Run, RunStatus, ScheduledStep, StepStatus

log = logging.getLogger(__name__)

# A step claimed this long after it became due counts as late: the on-time path claims within
# one tick (30 s by default), so anything beyond a few minutes means the scheduler was down.
LATE_TOLERANCE = timedelta(minutes=5)
LAUNCH_STEP = "launch"
ACTOR = "scheduler"
# The start of the reason a run is paused with outside its sending window: only runs paused
# for this reason are resumed by the scheduler, never those staff or delivery paused.
QUIET_PREFIX = "Mimo okno pro odesílání"


# --- the two small interfaces the scheduler sees ---------------------------------------------


class BlueprintSource(Protocol):
    """Where blueprints come from (compose's loader and checker)."""

    def slugs(self) -> list[str]: ...

    def problems(self, slug: str) -> list[str]: ...

    def load(self, slug: str) -> Any: ...


class Launcher(Protocol):
    """What the scheduler asks of delivery."""

    def launch(self, engine: Engine, blueprint: Any, step: str, *, now: datetime) -> Any: ...

    def pause(self, engine: Engine, run_id: int, reason: str) -> None: ...

    def resume(self, engine: Engine, run_id: int, reason: str) -> None: ...


class CampaignFiles:
    """Blueprints in the campaigns directory, validated by compose before they are used."""

    def slugs(self) -> list[str]:
        from mailer.compose.campaigns import blueprint_slugs

        return blueprint_slugs()

    def problems(self, slug: str) -> list[str]:
        from mailer.compose.check import check_blueprint

        return [_problem_text(p) for p in check_blueprint(slug)]

    def load(self, slug: str) -> Any:
        from mailer.compose.campaigns import load_blueprint

        return load_blueprint(slug)


def _problem_text(problem: Any) -> str:
    file, line, message = (getattr(problem, k, None) for k in ("file", "line", "message"))
    if message is None:
        return str(problem)
    where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
    return f"{where}{message}"


class Delivery:
    """Delivery's run functions (mailer.delivery.runs)."""

    def launch(self, engine: Engine, blueprint: Any, step: str, *, now: datetime) -> Any:
        from mailer.delivery.runs import launch

        return launch(engine, blueprint, step, actor=ACTOR, now=now)

    def pause(self, engine: Engine, run_id: int, reason: str) -> None:
        from mailer.delivery.runs import RunStateError, pause

        try:
            pause(engine, run_id, reason, actor=ACTOR)
        except RunStateError as exc:  # finished or cancelled since we looked: nothing to do
            log.info("%s", exc)

    def resume(self, engine: Engine, run_id: int, reason: str) -> None:
        from mailer.delivery.runs import RunStateError, resume

        try:
            resume(engine, run_id, actor=ACTOR)
        except RunStateError as exc:
            log.info("%s", exc)


# --- reports -------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedStep:
    campaign: str
    step: str
    due_at: datetime
    status: str
    change: str  # "new", "moved", "same", or "done" for steps already past pending


@dataclass
class SyncReport:
    steps: list[PlannedStep] = field(default_factory=list)
    invalid: dict[str, list[str]] = field(default_factory=dict)
    removed: list[tuple[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class StepOutcome:
    campaign: str
    step: str
    status: str
    due_at: datetime
    run_id: int | None = None
    recipients: int | None = None
    note: str | None = None


@dataclass
class TickReport:
    launched: list[StepOutcome] = field(default_factory=list)
    missed: list[StepOutcome] = field(default_factory=list)
    failed: list[StepOutcome] = field(default_factory=list)
    waiting: list[StepOutcome] = field(default_factory=list)
    paused_runs: list[int] = field(default_factory=list)
    resumed_runs: list[int] = field(default_factory=list)


# --- helpers -------------------------------------------------------------------------------


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


def _steps_of(blueprint: Any) -> list[Any]:
    return list(blueprint.steps)


def step_due(blueprint: Any, step: Any, launched_at: datetime | None) -> datetime:
    """When a step is due: the launch at send_at, reminders from the blueprint's rule (after
    the actual launch time once it is known)."""
    due: datetime = blueprint.due_at(step, launched_at)
    return due


def campaign_window(blueprint: Any | None) -> SendingWindow:
    """The blueprint's sending window (validated with the blueprint); the default one for a
    campaign whose blueprint cannot be loaded now, so its running runs still keep hours."""
    if blueprint is None:
        return DEFAULT_WINDOW
    window: SendingWindow = blueprint.sending_window
    return window


# --- sync ----------------------------------------------------------------------------------


def sync_blueprints(
    engine: Engine,
    *,
    source: BlueprintSource | CachedBlueprints | None = None,
    slugs: Iterable[str] | None = None,
) -> SyncReport:
    """Validate blueprints and write their steps as ScheduledStep rows.

    New steps are inserted as pending; a pending step's due time follows the blueprint;
    steps that already ran are left alone. A blueprint that fails validation is reported and
    not scheduled (its pending steps stay as they were), the others go on. Pending steps of a
    campaign whose folder is gone, or of a step removed from its blueprint, are deleted."""
    source = source or CampaignFiles()
    report = SyncReport()
    on_disk = source.slugs()
    wanted = list(slugs) if slugs is not None else on_disk
    for slug in wanted:
        try:
            problems = source.problems(slug) if slug in on_disk else ["kampaň neexistuje"]
            blueprint = None if problems else source.load(slug)
        except Exception as exc:  # a broken blueprint must not stop the others
            problems, blueprint = [f"{type(exc).__name__}: {exc}"], None
        if blueprint is None:
            report.invalid[slug] = problems
            log.warning("Kampaň %s není naplánována: %s", slug, "; ".join(problems))
            continue
        _sync_one(engine, blueprint, report)
    # An empty folder is more likely a wrong SDRUK_CAMPAIGNS_DIR than every campaign deleted.
    if slugs is None and on_disk:
        _remove_vanished(engine, set(on_disk), report)
    return report


def _sync_one(engine: Engine, blueprint: Any, report: SyncReport) -> None:
    slug = blueprint.slug
    with Session(engine, expire_on_commit=False) as session:
        rows = {
            r.step: r
            for r in session.exec(select(ScheduledStep).where(ScheduledStep.campaign == slug))
        }
    launch_row = rows.get(LAUNCH_STEP)
    launched_at = launch_row.launched_at if launch_row else None
    names = []
    for step in _steps_of(blueprint):
        names.append(step.name)
        due = step_due(blueprint, step, launched_at)
        row = rows.get(step.name)
        if row is None:
            created = _insert_step(engine, slug, step.name, due)
            change = "new" if created else "same"
            report.steps.append(PlannedStep(slug, step.name, due, StepStatus.PENDING, change))
        elif row.status == StepStatus.PENDING and row.due_at != due:
            _move_pending(engine, row.id, due)
            report.steps.append(PlannedStep(slug, step.name, due, row.status, "moved"))
        else:
            change = "same" if row.status == StepStatus.PENDING else "done"
            report.steps.append(PlannedStep(slug, step.name, row.due_at, row.status, change))
    gone = [name for name in rows if name not in names]
    if gone:
        _delete_pending(engine, slug, gone, report)


def _move_pending(engine: Engine, step_id: int | None, due: datetime) -> None:
    """A new due time for a step that has not run; a step claimed meanwhile keeps its own."""
    with engine.begin() as conn:
        conn.execute(
            sa.update(ScheduledStep)
            .where(
                col(ScheduledStep.id) == step_id,
                col(ScheduledStep.status) == StepStatus.PENDING,
            )
            .values(due_at=due)
        )


def _insert_step(engine: Engine, campaign: str, step: str, due: datetime) -> bool:
    """Insert a pending step; False when another process inserted it first."""
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(ScheduledStep).values(
                    campaign=campaign, step=step, due_at=due, status=StepStatus.PENDING
                )
            )
        return True
    except sa.exc.IntegrityError:
        return False


def _delete_pending(engine: Engine, campaign: str, steps: list[str], report: SyncReport) -> None:
    with engine.begin() as conn:
        result = conn.execute(
            sa.delete(ScheduledStep)
            .where(
                col(ScheduledStep.campaign) == campaign,
                col(ScheduledStep.step).in_(steps),
                col(ScheduledStep.status) == StepStatus.PENDING,
            )
            .returning(col(ScheduledStep.step))
        )
        report.removed.extend((campaign, s) for s in result.scalars())


def _remove_vanished(engine: Engine, on_disk: set[str], report: SyncReport) -> None:
    with Session(engine) as session:
        campaigns = set(
            session.exec(
                select(ScheduledStep.campaign).where(ScheduledStep.status == StepStatus.PENDING)
            ).all()
        )
    for campaign in sorted(campaigns - on_disk):
        with Session(engine) as session:
            steps = list(
                session.exec(
                    select(ScheduledStep.step).where(ScheduledStep.campaign == campaign)
                ).all()
            )
        _delete_pending(engine, campaign, steps, report)


# --- due steps -----------------------------------------------------------------------------


class CachedBlueprints:
    """Blueprints read once per tick. `get` only loads (cheap: due times, windows); `checked`
    also runs compose's full check (MJML, Jinja: ~0.3 s), done only for a step about to
    launch, so nothing is sent from a blueprint that does not validate."""

    def __init__(self, source: BlueprintSource) -> None:
        self.source = source
        self.cache: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.verified: set[str] = set()

    def get(self, slug: str) -> Any | None:
        """The loaded blueprint, or None (reason in `errors`)."""
        if slug not in self.cache:
            try:
                self.cache[slug] = self.source.load(slug)
            except Exception as exc:
                self.cache[slug], self.errors[slug] = None, f"{type(exc).__name__}: {exc}"[:900]
        return self.cache[slug]

    def checked(self, slug: str) -> Any | None:
        """The blueprint if it passes the full check, else None (reason in `errors`)."""
        if slug in self.verified:
            return self.cache.get(slug)
        self.verified.add(slug)
        try:
            problems = self.source.problems(slug)
        except Exception as exc:
            problems = [f"{type(exc).__name__}: {exc}"]
        if problems:
            self.cache[slug], self.errors[slug] = None, "; ".join(problems)[:900]
            return None
        return self.get(slug)

    # The BlueprintSource interface, answered from the cache.
    def slugs(self) -> list[str]:
        return self.source.slugs()

    def problems(self, slug: str) -> list[str]:
        if self.checked(slug) is not None:
            return []
        return [self.errors.get(slug, "neznámá chyba")]

    def load(self, slug: str) -> Any:
        blueprint = self.get(slug)
        if blueprint is None:
            raise ValueError(self.errors.get(slug, f"kampaň {slug} nelze načíst"))
        return blueprint


def cached(source: BlueprintSource | CachedBlueprints | None) -> CachedBlueprints:
    if isinstance(source, CachedBlueprints):
        return source
    return CachedBlueprints(source or CampaignFiles())


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
    _adopt_existing_runs(engine)
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


def _adopt_existing_runs(engine: Engine) -> None:
    """A pending step whose run staff already launched by hand is done: take that run, so the
    scheduler never launches the step again and reminders count from the real launch."""
    with Session(engine, expire_on_commit=False) as session:
        pairs = session.exec(
            select(ScheduledStep, Run)
            .join(
                Run,
                sa.and_(
                    col(Run.campaign) == col(ScheduledStep.campaign),
                    col(Run.step) == col(ScheduledStep.step),
                ),
            )
            .where(
                col(ScheduledStep.status) == StepStatus.PENDING,
                col(ScheduledStep.run_id).is_(None),
            )
        ).all()
    for step_row, run in pairs:
        # The launch moment (the run's creation), as for runs the scheduler launches itself.
        launched = run.created_at
        with engine.begin() as conn:
            conn.execute(
                sa.update(ScheduledStep)
                .where(
                    col(ScheduledStep.id) == step_row.id,
                    col(ScheduledStep.status) == StepStatus.PENDING,
                )
                .values(
                    status=StepStatus.LAUNCHED,
                    run_id=run.id,
                    launched_at=launched,
                    note=f"spuštěno mimo plánovač (běh {run.id})",
                )
            )


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
        if launch is not None and launch.status in (StepStatus.MISSED, StepStatus.FAILED):
            note = "úvodní rozeslání kampaně neproběhlo, připomínka nemá komu navazovat"
            if _claim(engine, row.id, StepStatus.MISSED, note):
                _report_missed(engine, row, note, report)
            return
        if launch is None or launch.launched_at is None:
            # A reminder waits for its launch; its due time is counted from the real launch.
            return
        if blueprint is not None:
            try:
                due = step_due(blueprint, blueprint.step(row.step), launch.launched_at)
            except KeyError:
                due = row.due_at
            if due != row.due_at:
                _move_pending(engine, row.id, due)
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
        conn.execute(
            sa.update(Run).where(col(Run.id) == run_id).values(scheduled_for=row.due_at, late=late)
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


# --- the sending window on running runs ------------------------------------------------------


def enforce_windows(
    engine: Engine,
    *,
    now: datetime,
    source: BlueprintSource | CachedBlueprints | None = None,
    launcher: Launcher | None = None,
    report: TickReport | None = None,
) -> TickReport:
    """Pause runs that are sending outside their campaign's window; resume the ones this
    function paused once the window opens again."""
    blueprints = cached(source)
    launcher = launcher or Delivery()
    report = report or TickReport()
    with Session(engine) as session:
        runs = list(
            session.exec(
                select(Run.id, Run.campaign, Run.status, Run.status_reason).where(
                    sa.or_(
                        col(Run.status).in_([RunStatus.SCHEDULED, RunStatus.SENDING]),
                        sa.and_(
                            col(Run.status) == RunStatus.PAUSED,
                            col(Run.status_reason).startswith(QUIET_PREFIX),
                        ),
                    )
                )
            ).all()
        )
    for run_id, campaign, status, _reason in runs:
        assert run_id is not None
        window = campaign_window(blueprints.get(campaign))
        is_open = window.is_open(now)
        if status != RunStatus.PAUSED and not is_open:
            when = format_moment(window.next_open(now))
            reason = f"{QUIET_PREFIX} ({window.describe()}); pokračuje {when}"
            launcher.pause(engine, run_id, reason)
            report.paused_runs.append(run_id)
        elif status == RunStatus.PAUSED and is_open:
            launcher.resume(engine, run_id, "okno pro odesílání je otevřené")
            report.resumed_runs.append(run_id)
    return report


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
