"""Campaign records and their revisions in the database, the one model of every campaign.

A revision holds the campaign's files as text (`campaign.toml`, the body MJML, `blocks.json`
for a campaign written in blocks), so the folder format is an exact export/import format and
"what was saved" is always whole. Saving is optimistic: a save names the revision it was made
from and is refused when someone saved in between. The shipped folders under campaigns/ are
synced in as revisions too. The file-based loader and checks read a revision through a local
copy of its files (`revision_folder`), made once per content hash, so a process on another
machine sees the same campaign without a shared folder.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from mailer.db import get_engine
from mailer.models import AuditEntry, Campaign, CampaignRevision, utcnow
from mailer.settings import get_settings

CAMPAIGN_SUFFIXES = (".toml", ".mjml", ".json")
MAX_FILE_BYTES = 1_000_000
FOLDER_AUTHOR = "složka campaigns/"

campaigns = Campaign.__table__  # type: ignore[attr-defined]
revisions = CampaignRevision.__table__  # type: ignore[attr-defined]
audit = AuditEntry.__table__  # type: ignore[attr-defined]


class StoreError(ValueError):
    """A campaign that cannot be saved, imported or exported; the message is for staff."""


class ConcurrentEdit(StoreError):
    """Someone saved the campaign after the editor opened it; nothing of theirs is overwritten."""

    def __init__(self, slug: str, base: int, current: StoredRevision) -> None:
        when = current.created_at.astimezone().strftime("%d. %m. %Y %H:%M")
        super().__init__(
            f"Kampaň mezitím uložil(a) {current.author} ({when}, verze {current.number}); "
            f"vy jste upravovali verzi {base}. Vaše změny nebyly uloženy: zkopírujte si je, "
            "načtěte stránku znovu a vložte je do nové verze."
        )
        self.slug = slug
        self.base = base
        self.current = current


@dataclass(frozen=True)
class StoredRevision:
    """One revision as plain values."""

    slug: str
    number: int
    author: str
    created_at: datetime
    summary: str
    files: dict[str, str]
    content_hash: str
    origin: str = "console"


def content_hash(files: dict[str, str]) -> str:
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode("utf-8") + b"\0" + files[name].encode("utf-8") + b"\0")
    return digest.hexdigest()


# --- folders -------------------------------------------------------------------------------


def read_folder(folder: Path) -> dict[str, str]:
    """The campaign files of a folder, exactly as they are (bytes decoded as UTF-8)."""
    if not (folder / "campaign.toml").is_file():
        raise StoreError(f"Ve složce {folder} chybí soubor campaign.toml.")
    files: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.suffix not in CAMPAIGN_SUFFIXES:
            raise StoreError(
                f"Soubor {path.name}: kampaň tvoří jen soubory .toml, .mjml a .json "
                "(obrázky patří do knihovny obrázků v konzoli)."
            )
        data = path.read_bytes()
        if len(data) > MAX_FILE_BYTES:
            raise StoreError(f"Soubor {path.name} je větší než 1 MB.")
        try:
            # newline="" semantics: the text is kept byte for byte, line endings included.
            files[path.name] = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise StoreError(f"Soubor {path.name} není v kódování UTF-8.") from exc
    return files


def write_folder(files: dict[str, str], folder: Path) -> None:
    """Write the files into `folder`; campaign files not in this revision are removed, so the
    folder is exactly the revision."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in folder.iterdir():
        if path.is_file() and path.suffix in CAMPAIGN_SUFFIXES and path.name not in files:
            path.unlink()
    for name, text in files.items():
        (folder / name).write_bytes(text.encode("utf-8"))


def revision_folder(revision: StoredRevision) -> Path:
    """A local folder `<base>/<slug>/` holding the revision's files; returns `<base>`.

    Made once per content hash and never changed after, so a reader never sees half a write."""
    root = get_settings().data_dir / "cache" / "campaigns"
    base = root / f"{revision.slug}-{revision.content_hash[:24]}"
    if (base / revision.slug / "campaign.toml").is_file():
        return base
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    try:
        write_folder(revision.files, staging / revision.slug)
        try:
            os.rename(staging, base)
        except OSError:
            if not (base / revision.slug / "campaign.toml").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return base


# --- reading -------------------------------------------------------------------------------


def _row_to_revision(row: Any) -> StoredRevision:
    return StoredRevision(
        slug=row.slug,
        number=row.number,
        author=row.author,
        created_at=row.created_at,
        summary=row.summary,
        files=dict(row.files),
        content_hash=row.content_hash,
        origin=row.origin,
    )


