"""Czech courtesy for messages: vocative salutations, dates and times, and plural forms."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from functools import lru_cache
from zoneinfo import ZoneInfo

import vokativ
from babel.dates import format_date, format_datetime, format_time

PRAGUE = ZoneInfo("Europe/Prague")
LOCALE = "cs_CZ"
FALLBACK_SALUTATION = "Vážená paní, vážený pane,"

# Functions that are addressed instead of the name ("Vážená paní ředitelko"), by their
# normalised spelling; value: (vocative for a man, vocative for a woman).
_FUNCTIONS: dict[str, tuple[str, str]] = {
    "reditel": ("řediteli", "ředitelko"),
    "reditelka": ("řediteli", "ředitelko"),
    "vedouci": ("vedoucí", "vedoucí"),
    "vedouci knihovny": ("vedoucí", "vedoucí"),
    "vedouci pobocky": ("vedoucí", "vedoucí"),
    "starosta": ("starosto", "starostko"),
    "starostka": ("starosto", "starostko"),
    "predseda": ("předsedo", "předsedkyně"),
    "predsedkyne": ("předsedo", "předsedkyně"),
    "dekan": ("děkane", "děkanko"),
    "dekanka": ("děkane", "děkanko"),
}
# Spelling of a function that by itself says the holder is a woman.
_FEMININE_FUNCTIONS = {"reditelka", "starostka", "predsedkyne", "dekanka"}
_MASCULINE_FUNCTIONS = {"reditel", "starosta", "predseda", "dekan"}


def _fold(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.strip().lower())
    return " ".join("".join(c for c in decomposed if not unicodedata.combining(c)).split())


def clean(value: str | None) -> str:
    """One line of text: control characters (CR, LF, tab…) become spaces, runs collapse."""
    if not value:
        return ""
    if value.isprintable():
        return value.strip()
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def guess_gender(first_name: str, last_name: str, role: str = "") -> str | None:
    """ "f", "m" or None: from the function's form, then the surname, then the first name."""
    folded_role = _fold(role)
    if folded_role in _FEMININE_FUNCTIONS or folded_role in {"knihovnice"}:
        return "f"
    if folded_role in _MASCULINE_FUNCTIONS or folded_role in {"knihovnik"}:
        return "m"
    last = last_name.strip().lower()
    # Czech women's surnames end in -ová / -á (Nováková, Malá), whatever the first name says.
    if last.endswith(("ová", "á")):
        return "f"
    name = first_name.strip() or last_name.strip()
    if name:
        return "f" if vokativ.sex(name) == "w" else "m"
    return None


def _capitalise(word: str, original: str) -> str:
    # vokativ lowercases; keep the capitalisation pattern of each hyphenated part.
    parts = word.split("-")
    originals = original.split("-")
    if len(parts) != len(originals):
        return word[:1].upper() + word[1:]
    return "-".join(
        p[:1].upper() + p[1:] if o[:1].isupper() else p
        for p, o in zip(parts, originals, strict=True)
    )


@lru_cache(maxsize=8192)
def surname_vocative(last_name: str, woman: bool) -> str:
    """The surname in the vocative (women's surnames keep their form: "Nováková")."""
    if woman:
        return last_name
    out = []
    for part in last_name.split():
        out.append(
            "-".join(
                _capitalise(vokativ.vokativ(p, woman=False, last_name=True), p)
                for p in part.split("-")
            )
        )
    return " ".join(out)


@lru_cache(maxsize=8192)
def salutation(
    first_name: str = "",
    last_name: str = "",
    role: str = "",
    gender: str | None = None,
    override: str | None = None,
) -> str:
    """The opening line: function first, then the surname, else the neutral fallback.

    >>> salutation("Jana", "Nováková", "ředitelka")
    'Vážená paní ředitelko,'
    """
    if override and clean(override):
        return clean(override)
    first_name, last_name, role = clean(first_name), clean(last_name), clean(role)
    if gender not in ("f", "m"):
        gender = guess_gender(first_name, last_name, role)
    function = _FUNCTIONS.get(_fold(role))
    if function and gender:
        woman = gender == "f"
        return f"Vážená paní {function[1]}," if woman else f"Vážený pane {function[0]},"
    if last_name and gender:
        woman = gender == "f"
        title = "Vážená paní" if woman else "Vážený pane"
        return f"{title} {surname_vocative(last_name, woman)},"
    return FALLBACK_SALUTATION


def _local(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("naive datetime: give a timezone")
    return value.astimezone(PRAGUE)


def format_day(value: date | datetime) -> str:
    """ "5. března 2026" (datetimes in Europe/Prague)."""
    if isinstance(value, datetime):
        value = _local(value).date()
    return format_date(value, "d. MMMM y", locale=LOCALE)


def format_weekday_day(value: date | datetime) -> str:
    """ "čtvrtek 5. března 2026"."""
    if isinstance(value, datetime):
        value = _local(value).date()
    return format_date(value, "EEEE d. MMMM y", locale=LOCALE)


def format_clock(value: datetime) -> str:
    """ "14:30" in Europe/Prague."""
    return format_time(_local(value), "H:mm", locale=LOCALE)


def format_moment(value: datetime) -> str:
    """ "5. března 2026 v 14:30" in Europe/Prague."""
    local = _local(value)
    return f"{format_datetime(local, 'd. MMMM y', locale=LOCALE)} v {format_clock(local)}"


def plural(count: int, one: str, few: str, many: str) -> str:
    """Czech plural form: 1 knihovna, 2–4 knihovny, 0 or 5+ knihoven."""
    count = abs(int(count))
    if count == 1:
        return one
    if 2 <= count <= 4:
        return few
    return many


def count_noun(count: int, one: str, few: str, many: str) -> str:
    """ "1 knihovna", "3 knihovny", "12 knihoven"."""
    return f"{count} {plural(count, one, few, many)}"
