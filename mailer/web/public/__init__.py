"""Public pages that close the funnel: the membership application, event registration and
subscribing to news, served by the same app under BASE_URL, in Czech, usable without
JavaScript except the proof of work.

`router` carries every public route; mailer.web.app includes it."""

from __future__ import annotations

from fastapi import APIRouter

from mailer.web.public import apply, archive, register, subscribe

router = APIRouter()
for _module in (apply, register, subscribe, archive):
    router.include_router(_module.router)

__all__ = ["router"]
