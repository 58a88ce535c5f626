"""„Automatické e-maily“: staff read and reword the transactional messages (confirmations,
welcomes, decisions) with the kind's placeholders, preview them at desktop and phone width
with sample values, save a new revision (refused, with the field and line, when a text does
not render), and reset a kind to its default wording. Editors and admins write; viewers
read."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from mailer.compose import notice_store
from mailer.compose.composer import Composer
from mailer.compose.notice_texts import (
    Wording,
    WordingError,
    WordingProblem,
    apply_wording,
    check_wording,
    join_paragraphs,
    split_paragraphs,
)
from mailer.compose.transactional import Notice, freeze_notice
from mailer.settings import get_settings
from mailer.signups.notice_kinds import KINDS, NoticeKind
from mailer.web.console.admin import neutralise_tracking
from mailer.web.console.audit import audit
from mailer.web.console.auth import DB, Editor, Reader
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)

NOTICES = {
    "saved": "Text je uložený. Další e-maily tohoto druhu už půjdou s ním.",
    "reset": "Obnoven výchozí text. Další e-maily tohoto druhu půjdou s ním.",
}
ONE_LINE_LIMIT = 1000
TEXT_LIMIT = 20000

_RACE = "Text právě uložil někdo jiný. Načtěte stránku znovu a změny zopakujte; nic se neuložilo."

OneLine = Annotated[str, Form(max_length=ONE_LINE_LIMIT)]
LongText = Annotated[str, Form(max_length=TEXT_LIMIT)]


def _kind_or_404(kind: str) -> NoticeKind:
    found = KINDS.get(kind)
    if found is None:
        raise HTTPException(status_code=404, detail="Takový automatický e-mail neexistuje.")
    return found


def _form(wording: Wording) -> dict[str, str]:
    return {
        "subject": wording.subject,
        "preheader": wording.preheader,
        "heading": wording.heading,
        "greeting": wording.greeting,
        "paragraphs": join_paragraphs(wording.paragraphs),
        "button_label": wording.button_label,
        "after": join_paragraphs(wording.after),
        "why": wording.why,
    }


def sample_notice(kind: NoticeKind, wording: Wording) -> Notice:
    """The message of `kind` as a recipient would get it, with the kind's sample values."""
    base = get_settings().base_url.rstrip("/")
    blank = Notice(
        kind=kind.kind,
        subject="",
        heading="",
        paragraphs=[],
        button_label="",
        button_url=base + kind.sample_path,
        why="",
        details=list(kind.sample_details),
        values=kind.samples(),
    )
    return apply_wording(blank, wording)


def _preview(kind: NoticeKind, wording: Wording) -> dict[str, str]:
    composer = Composer(freeze_notice(sample_notice(kind, wording)), 0)
    return {
        "subject": composer.subject(None),
        "html": neutralise_tracking(composer.web_html(None), get_settings().base_url),
        "text": composer.text(None),
    }


def _edit_page(
    request: Request,
    staff: Any,
    session: Session,
    kind: NoticeKind,
    wording: Wording,
    revision: int,
    *,
    problems: list[WordingProblem] | None = None,
    notice: str | None = None,
    error: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    preview = None
    if not problems:
        try:
            preview = _preview(kind, wording)
        except WordingError as exc:
            problems = [exc.problem]
    in_force = notice_store.in_force(session, kind.kind)
    return page(
        request,
        "notice_text.html",
        staff,
        status_code=status_code,
        kind=kind,
        form=_form(wording),
        revision=revision,
        changed=in_force.wording is not None,
        placeholders=kind.all_placeholders(),
        problems=[str(p) for p in problems or []],
        problem_fields={p.field for p in problems or []},
        preview=preview,
        history=notice_store.history(session, kind.kind),
        notice=notice,
        error=error,
    )


@router.get("/notices", response_class=HTMLResponse)
def notice_list(request: Request, staff: Reader, session: DB) -> HTMLResponse:
    in_force = notice_store.all_in_force(session)
    rows = [(kind, in_force.get(kind.kind)) for kind in KINDS.values()]
    return page(request, "notice_texts.html", staff, rows=rows)


@router.get("/notices/{kind}", response_class=HTMLResponse)
def notice_edit(
    request: Request, kind: str, staff: Reader, session: DB, notice: str = ""
) -> HTMLResponse:
    found = _kind_or_404(kind)
    current = notice_store.in_force(session, found.kind)
    return _edit_page(
        request,
        staff,
        session,
        found,
        current.wording or found.default,
        current.number,
        notice=NOTICES.get(notice),
    )


@router.post("/notices/{kind}")
def notice_save(
    request: Request,
    kind: str,
    staff: Editor,
    session: DB,
    subject: OneLine = "",
    preheader: OneLine = "",
    heading: OneLine = "",
    greeting: OneLine = "",
    paragraphs: LongText = "",
    button_label: OneLine = "",
    after: LongText = "",
    why: LongText = "",
    revision: Annotated[str, Form(max_length=12)] = "",
    op: Annotated[str, Form(max_length=20)] = "save",
) -> Response:
    found = _kind_or_404(kind)
    wording = Wording(
        subject=subject,
        preheader=preheader,
        heading=heading,
        greeting=greeting,
        paragraphs=split_paragraphs(paragraphs),
        button_label=button_label,
        after=split_paragraphs(after),
        why=why.strip(),
    )
    base = int(revision) if revision.isdigit() and len(revision) < 10 else 0
    problems = check_wording(wording, found.samples())
    if op == "preview":
        return _edit_page(request, staff, session, found, wording, base, problems=problems)
    if problems:
        return _edit_page(
            request,
            staff,
            session,
            found,
            wording,
            base,
            problems=problems,
            error="Text nebyl uložen. Opravte prosím chyby vyznačené níže.",
            status_code=422,
        )
    try:
        saved = notice_store.save(
            session, found.kind, wording, author=staff.email, base_revision=base
        )
        audit(session, staff.email, "notice_text_save", found.label, revision=saved.number)
        session.commit()
    except (notice_store.ConcurrentEdit, IntegrityError) as exc:
        # Someone saved in between (seen by the base revision, or by the unique number when
        # two saves race): 409 and the typed text stays in the form.
        session.rollback()
        return _edit_page(
            request,
            staff,
            session,
            found,
            wording,
            base,
            error=str(exc) if isinstance(exc, notice_store.ConcurrentEdit) else _RACE,
            status_code=409,
        )
    return RedirectResponse(f"/console/notices/{found.kind}?notice=saved", status_code=303)


@router.post("/notices/{kind}/reset")
def notice_reset(
    kind: str,
    staff: Editor,
    session: DB,
    revision: Annotated[str, Form(max_length=12)] = "",
) -> Response:
    found = _kind_or_404(kind)
    current = notice_store.in_force(session, found.kind)
    if current.wording is None:
        return RedirectResponse(f"/console/notices/{found.kind}?notice=reset", status_code=303)
    base = int(revision) if revision.isdigit() and len(revision) < 10 else current.number
    try:
        saved = notice_store.save(session, found.kind, None, author=staff.email, base_revision=base)
        audit(session, staff.email, "notice_text_reset", found.label, revision=saved.number)
        session.commit()
    except (notice_store.ConcurrentEdit, IntegrityError) as exc:
        session.rollback()
        raise HTTPException(status_code=409, detail=_RACE) from exc
    return RedirectResponse(f"/console/notices/{found.kind}?notice=reset", status_code=303)
