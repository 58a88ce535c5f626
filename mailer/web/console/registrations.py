"""An event campaign's registrations: participants per session, the waiting list, export for a
spreadsheet, and closing or reopening registration."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailer.compose.campaigns import BlueprintError, Kind, load_blueprint
from mailer.csvfiles import attachment_headers
from mailer.settings import get_settings
from mailer.signups import registrations
from mailer.web.console.audit import audit
from mailer.web.console.auth import DB, Editor, Reader
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)


def _event(slug: str) -> Any:
    try:
        blueprint = load_blueprint(slug)
    except (BlueprintError, FileNotFoundError, KeyError, ValueError) as exc:
        raise HTTPException(status_code=404, detail="Kampaň nelze načíst.") from exc
    if blueprint.kind is not Kind.EVENT or blueprint.event is None:
        raise HTTPException(status_code=404, detail="Kampaň nezve na akci, registrace nemá.")
    return blueprint


@router.get("/campaigns/{slug}/registrations", response_class=HTMLResponse)
def registration_list(request: Request, slug: str, staff: Reader, session: DB) -> HTMLResponse:
    blueprint = _event(slug)
    rows = registrations.participants(session, slug)
    occurrences = blueprint.event.occurrences()
    groups = []
    for index, occurrence in enumerate(occurrences):
        mine = [r for r in rows if r.session_index == index]
        groups.append(
            {
                "label": registrations.session_label(occurrence),
                "capacity": occurrence.capacity,
                "registered": [r for r in mine if r.status == "registered"],
                "waitlisted": [r for r in mine if r.status == "waitlisted"],
                "cancelled": [r for r in mine if r.status == "cancelled"],
            }
        )
    base = get_settings().base_url.rstrip("/")
    return page(
        request,
        "registrations.html",
        staff,
        blueprint=blueprint,
        groups=groups,
        closed=registrations.is_closed(session, slug),
        public_url=f"{base}/registrace/{slug}",
    )


@router.post("/campaigns/{slug}/registrations.csv")
def registration_export(slug: str, staff: Editor, session: DB) -> Response:
    blueprint = _event(slug)
    body = registrations.participants_csv(blueprint, registrations.participants(session, slug))
    audit(session, staff.email, "export", blueprint.name, kind="registrace")
    session.commit()
    return Response(
        body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers=attachment_headers(f"registrace-{slug}.csv"),
    )


@router.post("/campaigns/{slug}/registrations/state")
def registration_state(
    slug: str, staff: Editor, session: DB, state: Annotated[str, Form()]
) -> Response:
    blueprint = _event(slug)
    if state not in ("close", "open"):
        raise HTTPException(status_code=422, detail="Vyberte uzavřít, nebo otevřít.")
    registrations.set_closed(session, slug, state == "close", staff.email)
    audit(session, staff.email, f"registration_{state}", blueprint.name)
    session.commit()
    return RedirectResponse(f"/console/campaigns/{slug}/registrations", status_code=303)
