"""Leaving: the unsubscribe page, RFC 8058 one-click POST, undo, and topic preferences.

A GET never changes anything: security gateways and link previewers fetch every link in a
message. Only a POST unsubscribes. The one-click POST (`List-Unsubscribe=One-Click`, sent by
mailbox providers, urlencoded or multipart) needs no cookie or login, answers 200 without a
redirect and is idempotent; the page's own button sends the same body. The token is the only
credential, so no session or CSRF cookie exists to be set.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from mailer.audience import tracking_consent as consent
from mailer.db import session_scope
from mailer.events import record
from mailer.models import (
    TOPIC_LABELS,
    Contact,
    ContactStatus,
    Event,
    EventKind,
    Topic,
    TopicOptOut,
)
from mailer.tokens import Purpose
from mailer.web import pages

router = APIRouter()

ONE_CLICK = ("List-Unsubscribe", "One-Click")
# Sources of an unsubscribe that the page's undo button may take back.
_UNDOABLE_SOURCES = ("page", "one-click")


def _outbox_id(request: Request, purpose: Purpose, token: str) -> int:
    ids = pages.verify(request, purpose, token)
    if not ids:
        raise pages.not_found()
    return ids[0]


def _evidence(request: Request, what: str) -> str:
    ua = request.headers.get("user-agent", "")[:200]
    return f"{what}; {datetime.now().astimezone().isoformat(timespec='seconds')}; UA: {ua}"


def _page_state(request: Request, outbox_id: int) -> dict[str, Any]:
    with session_scope(pages.engine_of(request)) as session:
        addressee = pages.load_addressee(session, outbox_id)
        if addressee is None:
            raise pages.not_found()
        return {
            "email": addressee.contact.email,
            "status": addressee.contact.status,
            "campaign": addressee.run.content.get("subject") or addressee.run.campaign,
        }


@router.api_route("/u/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def confirm_page(token: str, request: Request) -> HTMLResponse:
    """The confirmation page with one button; it changes nothing."""
    outbox_id = _outbox_id(request, Purpose.UNSUBSCRIBE, token)
    state = await run_in_threadpool(_page_state, request, outbox_id)
    preferences = pages.signer_of(request).sign(Purpose.PREFERENCES, outbox_id)
    context = {"token": token, "preferences_token": preferences, **state}
    return pages.render(request, "unsubscribe.html", context)


def _unsubscribe(request: Request, outbox_id: int, source: str) -> dict[str, Any]:
    with session_scope(pages.engine_of(request)) as session:
        addressee = pages.load_addressee(session, outbox_id)
        if addressee is None or addressee.contact.id is None:
            raise pages.not_found()
        changed = record.unsubscribe(
            session,
            addressee.contact.id,
            source,
            run_id=addressee.outbox.run_id,
            outbox_id=outbox_id,
        )
        return {"email": addressee.contact.email, "changed": changed}


@router.post("/u/{token}", include_in_schema=False)
async def one_click(token: str, request: Request) -> Response:
    """RFC 8058 one-click unsubscribe (also the page's button): 200, idempotent."""
    outbox_id = _outbox_id(request, Purpose.UNSUBSCRIBE, token)
    form = await request.form()
    if form.get(ONE_CLICK[0]) != ONE_CLICK[1]:
        raise _bad_request()
    source = "page" if form.get("via") == "page" else "one-click"
    state = await run_in_threadpool(_unsubscribe, request, outbox_id, source)
    return pages.render(request, "unsubscribed.html", {"token": token, **state})


def _bad_request() -> HTTPException:
    return HTTPException(status_code=400)


def _undoable(session: Session, contact_id: int, outbox_id: int) -> bool:
    """Whether the contact's latest change of heart is the unsubscribe that this message's page
    or one-click made. The undo takes back only that one: an unsubscribe made elsewhere (mailto,
    the preferences, staff recording an objection) or a later one stays final."""
    last = session.exec(
        select(Event)
        .where(
            col(Event.contact_id) == contact_id,
            col(Event.kind).in_([EventKind.UNSUBSCRIBE, EventKind.RESUBSCRIBE]),
        )
        .order_by(col(Event.id).desc())
        .limit(1)
    ).first()
    return (
        last is not None
        and last.kind == EventKind.UNSUBSCRIBE
        and last.outbox_id == outbox_id
        and (last.detail or {}).get("source") in _UNDOABLE_SOURCES
    )


def _resubscribe(request: Request, outbox_id: int, what: str) -> dict[str, Any]:
    with session_scope(pages.engine_of(request)) as session:
        addressee = pages.load_addressee(session, outbox_id)
        if addressee is None or addressee.contact.id is None:
            raise pages.not_found()
        # Lock the contact before looking at its history, so that an unsubscribe committed
        # elsewhere in the meantime is seen (PostgreSQL; SQLite has one writer anyway).
        session.exec(
            select(Contact.id).where(col(Contact.id) == addressee.contact.id).with_for_update()
        ).first()
        changed = _undoable(session, addressee.contact.id, outbox_id) and record.resubscribe(
            session,
            addressee.contact.id,
            "web",
            evidence=_evidence(request, what),
            run_id=addressee.outbox.run_id,
            outbox_id=outbox_id,
        )
        return {
            "email": addressee.contact.email,
            "changed": changed,
            "status": addressee.contact.status,
        }


@router.post("/u/{token}/undo", include_in_schema=False)
async def undo(token: str, request: Request) -> HTMLResponse:
    """Undo from the confirmation page: a fresh consent, recorded with its evidence."""
    outbox_id = _outbox_id(request, Purpose.UNSUBSCRIBE, token)
    form = await request.form()
    if form.get("undo") != "1":
        raise _bad_request()
    state = await run_in_threadpool(
        _resubscribe, request, outbox_id, f"tlačítko Vrátit po odhlášení, zpráva {outbox_id}"
    )
    return pages.render(request, "resubscribed.html", state)


# --- Preferences -------------------------------------------------------------------------


def _preferences_target(request: Request, token: str) -> tuple[int | None, int | None]:
    """(outbox id, contact id): message-bound tokens or contact-bound ones."""
    if ids := pages.verify(request, Purpose.PREFERENCES, token):
        return ids[0], None
    if ids := pages.verify(request, Purpose.CONTACT_PREFERENCES, token):
        return None, ids[0]
    raise pages.not_found()


def _preferences(
    request: Request, outbox_id: int | None, contact_id: int | None, form: FormData | None
) -> dict[str, Any]:
    with session_scope(pages.engine_of(request)) as session:
        run_id = None
        if outbox_id is not None:
            addressee = pages.load_addressee(session, outbox_id)
            if addressee is None:
                raise pages.not_found()
            contact, run_id = addressee.contact, addressee.outbox.run_id
        else:
            found = session.get(Contact, contact_id)
            if found is None:
                raise pages.not_found()
            contact = found
        assert contact.id is not None
        message = None
        if form is not None:
            action = form.get("action")
            if action == "all":
                record.unsubscribe(
                    session, contact.id, "preferences", run_id=run_id, outbox_id=outbox_id
                )
                message = "all"
            elif action == "resubscribe":
                record.resubscribe(
                    session,
                    contact.id,
                    "preferences",
                    evidence=_evidence(request, "obnovení odběru na stránce nastavení"),
                    run_id=run_id,
                    outbox_id=outbox_id,
                )
                message = "resubscribed"
            elif action == "save":
                keep = set(form.getlist("topic"))
                for topic in Topic:
                    if topic.value in keep:
                        record.opt_in_topic(
                            session,
                            contact.id,
                            topic,
                            "preferences",
                            run_id=run_id,
                            outbox_id=outbox_id,
                        )
                    else:
                        record.opt_out_topic(
                            session,
                            contact.id,
                            topic,
                            "preferences",
                            run_id=run_id,
                            outbox_id=outbox_id,
                        )
                message = "saved"
            elif action == "tracking":
                answer = consent.parse_answer(str(form.get("tracking") or ""))
                if answer not in consent.ANSWERS:
                    message = "tracking_missing"
                else:
                    consent.record_consent(
                        session,
                        contact,
                        answer,
                        source=consent.SOURCE_PREFERENCES,
                        wording=consent.wording(answer),
                        ip=pages.client_ip(request),
                    )
                    message = "tracking"
            else:
                raise _bad_request()
            session.flush()
        off = set(
            session.exec(
                select(TopicOptOut.topic).where(col(TopicOptOut.contact_id) == contact.id)
            ).all()
        )
        return {
            "email": contact.email,
            "status": contact.status,
            "active": contact.status == ContactStatus.ACTIVE,
            "topics": [
                {"value": t.value, "label": TOPIC_LABELS[t], "on": t.value not in off}
                for t in Topic
            ],
            "message": message,
            "tracking": contact.tracking_consent,
            "tracking_question": consent.QUESTION,
            "tracking_explanation": consent.EXPLANATION,
            "tracking_answers": list(consent.ANSWERS.items()),
        }


@router.api_route("/p/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def preferences_page(token: str, request: Request) -> HTMLResponse:
    """Topics to keep or leave; a GET changes nothing."""
    outbox_id, contact_id = _preferences_target(request, token)
    state = await run_in_threadpool(_preferences, request, outbox_id, contact_id, None)
    return pages.render(request, "preferences.html", {"token": token, **state})


@router.post("/p/{token}", include_in_schema=False)
async def preferences_save(token: str, request: Request) -> HTMLResponse:
    outbox_id, contact_id = _preferences_target(request, token)
    form = await request.form()
    state = await run_in_threadpool(_preferences, request, outbox_id, contact_id, form)
    return pages.render(request, "preferences.html", {"token": token, **state})
