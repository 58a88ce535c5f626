"""Runs: launching one step of a campaign into the outbox, and what staff do with a run
afterwards (pause, resume, cancel, watch its progress).

A launch evaluates the step's segment once, inside one transaction with the new Run row, and
materialises one outbox row per recipient (unique per run and contact; one per address). The
run's content is frozen at the same moment, so workers never open a template and what went out
can always be shown later. The unique (campaign, step) constraint makes launching idempotent,
also when two launches race.

Run states: scheduled → sending → paused → sent | cancelled.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import IntegrityError

from mailer.delivery import outbox as ob
from mailer.delivery.readiness import readiness
from mailer.models import (
    TRANSACTIONAL_CAMPAIGN,
    AuditEntry,
    MessageStatus,
    RunStatus,
    ScheduledStep,
    StepStatus,
    utcnow,
)

if TYPE_CHECKING:
    from mailer.compose.campaigns import Blueprint

__all__ = [
    "BlueprintRejected",
    "LaunchResult",
    "RunProgress",
    "RunStateError",
    "cancel",
    "launch",
    "pause",
    "progress",
    "resume",
]

INSERT_BATCH = 5000
audit = AuditEntry.__table__  # type: ignore[attr-defined]


class RunStateError(ValueError):
    """The run cannot make that transition; the message says why, in Czech."""


class BlueprintRejected(ValueError):
    """The blueprint fails its checks (mailer.compose.check); nothing was launched. The message
    (Czech) lists every problem with its file and line; `problems` keeps them."""

    def __init__(self, slug: str, problems: list[Any]) -> None:
        self.slug = slug
        self.problems = problems
        listed = "; ".join(str(p) for p in problems)
        super().__init__(f"Kampaň {slug} neprošla kontrolou, nic nebylo odesláno: {listed}")


class LaunchRefused(BlueprintRejected):
    """A launch to a real relay while the setup or the campaign is unfinished; the message
    (Czech) says what to fill in and where (mailer/delivery/readiness.py)."""

    def __init__(self, slug: str, problems: list[str]) -> None:
        self.slug = slug
        self.problems = problems
        ValueError.__init__(
            self,
            f"Kampaň {slug} nelze odeslat na skutečný server, dokud zbývá: "
            + " ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
            + " Nic nebylo odesláno.",
        )


@dataclass(frozen=True)
class LaunchResult:
    run_id: int
    recipients: int
    created: bool
    # When the run may start sending: the launch moment, or the next opening of the sending
    # window for a launch by hand outside it.
    starts_at: datetime | None = None


def _recipient_rows(blueprint: Blueprint, step: str) -> sa.Select[Any]:
    from mailer.audience.segments import SegmentContext, parse_segment, recipients_select

    segment = parse_segment(blueprint.audience_for(step))
    chosen = recipients_select(
        segment, topic=blueprint.topic, context=SegmentContext(campaign=blueprint.slug)
    ).subquery()
    # One message per address: two contact rows may differ only in the case of the local part.
    # The lowest contact id of each address wins, the same one on every launch.
    ranked = sa.select(
        chosen.c.id,
        chosen.c.email,
        sa.func.row_number()
        .over(partition_by=sa.func.lower(chosen.c.email), order_by=chosen.c.id)
        .label("n"),
    ).subquery()
    return sa.select(ranked.c.id, ranked.c.email).where(ranked.c.n == 1).order_by(ranked.c.id)


def _insert_outbox(conn: Connection) -> Any:
    # ON CONFLICT DO NOTHING / INSERT OR IGNORE: the (run, contact) unique constraint is the
    # last guard against a recipient materialised twice; a duplicate is dropped, not an error.
    if conn.dialect.name == "postgresql":
        return postgresql.insert(ob.outbox).on_conflict_do_nothing()
    return sa.insert(ob.outbox).prefix_with("OR IGNORE")


def _batches(rows: Iterator[Any], run_id: int, due: datetime) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for contact_id, email in rows:
        batch.append(
            {
                "run_id": run_id,
                "contact_id": contact_id,
                "email": email,
                "status": MessageStatus.QUEUED.value,
                "attempts": 0,
                "next_attempt_at": due,
                "possible_duplicate": False,
            }
        )
        if len(batch) >= INSERT_BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _existing(conn: Connection, campaign: str, step: str) -> LaunchResult | None:
    row = conn.execute(
        sa.select(ob.runs.c.id, ob.runs.c.recipients, ob.runs.c.scheduled_for).where(
            ob.runs.c.campaign == campaign, ob.runs.c.step == step
        )
    ).first()
    return LaunchResult(row.id, row.recipients, False, row.scheduled_for) if row else None


def window_start(blueprint: Blueprint, now: datetime) -> datetime:
    """When a launch made now may start sending: now inside the campaign's sending window,
    else the window's next opening."""
    start: datetime = blueprint.sending_window.next_open(now)
    return start


