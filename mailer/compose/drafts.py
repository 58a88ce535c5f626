"""A campaign as the editor holds it, and the revision files it becomes.

A draft is the campaign.toml table (`settings`, times as local datetimes), and either a blocks
document (written in blocks) or MJML source (written by hand). `draft_files` turns it into
the files a revision stores (`campaign.toml`, `body.mjml`, and `blocks.json` for blocks);
`draft_from_files` reads them back, so a shipped campaign opens in the source view and a
console campaign in the block view. `validate_files` runs compose's whole check on the files
exactly as they would be saved.
"""

from __future__ import annotations

import tempfile
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import tomli_w

from mailer.compose.blocks import (
    BLOCKS_FILE,
    BlockBody,
    BlockProblem,
    Media,
    blocks_to_mjml,
    dump_document,
    load_document,
)
from mailer.compose.check import Problem, check_blueprint
from mailer.compose.czech import PRAGUE

BODY_FILE = "body.mjml"
TOML_FILE = "campaign.toml"
# A reminder's audience as staff pick it; each is ANDed with the campaign's segment.
REMINDER_AUDIENCES: dict[str, tuple[str, dict[str, Any]]] = {
    "not-opened": ("kdo zprávu neotevřel (počítají se jen lidé)", {"opened": False}),
    "not-registered": ("kdo se nezaregistroval na akci", {"registered": False}),
    "not-joined": ("knihovny, které se nepřihlásily za členy", {"joined": False}),
    "everyone": ("všichni, kdo dostali první zprávu", {}),
    # Registrants' practical details: confirmed seats only, whether or not they got the launch.
    "attending": ("kdo má na akci potvrzené místo (ne čekací listina)", {"attending": True}),
}
# Audiences that do not require the launch message (the others get `received = "launch"`).
WITHOUT_LAUNCH = frozenset({"attending"})


@dataclass
class Draft:
    """What the editor edits: the settings table, and blocks or MJML source."""

    settings: dict[str, Any]
    blocks: dict[str, Any] | None = None
    source: str = ""
    extra_files: dict[str, str] = field(default_factory=dict)

    @property
    def is_event(self) -> bool:
        return self.settings.get("kind") == "event"


def _local(value: Any) -> Any:
    """Aware datetimes as Prague local time without zone (TOML local date-time), recursively."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(PRAGUE).replace(tzinfo=None)
        return value.replace(microsecond=0)
    if isinstance(value, dict):
        return {k: _local(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_local(v) for v in value]
    return value


def settings_toml(settings: dict[str, Any]) -> str:
    """campaign.toml for the settings; tables (segment, window, event, reminders) last."""
    plain = {k: v for k, v in settings.items() if not isinstance(v, dict | list)}
    tables = {k: v for k, v in settings.items() if isinstance(v, dict | list)}
    head = "# Kampaň z konzole SDRUK. Časy jsou místní (Europe/Prague).\n"
    return head + tomli_w.dumps(_local({**plain, **tables}), multiline_strings=False)


def draft_files(
    draft: Draft, media: dict[str, Media] | None = None
) -> tuple[dict[str, str], BlockBody | None]:
    """The revision's files for a draft, and the blocks' MJML with its line map (blocks only)."""
    files = dict(draft.extra_files)
    files[TOML_FILE] = settings_toml(draft.settings)
    body: BlockBody | None = None
    if draft.blocks is not None:
        body = blocks_to_mjml(draft.blocks, is_event=draft.is_event, media=media)
        files[BLOCKS_FILE] = dump_document(draft.blocks)
        files[BODY_FILE] = body.mjml
    else:
        files.pop(BLOCKS_FILE, None)
        files[BODY_FILE] = draft.source
    return files, body


def draft_from_files(files: dict[str, str]) -> Draft:
    """The draft a revision's files describe (ValueError with a Czech message if unreadable)."""
    try:
        settings = tomllib.loads(files.get(TOML_FILE, ""))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"campaign.toml nelze přečíst: {exc}") from exc
    body_name = str(settings.get("body", BODY_FILE))
    extra = {k: v for k, v in files.items() if k not in (TOML_FILE, BLOCKS_FILE, body_name)}
    blocks = load_document(files[BLOCKS_FILE]) if BLOCKS_FILE in files else None
    return Draft(
        settings=settings,
        blocks=blocks,
        source=files.get(body_name, ""),
        extra_files=extra,
    )


def validate_files(slug: str, files: dict[str, str]) -> list[Problem]:
    """compose's whole check (TOML, segments, MJML, Jinja, accessibility, trial render) on the
    files as they would be saved; problems name the file (`body.mjml`, `campaign.toml`)."""
    with tempfile.TemporaryDirectory(prefix="sdruk-draft-") as tmp:
        folder = Path(tmp) / slug
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        problems = check_blueprint(slug, Path(tmp))
        base = str(folder) + "/"
        return [Problem(p.file.removeprefix(base), p.line, p.message) for p in problems]


def block_problems(
    problems: list[Problem], body: BlockBody | None
) -> tuple[dict[int, list[str]], list[str]]:
    """Problems by block index (for messages beside the block), and the rest (settings)."""
    by_block: dict[int, list[str]] = {}
    other: list[str] = []
    for problem in problems:
        block = body.block_at(problem.line) if body and problem.file == BODY_FILE else None
        if block is not None:
            by_block.setdefault(block, []).append(problem.message)
        else:
            other.append(problem_text(problem))
    return by_block, other


def problem_text(problem: Problem) -> str:
    where = {TOML_FILE: "nastavení", BODY_FILE: "obsah"}.get(problem.file, problem.file)
    return f"{where}, řádek {problem.line}: {problem.message}"


def blocks_by_index(found: list[BlockProblem]) -> dict[int, list[str]]:
    out: dict[int, list[str]] = {}
    for problem in found:
        if problem.block is not None:
            out.setdefault(problem.block, []).append(problem.message)
    return out


def default_send_at(today: date) -> datetime:
    """A starter's send time: two weeks ahead, 9:30 Prague time."""
    from datetime import time, timedelta

    return datetime.combine(today + timedelta(days=14), time(9, 30))
