"""Contact import and the suppression list: CSV files as staff have them, upserted in bulk.

The import reads what Excel and LibreOffice write (UTF-8 with or without BOM, Windows-1250;
comma or semicolon; Czech or English headers), validates every row, merges duplicates within
the file and upserts by normalised address. It never resubscribes: an unsubscribed, bounced
or complained contact stays so, and a suppressed address is never imported as active.

For speed (100,000 rows in seconds) it parses the whole file first, preloads the existing
contacts, libraries, tags and suppressions into dicts, and then writes with executemany in
chunks, one transaction per chunk, instead of one ORM round trip per row.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email
from sqlalchemy import Connection, Engine
from sqlmodel import Session

from mailer.models import (
    LIBRARY_TYPE_LABELS,
    REGIONS,
    Contact,
    ContactStatus,
    ContactTag,
    LegalBasis,
    LegalBasisRecord,
    Library,
    LibraryType,
    Suppression,
    Tag,
    utcnow,
)

CHUNK = 5000
# Rows written by one import after which planner statistics are refreshed.
ANALYZE_AFTER = 1000
ProgressCallback = Callable[[int, int], None]

CONTACTS: sa.Table = Contact.__table__  # type: ignore[attr-defined]
LIBRARIES: sa.Table = Library.__table__  # type: ignore[attr-defined]
TAGS: sa.Table = Tag.__table__  # type: ignore[attr-defined]
CONTACT_TAGS: sa.Table = ContactTag.__table__  # type: ignore[attr-defined]
SUPPRESSIONS: sa.Table = Suppression.__table__  # type: ignore[attr-defined]
BASIS_RECORDS: sa.Table = LegalBasisRecord.__table__  # type: ignore[attr-defined]


class InvalidAddress(ValueError):
    """An e-mail address email-validator rejects; `reason` says why (Czech)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ImportFileError(Exception):
    """The file cannot be read at all (missing, unknown encoding, no e-mail column)."""


@dataclass
class Rejection:
    line: int
    column: str
    reason: str


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    rows: int = 0
    merged_duplicates: int = 0
    libraries_created: int = 0
    libraries_updated: int = 0
    suppressed: int = 0
    encoding: str = ""
    delimiter: str = ""
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        """The `--json` object: created, updated, unchanged, rejected, and the rest."""
        data = asdict(self)
        data["rejected"] = [asdict(r) for r in self.rejected]
        return data


# --- addresses and suppression -------------------------------------------------------------


def normalize_email(raw: str) -> str:
    """The identity of an address: email-validator's normalised form (no DNS), lowercased
    whole, because staff files mix cases and no Czech mailbox distinguishes them."""
    text = (raw or "").strip()
    if not text:
        raise InvalidAddress("chybí e-mailová adresa")
    local, at, domain = text.rpartition("@")
    if at and len(text) <= 254 and len(local) <= 64 and _PLAIN_LOCAL.match(local):
        # The common case costs one dict look-up: the domain (the costly IDNA part) was
        # validated by email-validator for an earlier address, and a plain ASCII dot-atom
        # local part is valid as it is. Anything unusual takes the full path below.
        checked = _checked_domain(domain)
        if checked is not None:
            return f"{local}@{checked}".lower()
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"neplatná e-mailová adresa „{text}“ ({exc})") from exc
    return info.normalized.lower()


_PLAIN_LOCAL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z"
)


@lru_cache(maxsize=65536)
def _checked_domain(domain: str) -> str | None:
    """The normalised domain, or None when email-validator rejects it (the caller then runs
    the full validation for the message)."""
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None


def address_hash(email: str) -> str:
    """sha256 hex of the normalised address: what the suppression list keeps."""
    try:
        normal = normalize_email(email)
    except InvalidAddress:
        # Suppressing garbage must still work (a bounce may quote a broken address).
        normal = email.strip().lower()
    return hashlib.sha256(normal.encode()).hexdigest()


