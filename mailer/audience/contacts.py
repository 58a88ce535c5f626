"""Contact import: a CSV file as staff have it, validated row by row and upserted in bulk.

It merges duplicates within the file and upserts by normalised address. It never
resubscribes: an unsubscribed, bounced or complained contact stays so, and a suppressed
address is never imported as active. Rows without a legal basis are counted, because no
segment ever selects such a contact; staff may choose one basis for the whole file, which is
recorded per contact as evidence (file, line, time, who, and what they chose).

For speed (100,000 rows in seconds) it parses the whole file first, preloads the existing
contacts, libraries, tags and suppressions into dicts, and then writes with executemany in
chunks, one transaction per chunk, instead of one ORM round trip per row.

Reading files lives in mailer.csvfiles, row validation in rows, library matching in
directory, addresses in addresses and the suppression list in suppression.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine

from mailer.audience.addresses import InvalidAddress, normalize_email
from mailer.audience.directory import LibraryDirectory, LibraryState, RowLibraryError
from mailer.audience.rows import (
    HEADER_ALIASES,
    FileTally,
    Rejection,
    Row,
    fold,
    header_key,
    infer_gender,
    parse_rows,
)
from mailer.audience.suppression import address_hash, is_suppressed, suppress
from mailer.audience.tracking_consent import SOURCE_IMPORT
from mailer.csvfiles import ImportFileError, decode_csv_bytes, sniff_dialect
from mailer.models import (
    Contact,
    ContactStatus,
    ContactTag,
    LegalBasis,
    LegalBasisRecord,
    Suppression,
    Tag,
    TrackingConsent,
    TrackingConsentRecord,
    utcnow,
)

# Callers import these from here too.
__all__ = [
    "HEADER_ALIASES",
    "ImportFileError",
    "ImportReport",
    "InvalidAddress",
    "Rejection",
    "address_hash",
    "decode_csv_bytes",
    "fold",
    "header_key",
    "import_contact_bytes",
    "import_contacts",
    "infer_gender",
    "is_suppressed",
    "normalize_email",
    "sniff_dialect",
    "suppress",
]

CHUNK = 5000
# Rows written by one import after which planner statistics are refreshed.
ANALYZE_AFTER = 1000
ProgressCallback = Callable[[int, int], None]

CONTACTS: sa.Table = Contact.__table__  # type: ignore[attr-defined]
TAGS: sa.Table = Tag.__table__  # type: ignore[attr-defined]
CONTACT_TAGS: sa.Table = ContactTag.__table__  # type: ignore[attr-defined]
SUPPRESSIONS: sa.Table = Suppression.__table__  # type: ignore[attr-defined]
BASIS_RECORDS: sa.Table = LegalBasisRecord.__table__  # type: ignore[attr-defined]
CONSENT_RECORDS: sa.Table = TrackingConsentRecord.__table__  # type: ignore[attr-defined]

BASIS_LABELS = {
    LegalBasis.LEGITIMATE_INTEREST.value: "oprávněný zájem",
    LegalBasis.CONSENT.value: "souhlas",
}


@dataclass
class BasisChoice:
    """A legal basis staff chose for every row of one file that gives none, and why."""

    basis: str
    actor: str
    note: str = ""

    def evidence(self, file_name: str) -> str:
        label = BASIS_LABELS.get(self.basis, self.basis)
        text = f"Právní základ „{label}“ zvolen pro řádky souboru {file_name} bez něj"
        return (f"{text}: {self.note}" if self.note else f"{text}.")[:2000]


@dataclass
class ImportReport(FileTally):
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    merged_duplicates: int = 0
    libraries_created: int = 0
    libraries_updated: int = 0
    suppressed: int = 0
    # Contacts of the file left without a legal basis: no segment will ever select them.
    without_basis: int = 0
    # Contacts that got the basis chosen for the whole file.
    basis_assigned: int = 0
    likely_duplicate_libraries: int = 0
    # Libraries the file made members (each recorded as a joining, as the console does).
    libraries_joined: int = 0
    # Members the file says are not, kept because staff recorded the membership (see notes).
    memberships_kept: int = 0
    # Rows imported but worth a look (siglum conflicts, libraries that may exist already).
    notes: list[Rejection] = field(default_factory=list)
    file_name: str = ""
    encoding: str = ""
    dry_run: bool = False

    def as_json(self) -> dict[str, Any]:
        """The `--json` object: created, updated, unchanged, rejected, and the rest."""
        data = asdict(self)
        data["rejected"] = [asdict(r) for r in self.rejected]
        data["notes"] = [asdict(r) for r in self.notes]
        return data


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


def _merge(rows: Iterable[Row], report: ImportReport) -> dict[str, _Merged]:
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


def _basis_source(file_name: str, line: int) -> str:
    return f"import {file_name}:{line}"[:300]


def import_contacts(
    engine: Engine,
    path: str | Path,
    *,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    basis_choice: BasisChoice | None = None,
    actor: str | None = None,
) -> ImportReport:
    """Import a contacts CSV file; raises ImportFileError when it cannot be read at all."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"Soubor {path} nelze otevřít: {exc.strerror or exc}") from exc
    return import_contact_bytes(
        engine,
        raw,
        path.name,
        dry_run=dry_run,
        progress=progress,
        basis_choice=basis_choice,
        actor=actor,
    )


