"""Event registration pages: one per event campaign (/registrace/<campaign>), with session
choice where the event has several, seats and a waiting list; pre-filled from a campaign
message's signed link, which also lists the recipient's own registrations for the event with
their cancel links (so a reminder can offer cancelling); cancelling through the signed link in
the confirmation.

The answer to a registration is the same whether the address was already registered or not
(the e-mail tells the person which); a GET never changes anything."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from mailer.compose.campaigns import SLUG_RE, Blueprint, BlueprintError, Kind, load_blueprint
from mailer.compose.czech import format_clock, format_weekday_day
from mailer.compose.freeze import REGISTER_PATH
from mailer.db import session_scope
from mailer.models import Contact, EventRegistration, Library, OutboxMessage, Run
from mailer.signups import notices, registrations
from mailer.tokens import Purpose
from mailer.web import pages
from mailer.web.public import common

router = APIRouter()
PATH = REGISTER_PATH
CANCEL_PATH = "/zrusit-registraci"
FIELDS: dict[str, tuple[str, int, bool]] = {
    "name": ("Jméno a příjmení", 240, True),
    "role": ("Funkce", 120, False),
    "library_name": ("Knihovna", 300, False),
    "email": ("E-mail", 320, True),
}


def _event(slug: str) -> Blueprint:
    if not SLUG_RE.match(slug):
        raise pages.not_found()
    try:
        blueprint = load_blueprint(slug)
    except (BlueprintError, KeyError, OSError, ValueError):
        raise pages.not_found() from None
    if blueprint.kind is not Kind.EVENT or blueprint.event is None:
        raise pages.not_found()
    return blueprint


def _sessions(request: Request, blueprint: Blueprint) -> tuple[list[dict[str, Any]], bool]:
    """The sessions with their free seats, and whether registration is closed."""
    assert blueprint.event is not None
    with session_scope(pages.engine_of(request)) as session:
        seated = registrations.taken(session, blueprint.slug)
        closed = registrations.is_closed(session, blueprint.slug)
    rows = []
    for index, occurrence in enumerate(blueprint.event.occurrences()):
        free = None if occurrence.capacity is None else occurrence.capacity - seated.get(index, 0)
        rows.append(
            {
                "index": index,
                "title": occurrence.title,
                "when": f"{format_weekday_day(occurrence.start)}, {format_clock(occurrence.start)}"
                f"–{format_clock(occurrence.end)}",
                "venue": ", ".join(x for x in (occurrence.venue, occurrence.address) if x),
                "free": free,
                "tbc": bool(occurrence.to_be_confirmed),
            }
        )
    return rows, closed


def _prefill(request: Request, blueprint: Blueprint, outbox_id: int) -> dict[str, str] | None:
    with session_scope(pages.engine_of(request)) as session:
        message = session.get(OutboxMessage, outbox_id)
        run = session.get(Run, message.run_id) if message else None
        if message is None or run is None or run.campaign != blueprint.slug:
            return None
        contact = session.get(Contact, message.contact_id) if message.contact_id else None
        if contact is None:
            return None
        library = session.get(Library, contact.library_id) if contact.library_id else None
        return {
            "name": " ".join(x for x in (contact.first_name, contact.last_name) if x),
            "role": contact.role,
            "library_name": library.name if library else "",
            "email": contact.email,
            "session": "",
        }


def _own_registrations(
    request: Request, blueprint: Blueprint, outbox_id: int
) -> list[dict[str, Any]]:
    """The registrations (seats and waiting list) for this event of the person a signed
    campaign link was sent to, each with its signed cancel link. The link itself is the
    credential, as the confirmation's cancel link is; an unsigned page shows nothing."""
    assert blueprint.event is not None
    occurrences = blueprint.event.occurrences()
    with session_scope(pages.engine_of(request)) as session:
        message = session.get(OutboxMessage, outbox_id)
        if message is None:
            return []
        rows = session.exec(
            select(EventRegistration)
            .where(
                EventRegistration.campaign == blueprint.slug,
                col(EventRegistration.status).in_(registrations.ACTIVE),
                sa.or_(
                    col(EventRegistration.email) == message.email,
                    sa.and_(
                        col(EventRegistration.contact_id).is_not(None),
                        col(EventRegistration.contact_id) == message.contact_id,
                    ),
                ),
            )
            .order_by(col(EventRegistration.session_index))
        ).all()
        return [
            {
                "title": occurrences[r.session_index].title,
                "when": format_weekday_day(occurrences[r.session_index].start),
                "status": registrations.STATUS_LABELS[r.status],
                "cancel": notices.cancel_url(r),
            }
            for r in rows
            if r.session_index < len(occurrences)
        ]


