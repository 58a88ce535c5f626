"""Requests with missing or wrong fields get a Czech answer instead of FastAPI's English 422:
a page in the console's or the public layout naming the field, or JSON for scripts."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console_support import BASE_URL, HTML, add_user, load_contacts, make_app, sign_in
from fastapi import FastAPI, Query
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.models import User

ENGLISH = ("Input should be", "Field required", "field required", '"msg"', "Unprocessable")


@pytest.fixture
def app(engine: Engine, tmp_path: Path) -> FastAPI:
    load_contacts(engine, tmp_path)
    add_user(engine, "spravce@sdruk.example", "admin")
    app = make_app(engine)

    # The public pages take only path tokens today; a public route with a query parameter
    # shows what any future one gets.
    @app.get("/zkouska-verejna")
    def public_probe(pocet: int = Query(ge=1)) -> dict[str, int]:
        return {"pocet": pocet}

    return app


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL) as test_client:
        yield test_client


def test_it_names_a_wrong_query_parameter_on_a_console_page(client: TestClient) -> None:
    sign_in(client, "spravce@sdruk.example")
    response = client.get("/console/contacts?page=druha", headers=HTML)
    assert response.status_code == 422
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "Neplatné údaje" in html
    assert "Pole „číslo stránky“ musí být celé číslo." in html
    # The console's layout with its navigation, and the same list without the wrong parameter.
    assert 'href="/console/segments"' in html and "Odhlásit se" in html
    assert 'href="/console/contacts"' in html and "← zpět" in html
    assert not any(word in html for word in ENGLISH)


def test_it_names_a_missing_form_field_and_changes_nothing(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "spravce@sdruk.example")
    response = client.post(
        "/console/users",
        data={"csrf_token": csrf, "role": "editor", "password": "dlouhe-heslo-123"},
        headers={**HTML, "referer": f"{BASE_URL}/console/users"},
        follow_redirects=False,
    )
    assert response.status_code == 422
    assert "Pole „e-mail“ chybí, vyplňte ho prosím." in response.text
    assert 'href="/console/users"' in response.text
    with Session(engine) as session:
        assert len(session.exec(select(User)).all()) == 1


def test_it_answers_scripts_with_czech_json(client: TestClient) -> None:
    sign_in(client, "spravce@sdruk.example")
    response = client.get("/console/audit?page=0", headers={"accept": "application/json"})
    assert response.status_code == 422
    body = response.json()
    assert body["detail"] == (
        "Formulář nebo odkaz obsahuje chybu: Pole „číslo stránky“ musí být alespoň 1."
    )
    assert body["errors"] == [
        {
            "field": "page",
            "label": "číslo stránky",
            "message": "Pole „číslo stránky“ musí být alespoň 1.",
        }
    ]


def test_it_still_refuses_an_anonymous_request_before_checking_fields(
    client: TestClient,
) -> None:
    page = client.get("/console/contacts?page=druha", headers=HTML, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/console/login?next=")
    script = client.post("/console/users", data={})
    assert script.status_code == 401


def test_it_answers_a_public_page_in_the_public_layout(client: TestClient) -> None:
    response = client.get("/zkouska-verejna?pocet=mnoho", headers=HTML)
    assert response.status_code == 422
    html = response.text
    assert "Neplatné údaje" in html and "Pole „pocet“ musí být celé číslo." in html
    # Public layout (the association's footer), not the console's, and no console links.
    assert "IČO" in html and "/console/" not in html
    assert 'href="/zkouska-verejna"' in html
    assert not any(word in html for word in ENGLISH)

    missing = client.get("/zkouska-verejna", headers={"accept": "application/json"})
    assert missing.status_code == 422
    assert missing.json()["detail"].endswith("Pole „pocet“ chybí, vyplňte ho prosím.")