def _revision_select() -> sa.Select[Any]:
    return sa.select(
        campaigns.c.slug,
        campaigns.c.origin,
        revisions.c.number,
        revisions.c.author,
        revisions.c.created_at,
        revisions.c.summary,
        revisions.c.files,
        revisions.c.content_hash,
    ).join(revisions, revisions.c.campaign_id == campaigns.c.id)


def latest(engine: Engine, slug: str) -> StoredRevision | None:
    with engine.connect() as conn:
        return _latest(conn, slug)


def _latest(conn: Connection, slug: str) -> StoredRevision | None:
    row = conn.execute(
        _revision_select().where(
            campaigns.c.slug == slug, revisions.c.number == campaigns.c.current_revision
        )
    ).first()
    return _row_to_revision(row) if row else None


def revision(engine: Engine, slug: str, number: int) -> StoredRevision | None:
    with engine.connect() as conn:
        row = conn.execute(
            _revision_select().where(campaigns.c.slug == slug, revisions.c.number == number)
        ).first()
    return _row_to_revision(row) if row else None


def history(engine: Engine, slug: str) -> list[StoredRevision]:
    """Every revision of a campaign, newest first."""
    with engine.connect() as conn:
        rows = conn.execute(
            _revision_select().where(campaigns.c.slug == slug).order_by(revisions.c.number.desc())
        ).all()
    return [_row_to_revision(r) for r in rows]


def stored_slugs(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                sa.select(campaigns.c.slug)
                .where(campaigns.c.current_revision > 0)
                .order_by(campaigns.c.slug)
            ).scalars()
        )


def ready_engine() -> Engine | None:
    """The configured database when it holds the campaign tables, else None (a checkout with
    no database yet reads the folders only, and never creates a database file by looking)."""
    settings = get_settings()
    url = settings.resolved_database_url()
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if not path or path == ":memory:" or not Path(path).is_file():
            return None
    engine = get_engine()
    try:
        with engine.connect() as conn:
            conn.execute(sa.select(campaigns.c.id).limit(1))
    except (OperationalError, ProgrammingError):
        return None
    return engine


def all_stored_slugs() -> list[str]:
    engine = ready_engine()
    return stored_slugs(engine) if engine is not None else []


# --- writing -------------------------------------------------------------------------------


def save(
    engine: Engine,
    slug: str,
    files: dict[str, str],
    *,
    author: str,
    summary: str = "",
    base_revision: int | None,
    origin: str = "console",
    folder_hash: str | None = None,
    now: datetime | None = None,
) -> StoredRevision:
    """Store `files` as the next revision of `slug`.

    `base_revision` is the revision the author started from: None creates a new campaign (a
    slug already taken is refused), a number that is no longer the newest raises ConcurrentEdit.
    Saving unchanged files adds no revision. The save is written to the audit log."""
    if "campaign.toml" not in files:
        raise StoreError("Kampani chybí nastavení (campaign.toml).")
    now = now or utcnow()
    digest = content_hash(files)
    try:
        with engine.begin() as conn:
            row = conn.execute(
                sa.select(campaigns).where(campaigns.c.slug == slug).with_for_update()
            ).first()
            if row is None:
                if base_revision not in (None, 0):
                    raise StoreError(f"Kampaň {slug} neexistuje.")
                campaign_id = conn.execute(
                    sa.insert(campaigns)
                    .values(
                        slug=slug,
                        name=_name_of(files),
                        origin=origin,
                        current_revision=0,
                        folder_hash=folder_hash,
                        created_at=now,
                        updated_at=now,
                    )
                    .returning(campaigns.c.id)
                ).scalar_one()
                current = 0
            else:
                campaign_id, current = row.id, row.current_revision
                if base_revision is None:
                    raise StoreError(
                        f"Kampaň s adresou {slug} už existuje; "
                        "zvolte jinou nebo upravte tu stávající."
                    )
                if base_revision != current:
                    found = _latest(conn, slug)
                    assert found is not None
                    raise ConcurrentEdit(slug, base_revision, found)
                existing = _latest(conn, slug)
                if existing is not None and existing.content_hash == digest:
                    if folder_hash is not None:
                        conn.execute(
                            sa.update(campaigns)
                            .where(campaigns.c.id == campaign_id)
                            .values(folder_hash=folder_hash)
                        )
                    return existing
            number = current + 1
            conn.execute(
                sa.insert(revisions).values(
                    campaign_id=campaign_id,
                    number=number,
                    author=author,
                    created_at=now,
                    summary=summary[:1000],
                    files=files,
                    content_hash=digest,
                )
            )
            values: dict[str, Any] = {
                "current_revision": number,
                "name": _name_of(files),
                "updated_at": now,
            }
            if folder_hash is not None:
                values["folder_hash"] = folder_hash
            # The conditional update is the guard when two saves race past the read above
            # (SQLite has no row locks): only one of them moves the revision on.
            moved = conn.execute(
                sa.update(campaigns)
                .where(campaigns.c.id == campaign_id, campaigns.c.current_revision == current)
                .values(**values)
            ).rowcount
            if moved != 1:
                raise IntegrityError("campaign revision moved", None, Exception("race"))
            conn.execute(
                sa.insert(audit).values(
                    at=now,
                    actor=author,
                    action="campaign.save",
                    target=f"campaign/{slug}",
                    detail={"revision": number, "summary": summary[:300]},
                )
            )
    except IntegrityError:
        found = latest(engine, slug)
        if found is None:
            raise
        raise ConcurrentEdit(slug, base_revision or 0, found) from None
    stored = revision(engine, slug, number)
    assert stored is not None
    return stored


