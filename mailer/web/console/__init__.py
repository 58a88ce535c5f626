"""The staff console: server-rendered pages for launching campaigns and reading results.

`router` carries every console route under /console; mailer.web.app includes it."""

from __future__ import annotations

from fastapi import APIRouter

from mailer.web.console import (
    account,
    admin,
    applications,
    campaigns,
    contacts,
    dashboard,
    deployment,
    editor,
    imports,
    media_library,
    notice_texts,
    registrations,
    results,
    segments,
    signin,
)
from mailer.web.console.demo import ensure_demo_admin

router = APIRouter(prefix="/console", tags=["console"])
# Order matters where paths overlap: /runs/{id}/results before the generic run routes.
MODULES = (
    signin,
    account,
    dashboard,
    imports,
    contacts,
    applications,
    registrations,
    notice_texts,
    segments,
    results,
    editor,  # /campaigns/new before /campaigns/{slug}
    campaigns,
    media_library,
    admin,
    deployment,
)
for _module in MODULES:
    router.include_router(_module.router)

__all__ = ["MODULES", "ensure_demo_admin", "router"]
