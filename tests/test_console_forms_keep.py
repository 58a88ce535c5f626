"""A console form that comes back with an error keeps what was typed: the contact edit, a new
staff account (never the password) and an address added to the suppression list."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console_support import BASE_URL, add_user, load_contacts, make_app, sign_in
from fastapi.testclient import TestClient
from lxml import html as lxml_html
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.models import Contact, ContactStatus


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    load_contacts(engine, tmp_path)
    add_user(engine, "spravce@sdruk.example", "admin")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        yield test_client


def test_the_contact_form_keeps_what_was_typed(client: TestClient, engine: Engine) -> None:
    csrf = sign_in(client, "spravce@sdruk.example")
    with Session(engine) as session:
        contact = session.exec(select(Contact)).first()
        assert contact is not None
        contact.status = ContactStatus.UNSUBSCRIBED
        session.add(contact)
        session.commit()
        contact_id = contact.id
    response = client.post(
        f"/console/contacts/{contact_id}",
        data={
            "csrf_token": csrf,
            "salutation": "Milá paní kolegyně,",
            "status": "active",
            "topics": ["events"],
            "evidence": "",
        },
    )
    assert response.status_code == 422
    tree = lxml_html.fromstring(response.text)
    assert tree.xpath("//input[@name='salutation']/@value") == ["Milá paní kolegyně,"]
    assert tree.xpath("//select[@name='status']/option[@selected]/@value") == ["active"]
    assert tree.xpath("//input[@name='topics'][@checked]/@value") == ["events"]


def test_the_new_user_form_keeps_what_was_typed_but_the_password(client: TestClient) -> None:
    csrf = sign_in(client, "spravce@sdruk.example")
    response = client.post(
        "/console/users",
        data={
            "csrf_token": csrf,
            "email": "nova@sdruk.example",
            "name": "Nová Kolegyně",
            "role": "editor",
            "password": "kratke",
        },
    )
    assert response.status_code == 422
    tree = lxml_html.fromstring(response.text)
    assert tree.xpath("//input[@id='new-email']/@value") == ["nova@sdruk.example"]
    assert tree.xpath("//input[@id='new-name']/@value") == ["Nová Kolegyně"]
    assert tree.xpath("//select[@id='new-role']/option[@selected]/@value") == ["editor"]
    assert "kratke" not in response.text


def test_the_suppression_form_keeps_the_refused_address(client: TestClient) -> None:
    csrf = sign_in(client, "spravce@sdruk.example")
    response = client.post(
        "/console/suppressions", data={"csrf_token": csrf, "email": "bez-zavinace.example"}
    )
    assert response.status_code == 422
    tree = lxml_html.fromstring(response.text)
    assert tree.xpath("//input[@id='add-email']/@value") == ["bez-zavinace.example"]
    assert "zavináč" in response.text
