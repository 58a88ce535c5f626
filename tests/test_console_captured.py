"""Captured messages in the console carry each recipient's links: only editors and admins
open them, and the console shows them with every recipient link switched off, so staff
reading a message neither counts as the recipient's open or web view nor can unsubscribe
anyone."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_support import BASE_URL, HTML, add_user, load_contacts, make_app, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from mailer.delivery.send import WorkerOptions, drain
from mailer.delivery.transport import transport_from_url
from mailer.models import Event
from mailer.settings import get_settings

CAMPAIGN = "knihovny-soucasnosti-2027"  # tracks each recipient: personal links in every message


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    load_contacts(engine, tmp_path)
    add_user(engine, "editor@sdruk.example", "editor")
    add_user(engine, "ctenar@sdruk.example", "viewer")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        yield test_client


def _captured(client: TestClient, engine: Engine) -> Path:
    csrf = sign_in(client, "editor@sdruk.example")
    launch = client.get(f"/console/campaigns/{CAMPAIGN}/launch", headers=HTML).text
    size = re.search(r'name="confirmed_size" value="(\d+)"', launch)
    assert size, "no audience size on the launch page"
    response = client.post(
        f"/console/campaigns/{CAMPAIGN}/launch",
        data={
            "csrf_token": csrf,
            "step": "launch",
            "confirmed_size": size.group(1),
            "immediately": "true",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    transport = transport_from_url(get_settings().resolved_smtp_url())
    asyncio.run(drain(engine, transport, WorkerOptions(worker_id="test")))
    files = sorted((get_settings().data_dir / "outbox").glob("*.eml"))
    assert files
    raw = files[0].read_bytes().decode("ascii", "replace").replace("=\r\n", "")
    assert f"{BASE_URL}/u/" in raw and f"{BASE_URL}/v/" in raw
    client.cookies.clear()
    return files[0]


def _events(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(Event)).one())


def test_it_keeps_captured_messages_from_viewers(client: TestClient, engine: Engine) -> None:
    captured = _captured(client, engine)
    sign_in(client, "ctenar@sdruk.example")
    listing = client.get("/console/outbox", headers=HTML)
    assert listing.status_code == 200
    assert f'href="/console/outbox/{captured.name}"' not in listing.text
    for path in (f"/console/outbox/{captured.name}", f"/console/outbox/{captured.name}/raw"):
        response = client.get(path, headers=HTML)
        assert response.status_code == 403, path
        assert "/u/" not in response.text and "editor" in response.text


def test_it_switches_off_every_recipient_link_when_staff_read_a_message(
    client: TestClient, engine: Engine
) -> None:
    captured = _captured(client, engine)
    sign_in(client, "editor@sdruk.example")
    page = client.get(f"/console/outbox/{captured.name}", headers=HTML)
    assert page.status_code == 200
    html = page.text
    for route in ("/o/", "/c/", "/v/", "/u/", "/p/"):
        assert f"{BASE_URL}{route}" not in html.replace("&#34;", '"'), route
    # Following what the console shows records nothing for the recipient.
    assert _events(engine) == 0
