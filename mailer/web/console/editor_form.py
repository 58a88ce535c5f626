"""The campaign editor's form and the draft it describes, both ways: settings, audience,
event, reminders and blocks as named form fields (`b-3-markdown`, `r-0-days`…), so the page
works as a plain HTML form and loses nothing when it is shown again with problems."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from mailer.compose.blocks import BLOCK_TYPES
from mailer.compose.drafts import REMINDER_AUDIENCES, WITHOUT_LAUNCH, Draft
from mailer.web.console.segments import definition_to_form, form_to_definition

BLOCK_FIELDS: dict[str, tuple[str, ...]] = {
    "opening": ("markdown",),
    "heading": ("text", "level"),
    "text": ("markdown",),
    "button": ("label", "url"),
    "image": ("image", "alt", "url"),
    "event": (),
    "divider": (),
    "columns": ("left", "right"),
}
MAX_BLOCKS = 60
MAX_REMINDERS = 10
_DATETIME_FORMS = ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S")
_DAYS_RE = re.compile(r"^\s*(\d{1,3})\s*d\s*$")
# A reminder's time as a number of days: after the launch, before the event (its first
# session), before each registrant's own session (a per-session series).
_OFFSETS = ("after_launch", "before_event", "before_session")
_OFFSET_SUFFIX = {"after_launch": "po", "before_event": "pred", "before_session": "pred-terminem"}


def slugify(text: str) -> str:
    """A campaign address from its name: lowercase ASCII, digits and hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return (slug or "kampan")[:70].strip("-")


def _dt_input(value: Any) -> str:
    """A TOML datetime as the value of <input type="datetime-local">."""
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    return str(value or "")


def parse_local(value: str) -> datetime | None:
    value = value.strip()
    for form in _DATETIME_FORMS:
        try:
            return datetime.strptime(value, form)
        except ValueError:
            continue
    return None


def _days(value: Any) -> str:
    if isinstance(value, str):
        match = _DAYS_RE.match(value)
        return match.group(1) if match else value
    return str(value or "")


def audience_key(audience: Mapping[str, Any]) -> str:
    """Which of the editor's reminder audiences a reminder's table is ("" if none fits)."""
    rest = {k: v for k, v in audience.items() if k != "received"}
    for key, (_, table) in REMINDER_AUDIENCES.items():
        if rest == table:
            return key
    return ""


def draft_to_form(draft: Draft) -> dict[str, Any]:
    """The values the editor's fields show for a draft."""
    s = draft.settings
    window = s.get("sending_window", {})
    event = s.get("event") or {}
    reminders = []
    openings = (draft.blocks or {}).get("openings", {}) if draft.blocks else {}
    for r in s.get("reminder", []):
        when = next((k for k in _OFFSETS if k in r), "at")
        reminders.append(
            {
                "name": r.get("name", ""),
                "when": when,
                "days": _days(r.get(when)) if when != "at" else "",
                "at": _dt_input(r.get("at")),
                "audience": audience_key(r.get("audience", {})),
                "subject": r.get("subject", ""),
                "preheader": r.get("preheader", ""),
                "opening": openings.get(r.get("name", ""), ""),
            }
        )
    return {
        "name": s.get("name", ""),
        "kind": s.get("kind", ""),
        "subject": s.get("subject", ""),
        "preheader": s.get("preheader", ""),
        "send_at": _dt_input(s.get("send_at")),
        "tracking": s.get("tracking", "anonymous"),
        "window_any": window is False,
        "window_start": window.get("start", "08:00") if isinstance(window, dict) else "08:00",
        "window_end": window.get("end", "17:00") if isinstance(window, dict) else "17:00",
        "segment": definition_to_form(s.get("segment", {})),
        "event": {
            "title": event.get("title", ""),
            "start": _dt_input(event.get("start")),
            "end": _dt_input(event.get("end")),
            "venue": event.get("venue", ""),
            "address": event.get("address", ""),
            "registration_url": event.get("registration_url", ""),
            "description": event.get("description", ""),
        },
        "reminders": reminders,
        "blocks": list((draft.blocks or {}).get("blocks", [])),
        "mode": "blocks" if draft.blocks is not None else "source",
        "source": draft.source,
    }


