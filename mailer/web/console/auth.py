"""Staff sign-in for the console: argon2 passwords, sessions kept in the database
(`sessions`), CSRF tokens, the sign-in throttle (`throttle`) and the role checks every route
depends on."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.audience.addresses import InvalidAddress, normalize_email
from mailer.db import get_engine
from mailer.models import ConsoleSession, User, UserRole, utcnow
from mailer.settings import get_settings
from mailer.web.console import sessions, throttle

SESSION_COOKIE = "sdruk_console"
LOGIN_CSRF_COOKIE = "sdruk_console_login"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

_hasher = PasswordHasher()
ROLES = tuple(r.value for r in UserRole)
ROLE_LABELS: dict[str, str] = {
    UserRole.ADMIN.value: "správce",
    UserRole.EDITOR.value: "editor",
    UserRole.VIEWER.value: "čtenář",
}


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def validate_password(password: str) -> str | None:
    """Why a new password is unacceptable, in Czech, or None."""
    if len(password) < 10:
        return "Heslo musí mít alespoň 10 znaků."
    return None


def create_user(session: Session, email: str, role: str, password: str, name: str = "") -> User:
    """A new staff user (the caller commits). Raises ValueError with a Czech message."""
    # The same validation as contacts: a staff address becomes a recipient of test sends.
    try:
        email = normalize_email(email)
    except InvalidAddress as exc:
        raise ValueError(f"Neplatná e-mailová adresa: {exc.reason}.") from exc
    if role not in ROLES:
        raise ValueError(f"Neznámá role {role!r}; možné: {', '.join(ROLES)}.")
    problem = validate_password(password)
    if problem:
        raise ValueError(problem)
    if session.exec(select(User).where(User.email == email)).first():
        raise ValueError(f"Uživatel {email} už existuje.")
    user = User(email=email, role=role, name=name, password_hash=hash_password(password))
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, user: User, password: str) -> None:
    """A new password (already validated): every session of the user ends, and the sign-in
    throttle forgives the account (the caller commits)."""
    assert user.id is not None
    user.password_hash = hash_password(password)
    session.add(user)
    sessions.revoke_all(session, user.id)
    throttle.forgive(session, user.email)


def cookie_options(request: Request) -> dict[str, Any]:
    secure = request.url.scheme == "https" or get_settings().base_url.startswith("https")
    return {"httponly": True, "samesite": "lax", "secure": secure, "path": "/console"}


@dataclass
class Staff:
    """The signed-in user of one request and their session (with its CSRF token)."""

    user: User
    csrf: str
    session: ConsoleSession | None = None

    @property
    def can_edit(self) -> bool:
        return self.user.role in (UserRole.ADMIN, UserRole.EDITOR)

    @property
    def is_admin(self) -> bool:
        return self.user.role == UserRole.ADMIN

    @property
    def email(self) -> str:
        return self.user.email


def engine_dep(request: Request) -> Engine:
    """The app's engine (create_app keeps it in app.state), else the configured one."""
    engine = getattr(request.app.state, "engine", None)
    return engine if isinstance(engine, Engine) else get_engine()


def db_session(engine: Annotated[Engine, Depends(engine_dep)]) -> Any:
    with Session(engine, expire_on_commit=False) as session:
        yield session


DB = Annotated[Session, Depends(db_session)]
DBEngine = Annotated[Engine, Depends(engine_dep)]


def _refuse_anonymous(request: Request) -> HTTPException:
    wants_html = "text/html" in request.headers.get("accept", "") and request.method == "GET"
    if wants_html:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return HTTPException(
            status_code=303,
            detail="Přihlaste se.",
            headers={"Location": f"/console/login?next={quote(target, safe='')}"},
        )
    return HTTPException(status_code=401, detail="Přihlaste se do konzole.")


def staff_of(request: Request, session: Session) -> Staff | None:
    """The signed-in staff of a request (a live session of an existing user, past the second
    factor when the user has one), or None."""
    row = sessions.find(session, request.cookies.get(SESSION_COOKIE))
    if row is None or row.second_factor_pending:
        return None
    user = session.get(User, row.user_id)
    if user is None:
        return None
    return Staff(user=user, csrf=row.csrf, session=row)


