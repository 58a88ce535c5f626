"""The requests that once answered 500: ids beyond any row, a segment id that is not a number,
a 5,000-character file name, a staff address with a line break used for a test send, and the
open pixel of a staff preview. Each now gets a Czech 4xx (or its pixel) and changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console_support import BASE_URL, HTML, PASSWORD, add_user, load_contacts, make_app, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from mailer.models import Event, SavedSegment, User, UserRole
from mailer.tokens import Purpose, default_signer
from mailer.web.console.auth import create_user, hash_password


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    load_contacts(engine, tmp_path)
    add_user(engine, "spravce@sdruk.example", "admin")
    with TestClient(
        make_app(engine), base_url=BASE_URL, raise_server_exceptions=False
    ) as test_client:
        yield test_client


def _events(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(Event)).one())


@pytest.mark.parametrize(
    "path",
    [
        f"/console/contacts/{2**63}",
        f"/console/contacts/{2**64}",
        f"/console/libraries/{2**31}",
        f"/console/runs/{10**30}",
        f"/console/runs/{2**63}/results",
        f"/console/segments/{-(2**63) - 1}",
        f"/console/contacts?page={2**63}",
        f"/console/audit?page={2**64}",
    ],
)
def test_it_answers_an_id_beyond_any_row_with_a_czech_422(client: TestClient, path: str) -> None:
    sign_in(client, "spravce@sdruk.example")
    response = client.get(path, headers=HTML)
    assert response.status_code == 422, (path, response.status_code)
    assert "Neplatné údaje" in response.text and "musí být" in response.text


def test_it_answers_an_id_beyond_any_row_in_a_form_with_a_czech_422(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "spravce@sdruk.example")
    response = client.post(
        "/console/libraries/1/membership",
        data={"csrf_token": csrf, "contact_id": str(2**63), "member_since": str(10**30)},
        headers=HTML,
    )
    assert response.status_code == 422
    assert "Pole „kontakt“" in response.text and "Pole „člen od (rok)“" in response.text
    # A contact of another library is not taken for this one.
    response = client.post(
        "/console/libraries/1/membership",
        data={"csrf_token": csrf, "contact_id": "999999"},
        headers=HTML,
    )
    assert response.status_code == 404


def test_it_refuses_a_segment_id_that_is_not_a_number(client: TestClient, engine: Engine) -> None:
    csrf = sign_in(client, "spravce@sdruk.example")
    response = client.post(
        "/console/segments",
        data={
            "csrf_token": csrf,
            "segment_id": "abc",
            "name": "Městské",
            "library_type": "mestska",
        },
        headers=HTML,
    )
    assert response.status_code == 404
    assert "Segment neexistuje" in response.text
    with Session(engine) as session:
        assert session.exec(select(SavedSegment)).all() == []


def test_it_refuses_a_captured_message_name_of_5000_characters(client: TestClient) -> None:
    sign_in(client, "spravce@sdruk.example")
    response = client.get("/console/outbox/" + "x" * 5000 + ".eml", headers=HTML)
    assert response.status_code == 404
    assert "Zpráva neexistuje" in response.text


def test_it_refuses_a_campaign_name_of_5000_characters(client: TestClient) -> None:
    sign_in(client, "spravce@sdruk.example")
    response = client.get("/console/campaigns/" + "k" * 5000, headers=HTML)
    assert response.status_code == 404
    assert "k" * 200 not in response.text


def test_it_answers_the_pixel_of_a_preview_or_test_send_and_records_nothing(
    client: TestClient, engine: Engine
) -> None:
    # A preview and a test send are built as message 0 of run 0: no such row exists.
    signer = default_signer()
    for purpose in (Purpose.OPEN, Purpose.OPEN_ANONYMOUS):
        response = client.get(f"/o/{signer.sign(purpose, 0)}.gif")
        assert response.status_code == 200, purpose
        assert response.headers["content-type"] == "image/gif"
    for path in (
        f"/c/{signer.sign(Purpose.MESSAGE_CLICK, 0)}/0",
        f"/c/{signer.sign(Purpose.CLICK_ANONYMOUS, 0, 0)}",
        f"/v/{signer.sign(Purpose.WEB_VERSION, 0)}",
        f"/v/{signer.sign(Purpose.WEB_VERSION_ANONYMOUS, 0)}",
    ):
        assert client.get(path, follow_redirects=False).status_code == 404, path
    assert _events(engine) == 0


def test_it_refuses_a_test_send_to_a_staff_address_with_a_line_break(
    client: TestClient, engine: Engine
) -> None:
    # An account made before addresses were validated: its address has a header in it.
    bad = "redaktor@sdruk.example\r\nbcc: vsichni@example.cz"
    with Session(engine) as session:
        session.add(User(email=bad, role=UserRole.EDITOR, password_hash=hash_password(PASSWORD)))
        session.commit()
    csrf = sign_in(client, bad)
    response = client.post(
        "/console/campaigns/join-this-year-2026/test-send",
        data={"csrf_token": csrf, "step": "launch", "contact_id": "1"},
        headers=HTML,
    )
    assert response.status_code == 422
    assert "adres" in response.text


@pytest.mark.parametrize(
    "address",
    [
        "nova@sdruk.example\r\nBcc: x@example.cz",
        "nova @sdruk.example",
        "<script>alert(1)</script>@sdruk.example",
    ],
)
def test_it_refuses_staff_and_suppressed_addresses_email_validator_rejects(
    client: TestClient, engine: Engine, address: str
) -> None:
    with Session(engine) as session, pytest.raises(ValueError, match="adresa"):
        create_user(session, address, "editor", "dlouhe-heslo-123")
    csrf = sign_in(client, "spravce@sdruk.example")
    added = client.post(
        "/console/users",
        data={"csrf_token": csrf, "email": address, "role": "editor", "password": "x" * 12},
        headers=HTML,
    )
    assert added.status_code == 422
    blocked = client.post(
        "/console/suppressions", data={"csrf_token": csrf, "email": address}, headers=HTML
    )
    assert blocked.status_code == 422
    with Session(engine) as session:
        assert len(session.exec(select(User)).all()) == 1
