"""`sdruk campaigns preview` writes what a contact in the database would receive; `list` shows
the blueprints."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from mailer.cli import app
from mailer.models import Contact, Library


def add_contact(engine: Engine) -> None:
    with Session(engine) as session:
        library = Library(
            name="Knihovna Jana Drdy Příbram",
            library_type="mestska",
            region="Středočeský kraj",
            town="Příbram",
            is_member=False,
        )
        session.add(library)
        session.flush()
        session.add(
            Contact(
                email="petr.novak@knihovna-pribram.example",
                first_name="Petr",
                last_name="Novák",
                role="ředitel",
                gender="m",
                library_id=library.id,
                legal_basis="legitimate_interest",
            )
        )
        session.commit()


def test_it_previews_exactly_what_a_contact_receives(engine: Engine, tmp_path: Path) -> None:
    add_contact(engine)
    runner = CliRunner()
    eml = tmp_path / "zprava.eml"
    result = runner.invoke(
        app,
        [
            "campaigns",
            "preview",
            "join-this-year-2026",
            "--contact",
            "Petr.Novak@knihovna-pribram.example",
            "--eml",
            str(eml),
        ],
    )
    assert result.exit_code == 0, result.output
    message = email.message_from_bytes(eml.read_bytes(), policy=email.policy.default)
    assert message["To"] == "petr.novak@knihovna-pribram.example"
    body = message.get_body(("html",))
    assert body is not None
    html = body.get_content()
    assert "Vážený pane řediteli," in html
    assert "Knihovna Jana Drdy Příbram" in html

    page = tmp_path / "nahled.html"
    result = runner.invoke(
        app,
        [
            "campaigns",
            "preview",
            "join-this-year-2026",
            "--contact",
            "petr.novak@knihovna-pribram.example",
            "--step",
            "posledni-vyzva",
            "--html",
            str(page),
        ],
    )
    assert result.exit_code == 0, result.output
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!doctype html>")
    assert "Ještě letos můžete být s námi" in text


def test_it_refuses_a_contact_that_is_not_in_the_database(engine: Engine, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "campaigns",
            "preview",
            "join-this-year-2026",
            "--contact",
            "nikdo@knihovna.example",
            "--eml",
            str(tmp_path / "x.eml"),
        ],
    )
    assert result.exit_code == 1
    assert "v databázi není" in result.output
    assert not (tmp_path / "x.eml").exists()


def test_it_lists_the_campaigns_with_their_steps(configured: str) -> None:
    result = CliRunner().invoke(app, ["campaigns", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "join-this-year-2026" in result.output
    assert "posledni-vyzva: 15. prosince 2026 v 9:30" in result.output
    assert "prakticke-informace-6: 12. října 2027 v 9:30 (6. termín, 14. října 2027" in (
        " ".join(result.output.split())
    )
