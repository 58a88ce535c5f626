"""What the schedule looks like right now: upcoming steps with their audience sizes as of now,
and the ones that ran late, were missed or failed (for `sdruk schedule` and the console)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.models import Run, ScheduledStep, StepStatus
from mailer.scheduling.sources import BlueprintSource, CachedBlueprints, cached, campaign_window

STATUS_LABELS = {
    StepStatus.PENDING: "čeká",
    StepStatus.LAUNCHED: "spuštěno",
    StepStatus.LATE: "spuštěno pozdě",
    StepStatus.MISSED: "zmeškáno",
    StepStatus.FAILED: "selhalo",
    StepStatus.CANCELLED: "zrušeno",
}


@dataclass(frozen=True)
class StepView:
    campaign: str
    step: str
    status: str
    due_at: datetime
    starts_at: datetime | None  # due time moved into the sending window (pending steps)
    window: str
    audience: int | None  # pending: who would receive it if it ran now
    run_id: int | None
    recipients: int | None
    note: str | None

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(StepStatus(self.status), self.status)

    def as_json(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "step": self.step,
            "status": self.status,
            "due_at": self.due_at.isoformat(),
            "starts_at": self.starts_at.isoformat() if self.starts_at else None,
            "window": self.window,
            "audience": self.audience,
            "run": self.run_id,
            "recipients": self.recipients,
            "note": self.note,
        }


@dataclass
class Overview:
    now: datetime
    upcoming: list[StepView] = field(default_factory=list)
    done: list[StepView] = field(default_factory=list)
    late: list[StepView] = field(default_factory=list)
    missed: list[StepView] = field(default_factory=list)
    failed: list[StepView] = field(default_factory=list)
    # Reminder steps that will not run because their campaign's launch run was cancelled.
    cancelled: list[StepView] = field(default_factory=list)
    invalid: dict[str, str] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "upcoming": [s.as_json() for s in self.upcoming],
            "launched": [s.as_json() for s in self.done],
            "late": [s.as_json() for s in self.late],
            "missed": [s.as_json() for s in self.missed],
            "failed": [s.as_json() for s in self.failed],
            "cancelled": [s.as_json() for s in self.cancelled],
            "invalid": self.invalid,
        }


def audience_size(session: Session, blueprint: Any, step: str) -> int:
    """How many contacts the step would reach if it ran now (the same segment delivery
    materialises at launch: the campaign's segment AND the step's audience)."""
    from mailer.audience.segments import SegmentContext, count, parse_segment

    segment = parse_segment(blueprint.audience_for(step))
    return count(
        session, segment, topic=blueprint.topic, context=SegmentContext(campaign=blueprint.slug)
    )


def schedule_overview(
    engine: Engine, *, now: datetime, source: BlueprintSource | CachedBlueprints | None = None
) -> Overview:
    blueprints = cached(source)
    result = Overview(now=now)
    with Session(engine) as session:
        rows = session.exec(
            select(ScheduledStep, Run)
            .join(Run, col(Run.id) == col(ScheduledStep.run_id), isouter=True)
            .order_by(col(ScheduledStep.due_at), col(ScheduledStep.id))
        ).all()
        for row, run in rows:
            blueprint = blueprints.get(row.campaign)
            window = campaign_window(blueprint)
            audience = None
            starts_at = None
            if row.status == StepStatus.PENDING:
                starts_at = window.next_open(row.due_at)
                if blueprint is not None:
                    try:
                        audience = audience_size(session, blueprint, row.step)
                    except (KeyError, ValueError):
                        audience = None
            view = StepView(
                campaign=row.campaign,
                step=row.step,
                status=row.status,
                due_at=row.due_at,
                starts_at=starts_at,
                window=window.describe(),
                audience=audience,
                run_id=row.run_id,
                recipients=run.recipients if run is not None else None,
                note=row.note,
            )
            {
                StepStatus.PENDING: result.upcoming,
                StepStatus.LAUNCHED: result.done,
                StepStatus.LATE: result.late,
                StepStatus.MISSED: result.missed,
                StepStatus.FAILED: result.failed,
                StepStatus.CANCELLED: result.cancelled,
            }.get(StepStatus(row.status), result.done).append(view)
    for slug in blueprints.slugs():
        if blueprints.checked(slug) is None:
            result.invalid[slug] = blueprints.errors.get(slug, "")
    return result
