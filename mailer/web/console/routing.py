"""The console's route class: refusals (no session, bad CSRF token, a viewer changing things,
not found) and invalid form fields become Czech pages for the browser and JSON for scripts."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlmodel import Session

from mailer.web.console.auth import Staff, engine_dep, staff_of

TITLES = {
    400: "Neplatný požadavek",
    401: "Přihlaste se",
    403: "K tomu nemáte oprávnění",
    404: "Stránka nenalezena",
    409: "Akci teď nelze provést",
    422: "Neplatné údaje",
}


class ConsoleRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except HTTPException as exc:
                if exc.status_code in (301, 302, 303, 307, 308):
                    return Response(status_code=exc.status_code, headers=exc.headers)
                return refusal(request, exc)

        return handle


def _back(request: Request) -> str | None:
    # Only a console page of this site: a foreign Referer must not become a link here.
    path = urlsplit(request.headers.get("referer", "")).path
    return path if path.startswith("/console/") else None


def _signed_in(request: Request) -> Staff | None:
    """The signed-in staff, for the navigation of an error page; None when not signed in."""
    with Session(engine_dep(request), expire_on_commit=False) as session:
        return staff_of(request, session)


def invalid_page(request: Request, problems: list[str], retry: str | None) -> Response:
    """The console's page for a form or query with missing or wrong fields (422), in the
    console's layout with its navigation when signed in, and a way back."""
    from mailer.web.console.render import page

    return page(
        request,
        "message.html",
        _signed_in(request),
        status_code=422,
        title=TITLES[422],
        error="Formulář nebo odkaz obsahuje chybu, nic se nezměnilo. Opravte prosím:"
        if len(problems) == 1
        else "Formulář nebo odkaz obsahuje chyby, nic se nezměnilo. Opravte prosím:",
        problems=problems,
        back=_back(request) or retry,
    )


def refusal(request: Request, exc: HTTPException) -> Response:
    detail = exc.detail if isinstance(exc.detail, str) else "Neplatné údaje."
    if "text/html" not in request.headers.get("accept", ""):
        return JSONResponse({"detail": detail}, status_code=exc.status_code, headers=exc.headers)
    from mailer.web.console.render import page

    response = page(
        request,
        "message.html",
        None,
        status_code=exc.status_code,
        title=TITLES.get(exc.status_code, "Chyba"),
        error=detail,
        back=_back(request) if exc.status_code != 401 else "/console/login",
    )
    if exc.headers:
        response.headers.update(exc.headers)
    return response