def _outbox_of(request: Request, token: str | None) -> int | None:
    if token is None:
        return None
    ids = pages.verify(request, Purpose.REGISTER, token)
    if not ids:
        raise pages.not_found()
    return ids[0]


async def _page(
    request: Request,
    blueprint: Blueprint,
    token: str | None,
    values: dict[str, str],
    problems: dict[str, str] | None = None,
    status_code: int = 200,
    mine: list[dict[str, Any]] | None = None,
) -> HTMLResponse:
    sessions, closed = await run_in_threadpool(_sessions, request, blueprint)
    assert blueprint.event is not None
    if len(sessions) == 1:
        values = {**values, "session": "0"}
    context = {
        "event": blueprint.event,
        "sessions": sessions,
        "closed": closed,
        "action": f"{PATH}/{blueprint.slug}" + (f"/{token}" if token else ""),
        "values": values,
        "problems": problems or {},
        "prefilled": bool(token),
        "mine": mine or [],
    }
    if closed:
        return pages.render(request, "public/register.html", context, status_code)
    return common.form_page(request, "public/register.html", context, status_code)


def _empty() -> dict[str, str]:
    return {key: "" for key in (*FIELDS, "session")}


@router.api_route(PATH + "/{slug}", methods=["GET", "HEAD"], include_in_schema=False)
async def register_form(slug: str, request: Request) -> HTMLResponse:
    blueprint = await run_in_threadpool(_event, slug)
    return await _page(request, blueprint, None, _empty())


