"""Campaigns and runs: blueprints with their steps and runs, preview for any contact at two
widths, a test send to oneself, launch/schedule/pause/resume/cancel behind a confirmation that
states the audience size, and the live progress of a sending run."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email import message_from_bytes, policy
from typing import Annotated, Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from mailer.audience.addresses import InvalidAddress, normalize_email
from mailer.compose.campaigns import BlueprintError, blueprint_slugs, load_blueprint
from mailer.compose.composer import Composer, Recipient
from mailer.compose.dkim import DkimKeyError
from mailer.compose.freeze import freeze, shown_subject
from mailer.delivery import runs
from mailer.delivery.readiness import readiness
from mailer.delivery.transport import transport_from_url
from mailer.models import (
    CAMPAIGN_RUNS,
    Contact,
    Library,
    MessageStatus,
    OutboxMessage,
    Run,
    RunStatus,
    ScheduledStep,
    StepStatus,
)
from mailer.scheduling.sync import sync_blueprints
from mailer.scheduling.windows import QUIET_PREFIX
from mailer.settings import get_settings
from mailer.web.console.admin import neutralise_tracking
from mailer.web.console.audience import audience, audience_contacts, untracked_note
from mailer.web.console.audit import audit
from mailer.web.console.auth import DB, DBEngine, Editor, Reader
from mailer.web.console.progress import run_counts, run_progress
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute
from mailer.web.params import Count, RowId, parse_row_id

router = APIRouter(route_class=ConsoleRoute)
ACTIONS = {
    "pause": ("Pozastavit rozesílku", "pozastavit"),
    "resume": ("Obnovit rozesílku", "obnovit"),
    "cancel": ("Zrušit rozesílku", "zrušit"),
}
# Which run states each action applies to.
ACTION_FROM = {
    "pause": {RunStatus.SENDING, RunStatus.SCHEDULED},
    "resume": {RunStatus.PAUSED},
    "cancel": {RunStatus.SENDING, RunStatus.SCHEDULED, RunStatus.PAUSED},
}


def _allowed(run: Run, action: str) -> bool:
    if run.status in ACTION_FROM[action]:
        return True
    # The scheduler resumes a run it paused outside the sending window by itself; staff may
    # still pause it, to keep it paused until they resume it.
    return (
        action == "pause"
        and run.status == RunStatus.PAUSED
        and (run.status_reason or "").startswith(QUIET_PREFIX)
    )


def _blueprint(slug: str) -> Any:
    try:
        return load_blueprint(slug)
    except (BlueprintError, FileNotFoundError, KeyError) as exc:
        raise HTTPException(
            status_code=404, detail=f"Kampaň „{slug[:80]}“ nelze načíst: {exc}"
        ) from exc


def _step_or_404(blueprint: Any, step: str) -> Any:
    try:
        return blueprint.step(step)
    except KeyError as exc:
        raise HTTPException(status_code=404, detail=f"Kampaň nemá krok {step}.") from exc


def _runs_by_campaign(session: Session) -> dict[str, list[Run]]:
    runs: dict[str, list[Run]] = {}
    for run in session.exec(select(Run).where(CAMPAIGN_RUNS).order_by(col(Run.id))).all():
        runs.setdefault(run.campaign, []).append(run)
    return runs


@router.get("/campaigns", response_class=HTMLResponse)
def campaign_list(request: Request, staff: Reader, session: DB) -> HTMLResponse:
    blueprints, problems = [], []
    for slug in blueprint_slugs():
        try:
            blueprints.append(load_blueprint(slug))
        except (BlueprintError, ValueError, OSError) as exc:
            problems.append((slug, str(exc)))
    runs = _runs_by_campaign(session)
    sizes = {b.slug: audience(session, b, "launch")[0] for b in blueprints}
    return page(
        request,
        "campaigns.html",
        staff,
        blueprints=blueprints,
        problems=problems,
        runs=runs,
        sizes=sizes,
    )


@router.get("/campaigns/{slug}", response_class=HTMLResponse)
def campaign_detail(
    request: Request, slug: str, staff: Reader, session: DB, notice: str = ""
) -> HTMLResponse:
    blueprint = _blueprint(slug)
    runs = {r.step: r for r in session.exec(select(Run).where(Run.campaign == slug)).all()}
    scheduled = {
        s.step: s
        for s in session.exec(select(ScheduledStep).where(ScheduledStep.campaign == slug)).all()
    }
    counts = run_counts(session, [r.id for r in runs.values() if r.id is not None])
    launch_run = runs.get("launch")
    steps = []
    for step in blueprint.steps:
        # One time per step: the scheduler's when it has the step (it counts reminders from
        # the real launch), else the blueprint's, counted from the launch run's creation.
        row = scheduled.get(step.name)
        try:
            due = (
                row.due_at
                if row is not None
                else blueprint.due_at(step, launch_run.created_at if launch_run else None)
            )
        except Exception:  # a reminder relative to an event that is not set
            due = None
        starts = None
        if due is not None and (row is None or row.status == StepStatus.PENDING):
            starts = blueprint.sending_window.next_open(due)
        size, problem = audience(session, blueprint, step.name)
        steps.append(
            {
                "step": step,
                "due": due,
                "starts": starts if starts != due else None,
                "size": size,
                "problem": problem,
                "untracked": untracked_note(session, blueprint, step.name),
                "subject": shown_subject(blueprint, step.name),
            }
        )
    return page(
        request,
        "campaign.html",
        staff,
        blueprint=blueprint,
        steps=steps,
        runs=runs,
        scheduled=scheduled,
        counts=counts,
        notice={
            "test": "Zkušební e-mail byl odeslán na vaši adresu.",
            "scheduled": "Kampaň byla naplánována.",
        }.get(notice),
    )


def _find_contact(session: Session, raw: str) -> Contact | None:
    raw = raw.strip()
    if not raw or len(raw) > 320:
        return None
    if raw.isdigit():
        contact_id = parse_row_id(raw)
        return session.get(Contact, contact_id) if contact_id else None
    return session.exec(select(Contact).where(Contact.email == raw.lower())).first()


def _preview_parts(
    blueprint: Any, step: str, contact: Contact, library: Library | None, to: str | None = None
) -> dict[str, Any]:
    """Subject, headers and the HTML a contact would get (a test send uses another address)."""
    content = freeze(blueprint, step)
    composer = Composer(content, 0)
    person = contact
    if to is not None:
        person = Contact(**contact.model_dump(exclude={"email"}), email=to)
    recipient = Recipient.from_rows(0, person, library)
    return {
        "content": content,
        "message": composer.message(recipient),
        "html": composer.web_html(recipient),
    }


@router.get("/campaigns/{slug}/preview", response_class=HTMLResponse)
def campaign_preview(
    request: Request,
    slug: str,
    staff: Reader,
    session: DB,
    step: str = "launch",
    contact: str = "",
) -> HTMLResponse:
    blueprint = _blueprint(slug)
    _step_or_404(blueprint, step)
    candidates = audience_contacts(session, blueprint, step)
    chosen = _find_contact(session, contact)
    error = None
    if contact and chosen is None:
        error = f"Kontakt „{contact}“ neexistuje."
    if chosen is None and candidates:
        chosen = candidates[0][0]
    if chosen is None:
        chosen = session.exec(select(Contact).order_by(col(Contact.id))).first()
    preview = None
    if chosen is not None:
        library = session.get(Library, chosen.library_id) if chosen.library_id else None
        try:
            parts = _preview_parts(blueprint, step, chosen, library)
        except Exception as exc:  # show the compose error to staff instead of a 500
            error = f"Náhled nelze vytvořit: {exc}"
        else:
            parsed = message_from_bytes(parts["message"].data, policy=policy.default)
            preview = {
                "html": neutralise_tracking(parts["html"], get_settings().base_url),
                "subject": str(parsed.get("Subject", "")),
                "from": str(parsed.get("From", "")),
                "to": str(parsed.get("To", "")),
                "reply_to": str(parsed.get("Reply-To", "")),
                "list_unsubscribe": str(parsed.get("List-Unsubscribe", "")),
                "text": _text_part(parsed),
            }
    return page(
        request,
        "preview.html",
        staff,
        blueprint=blueprint,
        step=step,
        contact=chosen,
        candidates=candidates,
        preview=preview,
        error=error,
    )


def _text_part(message: Any) -> str:
    part = message.get_body(preferencelist=("plain",))
    return part.get_content() if part is not None else ""


def _send_one(envelope_from: str, to: str, data: bytes) -> str:
    async def go() -> str:
        transport = transport_from_url(get_settings().resolved_smtp_url())
        try:
            result = await transport.send(envelope_from, [to], data)
        finally:
            await transport.close()
        if not result.ok:
            raise RuntimeError(result.describe())
        return result.describe()

    return asyncio.run(go())


@router.post("/campaigns/{slug}/test-send")
def campaign_test_send(
    request: Request,
    slug: str,
    staff: Editor,
    session: DB,
    step: Annotated[str, Form()] = "launch",
    contact_id: Annotated[RowId | None, Form()] = None,
) -> Response:
    """The message a contact would get, sent to the signed-in user's own address."""
    blueprint = _blueprint(slug)
    _step_or_404(blueprint, step)
    contact = session.get(Contact, contact_id) if contact_id else None
    if contact is None:
        raise HTTPException(status_code=404, detail="Kontakt pro zkušební e-mail neexistuje.")
    try:
        # An account from before staff addresses were validated may hold anything.
        to = normalize_email(staff.email)
    except InvalidAddress as exc:
        return page(
            request,
            "message.html",
            staff,
            status_code=422,
            title="Zkušební e-mail nelze odeslat",
            error=f"Vaše adresa v konzoli není platná ({exc.reason}). Požádejte správce, "
            "aby ji opravil.",
            back=f"/console/campaigns/{slug}",
        )
    library = session.get(Library, contact.library_id) if contact.library_id else None
    try:
        parts = _preview_parts(blueprint, step, contact, library, to=to)
    except DkimKeyError as exc:
        return page(
            request,
            "message.html",
            staff,
            status_code=422,
            title="Zkušební e-mail nelze podepsat",
            error=str(exc),
            back=f"/console/campaigns/{slug}",
        )
    message = parts["message"]
    try:
        outcome = _send_one(message.envelope_from, to, message.data)
    except (OSError, RuntimeError) as exc:
        return page(
            request,
            "message.html",
            staff,
            status_code=502,
            title="Zkušební e-mail se nepodařilo odeslat",
            error=str(exc),
            back=f"/console/campaigns/{slug}/preview?step={step}&contact={contact.id}",
        )
    audit(
        session, staff.email, "test_send", f"{slug}/{step}", contact_id=contact.id, result=outcome
    )
    session.commit()
    return RedirectResponse(f"/console/campaigns/{slug}?notice=test", status_code=303)


