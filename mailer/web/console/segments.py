"""The segment builder: form controls for each registered segment field, a live count and
sample, and saved segments (stored as the same dict a campaign.toml `[segment]` holds)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from mailer.audience.segments import (
    SegmentContext,
    SegmentError,
    count,
    field_specs,
    parse_segment,
    recipients_select,
)
from mailer.compose.campaigns import blueprint_slugs
from mailer.models import (
    CAMPAIGN_RUNS,
    LIBRARY_TYPE_LABELS,
    TOPIC_LABELS,
    Contact,
    Library,
    Run,
    SavedSegment,
)
from mailer.web.console.audit import audit
from mailer.web.console.auth import DB, Editor, Reader
from mailer.web.console.names import LAUNCH_LABEL, Names, describe_step
from mailer.web.console.render import LEGAL_BASIS_LABELS, page
from mailer.web.console.routing import ConsoleRoute
from mailer.web.params import RowId, parse_row_id

router = APIRouter(route_class=ConsoleRoute)
SAMPLE_SIZE = 10
NAME_MAX = 120  # SavedSegment.name

CHOICE_LABELS: dict[str, dict[str, str]] = {
    "library_type": {t.value: label for t, label in LIBRARY_TYPE_LABELS.items()},
    "topic": {t.value: label for t, label in TOPIC_LABELS.items()},
    "legal_basis": LEGAL_BASIS_LABELS,
}


def _specs() -> dict[str, Any]:
    return field_specs()


def builder_fields() -> list[dict[str, Any]]:
    """What the form shows for each field: its control, its choices with Czech labels."""
    fields = []
    for name, spec in _specs().items():
        choices = list(spec.choices()) if spec.choices else []
        labels = CHOICE_LABELS.get(name, {})
        fields.append(
            {
                "name": name,
                "label": spec.description,
                "kind": spec.kind,
                "campaign": spec.needs_campaign,
                "choices": [(c, labels.get(c, c)) for c in choices],
            }
        )
    return fields


def form_to_definition(form: Mapping[str, Any], getlist: Any) -> dict[str, Any]:
    """The segment dict (campaign.toml syntax) the builder's controls describe."""
    definition: dict[str, Any] = {}
    for spec in builder_fields():
        name = spec["name"]
        negate = form.get(f"not_{name}") == "ano"
        if spec["kind"] == "bool":
            value = form.get(name, "")
            if value in ("ano", "ne"):
                definition[name] = value == "ano"
            continue
        if spec["kind"] == "choice":
            values = [str(v) for v in getlist(name) if v]
        else:
            values = [v.strip() for v in str(form.get(name, "")).split(",") if v.strip()]
        if not values:
            continue
        value = values[0] if len(values) == 1 else values
        definition[name] = {"not": value} if negate else value
    return definition


