"""Tracking routes: the open pixel, click redirects and the web version of a message.

Each answered request's event is committed before the answer goes out (see
`mailer.events.record.EventWriter`). A click redirects only to the link signed into the run's
frozen content at the token's index, so the service cannot be used as an open redirect.
"""

from __future__ import annotations

import base64
import re
from collections import OrderedDict
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlmodel import Session, select
from starlette.concurrency import run_in_threadpool

from mailer.events.record import EventWriter, Hit
from mailer.models import EventKind, OutboxMessage, Run, utcnow
from mailer.tokens import Purpose
from mailer.web import pages

router = APIRouter()

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PIXEL_HEADERS = {
    # Not cacheable anywhere, so every open reaches us (proxies that cache anyway are
    # classified, not trusted).
    "Cache-Control": "no-store, no-cache, must-revalidate, proxy-revalidate, max-age=0, private",
    "Pragma": "no-cache",
    "Expires": "0",
}
# The web version renders the e-mail's own HTML: inline styles and remote images, no scripts.
WEB_VERSION_CSP = (
    "default-src 'none'; img-src https: http: data:; style-src 'unsafe-inline' https:; "
    "font-src https: data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
)
_SAFE_SCHEMES = frozenset({"http", "https"})
# Staff previews and test sends are composed as message 0 of run 0 (no row has id 0): their
# pixel is answered and nothing is recorded; their other links find no row and answer 404.
PREVIEW_ID = 0


class RunLinks:
    """Which run an outbox message belongs to, and each run's signed links. Both are frozen at
    launch, so a small in-process cache is always right."""

    def __init__(self, size: int = 100_000) -> None:
        self._run_of: OrderedDict[int, int | None] = OrderedDict()
        self._links: dict[int, list[str]] = {}
        self._size = size

    def run_of(self, session: Session, outbox_id: int) -> int | None:
        if outbox_id in self._run_of:
            return self._run_of[outbox_id]
        run_id = session.exec(
            select(OutboxMessage.run_id).where(OutboxMessage.id == outbox_id)
        ).first()
        self._run_of[outbox_id] = run_id
        if len(self._run_of) > self._size:
            self._run_of.popitem(last=False)
        return run_id

    def links(self, session: Session, run_id: int) -> list[str]:
        if run_id not in self._links:
            content = session.exec(select(Run.content).where(Run.id == run_id)).first()
            self._links[run_id] = list((content or {}).get("links") or [])
        return self._links[run_id]


def _writer(request: Request) -> EventWriter:
    writer: EventWriter = request.app.state.writer
    return writer


def _hit(request: Request, kind: EventKind, **ids: int | None) -> Hit:
    return Hit(
        kind=kind,
        occurred_at=utcnow(),
        method=request.method,
        user_agent=request.headers.get("user-agent"),
        ip=pages.client_ip(request),
        **ids,
    )


@router.api_route("/o/{token}.gif", methods=["GET", "HEAD"], include_in_schema=False)
async def open_pixel(token: str, request: Request) -> Response:
    """A 1×1 transparent GIF; the open is committed before it is answered."""
    ids = pages.verify(request, Purpose.OPEN, token)
    if ids:
        hit = _hit(request, EventKind.OPEN, outbox_id=ids[0])
    elif ids := pages.verify(request, Purpose.OPEN_ANONYMOUS, token):
        hit = _hit(request, EventKind.OPEN, run_id=ids[0])
    else:
        raise pages.not_found()
    if ids[0] != PREVIEW_ID:
        await _writer(request).record(hit)
    return Response(PIXEL, media_type="image/gif", headers=PIXEL_HEADERS)


def _target(request: Request, run_id: int | None, link_index: int) -> str:
    if run_id is None:
        raise pages.not_found()
    cache: RunLinks = request.app.state.run_links
    with Session(pages.engine_of(request)) as session:
        links = cache.links(session, run_id)
    if not 0 <= link_index < len(links):
        raise pages.not_found()
    url = links[link_index]
    if urlsplit(url).scheme.lower() not in _SAFE_SCHEMES:
        raise pages.not_found()
    return url