def suppress(session: Session, email: str, reason: str) -> None:
    """Put an address on the suppression list (idempotent; the first reason is kept).

    Only the hash is stored, so it survives erasure of the contact. Segments leave out
    suppressed addresses whatever the contact's status says."""
    digest = address_hash(email)
    if session.get(Suppression, digest) is None:
        session.add(Suppression(address_hash=digest, reason=reason[:32]))
        session.flush()


def is_suppressed(session: Session, email: str) -> bool:
    """Whether an address is on the suppression list."""
    return session.get(Suppression, address_hash(email)) is not None


# --- reading the file ----------------------------------------------------------------------


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Case- and diacritics-insensitive form for matching headers and values."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def header_key(text: str) -> str:
    """A column header folded for matching ("E-mail" -> "email"), as HEADER_ALIASES keys are."""
    return "".join(ch for ch in fold(text) if ch.isalnum())


# Folded header spellings (no spaces, dashes, underscores, diacritics) -> field.
HEADER_ALIASES: dict[str, str] = {
    **dict.fromkeys(["email", "mail", "emailovaadresa", "emailadresa", "adresa"], "email"),
    **dict.fromkeys(["jmeno", "firstname", "krestnijmeno", "givenname"], "first_name"),
    **dict.fromkeys(["prijmeni", "lastname", "surname", "familyname"], "last_name"),
    **dict.fromkeys(["funkce", "role", "pozice", "position"], "role"),
    **dict.fromkeys(["knihovna", "library", "nazevknihovny", "libraryname"], "library"),
    **dict.fromkeys(["typ", "typknihovny", "librarytype", "type"], "library_type"),
    **dict.fromkeys(["sigla", "siglum"], "siglum"),
    **dict.fromkeys(["obec", "mesto", "town", "city"], "town"),
    **dict.fromkeys(["kraj", "region"], "region"),
    **dict.fromkeys(["clen", "member", "clenstvi", "membership", "jeclenem"], "member"),
    **dict.fromkeys(["clenemod", "clenod", "membersince"], "member_since"),
    **dict.fromkeys(
        ["souhlas", "consent", "pravnizaklad", "legalbasis", "zakladzpracovani"], "legal_basis"
    ),
    **dict.fromkeys(["stav", "status"], "status"),
    **dict.fromkeys(["stitky", "stitek", "tags", "tag"], "tags"),
    **dict.fromkeys(["pohlavi", "gender"], "gender"),
    **dict.fromkeys(["osloveni", "salutation"], "salutation"),
}

_LIBRARY_TYPES: dict[str, str] = {fold(t.value): t.value for t in LibraryType}
_LIBRARY_TYPES.update({fold(label): t.value for t, label in LIBRARY_TYPE_LABELS.items()})
_LIBRARY_TYPES.update({"mistni": "obecni", "krajsky": "krajska", "mestsky": "mestska"})
_REGIONS: dict[str, str] = {fold(r): r for r in REGIONS}
_REGIONS.update({fold(r.replace("Kraj ", "").replace(" kraj", "")): r for r in REGIONS})
_REGIONS["praha"] = "Hlavní město Praha"
_BOOLS = {
    **dict.fromkeys(["ano", "a", "yes", "y", "true", "1", "x"], True),
    **dict.fromkeys(["ne", "n", "no", "false", "0"], False),
}
_BASES = {
    **dict.fromkeys(
        ["legitimate_interest", "legitimate interest", "opravneny zajem", "oz"],
        LegalBasis.LEGITIMATE_INTEREST.value,
    ),
    **dict.fromkeys(["consent", "souhlas", "ano", "yes"], LegalBasis.CONSENT.value),
}
_STATUSES = {
    **dict.fromkeys(["active", "aktivni", "ok"], ContactStatus.ACTIVE.value),
    **dict.fromkeys(
        ["unsubscribed", "odhlasen", "odhlaseny", "odhlasena", "odhlaseno"],
        ContactStatus.UNSUBSCRIBED.value,
    ),
    **dict.fromkeys(
        ["bounced", "nedorucitelny", "nedorucitelna", "nedorucitelne", "vraceno"],
        ContactStatus.BOUNCED.value,
    ),
    **dict.fromkeys(["complained", "stiznost", "spam"], ContactStatus.COMPLAINED.value),
}
_GENDERS = {
    **dict.fromkeys(["f", "z", "zena", "female", "woman"], "f"),
    **dict.fromkeys(["m", "muz", "male", "man"], "m"),
}
_MAX_LEN = {
    "first_name": 120,
    "last_name": 120,
    "role": 120,
    "library": 300,
    "siglum": 16,
    "town": 120,
    "salutation": 200,
}


