"""What non-programmer staff read and use: every control of the segment builder has a label,
programs in the audit log have Czech names (and can be searched by them), the front page names
campaigns as staff know them, and an empty list of captured messages says where they come from."""

from __future__ import annotations

from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest
from console_support import BASE_URL, HTML, add_user, load_contacts, make_app, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session

from mailer.models import AuditEntry, Run


class Controls(HTMLParser):
    """Form controls without an accessible name: no <label for>, no enclosing <label>, no
    aria-label(ledby) and no title."""

    def __init__(self) -> None:
        super().__init__()
        self.label_for: set[str] = set()
        self.depth_in_label = 0
        self.controls: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "label":
            self.depth_in_label += 1
            if attr.get("for"):
                self.label_for.add(str(attr["for"]))
        elif tag in ("input", "select", "textarea") and attr.get("type") != "hidden":
            self.controls.append({**attr, "_wrapped": "yes" if self.depth_in_label else None})

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.depth_in_label -= 1

    def unnamed(self) -> list[str]:
        return [
            str(c.get("name"))
            for c in self.controls
            if not (
                c["_wrapped"]
                or (c.get("id") and c["id"] in self.label_for)
                or c.get("aria-label")
                or c.get("aria-labelledby")
                or c.get("title")
            )
        ]


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    load_contacts(engine, tmp_path)
    add_user(engine, "spravce@sdruk.example", "admin")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        sign_in(test_client, "spravce@sdruk.example")
        yield test_client


def test_it_labels_every_control_of_the_segment_builder(client: TestClient) -> None:
    parser = Controls()
    parser.feed(client.get("/console/segments/new", headers=HTML).text)
    # The builder has text fields, yes/no choices, checkbox groups and the TOML output.
    names = {c.get("name") for c in parser.controls}
    assert {"town", "member", "library_type", "opened", "name"} <= names
    assert parser.unnamed() == []


def test_it_names_programs_in_the_audit_log_in_czech(client: TestClient, engine: Engine) -> None:
    with Session(engine) as session:
        session.add(AuditEntry(actor="scheduler", action="step_missed", target="kampan/krok"))
        session.commit()
    html = client.get("/console/audit", headers=HTML).text
    assert "<td>plánovač</td>" in html and "<td>zmeškaný krok kampaně</td>" in html
    assert "<td>scheduler</td>" not in html and "step_missed</td>" not in html
    # Staff search by what they see.
    found = client.get("/console/audit?actor=plánovač", headers=HTML).text
    assert "kampan/krok" in found
    other = client.get("/console/audit?actor=nikdo-takovy", headers=HTML).text
    assert "kampan/krok" not in other


def test_it_explains_an_empty_list_of_captured_messages(client: TestClient) -> None:
    html = client.get("/console/outbox", headers=HTML).text
    assert "<title>Zachycené zprávy" in html
    assert "0 zpráv." in html
    assert "Objeví se tu po spuštění kampaně" in html
    searched = client.get("/console/outbox?q=nikdo@example.cz", headers=HTML).text
    assert "Žádná zpráva pro adresáta „nikdo@example.cz“." in searched


def test_it_shows_campaign_names_not_folder_names_on_the_front_page(
    client: TestClient, engine: Engine
) -> None:
    with Session(engine) as session:
        session.add(Run(campaign="join-this-year-2026", recipients=3))
        session.add(Run(campaign="smazana-kampan", recipients=1))
        session.commit()
    html = client.get("/console/", headers=HTML).text
    assert '">Přidejte se ke Sdružení knihoven ČR ještě letos (2026)</a>' in html
    assert '">join-this-year-2026</a>' not in html
    # A run of a campaign whose folder is gone still shows, by its folder name.
    assert '">smazana-kampan</a>' in html
