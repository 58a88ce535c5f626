"""`GET /media/<hash>.<ext>`: images of the library, for messages and the editor's preview.

The name is the hash of the bytes, so a URL never changes meaning: it is cached for a year."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response

from mailer.compose.media import image_bytes

router = APIRouter()
_NAME_RE = re.compile(r"^([0-9a-f]{64})\.(png|jpg|gif|webp)$")


@router.get("/media/{name}")
def media(name: str, request: Request) -> Response:
    match = _NAME_RE.match(name)
    found = image_bytes(request.app.state.engine, *match.groups()) if match else None
    if found is None:
        raise HTTPException(status_code=404)
    data, mime = found
    return Response(
        data,
        media_type=mime,
        headers={
            "Cache-Control": "public, max-age=31536000, immutable",
            "X-Content-Type-Options": "nosniff",
        },
    )