def launch(
    engine: Engine,
    blueprint: Blueprint,
    step: str = "launch",
    *,
    actor: str = "cli",
    now: datetime | None = None,
    keep_window: bool = False,
    outside_window: bool = False,
) -> LaunchResult:
    """Materialise one run of a campaign step. Launching the same step again returns the
    existing run with created=False and changes nothing.

    `keep_window` (launches by hand): outside the campaign's sending window the run waits
    for its next opening (workers claim nothing before `scheduled_for`). `outside_window`:
    staff explicitly chose to send at once, and the window never pauses the run."""
    from mailer.compose.freeze import freeze

    now = now or utcnow()
    starts_at = window_start(blueprint, now) if keep_window and not outside_window else now
    blueprint.step(step)  # unknown step: KeyError with a Czech message, before any work
    with engine.connect() as conn:
        found = _existing(conn, blueprint.slug, step)
    if found:
        return found
    _refuse_broken(blueprint)
    _refuse_unready(blueprint)
    content = freeze(blueprint, step)
    try:
        with engine.begin() as conn:
            run_id = conn.execute(
                sa.insert(ob.runs)
                .values(
                    campaign=blueprint.slug,
                    step=step,
                    status=RunStatus.SCHEDULED.value,
                    content=content,
                    recipients=0,
                    scheduled_for=starts_at,
                    late=False,
                    outside_window=outside_window,
                    created_by=actor,
                    created_at=now,
                )
                .returning(ob.runs.c.id)
            ).scalar_one()
            # Streamed from the database and inserted in batches: a million recipients never
            # sit in memory at once. The select runs once, in this transaction, so the run is
            # exactly the segment at this moment.
            stream = conn.execute(
                _recipient_rows(blueprint, step),
                execution_options={"stream_results": True, "yield_per": INSERT_BATCH},
            )
            insert = _insert_outbox(conn)
            for batch in _batches(iter(stream), run_id, starts_at):
                conn.execute(insert, batch)
            recipients = conn.execute(
                sa.select(sa.func.count())
                .select_from(ob.outbox)
                .where(ob.outbox.c.run_id == run_id)
            ).scalar_one()
            values: dict[str, Any] = {"recipients": recipients}
            if recipients == 0:
                # Nothing to send: the run is complete the moment it exists.
                values.update(status=RunStatus.SENT.value, started_at=now, finished_at=now)
            conn.execute(sa.update(ob.runs).where(ob.runs.c.id == run_id).values(**values))
            _audit(
                conn,
                actor,
                "launch",
                f"{blueprint.slug}/{step}",
                {
                    "run": run_id,
                    "recipients": recipients,
                    "starts_at": starts_at.isoformat(),
                    "outside_window": outside_window,
                },
                now,
            )
            # In the run's transaction: the step is never seen with a run it does not know.
            link_step(conn, blueprint, step, run_id, launched_at=now, actor=actor)
    except IntegrityError:
        # Another launch of the same step won the race; its run is the run.
        with engine.connect() as conn:
            found = _existing(conn, blueprint.slug, step)
        if found is None:
            raise
        return found
    return LaunchResult(run_id, recipients, True, starts_at)


def _refuse_broken(blueprint: Blueprint) -> None:
    # Every launch path (CLI, console, scheduler) comes through here, so this is where a
    # template or blueprint error is stopped before a single message is queued. The check reads
    # the blueprint's files again: what is checked is what freeze() is about to compile.
    from mailer.compose.check import check_blueprint

    problems = check_blueprint(blueprint.slug, blueprint.directory.parent)
    if problems:
        raise BlueprintRejected(blueprint.slug, problems)


def _refuse_unready(blueprint: Blueprint) -> None:
    # The launch gate: no real send with placeholders or doctor errors left (readiness.py).
    found = readiness(blueprint)
    if found.refused:
        raise LaunchRefused(blueprint.slug, found.errors)


