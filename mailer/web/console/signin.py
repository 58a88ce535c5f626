"""Sign-in and sign-out pages, and the console's own static files (served without a session)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from mailer.web.console import sessions
from mailer.web.console.audit import audit
from mailer.web.console.auth import (
    DB,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    Reader,
    SignInError,
    authenticate,
    check_csrf,
    cookie_options,
    new_login_csrf,
)
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"
STATIC_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml"}


def _safe_next(target: str | None) -> str:
    # Only paths inside the console: an open redirect would make phishing links look genuine.
    if target and target.startswith("/console/") and not target.startswith("//"):
        return target
    return "/console/"


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


@router.get("/static/{name}", include_in_schema=False)
def static_file(name: str) -> FileResponse:
    path = STATIC_DIR / name
    if "/" in name or path.suffix not in STATIC_TYPES or not path.is_file():
        raise HTTPException(status_code=404)
    return FileResponse(
        path, media_type=STATIC_TYPES[path.suffix], headers={"Cache-Control": "max-age=300"}
    )


def _login_page(request: Request, next_url: str, error: str | None, status: int) -> Response:
    token = new_login_csrf()
    response = page(
        request,
        "login.html",
        None,
        status_code=status,
        next_url=next_url,
        error=error,
        login_csrf=token,
    )
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, **cookie_options(request))
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, _safe_next(next), None, 200)


@router.post("/login")
def login(
    request: Request,
    session: DB,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not secrets.compare_digest(expected.encode(), csrf_token.encode()):
        return _login_page(
            request, _safe_next(next), "Přihlašovací formulář vypršel, zkuste to znovu.", 403
        )
    try:
        user = authenticate(session, email, password, _client_ip(request))
    except SignInError as exc:
        return _login_page(request, _safe_next(next), str(exc), 401)
    audit(session, user.email, "sign_in", ip=_client_ip(request))
    token = sessions.start(session, user, _client_ip(request), request.headers.get("user-agent"))
    session.commit()
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, **cookie_options(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


@router.post("/logout")
async def logout(request: Request, staff: Reader, session: DB) -> Response:
    await check_csrf(request, staff)
    if staff.session is not None:
        sessions.revoke(session, staff.session)
        session.commit()
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response


@router.post("/logout-everywhere")
async def logout_everywhere(request: Request, staff: Reader, session: DB) -> Response:
    """Ends every session of the signed-in user, on every computer (a lost laptop, a shared
    one left signed in)."""
    await check_csrf(request, staff)
    assert staff.user.id is not None
    ended = sessions.revoke_all(session, staff.user.id)
    audit(session, staff.email, "sign_out_everywhere", sessions=ended)
    session.commit()
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/console")
    return response
