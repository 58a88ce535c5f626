"""Housekeeping pages: the suppression list, the audit log, captured messages of the embedded
capture transport, and staff accounts."""

from __future__ import annotations

import math
import re
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, col, select

from mailer.audience.addresses import InvalidAddress, normalize_email
from mailer.audience.suppression import address_hash, is_suppressed, suppress
from mailer.models import AuditEntry, Suppression, User
from mailer.settings import get_settings
from mailer.web.console import sessions, twofactor
from mailer.web.console.audit import ACTOR_LABELS, audit
from mailer.web.console.auth import (
    DB,
    ROLES,
    Admin,
    AdminReader,
    Editor,
    EditorReader,
    Reader,
    create_user,
    set_password,
    validate_password,
)
from mailer.web.console.names import Names
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute
from mailer.web.params import PageNumber, RowId

router = APIRouter(route_class=ConsoleRoute)
PAGE_SIZE = 50
SUPPRESSION_REASONS = {
    "unsubscribed": "odhlášení",
    "bounced": "nedoručitelná adresa",
    "complained": "stížnost na spam",
    "erased": "výmaz (GDPR)",
    "manual": "ručně zablokováno",
}


def _count(session: Session, stmt: Any) -> int:
    return int(
        session.execute(sa.select(sa.func.count()).select_from(stmt.subquery())).scalar_one()
    )


@router.get("/suppressions", response_class=HTMLResponse)
def suppression_list(
    request: Request,
    staff: Reader,
    session: DB,
    email: str = "",
    notice: str = "",
    page_no: Annotated[PageNumber, Query(alias="page")] = 1,
) -> HTMLResponse:
    return _suppression_page(
        request,
        staff,
        session,
        email,
        page_no,
        notice={"added": "Adresa byla zablokována."}.get(notice),
    )