def _run_of(request: Request, outbox_id: int) -> int | None:
    cache: RunLinks = request.app.state.run_links
    with Session(pages.engine_of(request)) as session:
        return cache.run_of(session, outbox_id)


# The index of a link in a message: a few digits (no sign, no spaces, no leading zeros).
_LINK_INDEX = re.compile(r"0|[1-9][0-9]{0,3}")


@router.api_route("/c/{token}/{index}", methods=["GET", "HEAD"], include_in_schema=False)
async def message_click(token: str, index: str, request: Request) -> Response:
    """A tracked link of one recipient's message: the token signs who, the index says which of
    the run's links. Redirect there; record the click first."""
    ids = pages.verify(request, Purpose.MESSAGE_CLICK, token)
    if not ids or len(ids) != 1 or not _LINK_INDEX.fullmatch(index):
        raise pages.not_found()
    return await _click(request, ids[0], int(index))


async def _click(request: Request, outbox_id: int, link_index: int) -> Response:
    run_id = await run_in_threadpool(_run_of, request, outbox_id)
    url = await run_in_threadpool(_target, request, run_id, link_index)
    hit = _hit(request, EventKind.CLICK, outbox_id=outbox_id, link_index=link_index)
    return await _record_and_redirect(request, hit, url)


async def _record_and_redirect(request: Request, hit: Hit, url: str) -> Response:
    await _writer(request).record(hit)
    return RedirectResponse(url, status_code=302, headers=pages.NO_STORE)


@router.api_route("/c/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def click(token: str, request: Request) -> Response:
    """Redirect to the link signed into the token (a per-link token of an older message, or a
    run's anonymous link); record the click first."""
    if (ids := pages.verify(request, Purpose.CLICK, token)) and len(ids) == 2:
        return await _click(request, *ids)
    if (ids := pages.verify(request, Purpose.CLICK_ANONYMOUS, token)) and len(ids) == 2:
        run_id, link_index = ids
        url = await run_in_threadpool(_target, request, run_id, link_index)
        hit = _hit(request, EventKind.CLICK, run_id=run_id, link_index=link_index)
        return await _record_and_redirect(request, hit, url)
    raise pages.not_found()


def _web_html(request: Request, purpose: Purpose, ident: int) -> str | None:
    from mailer.compose.composer import Composer, Recipient

    with Session(pages.engine_of(request)) as session:
        if purpose == Purpose.WEB_VERSION:
            addressee = pages.load_addressee(session, ident)
            if addressee is None or addressee.run.id is None:
                return None
            recipient = Recipient.from_rows(ident, addressee.contact, addressee.library)
            return Composer(addressee.run.content, addressee.run.id).web_html(recipient)
        run = session.get(Run, ident)
        if run is None or run.id is None:
            return None
        # Anonymous tracking: no person behind the link, so the generic version.
        return Composer(run.content, run.id).web_html(None)


@router.api_route("/v/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def web_version(token: str, request: Request) -> Response:
    """The message as a web page, filled for its recipient."""
    if ids := pages.verify(request, Purpose.WEB_VERSION, token):
        purpose, ident = Purpose.WEB_VERSION, ids[0]
        hit = _hit(request, EventKind.WEB_VIEW, outbox_id=ident)
    elif ids := pages.verify(request, Purpose.WEB_VERSION_ANONYMOUS, token):
        purpose, ident = Purpose.WEB_VERSION_ANONYMOUS, ids[0]
        hit = _hit(request, EventKind.WEB_VIEW, run_id=ident)
    else:
        raise pages.not_found()
    html = await run_in_threadpool(_web_html, request, purpose, ident)
    if html is None:
        raise pages.not_found()
    await _writer(request).record(hit)
    headers = {**pages.NO_STORE, "Content-Security-Policy": WEB_VERSION_CSP}
    return HTMLResponse(html, headers=headers)