@router.get("/campaigns/{slug}/launch", response_class=HTMLResponse)
def campaign_launch_confirm(
    request: Request, slug: str, staff: Reader, session: DB, step: str = "launch"
) -> HTMLResponse:
    blueprint = _blueprint(slug)
    _step_or_404(blueprint, step)
    size, problem = audience(session, blueprint, step)
    existing = session.exec(select(Run).where(Run.campaign == slug, Run.step == step)).first()
    return _launch_page(request, staff, session, blueprint, step, size, problem, existing)


def _launch_page(
    request: Request,
    staff: Any,
    session: Session,
    blueprint: Any,
    step: str,
    size: int | None,
    problem: str | None,
    existing: Run | None,
    *,
    confirmed_size: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    slug = blueprint.slug
    now = datetime.now(UTC)
    window = blueprint.sending_window
    return page(
        request,
        "launch.html",
        staff,
        status_code=status_code,
        confirmed_size=confirmed_size,
        blueprint=blueprint,
        step=step,
        size=size,
        problem=problem,
        untracked=untracked_note(session, blueprint, step),
        existing=existing,
        due=blueprint.due_at(step),
        scheduled=session.exec(
            select(ScheduledStep).where(ScheduledStep.campaign == slug, ScheduledStep.step == step)
        ).first(),
        transport=transport_note(),
        readiness=readiness(blueprint),
        now=now,
        window_open=window.is_open(now),
        window_text=window.describe(),
        starts_at=runs.window_start(blueprint, now),
    )


@router.post("/campaigns/{slug}/launch")
def campaign_launch(
    request: Request,
    slug: str,
    staff: Editor,
    session: DB,
    engine: DBEngine,
    step: Annotated[str, Form()] = "launch",
    confirmed_size: Annotated[Count | None, Form()] = None,
    immediately: Annotated[bool, Form()] = False,
) -> Response:
    blueprint = _blueprint(slug)
    _step_or_404(blueprint, step)
    existing = session.exec(select(Run).where(Run.campaign == slug, Run.step == step)).first()
    if existing is None:
        # Staff confirmed a number of recipients; imports, unsubscribes or a changed segment
        # since then mean they would send to an audience they did not see. Any difference
        # (or no confirmed number at all) shows the confirmation again with today's size.
        size, problem = audience(session, blueprint, step)
        if problem is None and size != confirmed_size:
            return _launch_page(
                request,
                staff,
                session,
                blueprint,
                step,
                size,
                problem,
                existing,
                confirmed_size=confirmed_size,
                status_code=409,
            )
    # delivery.runs.launch writes the audit entry (actor, run, recipients) itself.
    try:
        # Outside the sending window the run waits for it to open, unless staff ticked
        # "send at once" (and confirmed it).
        result = runs.launch(
            engine,
            blueprint,
            step,
            actor=staff.email,
            keep_window=True,
            outside_window=immediately,
        )
    except runs.BlueprintRejected as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    return RedirectResponse(f"/console/runs/{result.run_id}", status_code=303)


@router.post("/campaigns/{slug}/schedule")
def campaign_schedule(
    slug: str,
    staff: Editor,
    session: DB,
    engine: DBEngine,
    confirmed_size: Annotated[Count | None, Form()] = None,
) -> Response:
    """Hands the campaign to the scheduler now, at the times its campaign.toml sets.

    The blueprint is the one place send times live (staff review it, the scheduler re-reads
    it), so the console schedules by it instead of keeping a second time that the scheduler's
    next sync would overwrite."""
    _blueprint(slug)
    report = sync_blueprints(engine, slugs=[slug])
    if slug in report.invalid:
        raise HTTPException(
            status_code=422,
            detail="Kampaň nelze naplánovat: " + "; ".join(report.invalid[slug]),
        )
    planned = {p.step: p.due_at.isoformat() for p in report.steps if p.campaign == slug}
    audit(session, staff.email, "schedule", slug, steps=planned, confirmed_size=confirmed_size)
    session.commit()
    return RedirectResponse(f"/console/campaigns/{slug}?notice=scheduled", status_code=303)


def transport_note() -> str:
    """Where launched messages go, said plainly (never showing a password in the URL)."""
    url = get_settings().resolved_smtp_url()
    if url.startswith("capture://"):
        return (
            "Zkušební nastavení: nic neodejde ven, zprávy se uloží jako soubory "
            "a přečtete si je v části Zachycené zprávy."
        )
    if url.startswith("null://"):
        return "Zprávy se zahodí (nastavení pro měření výkonu)."
    parts = urlsplit(url)
    return f"Zprávy odejdou přes poštovní server {parts.hostname}:{parts.port or 25}."


def _run_or_404(session: Session, run_id: int) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise HTTPException(status_code=404, detail="Rozesílka neexistuje.")
    return run


@router.get("/runs", response_class=HTMLResponse)
def run_list(request: Request, staff: Reader, session: DB) -> HTMLResponse:
    runs = session.exec(
        select(Run).where(CAMPAIGN_RUNS).order_by(col(Run.id).desc()).limit(200)
    ).all()
    return page(
        request,
        "runs.html",
        staff,
        runs=runs,
        counts=run_counts(session, [r.id for r in runs if r.id is not None]),
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_detail(request: Request, run_id: RowId, staff: Reader, session: DB) -> HTMLResponse:
    run = _run_or_404(session, run_id)
    failures = session.exec(
        select(OutboxMessage)
        .where(OutboxMessage.run_id == run_id)
        .where(col(OutboxMessage.status).in_([MessageStatus.FAILED, MessageStatus.RETRY]))
        .order_by(col(OutboxMessage.id))
        .limit(50)
    ).all()
    return page(
        request,
        "run.html",
        staff,
        run=run,
        progress=run_progress(session, run),
        failures=failures,
        actions=[a for a in ACTION_FROM if _allowed(run, a)],
        action_labels=ACTIONS,
        now=datetime.now(UTC),
    )


@router.get("/runs/{run_id}/progress.json")
def run_progress_json(run_id: RowId, staff: Reader, session: DB) -> JSONResponse:
    run = _run_or_404(session, run_id)
    return JSONResponse(run_progress(session, run), headers={"Cache-Control": "no-store"})


def _waiting(session: Session, run_id: int) -> int:
    return int(
        session.execute(
            sa.select(sa.func.count())
            .select_from(OutboxMessage)
            .where(
                OutboxMessage.run_id == run_id,  # type: ignore[arg-type]
                col(OutboxMessage.status).in_(
                    [MessageStatus.QUEUED, MessageStatus.RETRY, MessageStatus.SENDING]
                ),
            )
        ).scalar_one()
    )


@router.get("/runs/{run_id}/action/{action}", response_class=HTMLResponse)
def run_action_confirm(
    request: Request, run_id: RowId, action: str, staff: Reader, session: DB
) -> HTMLResponse:
    if action not in ACTIONS:
        raise HTTPException(status_code=404)
    run = _run_or_404(session, run_id)
    return page(
        request,
        "run_action.html",
        staff,
        run=run,
        action=action,
        label=ACTIONS[action],
        allowed=_allowed(run, action),
        waiting=_waiting(session, run_id),
    )


@router.post("/runs/{run_id}/action/{action}")
def run_action(
    run_id: RowId,
    action: str,
    staff: Editor,
    session: DB,
    engine: DBEngine,
    reason: Annotated[str, Form()] = "",
) -> Response:
    if action not in ACTIONS:
        raise HTTPException(status_code=404)
    run = _run_or_404(session, run_id)
    if not _allowed(run, action):
        raise HTTPException(
            status_code=409, detail="Rozesílka je v jiném stavu, akci nelze provést."
        )
    why = reason.strip() or f"konzole: {staff.email}"
    session.rollback()  # release the read transaction: delivery locks the run row itself
    # delivery.runs writes the audit entry of each action, with the signed-in user as actor.
    try:
        if action == "pause":
            runs.pause(engine, run_id, why, actor=staff.email)
        elif action == "resume":
            runs.resume(engine, run_id, actor=staff.email)
        else:
            runs.cancel(engine, run_id, why, actor=staff.email)
    except runs.RunStateError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    return RedirectResponse(f"/console/runs/{run_id}", status_code=303)