def import_contact_bytes(
    engine: Engine,
    raw: bytes,
    file_name: str,
    *,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    basis_choice: BasisChoice | None = None,
    actor: str | None = None,
) -> ImportReport:
    """Import the bytes of a contacts CSV named `file_name` (the name staff gave it, kept in
    the evidence). Bad rows land in `report.rejected` (line, column, Czech reason); good rows
    import. `basis_choice` gives its basis to the contacts that have none in the file or the
    database; `actor` is who imports (kept with the evidence)."""
    text, encoding = decode_csv_bytes(raw)
    report = ImportReport(encoding=encoding, dry_run=dry_run, file_name=file_name)
    merged = _merge(parse_rows(text, report), report)
    now = utcnow()
    if basis_choice is not None:
        actor = actor or basis_choice.actor

    with engine.connect() as conn:
        libraries = LibraryDirectory(conn)
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
                    CONTACTS.c.tracking_consent,
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

    plan: list[tuple[_Merged, LibraryState | None]] = []
    for item in merged.values():
        try:
            lib = libraries.resolve(item.values, item.line, now)
        except RowLibraryError as exc:
            column = report.column_label(exc.column)
            report.rejected.append(Rejection(item.line, column, exc.reason))
            continue
        plan.append((item, lib))
    report.notes = [
        Rejection(n.line, report.column_label(n.column), n.reason) for n in libraries.notes
    ]
    report.likely_duplicate_libraries = libraries.likely_duplicates

    new_tags = sorted({t for item, _ in plan for t in item.tags} - set(tag_ids))
    new_libs = [lib for lib in libraries.all if lib.new]
    report.libraries_created = len(new_libs)
    report.libraries_updated = sum(
        1 for lib in libraries.all if (lib.dirty or lib.joining) and not lib.new
    )
    report.libraries_joined = len(libraries.joining)
    report.memberships_kept = len(libraries.kept)
    if dry_run:
        for i, lib in enumerate(new_libs):
            lib.id = -1 - i
        for i, name in enumerate(new_tags):
            tag_ids[name] = -1 - i
    else:
        with engine.begin() as conn:
            libraries.write(conn, now)
            libraries.record_joinings(conn, f"import {file_name}", actor or "import", now)
            _write_tags(conn, new_tags, tag_ids)

    writer = _ChunkWriter(
        engine,
        file_name,
        existing,
        suppressed,
        tag_ids,
        links,
        report,
        now,
        dry_run,
        basis_choice,
        actor,
    )
    total = len(plan)
    for start in range(0, total, CHUNK):
        writer.write(plan[start : start + CHUNK])
        if progress is not None:
            progress(min(start + CHUNK, total), total)
    if progress is not None and total == 0:
        progress(0, 0)
    if not dry_run and report.created + report.updated >= ANALYZE_AFTER:
        _analyze(engine)
    report.rejected.sort(key=lambda r: r.line)
    report.notes.sort(key=lambda r: r.line)
    return report


def _analyze(engine: Engine) -> None:
    # Fresh planner statistics after a bulk load: without them PostgreSQL believes the tables
    # are tiny and counts a 100,000-contact segment with nested loops in seconds, not ms.
    tables = ("library", "contact", "contact_tag", "tag", "suppression", "legal_basis_record")
    with engine.begin() as conn:
        for table in tables:
            conn.execute(sa.text(f"ANALYZE {table}"))


