"""The console's contact import: the real file name in the evidence, a legal basis chosen for
the whole file after reading the check, forms that keep what was typed, a size limit with a
Czech 413, work off the event loop, and a page that shows only the first rejected rows of a
huge file while the full report is a download."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from console_support import BASE_URL, add_user, make_app, sign_in
from fastapi.testclient import TestClient
from lxml import html as lxml_html
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer import settings as mailer_settings
from mailer.models import AuditEntry, Contact, LegalBasisRecord
from mailer.web.console import imports

NO_CONSENT = (
    "e-mail;jméno;příjmení;knihovna;typ;obec;kraj\n"
    "reditel@knihovna-oslavany.example;Petr;Kos;Městská knihovna Oslavany;mestska;"
    "Oslavany;Jihomoravský kraj\n"
    "pujcovna@knihovna-oslavany.example;;;Městská knihovna Oslavany;mestska;"
    "Oslavany;Jihomoravský kraj\n"
)
FILE_NAME = "Adresář knihoven – jih.csv"


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    add_user(engine, "editor@sdruk.example", "editor")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        yield test_client


def _visible(page: str) -> str:
    return " ".join(lxml_html.fromstring(page).text_content().split())


def _upload(client: TestClient, csrf: str, text: str, **form: str) -> str:
    files = {"file": (FILE_NAME, text.encode(), "text/csv")}
    response = client.post(
        "/console/contacts/import", data={"csrf_token": csrf, **form}, files=files
    )
    assert response.status_code == 200, response.text
    return response.text


def test_it_warns_of_rows_without_a_legal_basis_and_imports_the_checked_file_with_one(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    check = _upload(client, csrf, NO_CONSENT, mode="check")
    shown = _visible(check)
    assert "2 kontakty nemají právní základ" in shown
    assert FILE_NAME in shown
    token = re.search(r'name="upload" value="([^"]+)"', check)
    assert token, "the checked file can be imported without uploading it again"
    done = client.post(
        "/console/contacts/import",
        data={
            "csrf_token": csrf,
            "mode": "import",
            "upload": token.group(1),
            "legal_basis": "legitimate_interest",
            "basis_note": "institucionální adresy knihoven",
        },
    )
    assert done.status_code == 200
    assert "nemají právní základ" not in _visible(done.text)
    assert "Zvolený právní základ dostal 2 kontakty" in _visible(done.text)
    with Session(engine) as session:
        contacts = session.exec(select(Contact)).all()
        assert {c.legal_basis for c in contacts} == {"legitimate_interest"}
        records = session.exec(select(LegalBasisRecord)).all()
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "import")).one()
    assert sorted(r.source for r in records) == [
        f"import {FILE_NAME}:2",
        f"import {FILE_NAME}:3",
    ]
    assert {r.recorded_by for r in records} == {"editor@sdruk.example"}
    assert all(
        r.evidence and "institucionální adresy" in r.evidence and FILE_NAME in r.evidence
        for r in records
    )
    assert entry.target == FILE_NAME and entry.detail["basis_assigned"] == 2


def test_it_keeps_what_was_typed_when_the_form_has_an_error(client: TestClient) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    files = {"file": (FILE_NAME, NO_CONSENT.encode(), "text/csv")}
    response = client.post(
        "/console/contacts/import",
        data={"csrf_token": csrf, "mode": "import", "legal_basis": "consent", "basis_note": " "},
        files=files,
    )
    assert response.status_code == 422
    tree = lxml_html.fromstring(response.text)
    assert tree.xpath("//input[@name='legal_basis'][@value='consent']/@checked")
    assert tree.xpath("//input[@name='mode'][@value='import']/@checked")
    assert "doklad" in _visible(response.text)
    note = "souhlasy z konference 2026, archiv sekretariátu"
    response = client.post(
        "/console/contacts/import",
        data={"csrf_token": csrf, "mode": "import", "legal_basis": "jiný", "basis_note": note},
        files=files,
    )
    assert response.status_code == 422
    tree = lxml_html.fromstring(response.text)
    assert tree.xpath("//input[@name='basis_note']/@value") == [note]


def _settings_with_limit(monkeypatch: pytest.MonkeyPatch, megabytes: float) -> None:
    monkeypatch.setenv("SDRUK_MAX_UPLOAD_MB", str(megabytes))
    mailer_settings.get_settings.cache_clear()


def _bad_rows(count: int) -> str:
    return "email;knihovna\n" + "".join(f"neni-adresa-{i};K\n" for i in range(count))


def test_it_refuses_a_body_over_the_limit_with_a_czech_413(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_with_limit(monkeypatch, 0.05)
    add_user(engine, "editor@sdruk.example", "editor")
    with TestClient(make_app(engine), base_url=BASE_URL) as client:
        csrf = sign_in(client, "editor@sdruk.example")
        big = _bad_rows(5000).encode()
        assert len(big) > 50_000
        files = {"file": ("velky.csv", big, "text/csv")}
        response = client.post(
            "/console/contacts/import", data={"csrf_token": csrf, "mode": "import"}, files=files
        )
        assert response.status_code == 413
        assert "příliš velký" in response.text and "50\u00a0kB" in response.text
        assert "nejvýše" in response.text and "Nic se neuložilo" in response.text

        # Without a declared length (chunked), the body is cut off at the limit as well.
        def chunks() -> Iterator[bytes]:
            yield (
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="a.csv"\r\n'
                b"Content-Type: text/csv\r\n\r\n"
            )
            for _ in range(100):
                yield b"x" * 1000

        streamed = client.post(
            "/console/contacts/import",
            content=chunks(),
            headers={"content-type": "multipart/form-data; boundary=b", "accept": "text/html"},
        )
        assert streamed.status_code == 413
        # A small request still works.
        assert client.get("/console/contacts/import").status_code == 200
    with Session(engine) as session:
        assert session.exec(select(Contact)).first() is None


def test_it_shows_the_first_rejected_rows_and_offers_them_all_as_a_file(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _settings_with_limit(monkeypatch, 1)
    add_user(engine, "editor@sdruk.example", "editor")
    threads: list[bool] = []
    real = imports.import_contact_bytes

    def spy(*args: object, **kwargs: object) -> object:
        try:
            asyncio.get_running_loop()
            threads.append(False)  # on the event loop
        except RuntimeError:
            threads.append(True)  # on a worker thread
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(imports, "import_contact_bytes", spy)
    rows = 30_000
    text = _bad_rows(rows)
    assert len(text.encode()) < 1_000_000
    with TestClient(make_app(engine), base_url=BASE_URL) as client:
        csrf = sign_in(client, "editor@sdruk.example")
        page = _upload(client, csrf, text, mode="check")
        assert threads == [True]
        tree = lxml_html.fromstring(page)
        assert len(tree.xpath("//table[@id='import-problems']/tbody/tr")) == imports.SHOWN_ROWS
        assert "Odmítnuté řádky (30 000)" in _visible(page).replace("\u00a0", " ")
        assert len(page) < 200_000
        link = tree.xpath("//a[@id='full-report']/@href")[0]
        report = client.get(link)
        assert report.status_code == 200
        assert "attachment" in report.headers["content-disposition"]
        parsed = list(csv.reader(io.StringIO(report.text.lstrip("\ufeff")), delimiter=";"))
        assert len(parsed) == 1 + rows
        assert parsed[1][0] == "2" and "zavináč" in parsed[1][3]
        # A viewer may not read it; an unknown token is a Czech 404.
        assert client.get("/console/contacts/import/report/" + "x" * 22).status_code == 404
