"""Every route of the web app, public and console, answers malformed, out-of-range and
oversized values with a 4xx (or a normal page), never a 5xx: as an anonymous visitor, as a
viewer and as an administrator, on SQLite and on PostgreSQL.

The routes come from `app.routes`, so a new route is walked without touching this file. Each
declared path, query and form parameter gets every bad value in turn, the others keeping a
harmless value; field names a route may read by itself from the form or the query (every
`name="…"` of the templates and every labelled field) get each bad value together."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import get_args
from urllib.parse import quote

import pytest
from console_support import BASE_URL, PASSWORD, add_user, csrf_of, load_contacts, make_app
from fastapi import FastAPI
from fastapi._compat import ModelField
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.models import User
from mailer.tokens import Purpose, default_signer
from mailer.web.invalid import FIELD_LABELS
from mailer.web.params import MAX_ID

ROOT = Path(__file__).resolve().parent.parent

# Every parameter that is a number gets these: malformed, out of range, oversized.
NUMBER_VALUES = [
    "abc",
    "1.5",
    " 1",
    "٣",  # an Arabic-Indic digit, which Python's int() accepts
    "",
    "-1",
    "0",
    str(MAX_ID + 1),  # past PostgreSQL's INTEGER
    str(2**63),
    str(2**64),
    str(10**30),
    str(-(2**63) - 1),
    "9" * 5000,
]
# Text parameters: empty, control characters, markup, numbers where text is expected, oversized.
TEXT_VALUES = ["", "a\r\nb", "<script>x</script>", str(2**64), "-1", "x" * 5000]
# Fields a route may read by itself get both kinds.
ANY_VALUES = [
    "abc",
    "1.5",
    "٣",
    "a\r\nb<script>",
    "-1",
    "0",
    str(MAX_ID + 1),
    str(2**64),
    str(10**30),
    "x" * 5000,
    "9" * 5000,
]

# Harmless values for the parameters that are not under test: existing rows where a route
# needs one, so the walk reaches past the lookup.
BASELINE = {
    "contact_id": "1",
    "library_id": "1",
    "segment_id": "1",
    "run_id": "1",
    "slug": "join-this-year-2026",
    "kind": "odber-vitejte",
    "step": "launch",
    "action": "pause",
    "name": "zprava.eml",
    "index": "0",
    "email": "novy.kolega@sdruk.example",
    "role": "viewer",
    "password": "dlouhe-heslo-na-zkousku",
    "mode": "upsert",
    "reason": "zkouška",
}


def form_field_names() -> set[str]:
    """Every field a page of the app can send: the templates' `name="…"` and labelled fields."""
    names = set(FIELD_LABELS)
    for template in (ROOT / "templates" / "web").rglob("*.html"):
        names |= set(re.findall(r'name="([a-z_]+)"', template.read_text(encoding="utf-8")))
    return names - {"csrf_token", "viewport", "robots"}


@dataclass(frozen=True)
class Param:
    name: str
    place: str  # path, query or form
    required: bool
    number: bool


def _is_number(field: ModelField) -> bool:
    annotation = field.field_info.annotation
    return annotation in (int, float) or any(a in (int, float) for a in get_args(annotation))


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def params_of(route: WalkedRoute) -> list[Param]:
    """The route's own parameters and those of its dependencies, once each."""
    found: dict[str, Param] = {}
    for dep in _dependants(route.dependant):
        for place, fields in (
            ("path", dep.path_params),
            ("query", dep.query_params),
            ("form", dep.body_params),
        ):
            for field in fields:
                required = place == "path" or field.field_info.is_required()
                found.setdefault(
                    field.alias, Param(field.alias, place, required, _is_number(field))
                )
    return list(found.values())


@dataclass(frozen=True)
class WalkedRoute:
    path: str
    methods: frozenset[str]
    dependant: Dependant


def walkable_routes(app: FastAPI) -> list[WalkedRoute]:
    """Every API route of the app with its full path (routers included under prefixes)."""
    found = []
    for context in iter_route_contexts(app.routes):
        if isinstance(context.original_route, APIRoute) and context.path:
            found.append(
                WalkedRoute(context.path, frozenset(context.methods or ()), context.dependant)
            )
    return found


@dataclass
class Visitor:
    name: str
    cookie: str  # the console session, empty for an anonymous visitor
    csrf: str


def _baseline(param: Param, tokens: dict[str, str], path: str) -> str:
    if param.name == "token":
        return tokens.get(path.split("/")[1], "neplatny-token")
    if param.name == "user_id":
        return tokens["user_id"]
    return BASELINE.get(param.name, "1")


def _request(
    client: TestClient,
    visitor: Visitor,
    route: WalkedRoute,
    method: str,
    values: dict[str, tuple[str, str]],
    extra: dict[str, str],
) -> int:
    path = route.path
    query: dict[str, str] = {}
    form: dict[str, str] = {}
    for name, (place, value) in values.items():
        if place == "path":
            path = path.replace("{" + name + "}", quote(value, safe="") or "%20")
        elif place == "query":
            query[name] = value
        else:
            form[name] = value
    if method in ("GET", "HEAD"):
        query.update(extra)
    else:
        form.update(extra)
        if visitor.csrf:
            form["csrf_token"] = visitor.csrf
    client.cookies.clear()
    if visitor.cookie:
        client.cookies.set("sdruk_console", visitor.cookie, path="/console")
    response = client.request(
        method,
        path,
        params=query,
        data=form if method not in ("GET", "HEAD") else None,
        headers={"accept": "text/html"},
        follow_redirects=False,
    )
    return response.status_code


