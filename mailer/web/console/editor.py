"""The campaign editor: start a campaign from a starter or a copy, write it in blocks (or MJML
source), pick its audience, times and reminders, preview it live at two widths, and save it
as a new revision (refused when someone saved in between). Editors and admins write; viewers
see the same page read-only."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from mailer.compose import store
from mailer.compose.blocks import BLOCK_TYPES, PLACEHOLDERS
from mailer.compose.campaigns import SLUG_RE, BlueprintError, blueprint_slugs, load_blueprint
from mailer.compose.composer import Composer, Recipient
from mailer.compose.drafts import (
    REMINDER_AUDIENCES,
    Draft,
    block_problems,
    blocks_by_index,
    draft_files,
    draft_from_files,
    settings_toml,
    validate_files,
)
from mailer.compose.freeze import freeze, shown_subject
from mailer.compose.media import library, media_map
from mailer.compose.starters import STARTERS
from mailer.models import Contact, Library, Run, SavedSegment
from mailer.settings import get_settings
from mailer.web.console.admin import neutralise_tracking
from mailer.web.console.audience import audience, audience_contacts
from mailer.web.console.auth import DB, DBEngine, Editor, Reader
from mailer.web.console.editor_form import (
    apply_operation,
    draft_to_form,
    form_to_draft,
    slugify,
)
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute
from mailer.web.console.segments import builder_fields, definition_to_form

router = APIRouter(route_class=ConsoleRoute)


def _stored_or_404(engine: Any, slug: str) -> store.StoredRevision:
    found = store.latest(engine, slug) if SLUG_RE.match(slug) else None
    if found is None:
        # A shipped folder not yet synced joins the database the first time it is opened.
        found = _sync_one(engine, slug)
    if found is None:
        raise HTTPException(status_code=404, detail="Kampaň neexistuje.")
    return found


def _sync_one(engine: Any, slug: str) -> store.StoredRevision | None:
    folder = get_settings().campaigns_dir / slug
    if SLUG_RE.match(slug) and (folder / "campaign.toml").is_file():
        store.sync_folder(engine, folder)
        return store.latest(engine, slug)
    return None


def _unique_slug(engine: Any, name: str) -> str:
    base = slugify(name)
    taken = set(store.stored_slugs(engine)) | set(blueprint_slugs())
    slug, number = base, 2
    while slug in taken or not SLUG_RE.match(slug):
        slug = f"{base[:64]}-{number}"
        number += 1
    return slug


# --- new campaign ----------------------------------------------------------------------------


@router.get("/campaigns/new", response_class=HTMLResponse)
def campaign_new(request: Request, staff: Reader, engine: DBEngine) -> HTMLResponse:
    copies = []
    for slug in blueprint_slugs():
        try:
            copies.append((slug, load_blueprint(slug).name))
        except (BlueprintError, ValueError, OSError):
            continue
    return page(
        request,
        "campaign_new.html",
        staff,
        starters=[(key, label, about) for key, (label, about, _) in STARTERS.items()],
        copies=copies,
    )


@router.post("/campaigns/new")
def campaign_create(
    request: Request,
    staff: Editor,
    engine: DBEngine,
    name: Annotated[str, Form(max_length=300)] = "",
    starter: Annotated[str, Form(max_length=40)] = "",
    copy_from: Annotated[str, Form(max_length=120)] = "",
) -> Response:
    if starter in STARTERS:
        draft = STARTERS[starter][2](date.today())
        summary = f"Nová kampaň podle vzoru „{STARTERS[starter][0]}“"
    elif copy_from:
        source = _stored_or_404(engine, copy_from)
        draft = draft_from_files(source.files)
        draft.settings["name"] = f"Kopie – {draft.settings.get('name', copy_from)}"
        summary = f"Kopie kampaně {draft.settings['name'].removeprefix('Kopie – ')}"
    else:
        raise HTTPException(status_code=422, detail="Vyberte vzor nebo kampaň ke zkopírování.")
    if name.strip():
        draft.settings["name"] = name.strip()
    slug = _unique_slug(engine, str(draft.settings.get("name", "kampan")))
    files, _ = draft_files(draft, media_map(engine))
    if draft.blocks is None and copy_from:
        # A copy of a campaign written as source keeps its body files exactly.
        files = {**source.files, "campaign.toml": settings_toml(draft.settings)}
    store.save(engine, slug, files, author=staff.email, summary=summary, base_revision=None)
    return RedirectResponse(f"/console/campaigns/{slug}/edit?notice=created", status_code=303)


# --- the editor --------------------------------------------------------------------------------


def _launched(session: Session, slug: str) -> list[dict[str, Any]]:
    """Steps already sent, with the revision each froze: later edits do not reach them."""
    rows = session.exec(select(Run).where(Run.campaign == slug).order_by(col(Run.id))).all()
    return [
        {"step": r.step, "revision": (r.content or {}).get("revision"), "id": r.id} for r in rows
    ]


def _preview_subject(slug: str | None) -> str | None:
    """The stored campaign's subject as sent, for the preview before the live one arrives."""
    if not slug:
        return None
    try:
        return shown_subject(load_blueprint(slug))
    except Exception:  # a draft that does not load yet: the form shows what was typed
        return None


