"""The signed-in user's own account: two-factor sign-in (set up with an otpauth address and
its secret shown once, confirmed with a code, turned off with a code) and signing out of
every other computer."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from mailer.web.console import twofactor
from mailer.web.console.audit import audit
from mailer.web.console.auth import DB, Reader, Staff, check_csrf
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)

NOTICES = {
    "on": "Dvoufázové ověření je zapnuté. Při příštím přihlášení zadáte i kód z aplikace.",
    "off": "Dvoufázové ověření je vypnuté.",
}
CODE_FIELD = Annotated[str, Form(max_length=20)]


def _account(
    request: Request,
    staff: Staff,
    *,
    setup: dict[str, str] | None = None,
    error: str | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    return page(
        request,
        "account.html",
        staff,
        status_code=422 if error else 200,
        enabled=twofactor.is_enabled(staff.user),
        setup=setup,
        error=error,
        notice=NOTICES.get(notice or ""),
    )


@router.get("/account", response_class=HTMLResponse)
def account(request: Request, staff: Reader, notice: str = "") -> HTMLResponse:
    return _account(request, staff, notice=notice)


def _setup(staff: Staff) -> dict[str, str]:
    assert staff.user.totp_secret
    secret = staff.user.totp_secret
    # In groups of four, as the apps show and accept it.
    grouped = " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))
    return {"grouped": grouped, "uri": twofactor.provisioning_uri(staff.user)}


@router.post("/account/2fa/setup", response_class=HTMLResponse)
async def two_factor_setup(request: Request, staff: Reader, session: DB) -> Response:
    """A new secret, shown on this page only: the user types it (or the otpauth address)
    into an authenticator app and confirms with the first code."""
    await check_csrf(request, staff)
    if twofactor.is_enabled(staff.user):
        return _account(request, staff, error="Dvoufázové ověření už je zapnuté.")
    twofactor.begin(session, staff.user)
    session.commit()
    return _account(request, staff, setup=_setup(staff))


@router.post("/account/2fa/confirm", response_class=HTMLResponse)
async def two_factor_confirm(
    request: Request, staff: Reader, session: DB, code: CODE_FIELD = ""
) -> Response:
    await check_csrf(request, staff)
    if not twofactor.confirm(session, staff.user, code):
        session.rollback()
        if staff.user.totp_secret is None or twofactor.is_enabled(staff.user):
            return _account(request, staff, error="Nastavení vypršelo, začněte prosím znovu.")
        return _account(
            request,
            staff,
            setup=_setup(staff),
            error="Kód nesouhlasí. Zkontrolujte, že jste klíč opsali přesně a že telefon "
            "má správný čas, a opište nový kód.",
        )
    audit(session, staff.email, "two_factor_on", staff.email)
    session.commit()
    return RedirectResponse("/console/account?notice=on", status_code=303)


@router.post("/account/2fa/disable", response_class=HTMLResponse)
async def two_factor_disable(
    request: Request, staff: Reader, session: DB, code: CODE_FIELD = ""
) -> Response:
    await check_csrf(request, staff)
    if not twofactor.is_enabled(staff.user):
        return RedirectResponse("/console/account", status_code=303)
    if not twofactor.check(session, staff.user, code):
        return _account(request, staff, error="Kód nesouhlasí, dvoufázové ověření zůstává.")
    twofactor.turn_off(session, staff.user)
    audit(session, staff.email, "two_factor_off", staff.email)
    session.commit()
    return RedirectResponse("/console/account?notice=off", status_code=303)
