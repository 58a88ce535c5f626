"""The scheduler's jobs as APScheduler stores them: by reference (`mailer.jobs:tick_job`), so
the SQLAlchemy job store can reload them after a restart.

Two kinds of job, both doing the same idempotent work (mailer.scheduling.steps.tick):
- `tick_job`, every `scheduler_tick_seconds`: launches due steps, reports late and missed ones,
  pauses and resumes runs at the edges of their sending window; the safety net.
- `step_job`, one date job per pending step at the moment it may start, so a launch happens
  on the second rather than at the next tick. Its misfire grace is the launch grace period:
  APScheduler's default of 1 s would silently drop a launch that was due while the process
  was down; the database, not APScheduler, then decides whether it is late or missed.

The logic lives in mailer.scheduling; this module only binds it to a running process.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from mailer.scheduling.clock import Clock, SystemClock
from mailer.scheduling.reports import TickReport
from mailer.scheduling.sources import (
    BlueprintSource,
    CampaignFiles,
    Delivery,
    Launcher,
    cached,
)
from mailer.scheduling.steps import pending_due_times, tick
from mailer.scheduling.sync import SyncReport, sync_blueprints

log = logging.getLogger(__name__)

TICK_JOB_ID = "tick"
STEP_JOB_PREFIX = "step-"


@dataclass
class Runtime:
    """What the jobs of the running scheduler work with (set by the scheduler role)."""

    engine: Engine
    grace: timedelta
    clock: Clock = field(default_factory=SystemClock)
    source: BlueprintSource = field(default_factory=CampaignFiles)
    launcher: Launcher = field(default_factory=Delivery)
    scheduler: Any = None  # the AsyncIOScheduler, to keep one date job per pending step
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_report: TickReport | None = None


_runtime: Runtime | None = None


def bind(runtime: Runtime | None) -> None:
    """Point the jobs at a runtime (None when the scheduler stops)."""
    global _runtime
    _runtime = runtime


def run_tick(runtime: Runtime, now: datetime | None = None) -> TickReport:
    """One synchronous round (in a worker thread when called from the event loop)."""
    return tick(
        runtime.engine,
        now=now or runtime.clock.now(),
        grace=runtime.grace,
        source=cached(runtime.source),
        launcher=runtime.launcher,
    )


def run_sync(runtime: Runtime) -> SyncReport:
    return sync_blueprints(runtime.engine, source=runtime.source)


async def tick_job() -> None:
    runtime = _runtime
    if runtime is None:  # a job fired by a scheduler that is shutting down
        return
    # One round at a time: the tick and a step timer firing together would only repeat work.
    async with runtime.lock:
        if _runtime is not runtime:  # the scheduler stopped while this job waited
            return
        runtime.last_report = await asyncio.to_thread(run_tick, runtime)
        if runtime.scheduler is not None:
            due = await asyncio.to_thread(pending_due_times, runtime.engine, source=runtime.source)
            set_step_timers(runtime, due)


async def step_job(step_id: int) -> None:
    log.debug("Časovač kroku %s", step_id)
    await tick_job()


def set_step_timers(runtime: Runtime, due: dict[int, datetime]) -> None:
    """Keep exactly one date job per pending step with a future start."""
    scheduler = runtime.scheduler
    now = runtime.clock.now()
    wanted = {f"{STEP_JOB_PREFIX}{sid}": when for sid, when in due.items() if when > now}
    for job in scheduler.get_jobs():
        if job.id.startswith(STEP_JOB_PREFIX) and job.id not in wanted:
            job.remove()
    for job_id, when in wanted.items():
        job = scheduler.get_job(job_id)
        if job is not None and job.next_run_time == when:
            continue
        scheduler.add_job(
            "mailer.jobs:step_job",
            trigger="date",
            run_date=when,
            args=[int(job_id.removeprefix(STEP_JOB_PREFIX))],
            id=job_id,
            name=f"krok {job_id}",
            replace_existing=True,
            misfire_grace_time=int(runtime.grace.total_seconds()),
            coalesce=True,
        )