def _suppression_page(
    request: Request,
    staff: Any,
    session: Session,
    email: str,
    page_no: int,
    status_code: int = 200,
    **extra: Any,
) -> HTMLResponse:
    check = None
    if email.strip():
        try:
            check = {"email": email.strip(), "suppressed": is_suppressed(session, email)}
        except InvalidAddress as exc:
            check = {"email": email.strip(), "error": exc.reason}
    stmt = select(Suppression)
    total = _count(session, stmt)
    rows = session.exec(
        stmt.order_by(col(Suppression.created_at).desc())
        .offset((page_no - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    by_reason: dict[str, int] = {
        reason: n
        for reason, n in session.execute(
            sa.select(col(Suppression.reason), sa.func.count()).group_by(col(Suppression.reason))
        ).all()
    }
    return page(
        request,
        "suppressions.html",
        staff,
        status_code=status_code,
        rows=rows,
        total=total,
        by_reason=by_reason,
        reasons=SUPPRESSION_REASONS,
        check=check,
        page_no=page_no,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
        **extra,
    )


@router.post("/suppressions")
def suppression_add(
    request: Request,
    staff: Editor,
    session: DB,
    email: Annotated[str, Form()],
) -> Response:
    try:
        # Validated like contacts: the list holds addresses, not whatever was typed.
        normal = normalize_email(email)
        digest = address_hash(normal)
        suppress(session, normal, "manual")
    except InvalidAddress as exc:
        return _suppression_page(
            request,
            staff,
            session,
            "",
            1,
            status_code=422,
            error=f"Adresu nelze zablokovat: {exc.reason}",
            typed_email=email,
        )
    audit(session, staff.email, "suppress", digest[:16], address_hash=digest)
    session.commit()
    return RedirectResponse("/console/suppressions?notice=added", status_code=303)


@router.get("/audit", response_class=HTMLResponse)
def audit_log(
    request: Request,
    staff: Reader,
    session: DB,
    action: str = "",
    actor: str = "",
    page_no: Annotated[PageNumber, Query(alias="page")] = 1,
) -> HTMLResponse:
    stmt = select(AuditEntry)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    if actor:
        # Staff search what they see: "plánovač" finds the scheduler's entries too.
        programs = [key for key, label in ACTOR_LABELS.items() if actor.lower() in label.lower()]
        stmt = stmt.where(
            sa.or_(col(AuditEntry.actor).ilike(f"%{actor}%"), col(AuditEntry.actor).in_(programs))
        )
    total = _count(session, stmt)
    rows = session.exec(
        stmt.order_by(col(AuditEntry.id).desc()).offset((page_no - 1) * PAGE_SIZE).limit(PAGE_SIZE)
    ).all()
    return page(
        request,
        "audit.html",
        staff,
        rows=rows,
        total=total,
        filters={"action": action, "actor": actor},
        page_no=page_no,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
        namer=Names(session),
    )


# --- captured messages (capture:// transport) ------------------------------------------------


def _header_date(value: Any) -> datetime | None:
    # The Date header stays RFC 5322 in the message; the page shows it as a Czech date.
    try:
        return parsedate_to_datetime(str(value)) if value else None
    except (TypeError, ValueError):
        return None


# A captured message's file name; far shorter than any file system's limit (255 bytes).
_EML_NAME = re.compile(r"[A-Za-z0-9@._+-]{1,200}\.eml")


def outbox_dir() -> Path | None:
    """The capture transport's folder, when the configured transport is one."""
    url = get_settings().resolved_smtp_url()
    if not url.startswith("capture://"):
        return None
    return Path(url.removeprefix("capture://"))


def _headers_only(path: Path) -> EmailMessage:
    with path.open("rb") as fh:
        head = fh.read(16384).split(b"\r\n\r\n", 1)[0]
    return message_from_bytes(head, policy=policy.default)


@router.get("/outbox", response_class=HTMLResponse)
def outbox_list(
    request: Request,
    staff: Reader,
    q: str = "",
    page_no: Annotated[PageNumber, Query(alias="page")] = 1,
) -> HTMLResponse:
    folder = outbox_dir()
    files: list[Path] = []
    if folder is not None and folder.is_dir():
        files = sorted(folder.glob("*.eml"), key=lambda p: p.name, reverse=True)
        if q.strip():
            files = [p for p in files if q.strip().lower() in p.name.lower()]
    total = len(files)
    shown = []
    for path in files[(page_no - 1) * PAGE_SIZE : page_no * PAGE_SIZE]:
        head = _headers_only(path)
        shown.append(
            {
                "name": path.name,
                "to": str(head.get("X-Envelope-To") or head.get("To", "")),
                "subject": str(head.get("Subject", "")),
                "date": _header_date(head.get("Date")),
                "size": path.stat().st_size,
            }
        )
    return page(
        request,
        "outbox.html",
        staff,
        folder=folder,
        smtp_url=get_settings().resolved_smtp_url().split("?", 1)[0],
        files=shown,
        total=total,
        q=q,
        page_no=page_no,
        pages=max(1, math.ceil(total / PAGE_SIZE)),
    )


def _eml_path(name: str) -> Path:
    folder = outbox_dir()
    if folder is None or not _EML_NAME.fullmatch(name):
        raise HTTPException(status_code=404, detail="Zpráva neexistuje.")
    path = folder / name
    if not path.is_file():
        raise HTTPException(status_code=404, detail="Zpráva neexistuje.")
    return path


# The per-recipient routes: open pixel, clicks, web version, unsubscribe, preferences.
_RECIPIENT_ROUTES = "(?:o|c|v|u|p)"
RECIPIENT_LINK_TEXT = "[odkaz příjemce – v konzoli vypnutý]"


def neutralise_tracking(html: str, base_url: str) -> str:
    """The message as staff may look at it: without the open pixel and with every recipient
    link (tracked links, web version, unsubscribe, preferences) disabled, so reading captured
    mail in the console never counts as the recipient's open, click or web view, and never
    unsubscribes anyone."""
    base = re.escape(base_url.rstrip("/"))
    html = re.sub(rf'<img\b[^>]*\bsrc="{base}/o/[^"]*"[^>]*>', "", html, flags=re.IGNORECASE)
    return re.sub(
        rf'href="{base}/{_RECIPIENT_ROUTES}/[^"]*"',
        'href="#" title="Odkaz příjemce – v náhledu vypnutý"',
        html,
        flags=re.IGNORECASE,
    )


def neutralise_text(text: str, base_url: str, mailbox: str) -> str:
    """The same for plain text and headers: recipient links and the unsubscribe mailto
    address (which unsubscribes whoever it names) become a note."""
    base = re.escape(base_url.rstrip("/"))
    text = re.sub(rf"{base}/{_RECIPIENT_ROUTES}/[^\s\"<>)]*", RECIPIENT_LINK_TEXT, text)
    return re.sub(
        rf"mailto:{re.escape(mailbox)}\+[^\s\"<>]*", RECIPIENT_LINK_TEXT, text, flags=re.I
    )


@router.get("/outbox/{name}", response_class=HTMLResponse)
def outbox_message(request: Request, name: str, staff: EditorReader) -> HTMLResponse:
    path = _eml_path(name)
    message: EmailMessage = message_from_bytes(path.read_bytes(), policy=policy.default)
    html_part = message.get_body(preferencelist=("html",))
    text_part = message.get_body(preferencelist=("plain",))
    settings = get_settings()

    def plain(value: str) -> str:
        return neutralise_text(value, settings.base_url, settings.unsubscribe_mailbox)

    return page(
        request,
        "outbox_message.html",
        staff,
        name=name,
        headers=[(k, plain(str(v))) for k, v in message.items()],
        summary={
            "from": str(message.get("From", "")),
            "to": str(message.get("X-Envelope-To") or message.get("To", "")),
            "subject": str(message.get("Subject", "")),
            "date": _header_date(message.get("Date")),
        },
        html=neutralise_tracking(html_part.get_content(), get_settings().base_url)
        if html_part is not None
        else None,
        text=plain(text_part.get_content()) if text_part is not None else "",
        attachments=[a.get_filename() or a.get_content_type() for a in message.iter_attachments()],
    )


@router.get("/outbox/{name}/raw")
def outbox_raw(name: str, staff: EditorReader) -> Response:
    path = _eml_path(name)
    return Response(
        path.read_bytes(),
        media_type="message/rfc822",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- staff accounts --------------------------------------------------------------------------


@router.get("/users", response_class=HTMLResponse)
def user_list(request: Request, staff: AdminReader, session: DB, notice: str = "") -> HTMLResponse:
    users = session.exec(select(User).order_by(col(User.email))).all()
    return page(
        request,
        "users.html",
        staff,
        users=users,
        roles=ROLES,
        notice={
            "added": "Uživatel byl přidán.",
            "role": "Role byla změněna.",
            "password": "Heslo bylo změněno.",
            "removed": "Uživatel byl odebrán.",
            "2fa": "Dvoufázové ověření uživatele bylo zrušeno; přihlásí se jen heslem.",
        }.get(notice),
    )


def _user_error(request: Request, staff: Any, message: str) -> HTMLResponse:
    return page(
        request,
        "message.html",
        staff,
        status_code=422,
        title="Změnu nelze provést",
        error=message,
        back="/console/users",
    )


@router.post("/users")
def user_add(
    request: Request,
    staff: Admin,
    session: DB,
    email: Annotated[str, Form()],
    role: Annotated[str, Form()],
    password: Annotated[str, Form()],
    name: Annotated[str, Form()] = "",
) -> Response:
    try:
        user = create_user(session, email, role, password, name)
    except ValueError as exc:
        # The list again, with the error and what was typed (never the password).
        session.rollback()
        return page(
            request,
            "users.html",
            staff,
            status_code=422,
            users=session.exec(select(User).order_by(col(User.email))).all(),
            roles=ROLES,
            error=str(exc),
            typed={"email": email, "name": name, "role": role},
        )
    audit(session, staff.email, "user_add", user.email, role=role)
    session.commit()
    return RedirectResponse("/console/users?notice=added", status_code=303)


def _user_or_404(session: Session, user_id: int) -> User:
    user = session.get(User, user_id)
    if user is None:
        raise HTTPException(status_code=404, detail="Uživatel neexistuje.")
    return user


@router.post("/users/{user_id}/role")
def user_role(
    request: Request,
    user_id: RowId,
    staff: Admin,
    session: DB,
    role: Annotated[str, Form()],
) -> Response:
    user = _user_or_404(session, user_id)
    if role not in ROLES:
        return _user_error(request, staff, f"Neznámá role {role}.")
    if user.id == staff.user.id and role != "admin":
        return _user_error(request, staff, "Sami sobě roli správce odebrat nemůžete.")
    audit(session, staff.email, "user_role", user.email, old=user.role, new=role)
    user.role = role
    session.add(user)
    session.commit()
    return RedirectResponse("/console/users?notice=role", status_code=303)


@router.post("/users/{user_id}/password")
def user_password(
    request: Request,
    user_id: RowId,
    staff: Admin,
    session: DB,
    password: Annotated[str, Form()],
) -> Response:
    user = _user_or_404(session, user_id)
    problem = validate_password(password)
    if problem:
        return _user_error(request, staff, problem)
    # Every session of the user ends with the old password.
    set_password(session, user, password)
    audit(session, staff.email, "user_password", user.email)
    session.commit()
    return RedirectResponse("/console/users?notice=password", status_code=303)


@router.post("/users/{user_id}/2fa-reset")
def user_two_factor_reset(user_id: RowId, staff: Admin, session: DB) -> Response:
    """Recovery for a user who lost their phone: the second factor goes and every session of
    the user ends; they sign in with the password and may set it up again."""
    user = _user_or_404(session, user_id)
    assert user.id is not None
    twofactor.turn_off(session, user)
    sessions.revoke_all(session, user.id)
    audit(session, staff.email, "two_factor_reset", user.email)
    session.commit()
    return RedirectResponse("/console/users?notice=2fa", status_code=303)


@router.post("/users/{user_id}/remove")
def user_remove(request: Request, user_id: RowId, staff: Admin, session: DB) -> Response:
    user = _user_or_404(session, user_id)
    if user.id == staff.user.id:
        return _user_error(request, staff, "Sami sebe odebrat nemůžete.")
    audit(session, staff.email, "user_remove", user.email, role=user.role)
    session.delete(user)
    session.commit()
    return RedirectResponse("/console/users?notice=removed", status_code=303)
