"""The image library in the console: upload (editors), list with alt text (everyone)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from mailer.compose.media import MAX_UPLOAD_BYTES, ImageRejected, library, store_image
from mailer.web.console.audit import audit
from mailer.web.console.auth import DB, DBEngine, Editor, Reader
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)


@router.get("/media", response_class=HTMLResponse)
def media_list(request: Request, staff: Reader, engine: DBEngine, notice: str = "") -> HTMLResponse:
    return page(
        request,
        "media.html",
        staff,
        images=library(engine),
        notice="Obrázek je v knihovně." if notice == "uploaded" else None,
        limit_mb=MAX_UPLOAD_BYTES // 1024 // 1024,
    )


@router.post("/media")
async def media_upload(
    request: Request,
    staff: Editor,
    engine: DBEngine,
    session: DB,
    file: Annotated[UploadFile, File()],
    alt: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    wants_json = "application/json" in request.headers.get("accept", "")
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    try:
        stored = store_image(
            engine, data, alt=alt, original_name=file.filename or "", uploaded_by=staff.email
        )
    except ImageRejected as exc:
        if wants_json:
            return JSONResponse({"detail": str(exc)}, status_code=422)
        return page(
            request,
            "media.html",
            staff,
            status_code=422,
            images=library(engine),
            error=f"Obrázek nebyl nahrán: {exc}",
            limit_mb=MAX_UPLOAD_BYTES // 1024 // 1024,
        )
    audit(session, staff.email, "media.upload", f"media/{stored.filename}", alt=stored.alt)
    session.commit()
    if wants_json:
        return JSONResponse(
            {
                "filename": stored.filename,
                "url": stored.media().url,
                "width": stored.width,
                "height": stored.height,
                "name": stored.original_name or stored.alt,
            }
        )
    return RedirectResponse("/console/media?notice=uploaded", status_code=303)
