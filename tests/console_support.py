"""What the console tests share: an app with the console, a small contact directory, and
signing in as a user of a given role."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from mailer.audience.contacts import import_contacts
from mailer.web.console import router
from mailer.web.console.auth import create_user

BASE_URL = "https://kampane.sdruk.test"
PASSWORD = "heslo-pro-testy-123"
HTML = {"accept": "text/html"}

CSV = "\n".join(
    [
        "email,first_name,last_name,role,library,library_type,siglum,town,region,member,"
        "member_since,consent,status,tags",
        "reditel@knihovna-kladno.example,Jana,Chruščová,ředitelka,Městská knihovna Kladno,"
        "mestska,KLA001,Kladno,Středočeský kraj,ne,,legitimate_interest,active,",
        "petr.novak@knihovna-kladno.example,Petr,Novák,knihovník,Městská knihovna Kladno,"
        "mestska,KLA001,Kladno,Středočeský kraj,ne,,legitimate_interest,active,",
        "knihovna@obec-lhota.example,Marie,Dvořáková,knihovnice,Obecní knihovna Lhota,"
        "obecni,LHO002,Lhota,Zlínský kraj,ne,,legitimate_interest,active,",
        "knihovna@vkol.example,Tomáš,Krejčí,ředitel,Vědecká knihovna v Olomouci,"
        "krajska,OLA003,Olomouc,Olomoucký kraj,ano,2019,legitimate_interest,active,",
        "",
    ]
)


def load_contacts(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "kontakty.csv"
    path.write_text(CSV, encoding="utf-8")
    report = import_contacts(engine, path)
    assert not report.rejected, report.rejected


def make_app(engine: Engine) -> FastAPI:
    """The real web app when it is there (it includes the console), else the console alone."""
    try:
        from mailer.web.app import create_app
    except ImportError:
        app = FastAPI()
        app.include_router(router)
        return app
    return create_app(engine=engine)


def add_user(engine: Engine, email: str, role: str) -> None:
    with Session(engine) as session:
        create_user(session, email, role, PASSWORD, name=email.split("@")[0])
        session.commit()


def csrf_of(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "page has no CSRF field"
    return match.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Signs in through the form; returns the session's CSRF token."""
    form = client.get("/console/login")
    response = client.post(
        "/console/login",
        data={"email": email, "password": password, "csrf_token": csrf_of(form.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/console/", headers=HTML).text)
