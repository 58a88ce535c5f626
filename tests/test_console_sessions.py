"""Console sessions live in the database and sign-in is throttled there: a cookie copied
before sign-out is dead after it, a password change or "sign out everywhere" ends every
session, one attacker can neither lock out a real user elsewhere nor get round the throttle
with a forged X-Forwarded-For, and the throttle holds across app instances (workers and
restarts)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pyotp
import pytest
from console_support import BASE_URL, HTML, PASSWORD, add_user, csrf_of, load_contacts, make_app
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select
from typer.testing import CliRunner

from mailer import settings as mailer_settings
from mailer.cli import app as cli_app
from mailer.models import AuditEntry, ConsoleSession, SignInThrottle, User
from mailer.web.app import make_server

ADMIN = "spravce@sdruk.example"


@pytest.fixture
def users(engine: Engine, tmp_path: Path) -> Engine:
    load_contacts(engine, tmp_path)
    add_user(engine, ADMIN, "admin")
    add_user(engine, "ctenar@sdruk.example", "viewer")
    return engine


def _client(engine: Engine, address: str = "203.0.113.5") -> TestClient:
    return TestClient(make_app(engine), base_url=BASE_URL, client=(address, 50000))


def _attempt(client: TestClient, email: str, password: str) -> int:
    client.cookies.clear()
    form = client.get("/console/login")
    return client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    ).status_code


def _signed_in(client: TestClient, email: str = ADMIN) -> str:
    assert _attempt(client, email, PASSWORD) == 303
    return csrf_of(client.get("/console/", headers=HTML).text)


def test_it_refuses_a_cookie_copied_before_sign_out(users: Engine) -> None:
    with _client(users) as browser, _client(users, "198.51.100.7") as thief:
        csrf = _signed_in(browser)
        copied = browser.cookies.get("sdruk_console")
        assert copied
        thief.cookies.set("sdruk_console", copied, path="/console")
        assert thief.get("/console/contacts").status_code == 200
        browser.post("/console/logout", data={"csrf_token": csrf})
        assert thief.get("/console/contacts").status_code == 401
        # The copy does not come back to life in another app instance (a restart, a worker).
        with _client(users, "198.51.100.7") as restarted:
            restarted.cookies.set("sdruk_console", copied, path="/console")
            assert restarted.get("/console/contacts").status_code == 401


def test_it_signs_out_everywhere_and_on_a_password_change(users: Engine) -> None:
    with _client(users) as office, _client(users, "198.51.100.7") as home:
        office_csrf = _signed_in(office)
        _signed_in(home)
        assert home.get("/console/contacts").status_code == 200
        office.post("/console/logout-everywhere", data={"csrf_token": office_csrf})
        assert home.get("/console/contacts").status_code == 401
        assert office.get("/console/contacts").status_code == 401

        _signed_in(home, "ctenar@sdruk.example")
        admin_csrf = _signed_in(office)
        with Session(users) as session:
            viewer = session.exec(select(User).where(User.email == "ctenar@sdruk.example")).one()
        office.post(
            f"/console/users/{viewer.id}/password",
            data={"csrf_token": admin_csrf, "password": "nove-dlouhe-heslo-1"},
        )
        assert home.get("/console/contacts").status_code == 401
        assert office.get("/console/contacts").status_code == 200


def test_it_does_not_let_an_attacker_elsewhere_lock_out_the_real_user(users: Engine) -> None:
    with _client(users) as real_user:
        _signed_in(real_user)  # the real user has signed in from this address before
    with _client(users, "198.51.100.66") as attacker:
        statuses = [_attempt(attacker, ADMIN, "hadam-heslo") for _ in range(40)]
        assert statuses[-1] == 401
        # The attacker is throttled: even the right password is refused from there now.
        assert _attempt(attacker, ADMIN, PASSWORD) == 401
    with _client(users) as real_user:
        assert _attempt(real_user, ADMIN, PASSWORD) == 303


def test_it_keeps_the_throttle_across_app_instances(users: Engine) -> None:
    with _client(users, "198.51.100.66") as attacker:
        for _ in range(8):
            assert _attempt(attacker, ADMIN, "hadam-heslo") == 401
    # Another worker or a restart: the same address is still throttled for that account.
    with _client(users, "198.51.100.66") as attacker:
        assert _attempt(attacker, ADMIN, PASSWORD) == 401
        form = attacker.get("/console/login")
        page = attacker.post(
            "/console/login",
            data={"email": ADMIN, "password": PASSWORD, "csrf_token": csrf_of(form.text)},
        ).text
        assert "Příliš mnoho neúspěšných pokusů" in page


@pytest.fixture
def server(users: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app served by uvicorn as `sdruk web` serves it, on a free port."""
    mailer_settings.get_settings.cache_clear()
    srv = make_server("127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started and srv.servers:
            break
        time.sleep(0.05)
    port = srv.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    srv.should_exit = True
    thread.join(timeout=10)


def _http_attempt(client: httpx.Client, email: str, password: str, headers: dict[str, str]) -> int:
    client.cookies.clear()
    form = client.get("/console/login")
    # The cookie is Secure (BASE_URL is https); this plain-HTTP client hands it back itself.
    token = form.cookies.get("sdruk_console_login")
    return client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
        headers={**headers, "Cookie": f"sdruk_console_login={token}"},
    ).status_code


