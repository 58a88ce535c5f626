"""The sending window of a campaign: when its sends may start and keep running.

One definition for the whole project. A blueprint states it in its `[sending_window]` table
(compose validates it with the rest of the blueprint); the scheduler holds a due step until
the window opens and pauses a run still sending when it closes.

Default: working days (Monday to Friday, not Czech public holidays) 8:00–17:00 Europe/Prague.
Holidays come from the `holidays` package, which computes the movable ones (Good Friday,
Easter Monday) for any year.

It lives in compose, not in scheduling, because it is part of the blueprint: scheduling
already depends on compose, so the dependency keeps pointing one way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

PRAGUE = "Europe/Prague"
# Czech day abbreviations as staff write them in a blueprint (with or without diacritics).
_DAY_NAMES: dict[str, int] = {
    "po": 0, "ut": 1, "út": 1, "st": 2, "ct": 3, "čt": 3, "pa": 4, "pá": 4, "so": 5, "ne": 6,
}  # fmt: skip
_DAY_LABELS = ("po", "út", "st", "čt", "pá", "so", "ne")
# The keys of a blueprint's `[sending_window]` table.
WINDOW_KEYS = ("start", "end", "days", "holidays")
# Far enough to cross any run of holidays and weekends; a window never open is a config error.
_SEARCH_DAYS = 400


class WindowError(ValueError):
    """A `[sending_window]` setting that cannot be understood; `key` names the offending key
    (None for the table as a whole), so `campaigns check` can point at its line."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


@lru_cache(maxsize=1)
def _czech_holidays() -> holidays.HolidayBase:
    # expand=True adds each year on first look-up, so any date works.
    return holidays.country_holidays("CZ", language="cs", expand=True)


def is_public_holiday(day: date) -> bool:
    """True on a Czech public holiday (státní svátek or ostatní svátek)."""
    return day in _czech_holidays()


@dataclass(frozen=True)
class SendingWindow:
    """When sends may run. `enabled=False` means any time."""

    start: time = time(8, 0)
    end: time = time(17, 0)
    weekdays: frozenset[int] = field(default_factory=lambda: frozenset(range(5)))
    skip_holidays: bool = True
    timezone: str = PRAGUE
    enabled: bool = True

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def is_sending_day(self, day: date) -> bool:
        if day.weekday() not in self.weekdays:
            return False
        return not (self.skip_holidays and is_public_holiday(day))

    def _bounds(self, day: date) -> tuple[datetime, datetime]:
        tz = self.tz
        return datetime.combine(day, self.start, tz), datetime.combine(day, self.end, tz)

    def is_open(self, at: datetime) -> bool:
        """May a send run at this instant?"""
        if not self.enabled:
            return True
        local = at.astimezone(self.tz)
        if not self.is_sending_day(local.date()):
            return False
        start, end = self._bounds(local.date())
        return start <= local < end

    def next_open(self, at: datetime) -> datetime:
        """`at` itself when the window is open then, else the start of the next window."""
        if not self.enabled:
            return at
        local = at.astimezone(self.tz)
        day = local.date()
        for _ in range(_SEARCH_DAYS):
            if self.is_sending_day(day):
                start, end = self._bounds(day)
                if local < start:
                    return start
                if local < end:
                    return at
            day += timedelta(days=1)
        raise WindowError("okno pro odesílání se v příštím roce ani jednou neotevře")

    def latest_open(self, at: datetime) -> datetime:
        """`at` itself when the window is open then, else the start of the last window that
        opened before it: where a step counted back from an event goes, so that waiting for
        the window never carries it past the moment it was meant to precede."""
        if not self.enabled or self.is_open(at):
            return at
        local = at.astimezone(self.tz)
        day = local.date()
        for _ in range(_SEARCH_DAYS):
            if self.is_sending_day(day):
                start, _ = self._bounds(day)
                if start <= local:
                    return start
            day -= timedelta(days=1)
        raise WindowError("okno pro odesílání se v uplynulém roce ani jednou neotevřelo")

    def describe(self) -> str:
        """Czech one-liner for the console and the CLI."""
        if not self.enabled:
            return "kdykoli"
        days = ", ".join(_DAY_LABELS[d] for d in sorted(self.weekdays))
        text = f"{days} {self.start:%H:%M}–{self.end:%H:%M}"
        return text + (" mimo státní svátky" if self.skip_holidays else "")


DEFAULT_WINDOW = SendingWindow()
ANY_TIME = SendingWindow(enabled=False)


def _parse_time(value: Any, key: str) -> time:
    if isinstance(value, time):
        return value
    hours, _, minutes = str(value).strip().partition(":")
    try:
        return time(int(hours), int(minutes or 0))
    except ValueError as exc:
        raise WindowError(
            f'sending_window.{key}: čas „{value}“ není ve tvaru HH:MM, např. "08:00"', key
        ) from exc


def _parse_days(value: Any) -> frozenset[int]:
    if isinstance(value, str) or not isinstance(value, list | tuple | set | frozenset):
        raise WindowError(
            'sending_window.days: uveďte seznam dnů, např. ["po", "út", "st", "čt", "pá"]', "days"
        )
    days: set[int] = set()
    for item in value:
        if isinstance(item, int) and not isinstance(item, bool) and 0 <= item <= 6:
            days.add(item)  # weekday numbers, as `SendingWindow.weekdays` holds them
            continue
        key = str(item).strip().lower()
        if key not in _DAY_NAMES:
            raise WindowError(
                f"sending_window.days: neznámý den „{item}“ (platné: {', '.join(_DAY_LABELS)})",
                "days",
            )
        days.add(_DAY_NAMES[key])
    if not days:
        raise WindowError("sending_window.days: alespoň jeden den v týdnu musí být povolen", "days")
    return frozenset(days)


def window_from(value: Any) -> SendingWindow:
    """The window from a blueprint's `sending_window`: absent or true = the default (working
    days 8:00–17:00, no public holidays); false = any time; a table with any of `start`,
    `end` ("HH:MM"), `days` (["po", "út", …]) and `holidays` (true = skip Czech public
    holidays), the rest taken from the default. Raises WindowError."""
    if value is None or value is True:
        return DEFAULT_WINDOW
    if value is False:
        return ANY_TIME
    if isinstance(value, SendingWindow):
        return value
    if not isinstance(value, Mapping):
        raise WindowError(
            "sending_window: čekám tabulku [sending_window] nebo „sending_window = false“ "
            f"(odesílat kdykoli), ne {value!r}"
        )
    unknown = [key for key in value if key not in WINDOW_KEYS]
    if unknown:
        raise WindowError(
            f"sending_window: neznámý klíč „{unknown[0]}“ (platné: {', '.join(WINDOW_KEYS)})",
            str(unknown[0]),
        )
    kwargs: dict[str, Any] = {}
    if "start" in value:
        kwargs["start"] = _parse_time(value["start"], "start")
    if "end" in value:
        kwargs["end"] = _parse_time(value["end"], "end")
    if "days" in value:
        kwargs["weekdays"] = _parse_days(value["days"])
    if "holidays" in value:
        if not isinstance(value["holidays"], bool):
            raise WindowError(
                "sending_window.holidays: true (ve státní svátky neodesílat) nebo false",
                "holidays",
            )
        kwargs["skip_holidays"] = value["holidays"]
    window = SendingWindow(**kwargs)
    if window.start >= window.end:
        # Windows across midnight are not needed for office mail and would complicate pausing.
        key = "start" if "start" in value else "end"
        raise WindowError("sending_window: začátek musí být před koncem (týž den)", key)
    return window