def form_to_draft(
    form: Mapping[str, Any], getlist: Callable[[str], list[Any]], base: Draft
) -> tuple[Draft, list[str]]:
    """The draft the submitted fields describe, built on `base` (the stored revision, whose
    settings the form does not show are kept); plus problems with the fields themselves."""
    problems: list[str] = []

    def text(name: str, limit: int = 2000) -> str:
        value = form.get(name, "")
        return value.strip()[:limit] if isinstance(value, str) else ""

    settings = dict(base.settings)
    for key in ("name", "subject", "preheader"):
        settings[key] = text(key, 300)
    if not settings["name"]:
        problems.append("Vyplňte název kampaně.")
    if not settings["subject"]:
        problems.append("Vyplňte předmět e-mailu.")
    send_at = parse_local(text("send_at"))
    if send_at is None:
        problems.append("Čas odeslání zadejte jako datum a čas.")
    else:
        settings["send_at"] = send_at
    if text("tracking") in ("individual", "anonymous", "off"):
        settings["tracking"] = text("tracking")
    if form.get("window_any") == "ano":
        settings["sending_window"] = False
    else:
        window = dict(base.settings.get("sending_window") or {})
        window.update(start=text("window_start") or "08:00", end=text("window_end") or "17:00")
        window.setdefault("days", ["po", "út", "st", "čt", "pá"])
        window.setdefault("holidays", True)
        settings["sending_window"] = window
    settings["segment"] = form_to_definition(form, getlist)

    if settings.get("kind") == "event":
        event = dict(base.settings.get("event") or {})
        for key in ("title", "venue", "address", "registration_url", "description"):
            event[key] = text(f"ev_{key}", 500)
        for key, label in (("start", "začátek"), ("end", "konec")):
            moment = parse_local(text(f"ev_{key}"))
            if moment is None:
                problems.append(f"Akce: {label} zadejte jako datum a čas.")
            else:
                event[key] = moment
        settings["event"] = {k: v for k, v in event.items() if v not in ("", None)}

    reminders, openings = _reminders(
        form, settings.get("kind") == "event", problems, base.settings.get("reminder", [])
    )
    if reminders:
        settings["reminder"] = reminders
    else:
        settings.pop("reminder", None)

    mode = text("mode")
    if mode == "source":
        source = form.get("source", "")
        return (
            Draft(
                settings=settings,
                blocks=None,
                source=source if isinstance(source, str) else "",
                extra_files=dict(base.extra_files),
            ),
            problems,
        )
    blocks = []
    for index in range(MAX_BLOCKS):
        kind = text(f"b-{index}-type")
        if not kind:
            break
        if kind not in BLOCK_TYPES:
            continue
        block: dict[str, Any] = {"type": kind}
        for name in BLOCK_FIELDS[kind]:
            value = form.get(f"b-{index}-{name}", "")
            if isinstance(value, str) and value.strip():
                block[name] = int(value) if name == "level" and value.isdigit() else value
        blocks.append(block)
    document = {"blocks": blocks, "openings": openings}
    return (
        Draft(settings=settings, blocks=document, extra_files=dict(base.extra_files)),
        problems,
    )