def _sign_in_addresses(engine: Engine) -> list[str | None]:
    with Session(engine) as session:
        entries = session.exec(select(AuditEntry).where(AuditEntry.action == "sign_in")).all()
    return [entry.detail.get("ip") for entry in entries]


def test_it_ignores_x_forwarded_for_from_a_client_that_is_not_a_trusted_proxy(
    server: str, users: Engine
) -> None:
    forged = {"X-Forwarded-For": "10.9.8.7"}
    with httpx.Client(base_url=server) as client:
        # Spraying many accounts from one address slows that address down...
        for i in range(40):
            assert _http_attempt(client, f"neznamy{i}@sdruk.example", "x", {}) == 401
        # ...and a forged header does not make it another address.
        assert _http_attempt(client, ADMIN, PASSWORD, forged) == 401
        assert _http_attempt(client, "ctenar@sdruk.example", PASSWORD, forged) == 401
    assert _sign_in_addresses(users) == []


def test_it_takes_the_client_address_from_a_trusted_proxy(
    users: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8")
    mailer_settings.get_settings.cache_clear()
    srv = make_server("127.0.0.1", 0, log_level="warning")
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if srv.started and srv.servers:
                break
            time.sleep(0.05)
        port = srv.servers[0].sockets[0].getsockname()[1]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as client:
            headers = {"X-Forwarded-For": "192.0.2.44"}
            assert _http_attempt(client, ADMIN, PASSWORD, headers) == 303
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
    assert _sign_in_addresses(users) == ["192.0.2.44"]


def _enable_two_factor(client: TestClient) -> str:
    """Sets up two-factor sign-in on the account page as a user would; returns the secret."""
    csrf = csrf_of(client.get("/console/account", headers=HTML).text)
    setup = client.post("/console/account/2fa/setup", data={"csrf_token": csrf}, headers=HTML)
    assert setup.status_code == 200
    found = re.search(r"secret=([A-Z2-7]+)", setup.text)
    assert found and "otpauth://totp/" in setup.text
    secret = found.group(1)
    confirmed = client.post(
        "/console/account/2fa/confirm",
        data={"csrf_token": csrf, "code": pyotp.TOTP(secret).now()},
        headers=HTML,
        follow_redirects=False,
    )
    assert confirmed.status_code == 303, confirmed.text
    return secret


def _code_step(client: TestClient, code: str) -> int:
    form = client.get("/console/login/code", headers=HTML)
    return client.post(
        "/console/login/code",
        data={"csrf_token": csrf_of(form.text), "code": code, "next": "/console/"},
        follow_redirects=False,
    ).status_code


def test_it_asks_a_user_with_two_factor_sign_in_for_the_code(users: Engine) -> None:
    with _client(users) as browser:
        _signed_in(browser)
        secret = _enable_two_factor(browser)
        assert (
            "Dvoufázové ověření je zapnuté"
            in browser.get("/console/account?notice=on", headers=HTML).text
        )
    with _client(users) as browser:
        # The password alone opens nothing but the code page.
        assert _attempt(browser, ADMIN, PASSWORD) == 303
        assert browser.get("/console/contacts").status_code == 401
        assert "Ověřovací kód" in browser.get("/console/login/code", headers=HTML).text
        assert _code_step(browser, "000000") == 401
        # The current code was used to confirm the setup; the app's next one is accepted too.
        code = pyotp.TOTP(secret).at(time.time() + 30)
        assert _code_step(browser, code) == 303
        assert browser.get("/console/contacts").status_code == 200
    with _client(users) as replay:
        # A code works once.
        assert _attempt(replay, ADMIN, PASSWORD) == 303
        assert _code_step(replay, code) == 401


def test_it_lets_another_admin_or_the_cli_reset_two_factor_sign_in(users: Engine) -> None:
    add_user(users, "druhy.spravce@sdruk.example", "admin")
    with _client(users) as browser:
        _signed_in(browser)
        _enable_two_factor(browser)
    with _client(users, "198.51.100.7") as other:
        csrf = _signed_in(other, "druhy.spravce@sdruk.example")
        with Session(users) as session:
            admin = session.exec(select(User).where(User.email == ADMIN)).one()
        other.post(f"/console/users/{admin.id}/2fa-reset", data={"csrf_token": csrf})
    with _client(users) as browser:
        assert _attempt(browser, ADMIN, PASSWORD) == 303
        assert browser.get("/console/contacts").status_code == 200  # no code asked
        _enable_two_factor(browser)
    result = CliRunner().invoke(cli_app, ["users", "reset-2fa", ADMIN])
    assert result.exit_code == 0, result.output
    assert "zrušeno" in result.output
    with Session(users) as session:
        admin = session.exec(select(User).where(User.email == ADMIN)).one()
        assert admin.totp_enabled_at is None and admin.totp_secret is None


def test_it_forgets_old_sessions_and_stale_counters_at_sign_in(users: Engine) -> None:
    with _client(users) as browser:
        _signed_in(browser)
    with _client(users, "198.51.100.66") as stranger:
        assert _attempt(stranger, "nikdo@sdruk.example", "x") == 401
    long_ago = datetime.now(UTC) - timedelta(days=3)
    with Session(users) as session:
        for row in session.exec(select(ConsoleSession)).all():
            row.expires_at = long_ago
            session.add(row)
        for throttle_row in session.exec(select(SignInThrottle)).all():
            if throttle_row.last_failure_at is not None:
                throttle_row.last_failure_at = long_ago
                session.add(throttle_row)
        session.commit()
    with _client(users) as browser:
        _signed_in(browser)
    with Session(users) as session:
        assert len(session.exec(select(ConsoleSession)).all()) == 1  # the new one
        left = session.exec(select(SignInThrottle)).all()
    # Only the pair that signed in is remembered.
    assert [(r.account, r.address) for r in left] == [(ADMIN, "203.0.113.5")]


def test_it_counts_an_ipv6_network_as_one_address(users: Engine) -> None:
    """One line gets a whole /64 and picks any address in it: guessing a password from a new
    address each time is still guessing from one place."""
    for i in range(8):
        with _client(users, f"2001:db8:66:1::{i + 1:x}") as attacker:
            assert _attempt(attacker, ADMIN, "hadam-heslo") == 401
    with _client(users, "2001:db8:66:1::ff") as attacker:
        assert _attempt(attacker, ADMIN, PASSWORD) == 401
    with _client(users, "2001:db8:66:2::1") as elsewhere:
        assert _attempt(elsewhere, ADMIN, PASSWORD) == 303
