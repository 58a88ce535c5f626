"""The public archive: the association's past campaigns, one per launch, as they were sent,
rendered for no particular recipient and without tracking (no pixel, links straight to their
targets). A campaign leaves the archive with `archive = false` in its campaign.toml."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool

from mailer.compose.campaigns import BlueprintError, load_blueprint
from mailer.compose.composer import Composer
from mailer.compose.czech import format_day
from mailer.models import CAMPAIGN_RUNS, TRANSACTIONAL_CAMPAIGN, Run, RunStatus
from mailer.web import pages
from mailer.web.params import RowId
from mailer.web.tracking import WEB_VERSION_CSP

router = APIRouter()
PATH = "/archiv"
SHOWN = (RunStatus.SENDING.value, RunStatus.SENT.value)


def _archived(campaign: str) -> bool:
    try:
        return load_blueprint(campaign).archive
    except (BlueprintError, KeyError, OSError, ValueError):
        return False  # a campaign that cannot be read is not shown


def _runs(request: Request) -> list[dict[str, Any]]:
    with Session(pages.engine_of(request)) as session:
        runs = session.exec(
            select(Run)
            .where(CAMPAIGN_RUNS, Run.step == "launch", col(Run.status).in_(SHOWN))
            .order_by(col(Run.started_at).desc(), col(Run.id).desc())
        ).all()
    return [
        {
            "id": run.id,
            "subject": run.content.get("subject") or run.content.get("name", ""),
            "name": run.content.get("name", ""),
            "when": format_day(run.started_at or run.created_at),
        }
        for run in runs
        if _archived(run.campaign)
    ]


@router.api_route(PATH, methods=["GET", "HEAD"], include_in_schema=False)
async def archive_list(request: Request) -> HTMLResponse:
    runs = await run_in_threadpool(_runs, request)
    return pages.render(request, "public/archive.html", {"runs": runs})


def _html(request: Request, run_id: int) -> str | None:
    with Session(pages.engine_of(request)) as session:
        run = session.get(Run, run_id)
    if (
        run is None
        or run.id is None
        or run.step != "launch"
        or run.status not in SHOWN
        or run.campaign == TRANSACTIONAL_CAMPAIGN
        or not _archived(run.campaign)
    ):
        return None
    # As sent, for no one: tracking off (links go straight, no pixel), neutral salutation.
    content = {**run.content, "tracking": "off"}
    composer = Composer(content, run.id)
    # Its "view in the browser" link would count a web view: it points here instead.
    here = f"{request.app.state.settings.base_url.rstrip('/')}{PATH}/{run.id}"
    return composer.web_html(None).replace(composer.anonymous_web_url, here)


@router.api_route(PATH + "/{run_id}", methods=["GET", "HEAD"], include_in_schema=False)
async def archive_message(run_id: RowId, request: Request) -> HTMLResponse:
    html = await run_in_threadpool(_html, request, run_id)
    if html is None:
        raise pages.not_found()
    headers = {**pages.NO_STORE, "Content-Security-Policy": WEB_VERSION_CSP}
    return HTMLResponse(html, headers=headers)
