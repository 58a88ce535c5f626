"""Subscribing to the association's news (/odber) with double opt-in: the form, the same
answer for every address, and the confirmation page behind the signed link (7 days).

Confirming is a POST from that page: mail scanners fetch every link in a message, and a GET
must not subscribe anyone."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from mailer.audience import tracking_consent as consent
from mailer.db import session_scope
from mailer.models import TOPIC_LABELS, SubscriptionRequest, Topic
from mailer.signups import subscriptions
from mailer.web import pages
from mailer.web.public import common

router = APIRouter()
PATH = "/odber"
# The wording the person agrees to, stored with the request and the consent record as shown.
CONSENT = (
    "Souhlasím, aby mi Sdružení knihoven ČR na uvedenou adresu posílalo zprávy o vybraných "
    "tématech, dokud souhlas neodvolám. Odhlásit se mohu kdykoli jedním kliknutím."
)
FIELDS: dict[str, tuple[str, int, bool]] = {
    "email": ("E-mail", 320, True),
    "first_name": ("Jméno", 120, False),
    "last_name": ("Příjmení", 120, False),
    "library_name": ("Knihovna", 300, False),
}


def _topics(chosen: set[str] | None) -> list[dict[str, Any]]:
    return [
        {"value": t.value, "label": TOPIC_LABELS[t], "on": chosen is None or t.value in chosen}
        for t in Topic
    ]


def _form(
    request: Request,
    values: dict[str, str],
    chosen: set[str] | None = None,
    problems: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        "values": values,
        "topics": _topics(chosen),
        "problems": problems or {},
        "consent": CONSENT,
        "tracking": values.get("tracking", ""),
        "tracking_question": consent.QUESTION,
        "tracking_explanation": consent.EXPLANATION,
        "tracking_answers": list(consent.ANSWERS.items()),
    }
    return common.form_page(request, "public/subscribe.html", context, status_code)


@router.api_route(PATH, methods=["GET", "HEAD"], include_in_schema=False)
async def subscribe_form(request: Request) -> HTMLResponse:
    return _form(request, {key: "" for key in FIELDS})


def _store(request: Request, signup: subscriptions.SignUp) -> None:
    with session_scope(pages.engine_of(request)) as session:
        subscriptions.request(
            session,
            signup,
            pages.signer_of(request),
            ip=pages.client_ip(request),
            user_agent=request.headers.get("user-agent"),
        )


@router.post(PATH, include_in_schema=False)
async def subscribe_submit(request: Request) -> HTMLResponse:
    form = await common.read_protected_form(request)
    if isinstance(form, HTMLResponse):
        return form
    values, problems = common.clean_fields(form, FIELDS)
    chosen = {t for t in form.getlist("topic") if t in {x.value for x in Topic}}
    if not chosen:
        problems["topic"] = "Vyberte prosím aspoň jedno téma."
    if form.get("consent") != "1":
        problems["consent"] = "Bez souhlasu vám zprávy posílat nemůžeme."
    # The tracking question is optional: unanswered stays "unknown".
    tracking = consent.parse_answer(str(form.get("tracking") or ""))
    if tracking not in consent.ANSWERS:
        tracking = None
    values["tracking"] = tracking or ""
    if problems:
        return _form(request, values, chosen, problems, status_code=422)
    if await common.throttled(request, "subscribe", values["email"]):
        return common.message_page(request, "throttled", status_code=429)
    signup = subscriptions.SignUp(
        email=values["email"],
        first_name=values["first_name"],
        last_name=values["last_name"],
        library_name=values["library_name"],
        topics=sorted(chosen),
        consent_text=CONSENT,
        tracking_consent=tracking,
        tracking_wording=consent.wording(tracking) if tracking else None,
    )
    await run_in_threadpool(_store, request, signup)
    # The same answer whether the address is new, subscribed already or unsubscribed.
    return common.message_page(request, "subscribe_sent", context={"sent_to": values["email"]})


def _link(request: Request, token: str) -> tuple[int, bool]:
    found = subscriptions.verify_link(pages.signer_of(request), token)
    if found is None:
        raise pages.not_found()
    return found


def _state(request: Request, request_id: int) -> SubscriptionRequest | None:
    with session_scope(pages.engine_of(request)) as session:
        return session.get(SubscriptionRequest, request_id)


@router.api_route(PATH + "/potvrdit/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def confirm_page(token: str, request: Request) -> HTMLResponse:
    """A page with one button; it confirms nothing by itself."""
    request_id, valid = _link(request, token)
    if not valid:
        return common.message_page(request, "link_expired", status_code=410)
    pending = await run_in_threadpool(_state, request, request_id)
    if pending is None:
        raise pages.not_found()
    if pending.confirmed_at is not None:
        return common.message_page(request, "confirmed")
    # Anyone may have typed this address and answered the tracking question for it: the
    # owner confirms the answer too, so the page says what it is.
    answer = consent.ANSWERS.get(pending.tracking_consent or "")
    context = {
        "token": token,
        "email": pending.email,
        "tracking_question": consent.QUESTION,
        "tracking_answer": answer,
    }
    return common.csrf_page(request, "public/subscribe_confirm.html", context)


def _confirm(request: Request, request_id: int) -> bool:
    with session_scope(pages.engine_of(request)) as session:
        done = subscriptions.confirm(
            session, request_id, pages.signer_of(request), ip=pages.client_ip(request)
        )
        return done is not None


@router.post(PATH + "/potvrdit/{token}", include_in_schema=False)
async def confirm_submit(token: str, request: Request) -> HTMLResponse:
    request_id, valid = _link(request, token)
    refused = await common.csrf_checked(request)
    if refused is not None:
        return refused
    if not valid:
        return common.message_page(request, "link_expired", status_code=410)
    if not await run_in_threadpool(_confirm, request, request_id):
        raise pages.not_found()
    return common.message_page(request, "confirmed")