def _audit(
    conn: Connection, actor: str, action: str, target: str, detail: dict[str, Any], now: datetime
) -> None:
    conn.execute(
        sa.insert(audit).values(at=now, actor=actor, action=action, target=target, detail=detail)
    )


# --- staff actions ----------------------------------------------------------------------------


def _run_row(conn: Connection, run_id: int) -> Any:
    row = conn.execute(sa.select(ob.runs).where(ob.runs.c.id == run_id).with_for_update()).first()
    if row is None:
        raise RunStateError(f"Rozesílka {run_id} neexistuje.")
    return row


_STATUS_CZ = {
    RunStatus.SCHEDULED.value: "naplánovaná",
    RunStatus.SENDING.value: "odesílá se",
    RunStatus.PAUSED.value: "pozastavená",
    RunStatus.SENT.value: "odeslaná",
    RunStatus.CANCELLED.value: "zrušená",
}


def status_label(status: str) -> str:
    return _STATUS_CZ.get(status, status)


def pause(engine: Engine, run_id: int, reason: str, *, actor: str = "cli") -> str:
    """Stop claiming the run's messages; messages already in an SMTP transaction finish.
    Returns the new status (pausing a paused run is a no-op)."""
    now = utcnow()
    with engine.begin() as conn:
        row = _run_row(conn, run_id)
        if row.status == RunStatus.PAUSED.value:
            if reason and reason != row.status_reason:
                # Paused already, e.g. by the scheduler outside the sending window, which
                # resumes runs paused for that reason only: this pause's reason replaces it, so
                # the run stays paused until someone resumes it.
                conn.execute(
                    sa.update(ob.runs)
                    .where(ob.runs.c.id == run_id)
                    .values(status_reason=reason[:1000])
                )
                _audit(conn, actor, "pause", f"run/{run_id}", {"reason": reason}, now)
            return row.status
        if row.status not in ob.SENDABLE_RUNS:
            raise RunStateError(
                f"Rozesílku {run_id} nelze pozastavit: je {status_label(row.status)}."
            )
        ob.pause_run(conn, run_id, reason)
        _audit(conn, actor, "pause", f"run/{run_id}", {"reason": reason}, now)
    return RunStatus.PAUSED.value


def resume(engine: Engine, run_id: int, reason: str = "", *, actor: str = "cli") -> str:
    """Let workers claim the run's messages again. Returns the new status."""
    now = utcnow()
    with engine.begin() as conn:
        row = _run_row(conn, run_id)
        if row.status in ob.SENDABLE_RUNS:
            return row.status
        if row.status != RunStatus.PAUSED.value:
            raise RunStateError(f"Rozesílku {run_id} nelze obnovit: je {status_label(row.status)}.")
        status = RunStatus.SENDING.value if row.started_at else RunStatus.SCHEDULED.value
        conn.execute(
            sa.update(ob.runs)
            .where(ob.runs.c.id == run_id)
            .values(status=status, status_reason=None)
        )
        _audit(conn, actor, "resume", f"run/{run_id}", {"reason": reason}, now)
    return status


def cancel(engine: Engine, run_id: int, reason: str = "", *, actor: str = "cli") -> int:
    """End the run: every message not yet sent becomes skipped. Returns how many. A message
    whose SMTP transaction is under way right now still finishes and is recorded as sent."""
    now = utcnow()
    with engine.begin() as conn:
        # The run's unfinished messages are locked before the run row, the order workers lock
        # in (a claim locks messages, then marks their run sending; a group commit settles
        # messages, then may pause the run). The other order deadlocks with a worker on
        # PostgreSQL, and the database then kills one of the two. (SQLite has one writer.)
        if conn.dialect.name == "postgresql":
            conn.execute(
                sa.select(ob.outbox.c.id)
                .where(ob.outbox.c.run_id == run_id, ob.outbox.c.status.in_(ob.PENDING))
                .with_for_update()
            ).all()
        row = _run_row(conn, run_id)
        if row.status == RunStatus.CANCELLED.value:
            return 0
        if row.status == RunStatus.SENT.value:
            raise RunStateError(f"Rozesílka {run_id} už je celá odeslaná, nelze ji zrušit.")
        conn.execute(
            sa.update(ob.runs)
            .where(ob.runs.c.id == run_id)
            .values(
                status=RunStatus.CANCELLED.value,
                status_reason=reason or "zrušeno obsluhou",
                finished_at=now,
            )
        )
        skipped = conn.execute(
            sa.update(ob.outbox)
            .where(ob.outbox.c.run_id == run_id, ob.outbox.c.status.in_(ob.PENDING))
            .values(
                status=MessageStatus.SKIPPED.value,
                error=ob.SKIP_REASONS["cancelled"],
                worker=None,
                lease_until=None,
            )
        ).rowcount
        steps = _cancel_reminders(conn, row) if row.step == LAUNCH_STEP else []
        detail = {"reason": reason, "skipped": skipped, "cancelled_steps": steps}
        _audit(conn, actor, "cancel", f"run/{run_id}", detail, now)
    return int(skipped or 0)