def _write_tags(conn: Connection, new_tags: Sequence[str], tag_ids: dict[str, int]) -> None:
    if not new_tags:
        return
    conn.execute(sa.insert(TAGS), [{"name": name} for name in new_tags])
    for start in range(0, len(new_tags), CHUNK):
        names = new_tags[start : start + CHUNK]
        query = sa.select(TAGS.c.name, TAGS.c.id).where(TAGS.c.name.in_(names))
        tag_ids.update({row[0]: row[1] for row in conn.execute(query)})


_FIELDS = (
    "first_name",
    "last_name",
    "role",
    "gender",
    "salutation",
    "library_id",
    "tracking_consent",
)


@dataclass
class _ChunkWriter:
    """Writes the planned rows chunk by chunk, keeping the preloaded state up to date."""

    engine: Engine
    file_name: str
    existing: dict[str, dict[str, Any]]
    suppressed: set[str]
    tag_ids: dict[str, int]
    links: set[tuple[int, int]]
    report: ImportReport
    now: datetime
    dry_run: bool
    basis_choice: BasisChoice | None
    actor: str | None

    def _basis_record(self, contact_id: int, basis: str, line: int, chosen: bool) -> dict[str, Any]:
        choice = self.basis_choice if chosen else None
        evidence = choice.evidence(self.file_name) if choice else None
        return {
            "contact_id": contact_id,
            "basis": basis,
            "source": _basis_source(self.file_name, line),
            "evidence": evidence,
            "recorded_by": self.actor,
            "recorded_at": self.now,
        }

    def write(self, chunk: Sequence[tuple[_Merged, LibraryState | None]]) -> None:
        engine, existing, suppressed = self.engine, self.existing, self.suppressed
        tag_ids, links, report, now = self.tag_ids, self.links, self.report, self.now
        dry_run = self.dry_run
        inserts: list[dict[str, Any]] = []
        insert_items: list[tuple[_Merged, int, bool]] = []
        updates: list[dict[str, Any]] = []
        basis_records: list[dict[str, Any]] = []
        new_suppressions: dict[str, str] = {}
        tag_links: list[dict[str, int]] = []
        pending_tags: list[tuple[_Merged, list[int]]] = []
        # (row, value) whose tracking consent the file sets or changes: evidence to keep.
        consent_lines: list[tuple[_Merged, str]] = []

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
            # The optional tracking column: an empty cell keeps what is stored.
            new["tracking_consent"] = v.get("tracking_consent") or (
                old["tracking_consent"] if old else TrackingConsent.UNKNOWN.value
            )
            if new["tracking_consent"] != (old["tracking_consent"] if old else None) and (
                old is not None or v.get("tracking_consent")
            ):
                consent_lines.append((item, new["tracking_consent"]))
            basis = v["legal_basis"] or (old["legal_basis"] if old else None)
            chosen = basis is None and self.basis_choice is not None
            if chosen:
                assert self.basis_choice is not None
                basis = self.basis_choice.basis
            old_status = old["status"] if old else ACTIVE
            status = old_status
            reason: str | None = None
            if old_status == ACTIVE:
                wanted = v["status"] or ACTIVE
                if wanted != ACTIVE:
                    status, reason = wanted, _basis_source(self.file_name, item.line)
                elif digest in suppressed:
                    status, reason = UNSUBSCRIBED, "adresa je na seznamu potlačení"
            if status not in (ACTIVE, old_status) and digest not in suppressed:
                new_suppressions[digest] = status
                suppressed.add(digest)
            wanted_tags = [tag_ids[t] for t in item.tags]
            if status == ACTIVE and basis is None:
                report.without_basis += 1
            elif chosen and basis != (old["legal_basis"] if old else None):
                report.basis_assigned += 1
            basis_line = item.line if chosen else item.basis_line

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
                insert_items.append((item, basis_line, chosen))
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
                    basis_records.append(self._basis_record(contact_id, basis, basis_line, chosen))
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
                for (item, line, chosen), new_id in zip(insert_items, ids, strict=True):
                    basis = existing[item.email]["legal_basis"]
                    if basis is not None:
                        basis_records.append(self._basis_record(new_id, basis, line, chosen))
            if updates:
                _update_contacts(conn, updates)
            if basis_records:
                conn.execute(sa.insert(BASIS_RECORDS), basis_records)
            if consent_lines:
                conn.execute(
                    sa.insert(CONSENT_RECORDS),
                    [
                        {
                            "contact_id": existing[item.email]["id"],
                            "value": value,
                            "source": SOURCE_IMPORT,
                            "wording": _basis_source(self.file_name, item.line),
                            "recorded_by": self.actor,
                            "recorded_at": now,
                        }
                        for item, value in consent_lines
                    ],
                )
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