def _name_of(files: dict[str, str]) -> str:
    import tomllib

    try:
        name = tomllib.loads(files.get("campaign.toml", "")).get("name", "")
    except tomllib.TOMLDecodeError:
        return ""
    return str(name)[:300]


def import_folder(
    engine: Engine, folder: Path, *, slug: str | None = None, author: str, summary: str = ""
) -> StoredRevision:
    """Read a campaign folder into the database as the next revision of its slug."""
    slug = slug or folder.resolve().name
    files = read_folder(folder)
    current = latest(engine, slug)
    return save(
        engine,
        slug,
        files,
        author=author,
        summary=summary or f"Import ze složky {folder.name}",
        base_revision=current.number if current else None,
    )


def export_folder(engine: Engine, slug: str, folder: Path, number: int | None = None) -> Path:
    """Write the campaign (its newest revision, or `number`) as a folder; returns it."""
    found = revision(engine, slug, number) if number else latest(engine, slug)
    if found is None:
        raise StoreError(f"Kampaň {slug} v databázi není.")
    write_folder(found.files, folder)
    return folder


def sync_folders(engine: Engine, directory: Path | None = None) -> list[str]:
    """Bring the shipped folders into the database; returns the slugs given a new revision.

    A folder changed since its last sync becomes a new revision (a deployed change wins, as a
    git commit would); an unchanged folder leaves edits made in the console alone."""
    base = directory or get_settings().campaigns_dir
    if not base.is_dir():
        return []
    return [
        toml.parent.name
        for toml in sorted(base.glob("*/campaign.toml"))
        if sync_folder(engine, toml.parent)
    ]


def sync_folder(engine: Engine, folder: Path) -> bool:
    """One shipped folder into the database (see `sync_folders`); True if it made a revision."""
    try:
        files = read_folder(folder)
    except StoreError:
        return False  # `campaigns check` reports the folder; it is not synced until readable
    digest = content_hash(files)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(campaigns.c.folder_hash, campaigns.c.current_revision).where(
                campaigns.c.slug == folder.name
            )
        ).first()
    if row is not None and row.folder_hash == digest:
        return False
    try:
        stored = save(
            engine,
            folder.name,
            files,
            author=FOLDER_AUTHOR,
            summary=f"Změna ve složce campaigns/{folder.name}",
            base_revision=row.current_revision if row else None,
            origin="folder",
            folder_hash=digest,
        )
    except ConcurrentEdit:
        return False  # someone saved this instant; the next sync tries again
    return row is None or stored.number != row.current_revision


def locate(slug: str) -> tuple[Path, int] | None:
    """Where the newest stored revision of `slug` can be read as files: (base folder holding
    `<slug>/`, revision number), or None when the database does not hold the campaign.

    A shipped folder changed since its last sync is synced first: what is deployed in
    campaigns/ is read as it is now. When the newest revision is exactly the shipped folder,
    the folder itself is the answer (problems then name its real files)."""
    engine = ready_engine()
    if engine is None:
        return None
    base = get_settings().campaigns_dir
    folder = base / slug
    shipped = (folder / "campaign.toml").is_file()
    if shipped:
        sync_folder(engine, folder)
    stored = latest(engine, slug)
    if stored is None:
        return None
    if shipped:
        try:
            if content_hash(read_folder(folder)) == stored.content_hash:
                return base, stored.number
        except StoreError:
            pass
    return revision_folder(stored), stored.number
