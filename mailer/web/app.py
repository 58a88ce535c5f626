"""Builds the web application: public pages and tracking, plus the staff console when present.

`create_app()` is what uvicorn serves (`sdruk web`, and `schedule.py` for the embedded
default). Its lifespan starts the event writer and, on a clean shutdown, drains it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from mailer.db import get_engine
from mailer.events.record import EventWriter
from mailer.settings import get_settings
from mailer.tokens import default_signer
from mailer.web import invalid, media, pages, public, tracking, unsubscribe
from mailer.web.limits import BodySizeLimit

log = logging.getLogger(__name__)


def _include_console(app: FastAPI) -> None:
    """The staff console mounts its `router`; it reuses the app state (engine, templates,
    signer)."""
    from mailer.web.console import router

    app.include_router(router)


def _is_network(entry: str) -> bool:
    try:
        ipaddress.ip_network(entry, strict=False)
    except ValueError:
        return False
    return True


def create_app(*, engine: Engine | None = None) -> FastAPI:
    """The FastAPI app. `engine` defaults to the configured database."""
    settings = get_settings()
    engine = engine or get_engine()
    writer = EventWriter(engine)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await writer.start()
        try:
            yield
        finally:
            # uvicorn waits for open requests before this runs; whatever they queued is
            # written here, so a clean shutdown loses no event.
            await writer.close()

    app = FastAPI(
        title="SDRUK Campaigns",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.signer = default_signer()
    app.state.templates = pages.make_templates(settings)
    app.state.writer = writer
    app.state.run_links = tracking.RunLinks()

    app.add_middleware(pages.SecurityHeaders, https=settings.base_url.startswith("https:"))
    # Outermost, so a too large body is refused before anything reads or parses it.
    app.add_middleware(BodySizeLimit, limit_bytes=int(settings.max_upload_mb * 1_000_000))
    # The client is the connection's peer; only when that peer is a proxy in TRUSTED_PROXIES
    # is the right-most address in X-Forwarded-For that is not itself a trusted proxy taken
    # instead (and X-Forwarded-Proto believed). Done here rather than by the server, so the
    # rule holds however the app is served, and without a configured proxy nobody can pick
    # their own address for the rate limits, the sign-in throttle or the event log.
    # Only addresses and networks: uvicorn would read "*" as "trust every peer and take the
    # left-most entry", which the client writes (`sdruk doctor` flags such entries).
    proxies = [entry for entry in settings.trusted_proxy_list() if _is_network(entry)]
    if proxies:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=proxies)
    app.add_exception_handler(StarletteHTTPException, pages.http_error_page)
    # Czech instead of FastAPI's English 422 JSON: console layout under /console, public elsewhere.
    app.add_exception_handler(RequestValidationError, invalid.validation_error_page)
    # Values the database cannot hold: the same Czech 422, never a 500.
    app.add_exception_handler(DataError, invalid.database_value_error_page)
    app.add_exception_handler(OverflowError, invalid.database_value_error_page)
    static_dir = settings.templates_dir / "web" / "static"
    if static_dir.is_dir():
        app.mount("/static", StaticFiles(directory=static_dir), name="static")

    app.include_router(tracking.router)
    app.include_router(unsubscribe.router)
    app.include_router(media.router)
    app.include_router(public.router)
    # The staff console (mailer/web/console) mounts its routes under /console.
    _include_console(app)
    return app


def make_server(host: str = "127.0.0.1", port: int = 8000, **options: object) -> uvicorn.Server:
    """A uvicorn server for the app, for `sdruk web` and for embedding in schedule.py
    (`await make_server(...).serve()`); it shuts down cleanly on SIGINT/SIGTERM."""
    # The app reads forwarded headers itself (from TRUSTED_PROXIES only); uvicorn's own reading
    # would believe any client on 127.0.0.1 and hand the app a client it cannot check.
    config = uvicorn.Config(
        "mailer.web.app:create_app",
        factory=True,
        host=host,
        port=port,
        access_log=False,
        proxy_headers=False,
        **options,  # type: ignore[arg-type]
    )
    return uvicorn.Server(config)