LAUNCH_STEP = "launch"
SCHEDULER = "scheduler"
REMINDERS_CANCELLED = "zrušeno: hlavní rozesílka byla zrušena"
# How a reminder's note starts when it was missed only because its launch never ran; such a
# reminder comes back when the launch runs after all (by hand).
LAUNCH_NOT_RUN = "úvodní rozeslání kampaně neproběhlo"


def link_step(
    conn: Connection,
    blueprint: Blueprint,
    step: str,
    run_id: int,
    *,
    launched_at: datetime,
    actor: str,
) -> None:
    """A run of a step IS that step's scheduled run, whoever launched it: the scheduled step
    (pending, or given up as missed or failed) is linked to the run, so the scheduler never
    launches it again and `sdruk schedule` shows the link. A launch also re-plans the
    campaign's waiting reminders from the real launch time, and brings back those that were
    missed only because the launch had not run."""
    steps = ScheduledStep.__table__  # type: ignore[attr-defined]
    row = conn.execute(
        sa.select(steps.c.id, steps.c.status).where(
            steps.c.campaign == blueprint.slug, steps.c.step == step, steps.c.run_id.is_(None)
        )
    ).first()
    if row is not None:
        values: dict[str, Any] = {"run_id": run_id, "launched_at": launched_at}
        if actor != SCHEDULER:
            values["note"] = f"spuštěno ručně ({actor}), rozesílka {run_id}"
            if row.status in (
                StepStatus.PENDING.value,
                StepStatus.MISSED.value,
                StepStatus.FAILED.value,
            ):
                values["status"] = StepStatus.LAUNCHED.value
        conn.execute(
            sa.update(steps).where(steps.c.id == row.id, steps.c.run_id.is_(None)).values(**values)
        )
    if step != LAUNCH_STEP:
        return
    for reminder in blueprint.steps[1:]:
        conn.execute(
            sa.update(steps)
            .where(
                steps.c.campaign == blueprint.slug,
                steps.c.step == reminder.name,
                steps.c.run_id.is_(None),
                sa.or_(
                    steps.c.status == StepStatus.PENDING.value,
                    sa.and_(
                        steps.c.status == StepStatus.MISSED.value,
                        steps.c.note.startswith(LAUNCH_NOT_RUN),
                    ),
                ),
            )
            .values(
                status=StepStatus.PENDING.value,
                due_at=blueprint.due_at(reminder, launched_at),
                note=None,
            )
        )


def _cancel_reminders(conn: Connection, run: Any) -> list[str]:
    """The launch run is cancelled: the campaign's reminder steps still waiting must not run
    (they would remind people who got part of a cancelled campaign, or nothing at all). Marked
    cancelled with a note, in the cancel's transaction, so `sdruk schedule` shows them and the
    scheduler, which only runs pending steps, leaves them. Returns their names."""
    steps = ScheduledStep.__table__  # type: ignore[attr-defined]
    return list(
        conn.execute(
            sa.update(steps)
            .where(
                steps.c.campaign == run.campaign,
                steps.c.step != LAUNCH_STEP,
                steps.c.status == StepStatus.PENDING.value,
            )
            .values(status=StepStatus.CANCELLED.value, note=REMINDERS_CANCELLED)
            .returning(steps.c.step)
        ).scalars()
    )


# --- progress ---------------------------------------------------------------------------------


