"""Files the console keeps for a day: an uploaded CSV that was only checked, so staff can
import it after reading the report without uploading it again, and the full report of an
import's rejected rows, offered for download when the page shows only the first of them.

Each file is named by a random token (the only way to reach it) under the data directory,
never by anything staff typed. Files older than a day are deleted whenever a new one is kept.
"""

from __future__ import annotations

import re
import secrets
import time
import unicodedata
from pathlib import Path

from mailer.settings import get_settings

KEEP_SECONDS = 24 * 3600
_TOKEN = re.compile(r"[A-Za-z0-9_-]{22}\Z")


def _folder(kind: str) -> Path:
    folder = get_settings().data_dir / "console-files" / kind
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sweep(folder: Path) -> None:
    cutoff = time.time() - KEEP_SECONDS
    for item in folder.iterdir():
        try:
            if item.stat().st_mtime < cutoff:
                item.unlink()
        except FileNotFoundError:
            pass


def display_name(raw: str | None) -> str:
    """An uploaded file's name as staff named it, safe to show and to keep as evidence:
    no folders, no control characters, at most 120 characters."""
    name = (raw or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    return name[:120] or "soubor.csv"


def keep(kind: str, data: bytes, name: str) -> str:
    """Stores `data` (with its display name) and returns the token that finds it again."""
    folder = _folder(kind)
    _sweep(folder)
    token = secrets.token_urlsafe(16)
    (folder / f"{token}.data").write_bytes(data)
    (folder / f"{token}.name").write_text(name, encoding="utf-8")
    return token


def find(kind: str, token: str) -> tuple[bytes, str] | None:
    """The stored bytes and display name, or None when the token is unknown or expired."""
    if not _TOKEN.match(token or ""):
        return None
    folder = _folder(kind)
    data, name = folder / f"{token}.data", folder / f"{token}.name"
    try:
        if data.stat().st_mtime < time.time() - KEEP_SECONDS:
            return None
        return data.read_bytes(), name.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