@pytest.fixture
def app(engine: Engine, tmp_path: Path) -> FastAPI:
    load_contacts(engine, tmp_path)
    add_user(engine, "spravce@sdruk.example", "admin")
    add_user(engine, "ctenar@sdruk.example", "viewer")
    add_user(engine, "cil@sdruk.example", "editor")
    return make_app(engine)


def _sign_in(client: TestClient, email: str) -> Visitor:
    client.cookies.clear()
    form = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"email": email, "password": PASSWORD, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    csrf = csrf_of(client.get("/console/", headers={"accept": "text/html"}).text)
    cookie = client.cookies.get("sdruk_console") or ""
    client.cookies.clear()
    return Visitor(email, cookie, csrf)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    # One client, so the app's lifespan (the event writer) runs once; visitors swap cookies.
    with TestClient(app, base_url=BASE_URL, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture(params=["anonym", "ctenar@sdruk.example", "spravce@sdruk.example"])
def visitor(request: pytest.FixtureRequest, client: TestClient) -> Visitor:
    if request.param == "anonym":
        return Visitor("anonym", "", "")
    return _sign_in(client, request.param)


def _tokens(engine: Engine) -> dict[str, str]:
    # Tokens of run 0 / message 0: what a staff preview or test send carries.
    signer = default_signer()
    with Session(engine) as session:
        target = session.exec(select(User).where(User.email == "cil@sdruk.example")).one()
    return {
        "o": signer.sign(Purpose.OPEN, 0),
        "c": signer.sign(Purpose.MESSAGE_CLICK, 0),
        "v": signer.sign(Purpose.WEB_VERSION, 0),
        "u": signer.sign(Purpose.UNSUBSCRIBE, 0),
        "p": signer.sign(Purpose.PREFERENCES, 0),
        "user_id": str(target.id),
    }


def _upper_bound(field: ModelField) -> int | None:
    bounds = [m.le for m in field.field_info.metadata if hasattr(m, "le")]
    bounds += [m.lt - 1 for m in field.field_info.metadata if hasattr(m, "lt")]
    return min(bounds) if bounds else None


def test_it_bounds_every_number_a_route_takes(app: FastAPI) -> None:
    # Declared through mailer.web.params, so an id no row can have is a Czech 422.
    unbounded = []
    for route in walkable_routes(app):
        for dep in _dependants(route.dependant):
            for field in (*dep.path_params, *dep.query_params, *dep.body_params):
                bound = _upper_bound(field)
                if _is_number(field) and (bound is None or bound > MAX_ID):
                    unbounded.append(f"{route.path} {field.alias}")
    assert not unbounded, unbounded


def _cases(
    params: list[Param], baseline: dict[str, tuple[str, str]], extras: list[str], anonymous: bool
) -> Iterator[tuple[str, dict[str, tuple[str, str]], dict[str, str]]]:
    """(label, parameter values, other fields) of each request to one route."""
    yield "(výchozí hodnoty)", baseline, {}
    if anonymous:
        # Console routes refuse a visitor without a session before reading any field; the
        # public ones take only their token, so every parameter goes wrong at once.
        for value in NUMBER_VALUES + TEXT_VALUES:
            yield f"vše={value[:20]!r}", {p.name: (p.place, value) for p in params}, {}
        return
    for param in params:
        values = NUMBER_VALUES if param.number else TEXT_VALUES
        if not param.number and param.name in baseline:
            # Oversized but otherwise well-formed: 5,000 characters before a valid value's end
            # ("xxx…zprava.eml").
            values = [*values, "x" * 5000 + baseline[param.name][1]]
        for value in values:
            yield f"{param.name}={value[:20]!r}", {**baseline, param.name: (param.place, value)}, {}
    for value in ANY_VALUES:
        # Long values in groups, so that a query string stays under httpx's limit.
        size = 10 if len(value) > 100 else max(len(extras), 1)
        for start in range(0, len(extras), size):
            group = extras[start : start + size]
            yield f"{group[0]}…={value[:20]!r}", baseline, dict.fromkeys(group, value)


def test_it_walks_every_route_and_never_answers_5xx(
    app: FastAPI, client: TestClient, visitor: Visitor, engine: Engine
) -> None:
    routes = walkable_routes(app)
    assert len(routes) >= 50, "the app lost its routes: the walk would pass vacuously"
    tokens = _tokens(engine)
    extra_names = form_field_names()
    failures: list[str] = []
    sent = 0
    for route in routes:
        params = params_of(route)
        baseline = {
            p.name: (p.place, _baseline(p, tokens, route.path)) for p in params if p.required
        }
        extras = sorted(extra_names - {p.name for p in params})
        for method in sorted(route.methods - {"HEAD"}):
            for label, values, extra in _cases(params, baseline, extras, not visitor.cookie):
                status = _request(client, visitor, route, method, values, extra)
                sent += 1
                if status >= 500:
                    failures.append(f"{method} {route.path} {label}: {status}")
    assert sent > 1000
    assert not failures, f"{visitor.name}: {len(failures)} odpovědí 5xx:\n" + "\n".join(
        failures[:60]
    )
