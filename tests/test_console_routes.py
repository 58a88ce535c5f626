"""Console access control: every route but sign-in refuses a request without a session, every
state-changing request needs the session's CSRF token, viewers change nothing, sign-in is
throttled, and the session cookie is HttpOnly and SameSite."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from console_support import (
    BASE_URL,
    HTML,
    PASSWORD,
    add_user,
    csrf_of,
    load_contacts,
    make_app,
    sign_in,
)
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.models import AuditEntry, SignInThrottle, User
from mailer.web.console import MODULES, ensure_demo_admin, router
from mailer.web.console.throttle import ADDRESS, PAIR

# The code step of sign-in sends a visitor without a waiting session back to /console/login.
PUBLIC = {"/console/login", "/console/login/code", "/console/static/{name}"}
PARAMS = {
    "contact_id": "1",
    "library_id": "1",
    "segment_id": "1",
    "run_id": "1",
    "user_id": "1",
    "application_id": "1",
    "slug": "join-this-year-2026",
    "kind": "odber-vitejte",
    "action": "pause",
    "name": "zprava.eml",
    "token": "a" * 22,
}


def console_routes() -> list[tuple[str, str]]:
    """(method, path with parameters filled in) of every console route."""
    found = []
    for module in MODULES:
        for route in module.router.routes:
            assert isinstance(route, APIRoute)
            full = router.prefix + route.path
            if full in PUBLIC:
                continue
            path = re.sub(r"\{(\w+)\}", lambda m: PARAMS[m.group(1)], full)
            for method in sorted(route.methods):
                found.append((method, path))
    return found


STATE_CHANGING = [(m, p) for m, p in console_routes() if m == "POST"]


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    load_contacts(engine, tmp_path)
    add_user(engine, "spravce@sdruk.example", "admin")
    add_user(engine, "ctenar@sdruk.example", "viewer")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        yield test_client


def test_it_knows_the_routes_it_checks() -> None:
    # A console without its main routes would make the checks below pass vacuously.
    paths = {p for _, p in console_routes()}
    assert {"/console/", "/console/contacts", "/console/campaigns", "/console/audit"} <= paths
    assert len(STATE_CHANGING) >= 15


def test_it_refuses_every_console_route_without_a_session(client: TestClient) -> None:
    for method, path in console_routes():
        response = client.request(method, path, follow_redirects=False)
        assert response.status_code in (401, 403), (method, path, response.status_code)
        page = client.request(method, path, headers=HTML, follow_redirects=False)
        if method == "GET":
            assert page.status_code == 303, (path, page.status_code)
            assert page.headers["location"].startswith("/console/login?next=")
        else:
            assert page.status_code in (401, 403), (method, path)


def test_it_refuses_a_forged_session_cookie(client: TestClient) -> None:
    client.cookies.set("sdruk_console", "eyJ1aWQiOjF9.forged.signature", path="/console")
    assert client.get("/console/contacts").status_code == 401


def test_it_refuses_state_changes_with_a_wrong_or_missing_csrf_token(
    client: TestClient, engine: Engine
) -> None:
    sign_in(client, "spravce@sdruk.example")
    for method, path in STATE_CHANGING:
        wrong = client.request(
            method, path, data={"csrf_token": "nespravny-token"}, follow_redirects=False
        )
        assert wrong.status_code == 403, (path, wrong.status_code, wrong.text[:200])
        missing = client.request(method, path, follow_redirects=False)
        assert missing.status_code == 403, (path, missing.status_code)
    # Nothing refused left a trace.
    with Session(engine) as session:
        actions = {a.action for a in session.exec(select(AuditEntry)).all()}
    assert actions <= {"sign_in"}


def test_it_lets_a_viewer_read_but_not_change(client: TestClient) -> None:
    csrf = sign_in(client, "ctenar@sdruk.example")
    assert client.get("/console/contacts", headers=HTML).status_code == 200
    page = client.get("/console/contacts/1", headers=HTML).text
    assert "Uložit změny" not in page and "roli čtenáře" in page
    for method, path in STATE_CHANGING:
        # Their own account (signing out, two-factor sign-in) is a viewer's to manage.
        if path in ("/console/logout", "/console/logout-everywhere") or path.startswith(
            "/console/account/"
        ):
            continue
        response = client.request(method, path, data={"csrf_token": csrf}, follow_redirects=False)
        assert response.status_code == 403, (path, response.status_code)
    assert client.get("/console/users").status_code == 403


def test_it_sets_an_httponly_samesite_session_cookie_and_signs_out(client: TestClient) -> None:
    form = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={
            "email": "spravce@sdruk.example",
            "password": PASSWORD,
            "csrf_token": csrf_of(form.text),
            "next": "/console/contacts",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/contacts"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("sdruk_console=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    page = client.get("/console/", headers=HTML)
    assert page.status_code == 200 and "Přehled" in page.text
    out = client.post("/console/logout", data={"csrf_token": csrf_of(page.text)})
    assert out.status_code == 200  # back on the sign-in page
    assert client.get("/console/", follow_redirects=False).status_code == 401


def test_it_refuses_a_login_without_its_form_token(client: TestClient) -> None:
    response = client.post(
        "/console/login",
        data={"email": "spravce@sdruk.example", "password": PASSWORD, "csrf_token": "x"},
        follow_redirects=False,
    )
    assert response.status_code == 403


def test_it_never_redirects_off_the_console_after_sign_in(client: TestClient) -> None:
    form = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={
            "email": "spravce@sdruk.example",
            "password": PASSWORD,
            "csrf_token": csrf_of(form.text),
            "next": "//zlodej.example/console/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/console/"


def _attempt(client: TestClient, password: str) -> int:
    form = client.get("/console/login")
    return client.post(
        "/console/login",
        data={
            "email": "spravce@sdruk.example",
            "password": password,
            "csrf_token": csrf_of(form.text),
        },
        follow_redirects=False,
    ).status_code


def test_it_throttles_repeated_wrong_passwords_from_one_address(
    client: TestClient, engine: Engine
) -> None:
    for _ in range(PAIR.free):
        assert _attempt(client, "spatne-heslo") == 401
    # Even the right password is refused from this address while the delay lasts.
    assert _attempt(client, PASSWORD) == 401
    with Session(engine) as session:
        row = session.get(SignInThrottle, ("spravce@sdruk.example", "testclient"))
        assert row is not None and row.failures == PAIR.free
        assert row.blocked_until is not None and row.blocked_until > datetime.now(UTC)
        row.blocked_until = None
        session.add(row)
        session.commit()
    assert _attempt(client, PASSWORD) == 303


def test_it_throttles_one_address_trying_many_accounts(client: TestClient) -> None:
    statuses = []
    for i in range(ADDRESS.free + 1):
        form = client.get("/console/login")
        statuses.append(
            client.post(
                "/console/login",
                data={
                    "email": f"neznamy{i}@sdruk.example",
                    "password": "x",
                    "csrf_token": csrf_of(form.text),
                },
            ).text
        )
    assert "Příliš mnoho neúspěšných pokusů" in statuses[-1]
    assert "Příliš mnoho" not in statuses[0]


def test_it_creates_the_demo_admin_once_and_remembers_the_password(engine: Engine) -> None:
    email, password = ensure_demo_admin(engine)
    assert ensure_demo_admin(engine) == (email, password)
    with Session(engine) as session:
        users = session.exec(select(User).where(User.email == email)).all()
    assert len(users) == 1 and users[0].role == "admin"
    assert users[0].password_hash != password


def test_it_serves_its_own_scripts_and_styles_without_a_session(client: TestClient) -> None:
    script = client.get("/console/static/console.js")
    assert script.status_code == 200 and "text/javascript" in script.headers["content-type"]
    assert client.get("/console/static/console.css").status_code == 200
    assert client.get("/console/static/..%2Fconsole%2Fauth.py").status_code == 404
    assert client.get("/console/static/auth.py").status_code == 404


def test_it_allows_only_its_own_scripts_on_console_pages(client: TestClient) -> None:
    page = client.get("/console/login")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-eval" not in policy
    assert '<script src="/console/static/console.js"' in page.text
    assert "<script>" not in page.text  # no inline script anywhere
