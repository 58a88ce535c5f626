"""Staff sign-in for the console: argon2 passwords, signed session cookies, CSRF tokens,
throttled attempts and the role checks every route depends on."""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Depends, HTTPException, Request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.audience.addresses import InvalidAddress, normalize_email
from mailer.db import get_engine
from mailer.models import User, UserRole
from mailer.settings import get_settings

SESSION_COOKIE = "sdruk_console"
LOGIN_CSRF_COOKIE = "sdruk_console_login"
SESSION_MAX_AGE = 12 * 3600  # one working day; staff sign in again the next morning
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"

# Per account: after FREE_ATTEMPTS failures each further one locks the account for twice as
# long as the previous lock, capped, so guessing is slow but a typo costs nothing.
FREE_ATTEMPTS = 5
LOCK_BASE = timedelta(seconds=30)
LOCK_MAX = timedelta(hours=1)
# Per client address, in memory: enough for one process; it only slows down spraying many
# accounts from one place, the per-account lock in the database does the rest.
IP_WINDOW_SECONDS = 15 * 60
IP_MAX_FAILURES = 30

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


def _serializer(salt: str) -> URLSafeTimedSerializer:
    # itsdangerous signs with the LAST key and verifies with any: settings list the current first.
    keys = list(reversed(get_settings().signing_keys()))
    return URLSafeTimedSerializer(keys, salt=salt)


def make_session_cookie(user: User) -> str:
    # The password hash tail binds the session to the password: changing it signs everyone out.
    data = {"uid": user.id, "csrf": secrets.token_urlsafe(24), "pw": user.password_hash[-12:]}
    return _serializer("console-session").dumps(data)


def read_session_cookie(value: str | None) -> dict[str, Any] | None:
    if not value:
        return None
    try:
        data = _serializer("console-session").loads(value, max_age=SESSION_MAX_AGE)
    except BadSignature:
        return None
    return data if isinstance(data, dict) else None


def cookie_options(request: Request) -> dict[str, Any]:
    secure = request.url.scheme == "https" or get_settings().base_url.startswith("https")
    return {"httponly": True, "samesite": "lax", "secure": secure, "path": "/console"}


@dataclass
class Staff:
    """The signed-in user of one request and the CSRF token of their session."""

    user: User
    csrf: str

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


def current_staff(request: Request, session: DB) -> Staff:
    data = read_session_cookie(request.cookies.get(SESSION_COOKIE))
    if not data or not isinstance(data.get("uid"), int):
        raise _refuse_anonymous(request)
    user = session.get(User, data["uid"])
    if user is None or user.password_hash[-12:] != data.get("pw"):
        raise _refuse_anonymous(request)
    return Staff(user=user, csrf=str(data.get("csrf", "")))


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


Reader = Annotated[Staff, Depends(current_staff)]
Editor = Annotated[Staff, Depends(editor_staff)]
Admin = Annotated[Staff, Depends(admin_staff)]
AdminReader = Annotated[Staff, Depends(admin_reader)]


class IpThrottle:
    """Failed sign-ins per client address in a sliding window (in memory, per process)."""

    def __init__(self, limit: int = IP_MAX_FAILURES, window: float = IP_WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, ip: str, now: float) -> deque[float]:
        times = self._failures.setdefault(ip, deque())
        while times and times[0] < now - self.window:
            times.popleft()
        return times

    def blocked(self, ip: str) -> bool:
        with self._lock:
            return len(self._recent(ip, time.monotonic())) >= self.limit

    def fail(self, ip: str) -> None:
        with self._lock:
            self._recent(ip, time.monotonic()).append(time.monotonic())

    def reset(self) -> None:
        with self._lock:
            self._failures.clear()


ip_throttle = IpThrottle()


class SignInError(Exception):
    """Why a sign-in was refused, in Czech."""


def authenticate(session: Session, email: str, password: str, ip: str) -> User:
    """The user for correct credentials; otherwise SignInError. Records failures and locks."""
    if ip_throttle.blocked(ip):
        raise SignInError("Příliš mnoho neúspěšných pokusů z této adresy. Zkuste to později.")
    now = datetime.now(UTC)
    user = session.exec(select(User).where(User.email == email.strip().lower())).first()
    if user is None:
        # Same work as a real check, so timing does not tell which accounts exist.
        verify_password(_dummy_hash(), password)
        ip_throttle.fail(ip)
        raise SignInError("Nesprávný e-mail nebo heslo.")
    if user.locked_until and user.locked_until > now:
        ip_throttle.fail(ip)
        raise SignInError(
            "Účet je po několika neúspěšných pokusech dočasně zablokován. Zkuste to později."
        )
    if not verify_password(user.password_hash, password):
        user.failed_logins += 1
        over = user.failed_logins - FREE_ATTEMPTS
        if over >= 0:
            user.locked_until = now + min(LOCK_BASE * (2**over), LOCK_MAX)
        session.add(user)
        session.commit()
        ip_throttle.fail(ip)
        raise SignInError("Nesprávný e-mail nebo heslo.")
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    user.last_login_at = now
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
