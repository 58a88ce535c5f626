"""Sign-in (password, then the code of the second factor when the user has one) and sign-out
pages, and the console's own static files (served without a session)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from mailer.web.console import sessions, throttle, twofactor
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
    waiting_for_code,
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
    agent = request.headers.get("user-agent")
    if twofactor.is_enabled(user):
        # The password was right; the session opens nothing until the code is typed.
        token = sessions.start(
            session, user, _client_ip(request), agent, second_factor_pending=True
        )
        session.commit()
        target = f"/console/login/code?next={quote(_safe_next(next), safe='')}"
        response = RedirectResponse(target, status_code=303)
    else:
        audit(session, user.email, "sign_in", ip=_client_ip(request))
        token = sessions.start(session, user, _client_ip(request), agent)
        session.commit()
        response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, **cookie_options(request))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/console")
    return response


def _code_page(request: Request, csrf: str, next_url: str, error: str | None) -> Response:
    return page(
        request,
        "login_code.html",
        None,
        status_code=401 if error else 200,
        next_url=next_url,
        error=error,
        login_csrf=csrf,
    )


@router.get("/login/code")
def login_code_form(request: Request, session: DB, next: str | None = None) -> Response:
    waiting = waiting_for_code(request, session)
    if waiting is None:
        return RedirectResponse("/console/login", status_code=303)
    return _code_page(request, waiting.csrf, _safe_next(next), None)


@router.post("/login/code")
def login_code(
    request: Request,
    session: DB,
    code: Annotated[str, Form(max_length=20)] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    """The second factor: the six digits from the authenticator app. Wrong codes count in the
    same throttle as wrong passwords."""
    waiting = waiting_for_code(request, session)
    if waiting is None or waiting.session is None:
        return RedirectResponse("/console/login", status_code=303)
    if not secrets.compare_digest(waiting.csrf.encode(), csrf_token.encode()):
        return _code_page(request, waiting.csrf, _safe_next(next), "Formulář vypršel.")
    ip = _client_ip(request)
    refused = throttle.refusal(session, waiting.email, ip)
    if refused:
        return _code_page(request, waiting.csrf, _safe_next(next), refused)
    if not twofactor.check(session, waiting.user, code):
        throttle.record_failure(session, waiting.email, ip)
        return _code_page(
            request,
            waiting.csrf,
            _safe_next(next),
            "Kód nesouhlasí. Opište prosím aktuální šestimístný kód z aplikace.",
        )
    # A fresh session id once both factors are in: the waiting one ends here.
    sessions.revoke(session, waiting.session)
    throttle.record_success(session, waiting.email, ip)
    audit(session, waiting.email, "sign_in", ip=ip, second_factor=True)
    token = sessions.start(session, waiting.user, ip, request.headers.get("user-agent"))
    session.commit()
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, **cookie_options(request))
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