def waiting_for_code(request: Request, session: Session) -> Staff | None:
    """The user whose password was accepted and who still has to type the second factor."""
    row = sessions.find(session, request.cookies.get(SESSION_COOKIE))
    if row is None or not row.second_factor_pending:
        return None
    user = session.get(User, row.user_id)
    return Staff(user=user, csrf=row.csrf, session=row) if user is not None else None


def current_staff(request: Request, session: DB) -> Staff:
    staff = staff_of(request, session)
    if staff is None:
        raise _refuse_anonymous(request)
    return staff


async def _submitted_csrf(request: Request) -> str:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    ctype = request.headers.get("content-type", "")
    if ctype.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        form = await request.form()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else ""
    return ""


async def check_csrf(request: Request, staff: Staff) -> None:
    token = await _submitted_csrf(request)
    if not staff.csrf or not secrets.compare_digest(token.encode(), staff.csrf.encode()):
        raise HTTPException(
            status_code=403,
            detail="Formulář vypršel nebo nepochází z této konzole (chybný CSRF token). "
            "Načtěte stránku znovu.",
        )


async def editor_staff(request: Request, staff: Annotated[Staff, Depends(current_staff)]) -> Staff:
    """A state-changing request: valid CSRF token and a role that may change things."""
    await check_csrf(request, staff)
    if not staff.can_edit:
        raise HTTPException(status_code=403, detail="Čtenář nemůže nic měnit.")
    return staff


async def admin_staff(request: Request, staff: Annotated[Staff, Depends(current_staff)]) -> Staff:
    await check_csrf(request, staff)
    if not staff.is_admin:
        raise HTTPException(status_code=403, detail="Tuto změnu smí provést jen správce.")
    return staff


def admin_reader(staff: Annotated[Staff, Depends(current_staff)]) -> Staff:
    if not staff.is_admin:
        raise HTTPException(status_code=403, detail="Tuto stránku vidí jen správce.")
    return staff


def editor_reader(staff: Annotated[Staff, Depends(current_staff)]) -> Staff:
    """A page only editors and admins may read (captured messages carry recipients' links)."""
    if not staff.can_edit:
        raise HTTPException(
            status_code=403,
            detail="Zachycené zprávy obsahují odkazy jednotlivých příjemců (například pro "
            "odhlášení), proto je může otevřít jen editor nebo správce.",
        )
    return staff


Reader = Annotated[Staff, Depends(current_staff)]
EditorReader = Annotated[Staff, Depends(editor_reader)]
Editor = Annotated[Staff, Depends(editor_staff)]
Admin = Annotated[Staff, Depends(admin_staff)]
AdminReader = Annotated[Staff, Depends(admin_reader)]


class SignInError(Exception):
    """Why a sign-in was refused, in Czech."""


def authenticate(session: Session, email: str, password: str, ip: str) -> User:
    """The user for correct credentials; otherwise SignInError. Failures are counted per
    account and address (see `throttle`), in the database."""
    refused = throttle.refusal(session, email, ip)
    if refused:
        raise SignInError(refused)
    user = session.exec(select(User).where(User.email == email.strip().lower()[:320])).first()
    if user is None:
        # Same work as a real check, so timing does not tell which accounts exist.
        verify_password(_dummy_hash(), password)
        throttle.record_failure(session, email, ip)
        raise SignInError("Nesprávný e-mail nebo heslo.")
    if not verify_password(user.password_hash, password):
        throttle.record_failure(session, email, ip)
        raise SignInError("Nesprávný e-mail nebo heslo.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    throttle.record_success(session, email, ip)
    # Housekeeping at a moment that is rare and not hurried: old sessions and counters go.
    sessions.purge_expired(session)
    throttle.purge_stale(session)
    user.last_login_at = utcnow()
    session.add(user)
    session.commit()
    return user


_DUMMY: list[str] = []


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(hash_password(secrets.token_urlsafe(16)))
    return _DUMMY[0]


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)
