"""The membership application form "Chceme být členem": public, or pre-filled from a campaign
message's signed link and credited to its run and step.

The page never says whether a library or an address is in the directory: the siglum is only
checked for its form, matched silently when stored, and every valid application gets the same
answer."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData

from mailer.compose.freeze import APPLY_PATH
from mailer.db import session_scope
from mailer.models import LIBRARY_TYPE_LABELS, REGIONS, Contact, Library, OutboxMessage
from mailer.signups import membership
from mailer.tokens import Purpose
from mailer.web import pages
from mailer.web.public import common

router = APIRouter()
PATH = APPLY_PATH

# The wording the applicant agrees to, stored with the application exactly as shown.
CONSENT_STATUTES = (
    "Souhlasím se stanovami Sdružení knihoven ČR a za knihovnu žádám o přijetí za člena."
)
CONSENT_PROCESSING = (
    "Souhlasím se zpracováním osobních údajů uvedených v přihlášce Sdružením knihoven ČR "
    "za účelem vyřízení přihlášky a vedení členské agendy po dobu členství."
)
SIGLUM_RE = re.compile(r"^[A-Z]{3}\d{3}$")
PHONE_RE = re.compile(r"^\+?[\d ]{9,20}$")
DIC_RE = re.compile(r"^CZ\d{8,10}$")

FIELDS: dict[str, tuple[str, int, bool]] = {
    # name: (Czech label, max length, required)
    "library_name": ("Název knihovny", 300, True),
    "library_type": ("Typ knihovny", 16, True),
    "region": ("Kraj", 40, True),
    "town": ("Obec", 120, True),
    "siglum": ("Sigla knihovny", 16, False),
    "contact_name": ("Jméno a příjmení", 240, True),
    "contact_role": ("Funkce", 120, False),
    "email": ("E-mail", 320, True),
    "phone": ("Telefon", 40, False),
    "ico": ("IČO", 8, True),
    "dic": ("DIČ", 14, False),
    "billing_address": ("Fakturační adresa", 500, True),
}


def ico_valid(ico: str) -> bool:
    """The Czech company number's check digit (weights 8…2, modulo 11)."""
    if not re.fullmatch(r"\d{8}", ico):
        return False
    total = sum(int(d) * w for d, w in zip(ico[:7], range(8, 1, -1), strict=True))
    return int(ico[7]) == (11 - total % 11) % 10


def _clean(form: FormData) -> tuple[dict[str, str], dict[str, str]]:
    """The form's values, trimmed, and the problems per field (Czech)."""
    values, problems = common.clean_fields(form, FIELDS)
    if values["library_type"] and values["library_type"] not in {
        t.value for t in LIBRARY_TYPE_LABELS
    }:
        problems["library_type"] = "Vyberte prosím typ knihovny ze seznamu."
    if values["region"] and values["region"] not in REGIONS:
        problems["region"] = "Vyberte prosím kraj ze seznamu."
    values["siglum"] = values["siglum"].upper().replace(" ", "")
    if values["siglum"] and not SIGLUM_RE.match(values["siglum"]):
        problems["siglum"] = "Sigla má tvar tří písmen a tří číslic, např. ABA001."
    if values["phone"] and not PHONE_RE.match(values["phone"]):
        problems["phone"] = "Telefon zadejte číslicemi, např. +420 123 456 789."
    values["ico"] = values["ico"].replace(" ", "")
    if values["ico"] and "ico" not in problems and not ico_valid(values["ico"]):
        problems["ico"] = "IČO má osm číslic a jeho kontrolní číslice nesouhlasí."
    values["dic"] = values["dic"].upper().replace(" ", "")
    if values["dic"] and not DIC_RE.match(values["dic"]):
        problems["dic"] = "DIČ má tvar CZ a 8 až 10 číslic, např. CZ12345678."
    if form.get("consent_statutes") != "1":
        problems["consent_statutes"] = "Bez souhlasu se stanovami přihlášku podat nelze."
    if form.get("consent_processing") != "1":
        problems["consent_processing"] = (
            "Bez souhlasu se zpracováním údajů přihlášku vyřídit nelze."
        )
    return values, problems


