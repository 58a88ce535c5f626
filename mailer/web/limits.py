"""The size limit on request bodies: a request larger than SDRUK_MAX_UPLOAD_MB is refused
with 413 and a Czech explanation before the application reads it.

The declared Content-Length is checked first; a body sent without one (chunked) is counted
as it arrives and cut off at the limit, so no request can make the server spool or parse
more than the limit."""

from __future__ import annotations

import json
from typing import Any

from babel.numbers import format_decimal
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATUS = 413


class BodyTooLarge(Exception):
    """The body grew past the limit while the application was reading it."""


def too_large_text(limit_bytes: int) -> str:
    if limit_bytes >= 1_000_000:
        shown = format_decimal(round(limit_bytes / 1_000_000, 1), locale="cs_CZ") + "\u00a0MB"
    else:
        shown = format_decimal(max(1, limit_bytes // 1000), locale="cs_CZ") + "\u00a0kB"
    return (
        f"Soubor je příliš velký: server přijme nejvýše {shown} najednou. Nic se neuložilo. "
        "Rozdělte soubor na menší části (např. po krajích) a nahrajte je postupně, "
        "nebo použijte příkaz „sdruk contacts import“."
    )


def _page(text: str) -> bytes:
    return (
        '<!doctype html><html lang="cs"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<title>Příliš velký soubor</title><link rel="stylesheet" href="/static/web.css">'
        '</head><body><main class="wrap"><h1>Příliš velký soubor</h1>'
        f"<p>{text}</p>"
        '<p><a href="/console/contacts/import">← Import kontaktů</a> · '
        '<a href="/console/">Přehled konzole</a></p></main></body></html>'
    ).encode()


class BodySizeLimit:
    """ASGI middleware refusing request bodies above `limit_bytes`."""

    def __init__(self, app: ASGIApp, limit_bytes: int) -> None:
        self.app = app
        self.limit = limit_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, send)
            return
        seen = 0
        exceeded = False
        answered = False

        async def counted_receive() -> Message:
            nonlocal seen, exceeded
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            # The framework may turn the exception into its own error answer (FastAPI answers
            # 400 "error parsing the body"): whatever it answers, staff get the 413.
            nonlocal answered
            if exceeded:
                if not answered:
                    answered = True
                    await self._refuse(scope, send)
                return
            answered = answered or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except BodyTooLarge:
            if answered:
                return
            answered = True
            await self._refuse(scope, send)

    async def _refuse(self, scope: Scope, send: Send) -> None:
        text = too_large_text(self.limit)
        headers = dict(scope.get("headers") or [])
        wants_html = b"text/html" in headers.get(b"accept", b"") or scope["path"].startswith(
            "/console"
        )
        body = _page(text) if wants_html else json.dumps({"error": text}).encode()
        content_type = b"text/html; charset=utf-8" if wants_html else b"application/json"
        response_headers: list[Any] = [
            (b"content-type", content_type),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"cache-control", b"no-store"),
        ]
        await send({"type": "http.response.start", "status": STATUS, "headers": response_headers})
        await send({"type": "http.response.body", "body": body})
