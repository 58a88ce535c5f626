"""Faults a real relay shows, against a real in-process SMTP server with STARTTLS, implicit TLS
and AUTH: an untrusted certificate or a refused password pauses the run with a Czech reason,
and a refused password is tried once for the whole connection pool, never once per connection
and mechanism."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from delivery_support import add_contacts, blueprint, options, rows
from smtp_server import SMTPServer, server_tls_context, tls_files
from sqlalchemy import Engine

from mailer.delivery.runs import launch, progress
from mailer.delivery.send import drain
from mailer.delivery.transport import transport_from_url

__all__ = ["tls_files"]


@pytest.fixture
def starttls_server(tls_files: tuple[Path, Path]) -> Iterator[SMTPServer]:
    cert, key = tls_files
    server = SMTPServer(starttls=server_tls_context(cert, key), users={"sdruk": "správné heslo"})
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _unblamed(engine: Engine, run_id: int) -> None:
    # Nothing was the recipients' fault: every message waits, untried, for the resume.
    assert {(r.status, r.attempts) for r in rows(engine, run_id).values()} == {("queued", 0)}


async def test_it_pauses_the_run_when_the_relay_certificate_is_not_trusted(
    engine: Engine, starttls_server: SMTPServer
) -> None:
    add_contacts(engine, 20)
    run_id = launch(engine, blueprint()).run_id
    # No ca_file: the self-signed certificate is not trusted.
    url = f"smtp://localhost:{starttls_server.port}?starttls=true&concurrency=8&timeout=5"

    stats = await drain(engine, transport_from_url(url), options(max_attempts=2))

    p = progress(engine, run_id)
    assert p.status == "paused", p
    reason = p.status_reason or ""
    assert "certifikát" in reason and "ca_file" in reason, reason
    assert run_id in stats.paused_runs
    assert starttls_server.messages == []
    _unblamed(engine, run_id)


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_it_pauses_the_run_when_an_implicit_tls_certificate_is_not_trusted(
    engine: Engine, tls_files: tuple[Path, Path]
) -> None:
    cert, key = tls_files
    server = SMTPServer(implicit_tls=server_tls_context(cert, key)).start()
    try:
        add_contacts(engine, 6)
        run_id = launch(engine, blueprint()).run_id
        url = f"smtps://localhost:{server.port}?concurrency=3&timeout=5"
        await drain(engine, transport_from_url(url), options())
    finally:
        server.stop()
    p = progress(engine, run_id)
    assert p.status == "paused" and "certifikát" in (p.status_reason or "")
    _unblamed(engine, run_id)


async def test_it_tries_a_refused_password_once_for_the_whole_pool(
    engine: Engine, tls_files: tuple[Path, Path], starttls_server: SMTPServer
) -> None:
    cert, _ = tls_files
    add_contacts(engine, 60)
    run_id = launch(engine, blueprint()).run_id
    url = (
        f"smtp://sdruk:spatne@localhost:{starttls_server.port}"
        f"?starttls=true&ca_file={cert}&concurrency=16&timeout=5"
    )

    await drain(engine, transport_from_url(url), options())

    # One login, one mechanism: the server offers PLAIN and LOGIN, and 16 connections wanted in.
    assert len(starttls_server.auth_attempts) == 1, starttls_server.auth_attempts
    p = progress(engine, run_id)
    assert p.status == "paused"
    reason = p.status_reason or ""
    assert "přihlášení" in reason and "535" in reason, reason
    _unblamed(engine, run_id)


async def test_it_answers_every_send_with_the_refusal_without_logging_in_again(
    tls_files: tuple[Path, Path], starttls_server: SMTPServer
) -> None:
    cert, _ = tls_files
    url = f"smtp://sdruk:spatne@localhost:{starttls_server.port}?starttls=true&ca_file={cert}"
    transport = transport_from_url(url)
    results = [await transport.send("a@sdruk.cz", ["b@knihovna.cz"], b"x\r\n") for _ in range(3)]
    await transport.close()
    assert [(r.code, r.stage) for r in results] == [(535, "auth")] * 3
    assert len(starttls_server.auth_attempts) == 1


async def test_it_logs_in_once_and_then_opens_the_pool_with_a_good_password(
    engine: Engine, tls_files: tuple[Path, Path], starttls_server: SMTPServer
) -> None:
    cert, _ = tls_files
    add_contacts(engine, 40)
    run_id = launch(engine, blueprint()).run_id
    url = (
        f"smtp://sdruk:spr%C3%A1vn%C3%A9%20heslo@localhost:{starttls_server.port}"
        f"?starttls=true&ca_file={cert}&concurrency=8&timeout=5"
    )
    await drain(engine, transport_from_url(url), options())
    assert progress(engine, run_id).status == "sent"
    assert len(starttls_server.messages) == 40
    assert all(ok for _, _, ok in starttls_server.auth_attempts)
