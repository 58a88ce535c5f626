"""The sending window on runs already launched: pause a run that is sending when its
campaign's window closes, resume it when the window opens again (only runs paused for that
reason, never those staff or delivery paused)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.compose.czech import format_moment
from mailer.models import Run, RunStatus
from mailer.scheduling.reports import TickReport
from mailer.scheduling.sources import (
    BlueprintSource,
    CachedBlueprints,
    Delivery,
    Launcher,
    cached,
    campaign_window,
)

# The start of the reason a run is paused with outside its sending window: only runs paused
# for this reason are resumed by the scheduler, never those staff or delivery paused.
QUIET_PREFIX = "Mimo okno pro odesílání"


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
                    ),
                    # Sent at once by staff's explicit choice: the window does not apply.
                    sa.not_(col(Run.outside_window)),
                    # Not started yet, waiting for its window to open: workers do not take it
                    # before then, so there is nothing to pause.
                    sa.or_(col(Run.scheduled_for).is_(None), col(Run.scheduled_for) <= now),
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