@router.api_route(PATH + "/{slug}/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def register_form_prefilled(slug: str, token: str, request: Request) -> HTMLResponse:
    blueprint = await run_in_threadpool(_event, slug)
    outbox_id = _outbox_of(request, token)
    assert outbox_id is not None
    values = await run_in_threadpool(_prefill, request, blueprint, outbox_id)
    if values is None:
        raise pages.not_found()
    mine = await run_in_threadpool(_own_registrations, request, blueprint, outbox_id)
    return await _page(request, blueprint, token, values, mine=mine)


def _clean(form: Any, blueprint: Blueprint) -> tuple[dict[str, str], dict[str, str], int]:
    assert blueprint.event is not None
    values, problems = common.clean_fields(form, FIELDS)
    choice = str(form.get("session") or "")
    count = len(blueprint.event.occurrences())
    values["session"] = choice
    index = int(choice) if re.fullmatch(r"\d{1,3}", choice) else -1
    if count == 1:
        index = 0
    elif not 0 <= index < count:
        problems["session"] = "Vyberte prosím termín."
    return values, problems, index


def _store(
    request: Request,
    blueprint: Blueprint,
    index: int,
    values: dict[str, str],
    outbox_id: int | None,
) -> str:
    person = registrations.Registrant(
        name=values["name"],
        role=values["role"],
        library_name=values["library_name"],
        email=values["email"],
    )
    try:
        with session_scope(pages.engine_of(request)) as session:
            outcome = registrations.register(
                session,
                blueprint,
                index,
                person,
                outbox_id=outbox_id,
                ip=pages.client_ip(request),
            )
            return outcome.registration.status
    except IntegrityError:
        # The same person at the same moment in another request: that one holds the seat.
        return "already"
    except registrations.RegistrationError:
        return "closed"


def _message_of_event(request: Request, blueprint: Blueprint, outbox_id: int) -> bool:
    with session_scope(pages.engine_of(request)) as session:
        message = session.get(OutboxMessage, outbox_id)
        run = session.get(Run, message.run_id) if message else None
        return run is not None and run.campaign == blueprint.slug


async def _submit(request: Request, slug: str, token: str | None) -> HTMLResponse:
    blueprint = await run_in_threadpool(_event, slug)
    outbox_id = _outbox_of(request, token)
    # Another event's link would credit its run with this registration; its page is a 404 too.
    if outbox_id is not None and not await run_in_threadpool(
        _message_of_event, request, blueprint, outbox_id
    ):
        raise pages.not_found()
    form = await common.read_protected_form(request)
    if isinstance(form, HTMLResponse):
        return form
    values, problems, index = _clean(form, blueprint)
    if problems:
        return await _page(request, blueprint, token, values, problems, status_code=422)
    if await common.throttled(request, "register", values["email"]):
        return common.message_page(request, "throttled", status_code=429)
    status = await run_in_threadpool(_store, request, blueprint, index, values, outbox_id)
    if status == "closed":
        return common.message_page(request, "registration_closed", status_code=409)
    # The same answer for a new and a repeated registration; the e-mail says which.
    return common.message_page(request, "registered", context={"email": values["email"]})


@router.post(PATH + "/{slug}", include_in_schema=False)
async def register_submit(slug: str, request: Request) -> HTMLResponse:
    return await _submit(request, slug, None)


@router.post(PATH + "/{slug}/{token}", include_in_schema=False)
async def register_submit_prefilled(slug: str, token: str, request: Request) -> HTMLResponse:
    return await _submit(request, slug, token)


# --- cancelling --------------------------------------------------------------------------------


def _registration_of(request: Request, token: str) -> tuple[EventRegistration, Blueprint]:
    ids = pages.verify(request, Purpose.CANCEL_REGISTRATION, token)
    if not ids:
        raise pages.not_found()
    with session_scope(pages.engine_of(request)) as session:
        registration = session.get(EventRegistration, ids[0])
    if registration is None:
        raise pages.not_found()
    return registration, _event(registration.campaign)


def _cancel_context(registration: EventRegistration, blueprint: Blueprint) -> dict[str, Any]:
    assert blueprint.event is not None
    occurrence = blueprint.event.occurrences()[registration.session_index]
    return {
        "registration": registration,
        "event_title": blueprint.event.title,
        "session_title": occurrence.title,
        "when": f"{format_weekday_day(occurrence.start)}, {format_clock(occurrence.start)}",
        "waitlisted": registration.status == "waitlisted",
        "cancelled": registration.status == "cancelled",
    }


@router.api_route(CANCEL_PATH + "/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def cancel_page(token: str, request: Request) -> HTMLResponse:
    """The confirmation page with one button; it changes nothing (link scanners GET links)."""
    registration, blueprint = await run_in_threadpool(_registration_of, request, token)
    context = {"token": token, **_cancel_context(registration, blueprint)}
    return common.csrf_page(request, "public/cancel.html", context)


def _cancel(request: Request, registration_id: int, blueprint: Blueprint) -> None:
    with session_scope(pages.engine_of(request)) as session:
        registrations.cancel(session, blueprint, registration_id)


@router.post(CANCEL_PATH + "/{token}", include_in_schema=False)
async def cancel_submit(token: str, request: Request) -> HTMLResponse:
    """Cancel (idempotent). The signed link is the credential, as for unsubscribing."""
    registration, blueprint = await run_in_threadpool(_registration_of, request, token)
    assert registration.id is not None
    refused = await common.csrf_checked(request)
    if refused is not None:
        return refused
    await run_in_threadpool(_cancel, request, registration.id, blueprint)
    return common.message_page(request, "cancelled")
