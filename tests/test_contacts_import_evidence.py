"""Imports that would quietly make contacts unmailable or duplicate libraries: rows without a
legal basis are counted and can get one chosen for the whole file (kept as evidence),
libraries are matched by siglum, then by normalised name and town, and look-alikes are
reported; addresses that a spreadsheet would run as a formula are refused in Czech."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.audience.addresses import InvalidAddress, normalize_email
from mailer.audience.contacts import BasisChoice, import_contacts
from mailer.models import Contact, LegalBasisRecord, Library, TrackingConsentRecord

DIRECTORY = "\n".join(
    [
        "email,first_name,last_name,role,library,library_type,siglum,town,region,member,consent",
        "knihovna@mestska-knihovna-tisnov.example,Vojtěch,Malý,ředitel,Městská knihovna Tišnov,"
        "mestska,BOO633,Tišnov,Jihomoravský kraj,ne,legitimate_interest",
        "",
    ]
)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def _libraries(engine: Engine) -> list[Library]:
    with Session(engine) as session:
        return list(session.exec(select(Library).order_by(col(Library.id))).all())


def _contact(engine: Engine, email: str) -> Contact:
    with Session(engine) as session:
        return session.exec(select(Contact).where(Contact.email == email)).one()


def _records(engine: Engine, contact_id: int | None) -> list[LegalBasisRecord]:
    with Session(engine) as session:
        return list(
            session.exec(
                select(LegalBasisRecord).where(LegalBasisRecord.contact_id == contact_id)
            ).all()
        )


NO_CONSENT = "\n".join(
    [
        "e-mail;jméno;příjmení;knihovna;typ;obec;kraj",
        "reditel@knihovna-oslavany.example;Petr;Kos;Městská knihovna Oslavany;mestska;"
        "Oslavany;Jihomoravský kraj",
        "pujcovna@knihovna-oslavany.example;;;Městská knihovna Oslavany;mestska;"
        "Oslavany;Jihomoravský kraj",
        "",
    ]
)


def test_it_counts_the_rows_left_without_a_legal_basis(engine: Engine, tmp_path: Path) -> None:
    report = import_contacts(engine, _write(tmp_path / "adresar.csv", NO_CONSENT))
    assert (report.created, report.rejected) == (2, [])
    assert report.without_basis == 2
    assert report.as_json()["without_basis"] == 2
    assert _contact(engine, "reditel@knihovna-oslavany.example").legal_basis is None


def test_it_gives_the_basis_chosen_for_the_file_and_keeps_who_chose_it(
    engine: Engine, tmp_path: Path
) -> None:
    import_contacts(engine, _write(tmp_path / "adresar.csv", DIRECTORY))
    text = NO_CONSENT.replace("e-mail;", "e-mail;souhlas;", 1).replace(
        "reditel@knihovna-oslavany.example;", "reditel@knihovna-oslavany.example;souhlas;"
    )
    text = text.replace(
        "pujcovna@knihovna-oslavany.example;", "pujcovna@knihovna-oslavany.example;;"
    )
    text += "knihovna@mestska-knihovna-tisnov.example;;;;;;;\n"
    choice = BasisChoice("legitimate_interest", "jana@sdruk.example", "adresy institucí")
    report = import_contacts(engine, _write(tmp_path / "oslavany.csv", text), basis_choice=choice)
    assert report.rejected == []
    assert (report.without_basis, report.basis_assigned) == (0, 1)
    # The file's own consent wins; a stored basis is never replaced by the file-wide choice.
    assert _contact(engine, "reditel@knihovna-oslavany.example").legal_basis == "consent"
    assert _contact(engine, "knihovna@mestska-knihovna-tisnov.example").legal_basis == (
        "legitimate_interest"
    )
    chosen = _contact(engine, "pujcovna@knihovna-oslavany.example")
    assert chosen.legal_basis == "legitimate_interest"
    [record] = _records(engine, chosen.id)
    assert record.source == "import oslavany.csv:3"
    assert record.recorded_by == "jana@sdruk.example"
    assert record.evidence is not None
    assert "oslavany.csv" in record.evidence and "oprávněný zájem" in record.evidence
    assert "adresy institucí" in record.evidence


def test_it_names_the_file_as_staff_named_it_in_the_evidence(
    engine: Engine, tmp_path: Path
) -> None:
    from mailer.audience.contacts import import_contact_bytes

    raw = DIRECTORY.encode()
    import_contact_bytes(engine, raw, "Adresář knihoven 2026.csv", actor="eva@sdruk.example")
    contact = _contact(engine, "knihovna@mestska-knihovna-tisnov.example")
    [record] = _records(engine, contact.id)
    assert record.source == "import Adresář knihoven 2026.csv:2"
    assert record.recorded_by == "eva@sdruk.example"


def test_it_links_a_mistyped_siglum_to_the_library_of_that_name_and_town(
    engine: Engine, tmp_path: Path
) -> None:
    import_contacts(engine, _write(tmp_path / "adresar.csv", DIRECTORY))
    again = "\n".join(
        [
            "email,library,library_type,siglum,town,region,consent",
            "vypujcky@mestska-knihovna-tisnov.example,Městská  knihovna TIŠNOV,mestska,"
            "BOO634,Tisnov,Jihomoravský kraj,legitimate_interest",
            "",
        ]
    )
    report = import_contacts(engine, _write(tmp_path / "novy.csv", again))
    assert report.rejected == [] and report.libraries_created == 0
    [library] = _libraries(engine)
    assert (library.name, library.siglum) == ("Městská knihovna Tišnov", "BOO633")
    assert _contact(engine, "vypujcky@mestska-knihovna-tisnov.example").library_id == library.id
    [note] = report.notes
    assert note.line == 2 and "BOO634" in note.reason and "BOO633" in note.reason


def test_it_finds_a_library_by_its_name_alone_when_the_file_gives_no_town(
    engine: Engine, tmp_path: Path
) -> None:
    import_contacts(engine, _write(tmp_path / "adresar.csv", DIRECTORY))
    text = "email,library\nnova@mestska-knihovna-tisnov.example,Městská knihovna Tišnov\n"
    report = import_contacts(engine, _write(tmp_path / "bez-obce.csv", text))
    assert report.rejected == [] and report.libraries_created == 0
    [library] = _libraries(engine)
    assert _contact(engine, "nova@mestska-knihovna-tisnov.example").library_id == library.id


def test_it_reports_a_new_library_that_looks_like_one_in_the_directory(
    engine: Engine, tmp_path: Path
) -> None:
    import_contacts(engine, _write(tmp_path / "adresar.csv", DIRECTORY))
    text = "\n".join(
        [
            "email,library,library_type,town,region",
            "info@mk-tisnov.example,Městská knihovna v Tišnově,mestska,Tišnov,Jihomoravský kraj",
            "info@obec-lomnice.example,Obecní knihovna Lomnice,obecni,Lomnice,Jihomoravský kraj",
            "",
        ]
    )
    report = import_contacts(engine, _write(tmp_path / "podobne.csv", text), dry_run=True)
    assert report.libraries_created == 2
    assert report.likely_duplicate_libraries == 1
    [note] = report.notes
    assert note.line == 2 and note.column == "library"
    assert "Městská knihovna v Tišnově" in note.reason and "BOO633" in note.reason


@pytest.mark.parametrize(
    "address",
    [
        "=cmd|'/ccalc'!a0@example.cz",
        "+420@knihovna.example",
        "-2+3@knihovna.example",
        "@SUM(1+1)@knihovna.example",
        "a|b@knihovna.example",
    ],
)
def test_it_refuses_addresses_a_spreadsheet_would_run(address: str) -> None:
    with pytest.raises(InvalidAddress) as refused:
        normalize_email(address)
    assert "tabulkové programy" in refused.value.reason


def test_it_refuses_the_formula_address_in_an_import_with_a_czech_reason(
    engine: Engine, tmp_path: Path
) -> None:
    text = "email,consent\n=cmd|'/ccalc'!a0@example.cz,consent\nok@knihovna.example,consent\n"
    report = import_contacts(engine, _write(tmp_path / "utok.csv", text))
    assert report.created == 1
    [rejected] = report.rejected
    assert (rejected.line, rejected.column) == (2, "email")
    assert "vzorce" in rejected.reason


ENGLISH = re.compile(
    r"\b(the|an|must|email|address|sign|after|before|character|characters|invalid|period|"
    r"domain|not|valid|there|cannot|is)\b",
    re.IGNORECASE,
)


@pytest.mark.parametrize(
    "address",
    [
        "bez-zavinace.example",
        "@knihovna.example",
        "eva@",
        "eva..nova@knihovna.example",
        ".eva@knihovna.example",
        "eva.@knihovna.example",
        "eva@knihovna",
        "eva@knihovna..example",
        "eva@-knihovna.example",
        "Eva Nová <eva@knihovna.example>",
        "eva@[127.0.0.1]",
        "eva@knihovna.invalid",
        "eva@" + "k" * 250 + ".example",
        "eva\u200b@knihovna.example",
        "eva nova@knihovna.example",
        "eva@knihovna.example extra",
    ],
)
def test_it_explains_every_refused_address_in_czech(address: str) -> None:
    with pytest.raises(InvalidAddress) as refused:
        normalize_email(address)
    reason = refused.value.reason
    shown = reason.replace(address.strip(), "")
    assert not ENGLISH.search(shown), reason
    assert len(shown) > 25, reason


def test_the_command_line_warns_and_takes_a_basis_for_the_whole_file(
    configured: str, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from mailer.cli import app
    from mailer.db import get_engine

    runner = CliRunner()
    path = _write(tmp_path / "oslavany.csv", NO_CONSENT)
    warned = runner.invoke(app, ["contacts", "import", str(path), "--dry-run"])
    assert warned.exit_code == 0, warned.output
    flat = " ".join(warned.output.split())
    assert "2 kontakty nemají právní základ" in flat and "--legal-basis" in flat
    assert "3 řádků" not in flat and "2 řádky" in flat
    refused = runner.invoke(app, ["contacts", "import", str(path), "--legal-basis", "souhlas"])
    assert refused.exit_code == 2 and "doklad" in refused.output
    done = runner.invoke(
        app, ["contacts", "import", str(path), "--legal-basis", "opravneny-zajem", "--json"]
    )
    assert done.exit_code == 0, done.output
    assert '"basis_assigned": 2' in done.output and '"without_basis": 0' in done.output
    contact = _contact(get_engine(), "pujcovna@knihovna-oslavany.example")
    [record] = _records(get_engine(), contact.id)
    assert record.recorded_by and record.recorded_by.startswith("příkazová řádka")


def test_it_takes_an_optional_tracking_column_and_keeps_its_evidence(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "sledovani.csv"
    path.write_text(
        "email;jmeno;sledovani\n"
        "ano@knihovna.cz;Jana;ano\n"
        "ne@knihovna.cz;Petr;ne\n"
        "prazdne@knihovna.cz;Eva;\n",
        encoding="utf-8",
    )
    import_contacts(engine, path, actor="import@sdruk.example")
    path.write_text("email;sledovani\nano@knihovna.cz;\nprazdne@knihovna.cz;odmítla\n", "utf-8")
    second = import_contacts(engine, path, actor="import@sdruk.example")
    assert second.unchanged == 1 and second.updated == 1  # an empty cell keeps the answer
    with Session(engine) as session:
        consent = {c.email: c.tracking_consent for c in session.exec(select(Contact))}
        records = session.exec(select(TrackingConsentRecord)).all()
    assert consent == {
        "ano@knihovna.cz": "granted",
        "ne@knihovna.cz": "denied",
        "prazdne@knihovna.cz": "denied",
    }
    assert sorted((r.value, r.source, r.recorded_by) for r in records) == [
        ("denied", "import", "import@sdruk.example"),
        ("denied", "import", "import@sdruk.example"),
        ("granted", "import", "import@sdruk.example"),
    ]
    assert all(r.wording and r.wording.startswith("import sledovani.csv:") for r in records)
    path.write_text("email;sledovani\nkdo@knihovna.cz;možná\n", "utf-8")
    refused = import_contacts(engine, path)
    assert [r.column for r in refused.rejected] == ["sledovani"]
    assert "ano, ne, nevím" in refused.rejected[0].reason
