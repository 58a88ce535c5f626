"""Contact import: encodings, delimiters, bad rows, idempotence, never resubscribing."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.audience.contacts import (
    ImportFileError,
    InvalidAddress,
    address_hash,
    import_contacts,
    infer_gender,
    is_suppressed,
    normalize_email,
    suppress,
)
from mailer.models import Contact, ContactTag, LegalBasisRecord, Library, Suppression, Tag

CZECH_HEADER = (
    "e-mail;jméno;příjmení;funkce;knihovna;typ;sigla;obec;kraj;člen;členem od;souhlas;stav;štítky"
)
ROWS = [
    "Jiří.Žák@Knihovna-Řevnice.example;Jiří;Žák;ředitel;Místní knihovna Řevnice;obecni;"
    "RVN001;Řevnice;Středočeský kraj;ne;;legitimate_interest;active;workshop-2026",
    "bozena.nemcova@knihovna-ceska-skalice.example;Božena;Němcová;knihovnice;"
    "Městská knihovna Česká Skalice;mestska;CSK002;Česká Skalice;Královéhradecký kraj;ano;2019;"
    "consent;active;konference-2026",
]


def write(path: Path, lines: list[str], encoding: str) -> Path:
    path.write_bytes(("\r\n".join(lines) + "\r\n").encode(encoding))
    return path


def contacts(engine: Engine) -> dict[str, Contact]:
    with Session(engine) as session:
        return {c.email: c for c in session.exec(select(Contact)).all()}


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp1250"])
def test_it_reads_czech_semicolon_files_in_every_encoding_excel_writes(
    engine: Engine, tmp_path: Path, encoding: str
) -> None:
    path = write(tmp_path / "kontakty.csv", [CZECH_HEADER, *ROWS], encoding)
    report = import_contacts(engine, path)
    assert (report.created, report.rejected) == (2, [])
    assert report.delimiter == ";"
    found = contacts(engine)
    jiri = found["jiří.žák@knihovna-řevnice.example"]
    assert (jiri.first_name, jiri.last_name, jiri.role, jiri.gender) == (
        "Jiří",
        "Žák",
        "ředitel",
        "m",
    )
    assert found["bozena.nemcova@knihovna-ceska-skalice.example"].gender == "f"
    with Session(engine) as session:
        lib = session.exec(select(Library).where(Library.siglum == "CSK002")).one()
        assert (lib.name, lib.town, lib.region, lib.is_member, lib.member_since) == (
            "Městská knihovna Česká Skalice",
            "Česká Skalice",
            "Královéhradecký kraj",
            True,
            2019,
        )
        tags = session.exec(select(Tag.name)).all()
        assert sorted(tags) == ["konference-2026", "workshop-2026"]


def test_it_reads_the_comma_separated_fixture_with_english_headers(engine: Engine) -> None:
    fixture = Path(__file__).resolve().parent.parent / "mailer" / "fixtures" / "libraries.csv"
    report = import_contacts(engine, fixture)
    assert (report.created, report.rejected, report.delimiter) == (892, [], ",")
    with Session(engine) as session:
        statuses = session.exec(select(Contact.status)).all()
        assert statuses.count("unsubscribed") > 0 and statuses.count("bounced") > 0
        # Tags are semicolon-separated inside a comma-separated file.
        karlovy_vary = session.exec(
            select(Contact).where(
                Contact.email == "zuzana.blazkova@krajska-knihovna-karlovy-vary.example"
            )
        ).one()
        tag_names = session.exec(
            select(Tag.name).join(ContactTag).where(ContactTag.contact_id == karlovy_vary.id)
        ).all()
        assert sorted(tag_names) == ["konference-2026", "workshop-2026"]


def test_it_reports_bad_rows_with_line_and_column_and_imports_the_good_ones(
    engine: Engine, tmp_path: Path
) -> None:
    lines = [
        "email,first_name,last_name,library,library_type,town,region,member",
        "dobra@knihovna.example,Eva,Dobrá,Knihovna A,obecni,Lhota,Plzeňský kraj,ne",
        "neni-adresa,Petr,Zlý,Knihovna B,obecni,Lhota,Plzeňský kraj,ne",
        "spatny-typ@knihovna.example,Petr,Zlý,Knihovna C,hradni,Lhota,Plzeňský kraj,ne",
        "spatny-kraj@knihovna.example,Petr,Zlý,Knihovna D,obecni,Lhota,Bavorsko,ne",
        ",Petr,Bez adresy,Knihovna E,obecni,Lhota,Plzeňský kraj,ne",
        "spatny-clen@knihovna.example,Petr,Zlý,Knihovna F,obecni,Lhota,Plzeňský kraj,možná",
        "druha@knihovna.example,Adam,Dobrý,Knihovna A,obecni,Lhota,Plzeňský kraj,ne",
    ]
    report = import_contacts(engine, write(tmp_path / "mix.csv", lines, "utf-8"))
    assert report.created == 2
    got = [(r.line, r.column) for r in report.rejected]
    assert got == [(3, "email"), (4, "library_type"), (5, "region"), (6, "email"), (7, "member")]
    assert "hradni" in report.rejected[1].reason and "obecní" in report.rejected[1].reason
    assert "Bavorsko" in report.rejected[2].reason
    assert set(contacts(engine)) == {"dobra@knihovna.example", "druha@knihovna.example"}


def test_it_is_idempotent_on_reimport(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "k.csv", [CZECH_HEADER, *ROWS], "utf-8")
    import_contacts(engine, path)
    again = import_contacts(engine, path)
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)
    with Session(engine) as session:
        assert len(session.exec(select(Library)).all()) == 2
        assert len(session.exec(select(LegalBasisRecord)).all()) == 2
        assert len(session.exec(select(ContactTag)).all()) == 2


def test_it_never_resubscribes_an_unsubscribed_contact(engine: Engine, tmp_path: Path) -> None:
    header = "email,library,library_type,region,status,consent"
    first = write(
        tmp_path / "a.csv",
        [header, "pryc@knihovna.example,K,obecni,Zlínský kraj,unsubscribed,consent"],
        "utf-8",
    )
    import_contacts(engine, first)
    back = write(
        tmp_path / "b.csv",
        [header, "Pryc@Knihovna.example,K,obecni,Zlínský kraj,active,consent"],
        "utf-8",
    )
    report = import_contacts(engine, back)
    assert report.unchanged == 1
    assert contacts(engine)["pryc@knihovna.example"].status == "unsubscribed"
    with Session(engine) as session:
        assert is_suppressed(session, "PRYC@knihovna.example")


def test_it_unsubscribes_and_suppresses_when_the_file_says_so(
    engine: Engine, tmp_path: Path
) -> None:
    header = "email,status,consent"
    import_contacts(
        engine, write(tmp_path / "a.csv", [header, "x@k.example,active,consent"], "utf-8")
    )
    report = import_contacts(
        engine, write(tmp_path / "b.csv", [header, "x@k.example,bounced,"], "utf-8")
    )
    assert (report.updated, report.suppressed) == (1, 1)
    contact = contacts(engine)["x@k.example"]
    assert contact.status == "bounced" and contact.status_changed_at is not None
    with Session(engine) as session:
        assert session.get(Suppression, address_hash("x@k.example")) is not None


def test_it_never_imports_a_suppressed_address_as_active(engine: Engine, tmp_path: Path) -> None:
    with Session(engine) as session:
        suppress(session, "Smazany@Knihovna.example", "erasure")
        suppress(session, "smazany@knihovna.example", "again")  # idempotent
        session.commit()
    path = write(tmp_path / "a.csv", ["email,consent", "smazany@knihovna.example,consent"], "utf-8")
    import_contacts(engine, path)
    assert contacts(engine)["smazany@knihovna.example"].status == "unsubscribed"


def test_it_merges_duplicates_within_a_file(engine: Engine, tmp_path: Path) -> None:
    lines = [
        "email,first_name,last_name,status,tags,consent",
        "dup@k.example,Eva,,active,a,legitimate_interest",
        "DUP@k.example,,Nová,unsubscribed,b,",
        "dup@k.example,Eva,Nová,active,c,",
    ]
    report = import_contacts(engine, write(tmp_path / "d.csv", lines, "utf-8"))
    assert (report.created, report.merged_duplicates) == (1, 2)
    contact = contacts(engine)["dup@k.example"]
    assert (contact.first_name, contact.last_name, contact.status) == (
        "Eva",
        "Nová",
        "unsubscribed",
    )
    with Session(engine) as session:
        assert len(session.exec(select(ContactTag)).all()) == 3


def test_it_records_legal_basis_evidence_only_when_the_basis_changes(
    engine: Engine, tmp_path: Path
) -> None:
    header = "email,consent"
    import_contacts(
        engine, write(tmp_path / "a.csv", [header, "z@k.example,legitimate_interest"], "utf-8")
    )
    import_contacts(
        engine, write(tmp_path / "a.csv", [header, "z@k.example,legitimate_interest"], "utf-8")
    )
    import_contacts(engine, write(tmp_path / "b.csv", [header, "z@k.example,souhlas"], "utf-8"))
    with Session(engine) as session:
        records = session.exec(select(LegalBasisRecord).order_by(LegalBasisRecord.id)).all()  # type: ignore[arg-type]
    assert [(r.basis, r.source) for r in records] == [
        ("legitimate_interest", "import a.csv:2"),
        ("consent", "import b.csv:2"),
    ]


def test_it_changes_nothing_on_a_dry_run(engine: Engine, tmp_path: Path) -> None:
    path = write(tmp_path / "k.csv", [CZECH_HEADER, *ROWS], "cp1250")
    report = import_contacts(engine, path, dry_run=True)
    assert (report.created, report.libraries_created) == (2, 2)
    assert contacts(engine) == {}


def test_it_links_an_existing_library_by_name_and_town(engine: Engine, tmp_path: Path) -> None:
    header = "email,library,library_type,town,region"
    lines = [
        header,
        "a@k.example,Knihovna Lhota,obecni,Lhota,Zlínský kraj",
        "b@k.example,knihovna lhota,,Lhota,",
    ]
    report = import_contacts(engine, write(tmp_path / "l.csv", lines, "utf-8"))
    assert report.libraries_created == 1
    found = contacts(engine)
    assert found["a@k.example"].library_id == found["b@k.example"].library_id is not None


def test_it_refuses_files_it_cannot_read(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ImportFileError):
        import_contacts(engine, tmp_path / "missing.csv")
    no_email = write(tmp_path / "x.csv", ["jméno;příjmení", "Eva;Nová"], "utf-8")
    with pytest.raises(ImportFileError, match="e-mail"):
        import_contacts(engine, no_email)
    (tmp_path / "x.xlsx").write_bytes(b"PK\x03\x04\x00\x00\x81\x00binary")
    with pytest.raises(ImportFileError):
        import_contacts(engine, tmp_path / "x.xlsx")


def test_it_normalises_addresses_for_identity() -> None:
    assert normalize_email("  Eva.Nova@Knihovna.EXAMPLE ") == "eva.nova@knihovna.example"
    assert address_hash("EVA.nova@knihovna.example") == address_hash("eva.nova@knihovna.example")
    with pytest.raises(InvalidAddress):
        normalize_email("eva@@knihovna")


@pytest.mark.parametrize(
    ("role", "first", "last", "expected"),
    [
        ("ředitelka", "", "", "f"),
        ("ředitel", "Jana", "", "m"),  # the role decides
        ("vedoucí knihovny", "Dagmar", "Pokorná", "f"),
        ("vedoucí knihovny", "Jiří", "Malý", "m"),
        ("vedoucí knihovny", "Lucie", "", "f"),
        ("", "", "", None),
    ],
)
def test_it_infers_gender_from_czech_endings(
    role: str, first: str, last: str, expected: str | None
) -> None:
    assert infer_gender(role, first, last) == expected


def test_it_keeps_the_stored_value_when_a_cell_is_empty(engine: Engine, tmp_path: Path) -> None:
    header = "email,first_name,role,gender,salutation"
    import_contacts(
        engine,
        write(tmp_path / "a.csv", [header, "e@k.example,Eva,knihovnice,ž,Milá Evo"], "utf-8"),
    )
    report = import_contacts(
        engine, write(tmp_path / "b.csv", [header, "e@k.example,,,,"], "utf-8")
    )
    assert report.unchanged == 1
    contact = contacts(engine)["e@k.example"]
    assert (contact.first_name, contact.role, contact.gender, contact.salutation) == (
        "Eva",
        "knihovnice",
        "f",
        "Milá Evo",
    )
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Contact)).scalar_one() == 1
