"""The console's front page: the audience at a glance, recent runs and what is scheduled."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import col, select

from mailer.compose.campaigns import BlueprintError, blueprint_slugs, load_blueprint
from mailer.models import (
    CAMPAIGN_RUNS,
    AuditEntry,
    Contact,
    Library,
    Run,
    ScheduledStep,
    StepStatus,
    Suppression,
)
from mailer.web.console.auth import DB, Reader
from mailer.web.console.progress import run_counts
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)


def campaign_names(slugs: set[str]) -> dict[str, str]:
    """Campaign names staff know, by folder name; a campaign whose file is broken or gone keeps
    its folder name (the campaigns page says what is wrong with it)."""
    names = {}
    for slug in slugs & set(blueprint_slugs()):
        try:
            names[slug] = load_blueprint(slug).name
        except (BlueprintError, ValueError, OSError):
            continue
    return names


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, staff: Reader, session: DB) -> HTMLResponse:
    by_status: dict[str, int] = {
        status: n
        for status, n in session.execute(
            sa.select(col(Contact.status), sa.func.count()).group_by(col(Contact.status))
        ).all()
    }
    libraries = session.execute(sa.select(sa.func.count()).select_from(Library)).scalar_one()
    members = session.execute(
        sa.select(sa.func.count()).select_from(Library).where(col(Library.is_member))
    ).scalar_one()
    suppressed = session.execute(sa.select(sa.func.count()).select_from(Suppression)).scalar_one()
    runs = session.exec(
        select(Run).where(CAMPAIGN_RUNS).order_by(col(Run.id).desc()).limit(8)
    ).all()
    counts = run_counts(session, [r.id for r in runs if r.id is not None])
    upcoming = session.exec(
        select(ScheduledStep)
        .where(ScheduledStep.status == StepStatus.PENDING)
        .where(ScheduledStep.due_at >= datetime.now(UTC))
        .order_by(ScheduledStep.due_at)  # type: ignore[arg-type]
        .limit(8)
    ).all()
    recent = session.exec(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(8)).all()  # type: ignore[union-attr]
    return page(
        request,
        "dashboard.html",
        staff,
        by_status=by_status,
        contacts=sum(by_status.values()),
        libraries=libraries,
        members=members,
        suppressed=suppressed,
        runs=runs,
        counts=counts,
        upcoming=upcoming,
        recent=recent,
        names=campaign_names({r.campaign for r in runs} | {s.campaign for s in upcoming}),
    )
