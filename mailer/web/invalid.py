"""Czech answers for requests whose form fields or query parameters fail validation.

FastAPI would answer such a request with an English 422 JSON body; staff and recipients get a
page in the right layout (console or public) naming each missing or wrong field in Czech, and
scripts get JSON with the same Czech messages.

Routes bound their numbers (`mailer.web.params`) and their text, so the database never sees
a value it cannot hold. Should one still get through, the database's refusal (a value out of
range or too long) is the same kind of answer: a Czech 422 and nothing changed, never a 500."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DataError

STATUS = 422

# Field names of the routes, as staff see them on the forms. An unknown field is shown by name.
FIELD_LABELS: dict[str, str] = {
    "page": "číslo stránky",
    "email": "e-mail",
    "password": "heslo",
    "role": "role",
    "name": "jméno",
    "step": "krok kampaně",
    "contact_id": "kontakt",
    "confirmed_size": "potvrzený počet příjemců",
    "reason": "důvod",
    "file": "soubor",
    "mode": "režim",
    "member_since": "člen od (rok)",
    "note": "poznámka",
    "user_id": "uživatel",
    "run_id": "rozeslání",
    "library_id": "knihovna",
    "segment_id": "segment",
    "slug": "kampaň",
    "action": "akce",
    "token": "odkaz",
    "q": "hledaný text",
    "status": "stav",
    "library_type": "typ knihovny",
    "region": "kraj",
    "member": "člen SDRUK",
    "topic": "téma",
    "notice": "oznámení",
    "csrf_token": "ochranný kód formuláře",
    "next": "cílová stránka",
}

PLACES: dict[str, str] = {
    "body": "formuláře",
    "query": "adresy stránky",
    "path": "adresy stránky",
    "header": "hlavičky požadavku",
    "cookie": "cookie",
}


@dataclass(frozen=True)
class Problem:
    """One field that is missing or wrong: its name, its Czech label and what is wrong."""

    field: str
    label: str
    message: str


def _label(field: str) -> str:
    return FIELD_LABELS.get(field, field)


def _what(error: Mapping[str, Any]) -> str:
    """What is wrong with the value, in Czech (pydantic's error types; the English `msg` never
    reaches the reader)."""
    kind = str(error.get("type", ""))
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "chybí, vyplňte ho prosím"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return "musí být celé číslo"
    if kind in ("float_parsing", "float_type", "decimal_parsing"):
        return "musí být číslo"
    if kind in ("bool_parsing", "bool_type"):
        return "musí být ano, nebo ne"
    if kind in ("greater_than_equal", "greater_than"):
        sign = "alespoň" if kind == "greater_than_equal" else "větší než"
        return f"musí být {sign} {ctx.get('ge', ctx.get('gt', ''))}".rstrip()
    if kind in ("less_than_equal", "less_than"):
        sign = "nejvýše" if kind == "less_than_equal" else "menší než"
        return f"musí být {sign} {ctx.get('le', ctx.get('lt', ''))}".rstrip()
    if kind in ("string_too_short", "too_short"):
        return f"je příliš krátké (nejméně {ctx.get('min_length', 1)} znaků)"
    if kind in ("string_too_long", "too_long"):
        return f"je příliš dlouhé (nejvýše {ctx.get('max_length', '')} znaků)".replace(" )", ")")
    if kind in ("enum", "literal_error"):
        expected = ctx.get("expected")
        return f"má neznámou hodnotu (možné: {expected})" if expected else "má neznámou hodnotu"
    if kind in ("date_parsing", "date_from_datetime_parsing", "date_type"):
        return "musí být datum ve tvaru RRRR-MM-DD"
    if kind in ("datetime_parsing", "datetime_type", "datetime_from_date_parsing"):
        return "musí být datum a čas"
    if kind in ("string_type", "bytes_type"):
        return "musí být text"
    if kind in ("list_type", "tuple_type", "set_type"):
        return "musí obsahovat seznam hodnot"
    if kind == "json_invalid":
        return "není platný JSON"
    if kind in ("model_attributes_type", "dict_type", "model_type"):
        return "má nečekaný tvar"
    if kind == "value_error" and "UploadFile" in str(error.get("msg", "")):
        return "musí být nahraný soubor"
    return "má neplatnou hodnotu"


def problems_of(errors: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """The Czech problems of a validation error's `errors()`, one per field, in order."""
    found: dict[str, Problem] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        place = loc[0] if loc and loc[0] in PLACES else ""
        names = loc[1:] if place else loc
        field = names[0] if names else ""
        if not field:
            found.setdefault("", Problem("", "", f"Údaje {PLACES.get(place, 'požadavku')} chybí."))
            continue
        label = _label(field)
        found.setdefault(field, Problem(field, label, f"Pole „{label}“ {_what(error)}."))
    return list(found.values())


def summary(problems: Sequence[Problem]) -> str:
    """One Czech sentence for the page heading area and JSON `detail`."""
    count = len(problems)
    if count == 1:
        return f"Formulář nebo odkaz obsahuje chybu: {problems[0].message}"
    return "Formulář nebo odkaz obsahuje chyby: " + " ".join(p.message for p in problems)


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def is_console(request: Request) -> bool:
    path = request.url.path
    return path == "/console" or path.startswith("/console/")


async def validation_error_page(request: Request, exc: Exception) -> Response:
    """The app's RequestValidationError handler: the console's layout under /console, the public
    layout elsewhere, JSON with Czech messages for anything that does not ask for HTML."""
    assert isinstance(exc, RequestValidationError)
    problems = problems_of(exc.errors())
    if not wants_html(request):
        return JSONResponse(
            {"detail": summary(problems), "errors": [asdict(p) for p in problems]},
            status_code=STATUS,
        )
    messages = [p.message for p in problems]
    # Where to go from here: the same page without the wrong query, when the path itself was fine.
    path_ok = all(not error.get("loc") or error["loc"][0] != "path" for error in exc.errors())
    retry = request.url.path if request.method == "GET" and request.url.query and path_ok else None
    if is_console(request):
        from mailer.web.console.routing import invalid_page

        return invalid_page(request, messages, retry)
    from mailer.web.pages import invalid_public_page

    return invalid_public_page(request, messages, retry)


OUT_OF_RANGE = Problem(
    "",
    "",
    "Hodnota ve formuláři nebo v adrese stránky je mimo povolený rozsah nebo je příliš dlouhá.",
)


async def database_value_error_page(request: Request, exc: Exception) -> Response:
    """The app's handler for values the database refused (DataError: out of range, too long,
    malformed) and for integers too large to bind (OverflowError, raised by sqlite3): a Czech
    422. The request's session rolls back when it closes, so nothing was changed."""
    assert isinstance(exc, DataError | OverflowError)
    if not wants_html(request):
        return JSONResponse(
            {"detail": summary([OUT_OF_RANGE]), "errors": [asdict(OUT_OF_RANGE)]},
            status_code=STATUS,
        )
    retry = request.url.path if request.method == "GET" and request.url.query else None
    if is_console(request):
        from mailer.web.console.routing import invalid_page

        return invalid_page(request, [OUT_OF_RANGE.message], retry)
    from mailer.web.pages import invalid_public_page

    return invalid_public_page(request, [OUT_OF_RANGE.message], retry)
