"""What one scheduler round did, step by step and run by run (logged, printed by the CLI,
kept by the running scheduler for the console)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