@dataclass
class RunProgress:
    run_id: int
    campaign: str
    step: str
    status: str
    status_reason: str | None
    recipients: int
    counts: dict[str, int] = field(default_factory=dict)
    possible_duplicates: int = 0
    rate_per_second: float = 0.0
    eta_seconds: float | None = None
    # Czech, when the relay's daily limit spreads the rest of the run over several days.
    limit_note: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @property
    def done(self) -> int:
        c = self.counts
        return c.get("sent", 0) + c.get("failed", 0) + c.get("skipped", 0)

    @property
    def remaining(self) -> int:
        c = self.counts
        return c.get("queued", 0) + c.get("retry", 0) + c.get("sending", 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "campaign": self.campaign,
            "step": self.step,
            "status": self.status,
            "status_reason": self.status_reason,
            "recipients": self.recipients,
            "counts": {s.value: self.counts.get(s.value, 0) for s in MessageStatus},
            "possible_duplicates": self.possible_duplicates,
            "rate_per_second": round(self.rate_per_second, 1),
            "eta_seconds": None if self.eta_seconds is None else round(self.eta_seconds),
            "limit_note": self.limit_note,
            "created_at": _iso(self.created_at),
            "started_at": _iso(self.started_at),
            "finished_at": _iso(self.finished_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


RATE_WINDOW = timedelta(seconds=60)


def progress(engine: Engine, run_id: int, *, now: datetime | None = None) -> RunProgress:
    """Counts per state, the recent sending rate and the time left at that rate."""
    now = now or utcnow()
    o = ob.outbox
    with engine.connect() as conn:
        row = conn.execute(sa.select(ob.runs).where(ob.runs.c.id == run_id)).first()
        if row is None:
            raise RunStateError(f"Rozesílka {run_id} neexistuje.")
        counts = {
            status: int(n)
            for status, n in conn.execute(
                sa.select(o.c.status, sa.func.count())
                .where(o.c.run_id == run_id)
                .group_by(o.c.status)
            )
        }
        duplicates = conn.execute(
            sa.select(sa.func.count()).where(o.c.run_id == run_id, o.c.possible_duplicate)
        ).scalar_one()
        # The rate of the last minute of sending (of the whole run when it is shorter).
        end = row.finished_at or now
        since = end - RATE_WINDOW
        if row.started_at and row.started_at > since:
            since = row.started_at
        recent = conn.execute(
            sa.select(sa.func.count()).where(
                o.c.run_id == run_id, o.c.status == MessageStatus.SENT.value, o.c.sent_at >= since
            )
        ).scalar_one()
    result = RunProgress(
        run_id=row.id,
        campaign=row.campaign,
        step=row.step,
        status=row.status,
        status_reason=row.status_reason,
        recipients=row.recipients,
        counts=counts,
        possible_duplicates=int(duplicates),
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )
    elapsed = (end - since).total_seconds()
    if recent and elapsed > 0:
        result.rate_per_second = recent / elapsed
        if row.status in ob.SENDABLE_RUNS:
            result.eta_seconds = result.remaining / result.rate_per_second
    if row.status not in (RunStatus.SENT.value, RunStatus.CANCELLED.value) and result.remaining:
        # The relay's limits bound the time left whatever the recent rate says.
        note, least = limit_estimate(result.remaining)
        result.limit_note = note
        if least is not None and least > (result.eta_seconds or 0):
            result.eta_seconds = least
    return result


def limit_estimate(remaining: int) -> tuple[str | None, float | None]:
    """The configured sending limits applied to `remaining` messages (see limits.spread);
    limits that cannot be read estimate nothing (the worker refuses to start with them)."""
    from mailer.delivery import limits
    from mailer.settings import get_settings

    settings = get_settings()
    try:
        configured = limits.limits_from_url(settings.resolved_smtp_url(), settings.send_limits)
    except limits.LimitsError:
        return None, None
    return limits.spread(configured, remaining)


def list_runs(engine: Engine, limit: int = 50) -> list[RunProgress]:
    """The latest runs with their counts (one grouped query for all of them)."""
    o = ob.outbox
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(ob.runs)
            .where(ob.runs.c.campaign != TRANSACTIONAL_CAMPAIGN)
            .order_by(ob.runs.c.id.desc())
            .limit(limit)
        ).all()
        ids = [r.id for r in rows]
        counts: dict[int, dict[str, int]] = {i: {} for i in ids}
        if ids:
            for run_id, status, n in conn.execute(
                sa.select(o.c.run_id, o.c.status, sa.func.count())
                .where(o.c.run_id.in_(ids))
                .group_by(o.c.run_id, o.c.status)
            ):
                counts[run_id][status] = int(n)
    return [
        RunProgress(
            run_id=r.id,
            campaign=r.campaign,
            step=r.step,
            status=r.status,
            status_reason=r.status_reason,
            recipients=r.recipients,
            counts=counts[r.id],
            created_at=r.created_at,
            started_at=r.started_at,
            finished_at=r.finished_at,
        )
        for r in rows
    ]