def decode_csv_bytes(raw: bytes) -> tuple[str, str]:
    """A CSV file's bytes as text and the encoding found: UTF-8 (with or without BOM), else
    Windows-1250 (Excel on Czech Windows). Raises ImportFileError for binary or other files.
    Every CSV import of the project (contacts, registrations) reads files through this."""
    if b"\x00" in raw[:4096]:
        raise ImportFileError("Soubor je binární nebo v UTF-16; uložte jej jako CSV (UTF-8).")
    if raw.startswith(codecs.BOM_UTF8):
        try:
            return raw[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise ImportFileError(f"Soubor začíná značkou UTF-8, ale není v UTF-8: {exc}") from exc
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        # Excel's "CSV" on Czech Windows; strict, so a binary file (xlsx) fails here.
        return raw.decode("cp1250"), "cp1250"
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            "Soubor není text v UTF-8 ani ve Windows-1250 (není to XLSX? uložte jako CSV)."
        ) from exc


def sniff_dialect(text: str) -> type[csv.Dialect] | csv.Dialect:
    """The CSV dialect of decoded text: comma, semicolon (Czech Excel) or tab delimited."""
    header = text.split("\n", 1)[0]
    sample = "\n".join(text[:65536].split("\n")[:50])
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = None
    # Headers never contain the delimiter; trust the header line over a confused sniff.
    if dialect is None or header.count(dialect.delimiter) == 0:
        best = max(",;\t", key=header.count)

        class Fallback(csv.excel):
            delimiter = best

        return Fallback
    dialect.doublequote = True
    return dialect


@dataclass
class _Row:
    """One valid row: values already normalised; None = cell empty (keep what is stored)."""

    line: int
    email: str
    values: dict[str, Any]
    tags: list[str]


def _parse_rows(text: str, report: ImportReport) -> Iterator[_Row]:
    dialect = sniff_dialect(text)
    report.delimiter = dialect.delimiter
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("Soubor je prázdný.") from None
    except csv.Error as exc:
        raise ImportFileError(f"Hlavičku souboru nelze přečíst: {exc}") from exc
    columns: list[tuple[int, str, str]] = []  # (index, field, header as written)
    seen: set[str] = set()
    for index, name in enumerate(header):
        key = HEADER_ALIASES.get(header_key(name))
        if key and key not in seen:
            seen.add(key)
            columns.append((index, key, name.strip()))
    if "email" not in seen:
        raise ImportFileError(
            "Soubor nemá sloupec s e-mailovou adresou (očekávám „e-mail“ nebo „email“); "
            f"nalezené sloupce: {', '.join(h.strip() for h in header)}."
        )
    labels = {key: written for _, key, written in columns}
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num
            report.rejected.append(Rejection(start, "", f"řádek nelze přečíst: {exc}"))
            continue
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        report.rows += 1
        raw = {key: (cells[i].strip() if i < len(cells) else "") for i, key, _ in columns}
        try:
            email, values, tags = _validate(raw)
        except _RowError as exc:
            report.rejected.append(Rejection(start, labels.get(exc.column, exc.column), exc.reason))
            continue
        yield _Row(start, email, values, tags)


def _choice(mapping: dict[str, Any], text: str) -> Any:
    return mapping.get(fold(text)) if text else None