def _reminders(
    form: Mapping[str, Any], is_event: bool, problems: list[str], stored: list[Any]
) -> tuple[list[dict[str, Any]], dict[str, str]]:
    # What the form does not show of a stored reminder (its own body file) is kept, found by
    # the reminder's name.
    kept = {
        r.get("name"): {k: r[k] for k in ("body",) if k in r} for r in stored if isinstance(r, dict)
    }
    reminders: list[dict[str, Any]] = []
    openings: dict[str, str] = {}
    used: set[str] = set()
    for index in range(MAX_REMINDERS):
        when = form.get(f"r-{index}-when")
        if not isinstance(when, str) or not when:
            break
        label = f"Připomínka {index + 1}"
        reminder: dict[str, Any] = {}
        if when in _OFFSETS:
            days = str(form.get(f"r-{index}-days", "")).strip()
            if not days.isdigit() or not 0 < int(days) <= 365:
                problems.append(f"{label}: počet dní zadejte číslem od 1 do 365.")
                continue
            if when != "after_launch" and not is_event:
                problems.append(f"{label}: „před akcí“ jde jen u pozvánky na akci.")
                continue
            reminder[when] = f"{int(days)}d"
            suffix = _OFFSET_SUFFIX[when]
            name = f"{days}-dny-{suffix}" if int(days) < 5 else f"{days}-dni-{suffix}"
        elif when == "at":
            moment = parse_local(str(form.get(f"r-{index}-at", "")))
            if moment is None:
                problems.append(f"{label}: zadejte datum a čas.")
                continue
            reminder["at"] = moment
            name = f"pripominka-{moment:%Y-%m-%d}"
        else:
            continue
        given = str(form.get(f"r-{index}-name", "")).strip()
        name = given if re.match(r"^[a-z0-9][a-z0-9-]{0,59}$", given) else name
        while name in used or name == "launch":
            name = f"{name}-2"
        used.add(name)
        key = str(form.get(f"r-{index}-audience", "not-opened"))
        table = REMINDER_AUDIENCES.get(key, REMINDER_AUDIENCES["not-opened"])[1]
        received = {} if key in WITHOUT_LAUNCH else {"received": "launch"}
        reminder = {"name": name, **reminder, "audience": {**received, **table}}
        reminder.update(kept.get(name, {}))
        for field_name in ("subject", "preheader"):
            value = str(form.get(f"r-{index}-{field_name}", "")).strip()[:300]
            if value:
                reminder[field_name] = value
        opening = str(form.get(f"r-{index}-opening", "")).strip()
        if opening:
            openings[name] = opening
        reminders.append(reminder)
    return reminders, openings


def apply_operation(draft: Draft, operation: str) -> str | None:
    """Add, move or remove a block or reminder in a draft being edited (not saved); returns a
    Czech note for the page, or None when the operation is not one of these."""
    verb, _, arg = operation.partition(":")
    blocks = draft.blocks["blocks"] if draft.blocks is not None else None
    if verb == "add" and blocks is not None and arg in BLOCK_TYPES:
        if len(blocks) >= MAX_BLOCKS:
            return "Kampaň už má nejvíce bloků."
        blocks.append({"type": arg})
        return f"Přidán blok „{BLOCK_TYPES[arg]}“ na konec."
    if verb in ("up", "down", "remove") and blocks is not None and arg.isdigit():
        index = int(arg)
        if not 0 <= index < len(blocks):
            return None
        if verb == "remove":
            removed = blocks.pop(index)
            return f"Blok „{BLOCK_TYPES.get(removed.get('type', ''), 'blok')}“ odebrán."
        other = index - 1 if verb == "up" else index + 1
        if 0 <= other < len(blocks):
            blocks[index], blocks[other] = blocks[other], blocks[index]
        return "Pořadí bloků změněno."
    if verb == "add-reminder":
        reminders = draft.settings.setdefault("reminder", [])
        if len(reminders) >= MAX_REMINDERS:
            return "Kampaň už má nejvíce připomínek."
        when = "before_event" if draft.is_event else "after_launch"
        reminders.append(
            {
                "name": "",
                when: "2d" if draft.is_event else "7d",
                "audience": {"received": "launch", "opened": False},
            }
        )
        return "Přidána připomínka."
    if verb == "remove-reminder" and arg.isdigit():
        reminders = draft.settings.get("reminder", [])
        if 0 <= int(arg) < len(reminders):
            reminders.pop(int(arg))
            return "Připomínka odebrána."
    return None
