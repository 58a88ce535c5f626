"""What the public pages share: templates, the Czech 404/400/422 pages, security headers, and
turning a token into the message and contact it stands for (or a 404 that changes nothing)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine
from sqlmodel import Session
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailer.models import Contact, Library, OutboxMessage, Run
from mailer.settings import Settings
from mailer.tokens import Purpose, Signer

# Pages of our own: nothing from elsewhere, no scripts, no framing, and no Referer (the URLs
# carry tokens). Routes may set their own Content-Security-Policy (the web version needs the
# e-mail's inline styles and images); the middleware only fills in what a response lacks.
PAGE_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("content-security-policy", PAGE_CSP),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("x-frame-options", "DENY"),
    ("cross-origin-opener-policy", "same-origin"),
    ("permissions-policy", "camera=(), microphone=(), geolocation=(), interest-cohort=()"),
    # Per-recipient pages must never end up in a search index.
    ("x-robots-tag", "noindex, nofollow"),
)
HSTS = ("strict-transport-security", "max-age=31536000; includeSubDomains")
NO_STORE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private"}


class SecurityHeaders:
    """Pure ASGI middleware (cheaper than BaseHTTPMiddleware on the tracking hot path) adding
    the security headers to every response that does not set them itself."""

    def __init__(self, app: ASGIApp, *, https: bool) -> None:
        self.app = app
        self.headers = SECURITY_HEADERS + ((HSTS,) if https else ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers:
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, send_with_headers)


def make_templates(settings: Settings) -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(settings.templates_dir / "web"))
    templates.env.globals["sender"] = {
        "name": settings.sender_name,
        "web": settings.sender_web,
        "email": settings.sender_email,
        "ico": settings.sender_ico,
        "seat": settings.sender_seat,
    }
    return templates


def render(
    request: Request, name: str, context: dict[str, Any] | None = None, status_code: int = 200
) -> HTMLResponse:
    templates: Jinja2Templates = request.app.state.templates
    response = templates.TemplateResponse(
        request, name, context or {}, status_code=status_code, headers=NO_STORE
    )
    return response


def not_found() -> HTTPException:
    """Raised for every altered, foreign or stale token: the same page, nothing changed."""
    return HTTPException(status_code=404)


async def http_error_page(request: Request, exc: Exception) -> Response:
    """Czech pages for 404 and 400; other statuses (the console's 401/403…) as FastAPI has them."""
    status = getattr(exc, "status_code", 500)
    if status == 404:
        return render(request, "not_found.html", status_code=404)
    if status == 400:
        return render(request, "bad_request.html", status_code=400)
    assert isinstance(exc, StarletteHTTPException)
    return await http_exception_handler(request, exc)


def invalid_public_page(request: Request, problems: list[str], retry: str | None) -> HTMLResponse:
    """The public pages' answer to missing or wrong fields (422): which ones, in Czech."""
    return render(
        request, "invalid_request.html", {"problems": problems, "retry": retry}, status_code=422
    )


def signer_of(request: Request) -> Signer:
    signer: Signer = request.app.state.signer
    return signer


def engine_of(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def verify(request: Request, purpose: Purpose, token: str) -> tuple[int, ...] | None:
    return signer_of(request).verify(purpose, token)


@dataclass(frozen=True)
class Addressee:
    """The message a per-recipient token points to, with its contact (and library)."""

    outbox: OutboxMessage
    contact: Contact
    library: Library | None
    run: Run


def load_addressee(session: Session, outbox_id: int) -> Addressee | None:
    """None when the message or its contact is gone (erased contacts have no pages)."""
    outbox = session.get(OutboxMessage, outbox_id)
    if outbox is None or outbox.contact_id is None:
        return None
    contact = session.get(Contact, outbox.contact_id)
    run = session.get(Run, outbox.run_id)
    if contact is None or run is None:
        return None
    library = session.get(Library, contact.library_id) if contact.library_id else None
    return Addressee(outbox, contact, library, run)


def client_ip(request: Request) -> str | None:
    # Behind a trusted proxy the host is whatever X-Forwarded-For carried; the columns that keep
    # it hold 64 characters (an IPv6 address with a zone fits), so a proxy passing on junk
    # cannot make a form fail.
    return request.client.host[:64] if request.client else None


def client_network(address: str | None) -> str:
    """Who a per-client limit counts: an IPv4 address (also when written IPv4-mapped), or an
    IPv6 address's /64, since one line gets a whole /64 and its devices pick any address in
    it. Anything else (no peer, a test client's name) counts as itself."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)