class _RowError(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column, self.reason = column, reason


# Columns with a fixed set of values: (field, folded spelling -> value, what to tell staff).
_CHOICES: list[tuple[str, dict[str, Any], str]] = [
    ("library_type", _LIBRARY_TYPES, ", ".join(t.value for t in LibraryType)),
    ("region", _REGIONS, ", ".join(REGIONS)),
    ("member", _BOOLS, "ano, ne"),
    ("legal_basis", _BASES, "legitimate_interest (oprávněný zájem), consent (souhlas)"),
    ("status", _STATUSES, ", ".join(s.value for s in ContactStatus)),
    ("gender", _GENDERS, "ž, m"),
]


def _validate(raw: dict[str, str]) -> tuple[str, dict[str, Any], list[str]]:
    """(email, values, tags) of a valid row; raises _RowError(column, reason) otherwise."""
    try:
        email = normalize_email(raw.get("email", ""))
    except InvalidAddress as exc:
        raise _RowError("email", exc.reason) from None
    values: dict[str, Any] = {}
    for key, limit in _MAX_LEN.items():
        text = raw.get(key, "")
        if len(text) > limit:
            raise _RowError(key, f"hodnota je delší než {limit} znaků")
        values[key] = text or None
    if values["siglum"]:
        values["siglum"] = values["siglum"].upper()
    for key, mapping, valid in _CHOICES:
        text = raw.get(key, "")
        values[key] = _choice(mapping, text)
        if text and values[key] is None:
            raise _RowError(key, f"neznámá hodnota „{text}“; platné jsou: {valid}")
    since = raw.get("member_since", "")
    values["member_since"] = None
    if since:
        if not since.isdigit() or not 1900 <= int(since) <= 2100:
            raise _RowError("member_since", f"„{since}“ není rok")
        values["member_since"] = int(since)
    tags = [t.strip() for t in raw.get("tags", "").replace(",", ";").split(";") if t.strip()]
    for tag in tags:
        if len(tag) > 80:
            raise _RowError("tags", f"štítek „{tag[:20]}…“ je delší než 80 znaků")
    return email, values, tags


# --- gender --------------------------------------------------------------------------------

# Role words: Czech feminine forms end in -ka, -ice, -yně ("ředitelka", "knihovnice");
# masculine ones in the suffixes below ("ředitel", "knihovník", "metodik").
_ROLE_F = tuple(fold(s) for s in ("ka", "ice", "yně", "ová"))
_ROLE_M = tuple(
    fold(s) for s in ("el", "ník", "ik", "tor", "ař", "ář", "ent", "ant", "ec", "ista", "log", "ta")
)


def infer_gender(role: str | None, first_name: str | None, last_name: str | None) -> str | None:
    """ "f", "m" or None, from simple Czech endings; a guess used only for the salutation.

    Order: the role (decisive when gendered), then the surname (-á/-ová is feminine), then
    the first name (-a/-e is feminine, a consonant masculine). Staff override per contact."""
    if role:
        word = fold(role.split()[0]) if role.split() else ""
        if word.endswith(_ROLE_F):
            return "f"
        if word.endswith(_ROLE_M):
            return "m"
    surname = (last_name or "").strip().lower()
    if surname.endswith("á"):
        return "f"
    name = fold(first_name or "")
    if name:
        if name.endswith(("a", "e")):
            return "f"
        if (name[-1].isalpha() and name[-1] not in "aeiouy") or name.endswith(("i", "y")):
            return "m"
    return None


# --- merging and writing -------------------------------------------------------------------

ACTIVE = ContactStatus.ACTIVE.value
UNSUBSCRIBED = ContactStatus.UNSUBSCRIBED.value

_FINALITY = {
    ContactStatus.ACTIVE.value: 0,
    ContactStatus.UNSUBSCRIBED.value: 1,
    ContactStatus.BOUNCED.value: 2,
    ContactStatus.COMPLAINED.value: 3,
}


@dataclass
class _Merged:
    line: int
    email: str
    values: dict[str, Any]
    tags: list[str]
    basis_line: int


def _merge(rows: Iterable[_Row], report: ImportReport) -> dict[str, _Merged]:
    merged: dict[str, _Merged] = {}
    for row in rows:
        known = merged.get(row.email)
        if known is None:
            merged[row.email] = _Merged(row.line, row.email, dict(row.values), row.tags, row.line)
            continue
        report.merged_duplicates += 1
        for key, value in row.values.items():
            if value is None:
                continue
            if key == "status" and _FINALITY[value] < _FINALITY.get(known.values[key], 0):
                continue  # a later "active" row never undoes an earlier unsubscribe
            if key == "legal_basis" and value != known.values[key]:
                known.basis_line = row.line
            known.values[key] = value
        known.tags = list(dict.fromkeys([*known.tags, *row.tags]))
    return merged


@dataclass
class _LibraryState:
    id: int | None
    name: str
    siglum: str | None
    library_type: str | None
    region: str | None
    town: str
    is_member: bool
    member_since: int | None
    joined_at: datetime | None
    dirty: bool = False
    new: bool = False


class _Libraries:
    """The library directory in memory, keyed by siglum and by (name, town)."""

    def __init__(self, conn: Connection) -> None:
        self.by_siglum: dict[str, _LibraryState] = {}
        self.by_name: dict[tuple[str, str], _LibraryState] = {}
        self.all: list[_LibraryState] = []
        for r in conn.execute(sa.select(LIBRARIES)).mappings():
            self._add(
                _LibraryState(
                    r["id"],
                    r["name"],
                    r["siglum"],
                    r["library_type"],
                    r["region"],
                    r["town"],
                    bool(r["is_member"]),
                    r["member_since"],
                    r["joined_at"],
                )
            )

    def _add(self, lib: _LibraryState) -> None:
        self.all.append(lib)
        if lib.siglum:
            self.by_siglum[lib.siglum] = lib
        self.by_name.setdefault((fold(lib.name), fold(lib.town)), lib)

    def resolve(self, v: dict[str, Any], now: datetime) -> _LibraryState | str | None:
        """The row's library (found, updated or new), None when the row names none, or a
        reason (str) why it cannot be created."""
        name, siglum, town = v["library"], v["siglum"], v["town"] or ""
        if not name and not siglum:
            return None
        lib = self.by_siglum.get(siglum) if siglum else None
        if lib is None and name:
            lib = self.by_name.get((fold(name), fold(town)))
            if lib is not None and siglum and lib.siglum and lib.siglum != siglum:
                lib = None  # same name and town but another siglum: a different library
        if lib is None:
            if not name:
                return "library:knihovna s touto siglou není v adresáři a chybí její název"
            if not v["library_type"]:
                return f"library_type:nová knihovna „{name}“ potřebuje typ"
            if not v["region"]:
                return f"region:nová knihovna „{name}“ potřebuje kraj"
            lib = _LibraryState(
                None,
                name,
                siglum,
                v["library_type"],
                v["region"],
                town,
                bool(v["member"]),
                v["member_since"],
                now if v["member"] else None,
                new=True,
            )
            self._add(lib)
            return lib
        changes = {
            "name": name,
            "siglum": siglum,
            "library_type": v["library_type"],
            "region": v["region"],
            "town": v["town"],
            "is_member": v["member"],
            "member_since": v["member_since"],
        }
        for key, value in changes.items():
            if value is not None and getattr(lib, key) != value:
                if key == "is_member" and value and not lib.is_member:
                    lib.joined_at = now
                if key == "siglum":
                    self.by_siglum[value] = lib
                setattr(lib, key, value)
                lib.dirty = True
        return lib


def _basis_source(path: Path, line: int) -> str:
    return f"import {path.name}:{line}"[:300]


def import_contacts(
    engine: Engine,
    path: str | Path,
    *,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import a contacts CSV; raises ImportFileError when the file cannot be read at all.

    Bad rows land in `report.rejected` (line, column, Czech reason); good rows import."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"Soubor {path} nelze otevřít: {exc.strerror or exc}") from exc
    text, encoding = decode_csv_bytes(raw)
    report = ImportReport(encoding=encoding, dry_run=dry_run)
    merged = _merge(_parse_rows(text, report), report)
    now = utcnow()

    with engine.connect() as conn:
        libraries = _Libraries(conn)
        existing = {
            r["email"]: dict(r)
            for r in conn.execute(
                sa.select(
                    CONTACTS.c.id,
                    CONTACTS.c.email,
                    CONTACTS.c.first_name,
                    CONTACTS.c.last_name,
                    CONTACTS.c.role,
                    CONTACTS.c.gender,
                    CONTACTS.c.salutation,
                    CONTACTS.c.library_id,
                    CONTACTS.c.status,
                    CONTACTS.c.legal_basis,
                )
            ).mappings()
        }
        suppressed = set(conn.execute(sa.select(SUPPRESSIONS.c.address_hash)).scalars())
        tag_ids: dict[str, int] = {
            name: tid for tid, name in conn.execute(sa.select(TAGS.c.id, TAGS.c.name))
        }
        links = {
            (r[0], r[1])
            for r in conn.execute(sa.select(CONTACT_TAGS.c.contact_id, CONTACT_TAGS.c.tag_id))
        }

    plan: list[tuple[_Merged, _LibraryState | None]] = []
    for item in merged.values():
        lib = libraries.resolve(item.values, now)
        if isinstance(lib, str):
            column, reason = lib.split(":", 1)
            report.rejected.append(Rejection(item.line, column, reason))
            continue
        plan.append((item, lib))

    new_tags = sorted({t for item, _ in plan for t in item.tags} - set(tag_ids))
    new_libs = [lib for lib in libraries.all if lib.new]
    report.libraries_created = len(new_libs)
    report.libraries_updated = sum(1 for lib in libraries.all if lib.dirty and not lib.new)
    if dry_run:
        for i, lib in enumerate(new_libs):
            lib.id = -1 - i
        for i, name in enumerate(new_tags):
            tag_ids[name] = -1 - i
    else:
        _write_libraries_and_tags(engine, libraries, new_libs, new_tags, tag_ids, now)

    total = len(plan)
    for start in range(0, total, CHUNK):
        _write_chunk(
            engine,
            path,
            plan[start : start + CHUNK],
            existing,
            suppressed,
            tag_ids,
            links,
            report,
            now,
            dry_run,
        )
        if progress is not None:
            progress(min(start + CHUNK, total), total)
    if progress is not None and total == 0:
        progress(0, 0)
    if not dry_run and report.created + report.updated >= ANALYZE_AFTER:
        _analyze(engine)
    report.rejected.sort(key=lambda r: r.line)
    return report


def _analyze(engine: Engine) -> None:
    # Fresh planner statistics after a bulk load: without them PostgreSQL believes the tables
    # are tiny and counts a 100,000-contact segment with nested loops in seconds, not ms.
    tables = ("library", "contact", "contact_tag", "tag", "suppression", "legal_basis_record")
    with engine.begin() as conn:
        for table in tables:
            conn.execute(sa.text(f"ANALYZE {table}"))


def _write_libraries_and_tags(
    engine: Engine,
    libraries: _Libraries,
    new_libs: Sequence[_LibraryState],
    new_tags: Sequence[str],
    tag_ids: dict[str, int],
    now: datetime,
) -> None:
    with engine.begin() as conn:
        if new_libs:
            rows = [
                {
                    "name": lib.name,
                    "siglum": lib.siglum,
                    "library_type": lib.library_type,
                    "region": lib.region,
                    "town": lib.town,
                    "is_member": lib.is_member,
                    "member_since": lib.member_since,
                    "joined_at": lib.joined_at,
                    "created_at": now,
                    "updated_at": now,
                }
                for lib in new_libs
            ]
            # A plain executemany, then one select for the ids: RETURNING in parameter order
            # makes SQLAlchemy insert row by row on SQLite.
            before = conn.execute(sa.select(sa.func.max(LIBRARIES.c.id))).scalar() or 0
            conn.execute(sa.insert(LIBRARIES), rows)
            by_siglum: dict[str, int] = {}
            by_name: dict[tuple[str, str], int] = {}
            query = sa.select(
                LIBRARIES.c.id, LIBRARIES.c.siglum, LIBRARIES.c.name, LIBRARIES.c.town
            ).where(LIBRARIES.c.id > before)
            for lib_id, siglum, name, town in conn.execute(query):
                if siglum:
                    by_siglum[siglum] = lib_id
                by_name[(name, town)] = lib_id
            for lib in new_libs:
                lib.id = by_siglum[lib.siglum] if lib.siglum else by_name[(lib.name, lib.town)]
        dirty = [lib for lib in libraries.all if lib.dirty and not lib.new]
        if dirty:
            conn.execute(
                sa.update(LIBRARIES)
                .where(LIBRARIES.c.id == sa.bindparam("b_id"))
                .values(
                    {
                        col: sa.bindparam(f"b_{col}")
                        for col in (
                            "name",
                            "siglum",
                            "library_type",
                            "region",
                            "town",
                            "is_member",
                            "member_since",
                            "joined_at",
                            "updated_at",
                        )
                    }
                ),
                [
                    {
                        "b_id": lib.id,
                        "b_name": lib.name,
                        "b_siglum": lib.siglum,
                        "b_library_type": lib.library_type,
                        "b_region": lib.region,
                        "b_town": lib.town,
                        "b_is_member": lib.is_member,
                        "b_member_since": lib.member_since,
                        "b_joined_at": lib.joined_at,
                        "b_updated_at": now,
                    }
                    for lib in dirty
                ],
            )
        if new_tags:
            conn.execute(sa.insert(TAGS), [{"name": name} for name in new_tags])
            for start in range(0, len(new_tags), CHUNK):
                names = new_tags[start : start + CHUNK]
                query = sa.select(TAGS.c.name, TAGS.c.id).where(TAGS.c.name.in_(names))
                tag_ids.update({row[0]: row[1] for row in conn.execute(query)})


_FIELDS = ("first_name", "last_name", "role", "gender", "salutation", "library_id")


def _write_chunk(
    engine: Engine,
    path: Path,
    chunk: Sequence[tuple[_Merged, _LibraryState | None]],
    existing: dict[str, dict[str, Any]],
    suppressed: set[str],
    tag_ids: dict[str, int],
    links: set[tuple[int, int]],
    report: ImportReport,
    now: datetime,
    dry_run: bool,
) -> None:
    inserts: list[dict[str, Any]] = []
    insert_items: list[_Merged] = []
    updates: list[dict[str, Any]] = []
    basis_records: list[dict[str, Any]] = []
    new_suppressions: dict[str, str] = {}
    tag_links: list[dict[str, int]] = []
    pending_tags: list[tuple[_Merged, list[int]]] = []

    for item, lib in chunk:
        v = item.values
        digest = hashlib.sha256(item.email.encode()).hexdigest()
        old = existing.get(item.email)
        # Empty cells keep what is stored.
        new: dict[str, Any] = {
            key: (v[key] if v[key] is not None else (old[key] if old else None))
            for key in ("first_name", "last_name", "role", "salutation")
        }
        for key in ("first_name", "last_name", "role"):
            new[key] = new[key] or ""
        new["library_id"] = lib.id if lib is not None else (old["library_id"] if old else None)
        new["gender"] = (
            v["gender"]
            or (old["gender"] if old else None)
            or infer_gender(new["role"], new["first_name"], new["last_name"])
        )
        basis = v["legal_basis"] or (old["legal_basis"] if old else None)
        old_status = old["status"] if old else ACTIVE
        status = old_status
        reason: str | None = None
        if old_status == ACTIVE:
            wanted = v["status"] or ACTIVE
            if wanted != ACTIVE:
                status, reason = wanted, f"import {path.name}:{item.line}"
            elif digest in suppressed:
                status, reason = UNSUBSCRIBED, "adresa je na seznamu potlačení"
        if status not in (ACTIVE, old_status) and digest not in suppressed:
            new_suppressions[digest] = status
            suppressed.add(digest)
        wanted_tags = [tag_ids[t] for t in item.tags]

        if old is None:
            report.created += 1
            inserts.append(
                {
                    "email": item.email,
                    "address_hash": digest,
                    **{k: new[k] for k in _FIELDS},
                    "status": status,
                    "status_changed_at": now if reason else None,
                    "status_reason": reason,
                    "legal_basis": basis,
                    "soft_bounces": 0,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            insert_items.append(item)
            pending_tags.append((item, wanted_tags))
            if not dry_run:
                existing[item.email] = {
                    "email": item.email,
                    "id": None,
                    **{k: new[k] for k in _FIELDS},
                    "status": status,
                    "legal_basis": basis,
                }
            continue

        contact_id = old["id"]
        missing_tags = [t for t in wanted_tags if (contact_id, t) not in links]
        changed = (
            any(new[k] != old[k] for k in _FIELDS)
            or status != old_status
            or basis != old["legal_basis"]
        )
        if not changed and not missing_tags:
            report.unchanged += 1
            continue
        report.updated += 1
        if changed:
            updates.append(
                {
                    "b_id": contact_id,
                    **{f"b_{k}": new[k] for k in _FIELDS},
                    "b_status": status,
                    "b_status_changed_at": now if status != old_status else None,
                    "b_status_reason": reason,
                    "b_legal_basis": basis,
                    "b_updated_at": now,
                    "b_keep": status == old_status,
                }
            )
            if basis != old["legal_basis"] and basis is not None:
                basis_records.append(
                    {
                        "contact_id": contact_id,
                        "basis": basis,
                        "source": _basis_source(path, item.basis_line),
                        "recorded_at": now,
                    }
                )
            if not dry_run:
                old.update(new, status=status, legal_basis=basis)
        for tag_id in missing_tags:
            tag_links.append({"contact_id": contact_id, "tag_id": tag_id})
            links.add((contact_id, tag_id))

    report.suppressed += len(new_suppressions)
    if dry_run:
        return
    with engine.begin() as conn:
        if inserts:
            conn.execute(sa.insert(CONTACTS), inserts)
            query = sa.select(CONTACTS.c.email, CONTACTS.c.id).where(
                CONTACTS.c.email.in_([row["email"] for row in inserts])
            )
            id_of = {email: contact_id for email, contact_id in conn.execute(query)}
            ids = [id_of[row["email"]] for row in inserts]
            for (item, wanted), new_id in zip(pending_tags, ids, strict=True):
                existing[item.email]["id"] = new_id
                for tag_id in wanted:
                    tag_links.append({"contact_id": new_id, "tag_id": tag_id})
                    links.add((new_id, tag_id))
            for item, new_id in zip(insert_items, ids, strict=True):
                basis = existing[item.email]["legal_basis"]
                if basis is not None:
                    basis_records.append(
                        {
                            "contact_id": new_id,
                            "basis": basis,
                            "source": _basis_source(path, item.basis_line),
                            "recorded_at": now,
                        }
                    )
        if updates:
            _update_contacts(conn, updates)
        if basis_records:
            conn.execute(sa.insert(BASIS_RECORDS), basis_records)
        if tag_links:
            conn.execute(sa.insert(CONTACT_TAGS), tag_links)
        if new_suppressions:
            conn.execute(
                sa.insert(SUPPRESSIONS),
                [
                    {"address_hash": h, "reason": r, "created_at": now}
                    for h, r in new_suppressions.items()
                ],
            )


def _update_contacts(conn: Connection, updates: list[dict[str, Any]]) -> None:
    # Two statements so a status change's time and reason are written only when it changes.
    keep: list[dict[str, Any]] = []
    change: list[dict[str, Any]] = []
    for u in updates:
        (keep if u.pop("b_keep") else change).append(u)
    base: dict[str, Any] = {
        k: sa.bindparam(f"b_{k}") for k in (*_FIELDS, "legal_basis", "updated_at")
    }
    where = CONTACTS.c.id == sa.bindparam("b_id")
    if keep:
        for u in keep:
            for k in ("b_status", "b_status_changed_at", "b_status_reason"):
                u.pop(k)
        conn.execute(sa.update(CONTACTS).where(where).values(base), keep)
    if change:
        status: dict[str, Any] = {
            k: sa.bindparam(f"b_{k}") for k in ("status", "status_changed_at", "status_reason")
        }
        conn.execute(sa.update(CONTACTS).where(where).values({**base, **status}), change)
