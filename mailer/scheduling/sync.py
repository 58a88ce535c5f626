"""Blueprints become ScheduledStep rows: what the scheduler owes.

Each step of a valid blueprint gets one row (unique per campaign and step); a pending row's
due time follows the blueprint (a reminder after the launch counts from the real launch once
it ran); rows of steps or campaigns that are gone are deleted while still pending. Steps that
already ran, or were missed, are never touched here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.compose.store import sync_folders
from mailer.delivery.runs import SCHEDULER, link_step
from mailer.models import Run, ScheduledStep, StepStatus
from mailer.scheduling.sources import (
    LAUNCH_STEP,
    BlueprintSource,
    CachedBlueprints,
    CampaignFiles,
    cached,
    step_due,
)

log = logging.getLogger(__name__)


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
    if source is None:
        # The shipped folders join the database first, so the schedule reads one model.
        sync_folders(engine)
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


def adopt_runs(
    engine: Engine,
    source: BlueprintSource | CachedBlueprints | None = None,
    *,
    campaign: str | None = None,
) -> None:
    """Steps whose run exists but is not linked (launched by hand before the step was
    scheduled, or while an older version did not link): link them, as a launch does now, so
    the scheduler never launches them again and reminders count from the real launch."""
    blueprints = cached(source)
    with Session(engine, expire_on_commit=False) as session:
        query = (
            select(ScheduledStep, Run)
            .join(
                Run,
                sa.and_(
                    col(Run.campaign) == col(ScheduledStep.campaign),
                    col(Run.step) == col(ScheduledStep.step),
                ),
            )
            .where(
                col(ScheduledStep.status).in_(
                    [StepStatus.PENDING, StepStatus.MISSED, StepStatus.FAILED]
                ),
                col(ScheduledStep.run_id).is_(None),
            )
        )
        if campaign is not None:
            query = query.where(col(ScheduledStep.campaign) == campaign)
        pairs = session.exec(query).all()
    for step_row, run in pairs:
        blueprint = blueprints.get(step_row.campaign)
        if blueprint is None or run.id is None:
            continue
        actor = run.created_by if run.created_by and run.created_by != SCHEDULER else "obsluha"
        with engine.begin() as conn:
            # The launch moment is the run's creation, as for runs the scheduler launches.
            link_step(
                conn, blueprint, step_row.step, run.id, launched_at=run.created_at, actor=actor
            )


def _sync_one(engine: Engine, blueprint: Any, report: SyncReport) -> None:
    slug = blueprint.slug
    adopt_runs(engine, _Known(blueprint), campaign=slug)
    with Session(engine, expire_on_commit=False) as session:
        rows = {
            r.step: r
            for r in session.exec(select(ScheduledStep).where(ScheduledStep.campaign == slug))
        }
    launch_row = rows.get(LAUNCH_STEP)
    launched_at = launch_row.launched_at if launch_row else None
    names = []
    for step in blueprint.steps:
        names.append(step.name)
        due = step_due(blueprint, step, launched_at)
        row = rows.get(step.name)
        if row is None:
            created = _insert_step(engine, slug, step.name, due)
            change = "new" if created else "same"
            report.steps.append(PlannedStep(slug, step.name, due, StepStatus.PENDING, change))
        elif row.status == StepStatus.PENDING and row.due_at != due:
            move_pending(engine, row.id, due)
            report.steps.append(PlannedStep(slug, step.name, due, row.status, "moved"))
        else:
            change = "same" if row.status == StepStatus.PENDING else "done"
            report.steps.append(PlannedStep(slug, step.name, row.due_at, row.status, change))
    gone = [name for name in rows if name not in names]
    if gone:
        _delete_pending(engine, slug, gone, report)
    if launch_row is None:
        # Steps inserted just now may already have their run (launched by hand before).
        adopt_runs(engine, _Known(blueprint), campaign=slug)


def move_pending(engine: Engine, step_id: int | None, due: datetime) -> None:
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


class _Known:
    """One blueprint already loaded and checked, as a BlueprintSource."""

    def __init__(self, blueprint: Any) -> None:
        self.blueprint = blueprint

    def slugs(self) -> list[str]:
        return [self.blueprint.slug]

    def problems(self, slug: str) -> list[str]:
        return []

    def load(self, slug: str) -> Any:
        return self.blueprint