def definition_to_form(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The builder's control values for a saved (flat) segment."""
    state: dict[str, Any] = {}
    for name, value in definition.items():
        if isinstance(value, dict) and "not" in value:
            state[f"not_{name}"] = True
            value = value["not"]
        if isinstance(value, bool):
            state[name] = "ano" if value else "ne"
        elif isinstance(value, list):
            state[name] = [str(v) for v in value]
        else:
            state[name] = [str(value)]
    return state


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    # JSON string escapes are valid TOML basic-string escapes.
    return json.dumps(str(value), ensure_ascii=False)


def to_toml(definition: Mapping[str, Any]) -> str:
    """The `[segment]` table to paste into a campaign.toml."""
    lines = ["[segment]"] + [f"{k} = {_toml_value(v)}" for k, v in definition.items()]
    return "\n".join(lines)


def evaluate(session: Session, definition: dict[str, Any], campaign: str | None) -> dict[str, Any]:
    """Count and sample of a segment, or the Czech reason it is not valid."""

    try:
        segment = parse_segment(definition)
        context = SegmentContext(campaign=campaign or None)
        total = count(session, segment, context=context)
        rows = session.execute(
            recipients_select(segment, context=context).add_columns(Library).limit(SAMPLE_SIZE)
        ).all()
    except SegmentError as exc:
        return {"count": 0, "sample": [], "error": str(exc), "toml": to_toml(definition)}
    sample = [
        {"id": c.id, "email": c.email, "library": lib.name if lib else ""}
        for c, lib in rows
        if isinstance(c, Contact)
    ]
    return {"count": total, "sample": sample, "error": None, "toml": to_toml(definition)}


def _campaigns(session: Session) -> list[tuple[str, str, list[tuple[str, str]]]]:
    """(slug, title, [(step, its Czech label)]) of every campaign, for the builder's selects."""
    slugs = set(session.exec(select(Run.campaign).where(CAMPAIGN_RUNS).distinct()).all())
    # Folder names only: a broken blueprint must not take the segment builder down.
    slugs |= set(blueprint_slugs())
    namer = Names()
    found = []
    for slug in sorted(slugs):
        blueprint = namer.blueprint(slug)
        steps = (
            [(s.name, describe_step(s, blueprint)) for s in blueprint.steps] if blueprint else []
        )
        found.append((slug, namer.campaign(slug), steps or [("launch", LAUNCH_LABEL)]))
    return found


@router.get("/segments", response_class=HTMLResponse)
def segment_list(request: Request, staff: Reader, session: DB, notice: str = "") -> HTMLResponse:
    saved = session.exec(select(SavedSegment).order_by(col(SavedSegment.name))).all()
    counts = {s.id: evaluate(session, s.definition, None) for s in saved}
    return page(
        request,
        "segments.html",
        staff,
        saved=saved,
        counts=counts,
        to_toml=to_toml,
        notice={"saved": "Segment byl uložen.", "deleted": "Segment byl smazán."}.get(notice),
    )


def _builder(
    request: Request, staff: Any, session: Session, segment: SavedSegment | None
) -> HTMLResponse:
    definition = segment.definition if segment else {}
    return page(
        request,
        "segment_builder.html",
        staff,
        segment=segment,
        fields=builder_fields(),
        state=definition_to_form(definition),
        campaigns=_campaigns(session),
        result=evaluate(session, definition, None),
    )


@router.get("/segments/new", response_class=HTMLResponse)
def segment_new(request: Request, staff: Reader, session: DB) -> HTMLResponse:
    return _builder(request, staff, session, None)


@router.get("/segments/preview.json")
def segment_preview(request: Request, staff: Reader, session: DB) -> JSONResponse:
    params = request.query_params
    definition = form_to_definition(params, params.getlist)
    result = evaluate(session, definition, params.get("campaign"))
    return JSONResponse(result, headers={"Cache-Control": "no-store"})


@router.get("/segments/{segment_id}", response_class=HTMLResponse)
def segment_edit(request: Request, segment_id: RowId, staff: Reader, session: DB) -> HTMLResponse:
    segment = session.get(SavedSegment, segment_id)
    if segment is None:
        raise HTTPException(status_code=404, detail="Segment neexistuje.")
    return _builder(request, staff, session, segment)


@router.post("/segments")
async def segment_save(request: Request, staff: Editor, session: DB) -> Response:
    form = await request.form()
    name = str(form.get("name", "")).strip()
    definition = form_to_definition(form, form.getlist)
    result = evaluate(session, definition, str(form.get("campaign", "")) or None)
    segment = None
    if form.get("segment_id"):
        segment_id = parse_row_id(form.get("segment_id"))
        segment = session.get(SavedSegment, segment_id) if segment_id else None
        if segment is None:
            raise HTTPException(status_code=404, detail="Segment neexistuje.")
    clash = session.exec(select(SavedSegment).where(SavedSegment.name == name)).first()
    error = None
    if not name:
        error = "Zadejte název segmentu."
    elif len(name) > NAME_MAX:
        error = f"Název segmentu může mít nejvýše {NAME_MAX} znaků."
    elif result["error"]:
        error = result["error"]
    elif clash is not None and (segment is None or clash.id != segment.id):
        error = f"Segment „{name}“ už existuje; zvolte jiný název."
    if error:
        return page(
            request,
            "segment_builder.html",
            staff,
            status_code=422,
            error=error,
            segment=segment,
            name=name,
            fields=builder_fields(),
            state=definition_to_form(definition),
            campaigns=_campaigns(session),
            result=result,
        )
    if segment is None:
        segment = SavedSegment(name=name, definition=definition)
    segment.name = name
    segment.definition = definition
    segment.updated_at = datetime.now(UTC)
    session.add(segment)
    audit(session, staff.email, "segment_save", name, definition=definition)
    session.commit()
    return RedirectResponse("/console/segments?notice=saved", status_code=303)


@router.post("/segments/{segment_id}/delete")
def segment_delete(segment_id: RowId, staff: Editor, session: DB) -> Response:
    segment = session.get(SavedSegment, segment_id)
    if segment is None:
        raise HTTPException(status_code=404, detail="Segment neexistuje.")
    audit(session, staff.email, "segment_delete", segment.name, definition=segment.definition)
    session.delete(segment)
    session.commit()
    return RedirectResponse("/console/segments?notice=deleted", status_code=303)