def _saved_segments(session: Session) -> list[dict[str, Any]]:
    return [
        {"id": s.id, "name": s.name, "state": definition_to_form(s.definition)}
        for s in session.exec(select(SavedSegment).order_by(col(SavedSegment.name))).all()
    ]


def _editor_page(
    request: Request,
    staff: Any,
    session: Session,
    engine: Any,
    slug: str,
    draft: Draft,
    revision: int,
    *,
    notice: str | None = None,
    error: str | None = None,
    problems: tuple[dict[int, list[str]], list[str]] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    form = draft_to_form(draft)
    return page(
        request,
        "campaign_edit.html",
        staff,
        status_code=status_code,
        slug=slug,
        form=form,
        preview_subject=_preview_subject(slug),
        revision=revision,
        is_event=draft.is_event,
        block_types=BLOCK_TYPES,
        placeholders=[(key, label, needs) for key, (_, label, needs) in PLACEHOLDERS.items()],
        reminder_audiences=[(k, label) for k, (label, _) in REMINDER_AUDIENCES.items()],
        fields=builder_fields(),
        saved_segments=_saved_segments(session),
        images=library(engine),
        launched=_launched(session, slug),
        history=store.history(engine, slug)[:10],
        block_messages=(problems or ({}, []))[0],
        other_messages=(problems or ({}, []))[1],
        notice=notice,
        error=error,
    )


@router.get("/campaigns/{slug}/edit", response_class=HTMLResponse)
def campaign_edit(
    request: Request, slug: str, staff: Reader, session: DB, engine: DBEngine, notice: str = ""
) -> HTMLResponse:
    stored = _stored_or_404(engine, slug)
    draft = draft_from_files(stored.files)
    problems = _problems(slug, draft, engine)
    return _editor_page(
        request,
        staff,
        session,
        engine,
        slug,
        draft,
        stored.number,
        notice={
            "created": "Kampaň je založená. Upravte obsah a uložte ji.",
            "saved": "Uloženo jako nová verze.",
        }.get(notice),
        problems=problems,
    )


def _problems(slug: str, draft: Draft, engine: Any) -> tuple[dict[int, list[str]], list[str]]:
    files, body = draft_files(draft, media_map(engine))
    found = validate_files(slug, files)
    by_block, other = block_problems(found, body)
    if body is not None:
        for index, messages in blocks_by_index(body.problems).items():
            by_block.setdefault(index, [])[:0] = messages
        other[:0] = [str(p) for p in body.problems if p.block is None]
    return by_block, other


@router.post("/campaigns/{slug}/edit")
async def campaign_save(
    request: Request, slug: str, staff: Editor, session: DB, engine: DBEngine
) -> Response:
    stored = _stored_or_404(engine, slug)
    form = await request.form()
    base = draft_from_files(stored.files)
    draft, field_problems = form_to_draft(form, form.getlist, base)
    revision_text = str(form.get("revision", ""))
    revision = int(revision_text) if revision_text.isdigit() and len(revision_text) < 9 else 0
    operation = str(form.get("op", "save"))[:40]
    if operation == "to-source" and draft.blocks is not None:
        files, _ = draft_files(draft, media_map(engine))
        draft = Draft(settings=draft.settings, source=files["body.mjml"])
        return _editor_page(
            request,
            staff,
            session,
            engine,
            slug,
            draft,
            revision,
            notice="Obsah je teď ve zdrojovém kódu MJML. "
            "Bloky se uloží jako kód, až kampaň uložíte.",
        )
    if operation != "save":
        note = apply_operation(draft, operation)
        return _editor_page(request, staff, session, engine, slug, draft, revision, notice=note)
    if field_problems:
        return _editor_page(
            request,
            staff,
            session,
            engine,
            slug,
            draft,
            revision,
            error="Kampaň nebyla uložena. Opravte prosím: " + " ".join(field_problems),
            status_code=422,
        )
    files, _ = draft_files(draft, media_map(engine))
    summary = str(form.get("summary", "")).strip()[:300] or "Úprava v editoru"
    try:
        saved = store.save(
            engine, slug, files, author=staff.email, summary=summary, base_revision=revision
        )
    except store.StoreError as exc:
        # Someone else saved first: 409, so the page says to reload; anything else the store
        # refuses is the form's problem.
        return _editor_page(
            request,
            staff,
            session,
            engine,
            slug,
            draft,
            revision,
            error=str(exc),
            status_code=409 if isinstance(exc, store.ConcurrentEdit) else 422,
        )
    problems = _problems(slug, draft, engine)
    if problems[0] or problems[1]:
        return _editor_page(
            request,
            staff,
            session,
            engine,
            slug,
            draft,
            saved.number,
            notice=f"Uloženo jako verze {saved.number}. Před spuštěním je ale potřeba opravit "
            "chyby vyznačené níže.",
            problems=problems,
        )
    return RedirectResponse(f"/console/campaigns/{slug}/edit?notice=saved", status_code=303)


# --- live preview ------------------------------------------------------------------------------


def _preview_recipient(session: Session, blueprint: Any, step: str, contact: str) -> Recipient:
    chosen: Contact | None = None
    if contact.isdigit() and len(contact) < 10:
        chosen = session.get(Contact, int(contact))
    if chosen is None:
        candidates = audience_contacts(session, blueprint, step, limit=1)
        chosen = candidates[0][0] if candidates else None
    if chosen is None:
        return Recipient(
            outbox_id=0,
            email="jana.novakova@knihovna.example",
            first_name="Jana",
            last_name="Nováková",
            role="ředitelka",
            gender="f",
            library_name="Městská knihovna Příklad",
        )
    library_row = session.get(Library, chosen.library_id) if chosen.library_id else None
    return Recipient.from_rows(0, chosen, library_row)


@router.post("/campaigns/{slug}/draft-preview")
async def campaign_draft_preview(
    request: Request, slug: str, staff: Editor, session: DB, engine: DBEngine
) -> JSONResponse:
    """The unsaved draft rendered for a contact and step, its problems and audience sizes."""
    stored = _stored_or_404(engine, slug)
    form = await request.form()
    draft, field_problems = form_to_draft(form, form.getlist, draft_from_files(stored.files))
    files, body = draft_files(draft, media_map(engine))
    found = validate_files(slug, files)
    by_block, other = block_problems(found, body)
    if body is not None:
        for index, messages in blocks_by_index(body.problems).items():
            by_block.setdefault(index, [])[:0] = messages
    result: dict[str, Any] = {
        "blocks": {str(k): v for k, v in by_block.items()},
        "problems": field_problems + other,
        "html": None,
        "counts": {},
        "contacts": [],
    }
    step = str(form.get("preview_step", "launch"))[:60]
    with tempfile.TemporaryDirectory(prefix="sdruk-preview-") as tmp:
        store.write_folder(files, Path(tmp) / slug)
        try:
            blueprint = load_blueprint(slug, Path(tmp))
        except BlueprintError:
            return JSONResponse(result, headers={"Cache-Control": "no-store"})
        series: dict[str, str] = {}
        for s in blueprint.steps:
            size, problem = audience(session, blueprint, s.name)
            result["counts"][s.name] = size if problem is None else None
            if s.series is not None:
                # The form shows a per-session series as one reminder: its count is the sum
                # over the sessions, its preview the first session's message.
                series.setdefault(s.series, s.name)
                so_far = result["counts"].get(s.series, 0)
                both = None if so_far is None or problem is not None else so_far + size
                result["counts"][s.series] = both
        if step in series:
            step = series[step]
        if step not in {s.name for s in blueprint.steps}:
            step = "launch"
        result["contacts"] = [
            {"id": c.id, "label": f"{c.email} – {lib.name if lib else ''}"}
            for c, lib in audience_contacts(session, blueprint, step, limit=30)
        ]
        recipient = _preview_recipient(
            session, blueprint, step, str(form.get("preview_contact", ""))[:12]
        )
        try:
            content = freeze(blueprint, step)
            html = Composer(content, 0).web_html(recipient)
            result["html"] = neutralise_tracking(html, get_settings().base_url)
            # As recipients read it: the template filled in, not "{{ event.start | datum }}".
            result["subject"] = Composer(content, 0).subject(recipient)
        except Exception as exc:  # shown beside the preview, never a 500
            result["problems"].append(f"Náhled nelze vytvořit: {exc}")
    return JSONResponse(result, headers={"Cache-Control": "no-store"})
