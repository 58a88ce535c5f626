"""The "Stav nasazení" page for administrators: `sdruk doctor`'s checks (mailer/doctor.py) with
what to fix and the DNS records to publish. The relay login is tried only on request, with
one connection, so that reloading the page never adds failed logins at the relay."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from mailer.doctor import LEVEL_LABELS, campaign_senders, is_real_relay, run_doctor, worst
from mailer.settings import get_settings
from mailer.web.console.auth import AdminReader
from mailer.web.console.render import page
from mailer.web.console.routing import ConsoleRoute

router = APIRouter(route_class=ConsoleRoute)


@router.get("/setup", response_class=HTMLResponse)
def deployment_status(request: Request, staff: AdminReader, relay: bool = False) -> HTMLResponse:
    settings = get_settings()
    real = is_real_relay(settings.resolved_smtp_url(), settings)
    checks = run_doctor(
        settings, campaign_from=campaign_senders(), network=real, relay=real and relay
    )
    return page(
        request,
        "setup.html",
        staff,
        checks=checks,
        verdict=worst(checks),
        labels=LEVEL_LABELS,
        real_relay=real,
        relay_tried=relay,
    )
