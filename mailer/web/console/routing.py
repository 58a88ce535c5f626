"""The console's route class: refusals (no session, bad CSRF token, a viewer changing things,
not found) become Czech pages for the browser and JSON for scripts."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute

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
