"""Every CSV the product writes opens in Czech Excel as it is (UTF-8 BOM, `;`, local times,
Czech labels) and cannot be turned into a formula by a value someone else typed (OWASP CSV
injection): each export route is fed hostile names and addresses and read back."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from console_support import BASE_URL, HTML, add_user, make_app, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.csvfiles import csv_document, safe_cell
from mailer.models import Contact, Library, MessageStatus, OutboxMessage, Run

HOSTILE = [
    '=HYPERLINK("http://evil","klik")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]


@pytest.mark.parametrize("value", HOSTILE)
def test_it_neutralises_a_cell_a_spreadsheet_would_run(value: str) -> None:
    assert safe_cell(value) == "'" + value
    assert safe_cell("Městská knihovna") == "Městská knihovna"
    assert safe_cell(-3) == "-3"  # numbers are data, not formulas


def test_it_writes_what_czech_excel_opens() -> None:
    text = csv_document(["knihovna", "počet"], [["Knihovna; Brno", 3], ["=1+1", None]])
    assert text.startswith("\ufeff")
    assert text.split("\r\n")[0] == "\ufeffknihovna;počet"
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))
    assert rows == [["knihovna", "počet"], ["Knihovna; Brno", "3"], ["'=1+1", ""]]


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    add_user(engine, "editor@sdruk.example", "editor")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        yield test_client


def _hostile_run(engine: Engine) -> int:
    """A sent run whose recipients' library names are formulas."""
    with Session(engine) as session:
        run = Run(
            campaign="join-this-year-2026",
            step="launch",
            status="sent",
            content={"tracking": "individual"},
            recipients=len(HOSTILE),
        )
        session.add(run)
        session.flush()
        for i, name in enumerate(HOSTILE):
            library = Library(
                name=name, library_type="mestska", region="Zlínský kraj", town=name[:20]
            )
            session.add(library)
            session.flush()
            contact = Contact(
                email=f"k{i}@knihovna.example", library_id=library.id, first_name=name[:100]
            )
            session.add(contact)
            session.flush()
            session.add(
                OutboxMessage(
                    run_id=run.id,
                    contact_id=contact.id,
                    email=contact.email,
                    status=MessageStatus.SENT,
                    sent_at=datetime(2026, 11, 29, 22, 30, tzinfo=UTC),
                )
            )
        session.commit()
        assert run.id is not None
        return run.id


def _cells(text: str) -> list[list[str]]:
    assert text.startswith("\ufeff"), "Excel needs the BOM to read UTF-8"
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff")), delimiter=";"))


def _assert_inert(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (cell, row)


def _results_export(client: TestClient, engine: Engine, csrf: str) -> str:
    run_id = _hostile_run(engine)
    response = client.post(f"/console/runs/{run_id}/results.csv", data={"csrf_token": csrf})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    rows = _cells(response.text)
    header, body = rows[0], rows[1:]
    # Czech labels and values, local time (22:30 UTC is 23:30 in Prague in November).
    assert header[:6] == ["e-mail", "knihovna", "typ knihovny", "kraj", "stav zprávy", header[5]]
    assert {r[4] for r in body} == {"odesláno"}
    assert {r[5] for r in body} == {"29.11.2026 23:30:00"}
    assert {r[1] for r in body} == {"'" + h for h in HOSTILE}
    _assert_inert(rows)
    return response.text


def _import_report_export(client: TestClient, engine: Engine, csrf: str) -> str:
    lines = ["e-mail;knihovna;typ;kraj;souhlas"]
    lines += [f"{h.strip()}@knihovna.example;Knihovna;mestska;Zlínský kraj;ano" for h in HOSTILE]
    lines += ["=cmd|'/ccalc'!a0@example.cz;=HYPERLINK(1);mestska;Zlínský kraj;ano"]
    files = {"file": ("utok.csv", "\n".join(lines).encode(), "text/csv")}
    page = client.post(
        "/console/contacts/import", data={"csrf_token": csrf, "mode": "check"}, files=files
    )
    assert page.status_code == 200
    link = re.search(r'href="(/console/contacts/import/report/[^"]+)"', page.text)
    assert link, "the page offers the full report"
    response = client.get(link.group(1))
    assert response.status_code == 200
    rows = _cells(response.text)
    assert rows[0] == ["řádek", "sloupec", "druh", "popis"]
    assert len(rows) == 1 + len(HOSTILE) + 1
    _assert_inert(rows)
    return response.text


def _registrations_export(client: TestClient, engine: Engine, csrf: str) -> str:
    from mailer.models import EventRegistration

    slug = "knihovny-soucasnosti-2027"
    with Session(engine) as session:
        for i, name in enumerate(HOSTILE):
            session.add(
                EventRegistration(
                    campaign=slug,
                    name=name,
                    role=name[:100],
                    library_name=name,
                    email=f"r{i}@knihovna.example",
                )
            )
        session.commit()
    response = client.post(
        f"/console/campaigns/{slug}/registrations.csv", data={"csrf_token": csrf}
    )
    assert response.status_code == 200, response.text
    rows = _cells(response.text)
    assert len(rows) == 1 + len(HOSTILE)
    assert {r[2] for r in rows[1:]} == {"'" + h for h in HOSTILE}
    _assert_inert(rows)
    return response.text


EXPORTS = {
    "/console/runs/{run_id}/results.csv": _results_export,
    "/console/campaigns/{slug}/registrations.csv": _registrations_export,
    "/console/contacts/import/report/{token}": _import_report_export,
}


def test_it_knows_every_route_that_writes_a_csv() -> None:
    from mailer.web import tracking, unsubscribe
    from mailer.web.console import MODULES, router

    paths = [router.prefix + r.path for m in MODULES for r in m.router.routes]
    paths += [r.path for m in (tracking, unsubscribe) for r in m.router.routes]  # type: ignore[attr-defined]
    assert "/console/contacts/import" in paths
    routes = {p for p in paths if re.search(r"csv|report|export|download|stahn", p, re.I)}
    # The GDPR export of one contact is JSON, not a spreadsheet.
    routes.discard("/console/contacts/{contact_id}/export")
    assert routes == set(EXPORTS), "a new CSV export must be added to EXPORTS and tested"


def test_every_csv_export_is_inert_and_opens_in_czech_excel(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    for path, export in EXPORTS.items():
        text = export(client, engine, csrf)
        assert text, path
    # Nothing hostile made it into the directory either.
    with Session(engine) as session:
        emails = session.exec(select(Contact.email)).all()
    assert not any(e.startswith(("=", "+", "-", "@")) for e in emails)
    assert client.get("/console/", headers=HTML).status_code == 200