def _prefill(request: Request, outbox_id: int) -> dict[str, str] | None:
    """What the directory knows of the message's contact and library; None for a link whose
    message or contact is gone."""
    with session_scope(pages.engine_of(request)) as session:
        message = session.get(OutboxMessage, outbox_id)
        if message is None or message.contact_id is None:
            return None
        contact = session.get(Contact, message.contact_id)
        if contact is None:
            return None
        library = session.get(Library, contact.library_id) if contact.library_id else None
        name = " ".join(x for x in (contact.first_name, contact.last_name) if x)
        values = {key: "" for key in FIELDS}
        values.update(contact_name=name, contact_role=contact.role, email=contact.email)
        if library is not None:
            values.update(
                library_name=library.name,
                library_type=library.library_type,
                region=library.region,
                town=library.town,
                siglum=library.siglum or "",
            )
        values["_used"] = "1" if membership.already_applied(session, outbox_id) else ""
        return values


def _outbox_of(request: Request, token: str | None) -> int | None:
    if token is None:
        return None
    ids = pages.verify(request, Purpose.APPLY, token)
    if not ids:
        raise pages.not_found()
    return ids[0]


def _page(
    request: Request,
    token: str | None,
    values: dict[str, str],
    problems: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    context: dict[str, Any] = {
        "action": f"{PATH}/{token}" if token else PATH,
        "values": values,
        "problems": problems or {},
        "types": [(t.value, label) for t, label in LIBRARY_TYPE_LABELS.items()],
        "regions": REGIONS,
        "consent_statutes": CONSENT_STATUTES,
        "consent_processing": CONSENT_PROCESSING,
        "prefilled": bool(token),
    }
    return common.form_page(request, "public/apply.html", context, status_code)


@router.api_route(PATH, methods=["GET", "HEAD"], include_in_schema=False)
async def apply_form(request: Request) -> HTMLResponse:
    return _page(request, None, {key: "" for key in FIELDS})


@router.api_route(PATH + "/{token}", methods=["GET", "HEAD"], include_in_schema=False)
async def apply_form_prefilled(token: str, request: Request) -> HTMLResponse:
    outbox_id = _outbox_of(request, token)
    assert outbox_id is not None
    values = await run_in_threadpool(_prefill, request, outbox_id)
    if values is None:
        raise pages.not_found()
    if values.pop("_used"):
        return common.message_page(request, "used", status_code=409)
    return _page(request, token, values)


def _store(request: Request, values: dict[str, str], outbox_id: int | None) -> bool:
    """Store the application; False when this campaign link already sent one."""
    applicant = membership.Applicant(
        consent_text=f"{CONSENT_STATUTES}\n{CONSENT_PROCESSING}", **values
    )
    origin = membership.Origin(
        outbox_id=outbox_id,
        ip=pages.client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    try:
        with session_scope(pages.engine_of(request)) as session:
            if outbox_id is not None and membership.already_applied(session, outbox_id):
                return False
            membership.submit(session, applicant, origin)
    except IntegrityError:
        return False  # the same link submitted twice at once: the unique outbox id held
    return True


async def _submit(request: Request, token: str | None) -> HTMLResponse:
    outbox_id = _outbox_of(request, token)
    form = await common.read_protected_form(request)
    if isinstance(form, HTMLResponse):
        return form
    values, problems = _clean(form)
    if problems:
        return _page(request, token, values, problems, status_code=422)
    if await common.throttled(request, "apply", values["email"]):
        return common.message_page(request, "throttled", status_code=429)
    stored = await run_in_threadpool(_store, request, values, outbox_id)
    if not stored:
        return common.message_page(request, "used", status_code=409)
    return common.message_page(request, "applied", context={"email": values["email"]})


@router.post(PATH, include_in_schema=False)
async def apply_submit(request: Request) -> HTMLResponse:
    return await _submit(request, None)


@router.post(PATH + "/{token}", include_in_schema=False)
async def apply_submit_prefilled(token: str, request: Request) -> HTMLResponse:
    return await _submit(request, token)
