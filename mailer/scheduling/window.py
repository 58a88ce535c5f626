"""The sending window ("quiet hours" outside it): when a campaign may start and keep sending.

Default: working days (Monday to Friday, not Czech public holidays) 8:00–17:00 Europe/Prague.
Holidays come from the `holidays` package, which computes the movable ones (Good Friday,
Easter Monday) for any year."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays

PRAGUE = "Europe/Prague"
# Czech day abbreviations as staff write them in a blueprint, and English ones.
_DAY_NAMES: dict[str, int] = {
    "po": 0, "ut": 1, "út": 1, "st": 2, "ct": 3, "čt": 3, "pa": 4, "pá": 4, "so": 5, "ne": 6,
    "mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6,
}  # fmt: skip
# Far enough to cross any run of holidays and weekends; a window never open is a config error.
_SEARCH_DAYS = 400


class WindowError(ValueError):
    """A quiet-hours setting that cannot be understood."""


@lru_cache(maxsize=1)
def _czech_holidays() -> holidays.HolidayBase:
    # expand=True adds each year on first look-up, so any date works.
    return holidays.country_holidays("CZ", language="cs", expand=True)


def is_public_holiday(day: date) -> bool:
    """True on a Czech public holiday (státní svátek or ostatní svátek)."""
    return day in _czech_holidays()


def holiday_name(day: date) -> str | None:
    name = _czech_holidays().get(day)
    return str(name) if name else None


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

    def closes_at(self, at: datetime) -> datetime | None:
        """When the window open at `at` closes (None when it is not open or never closes)."""
        if not self.enabled or not self.is_open(at):
            return None
        return self._bounds(at.astimezone(self.tz).date())[1]

    def describe(self) -> str:
        """Czech one-liner for the console and the CLI."""
        if not self.enabled:
            return "kdykoli"
        names = ["po", "út", "st", "čt", "pá", "so", "ne"]
        days = ", ".join(names[d] for d in sorted(self.weekdays))
        text = f"{days} {self.start:%H:%M}–{self.end:%H:%M}"
        return text + (" mimo státní svátky" if self.skip_holidays else "")


DEFAULT_WINDOW = SendingWindow()


def _parse_time(value: Any, key: str) -> time:
    if isinstance(value, time):
        return value
    try:
        hours, _, minutes = str(value).partition(":")
        return time(int(hours), int(minutes or 0))
    except ValueError as exc:
        raise WindowError(f"quiet_hours.{key}: čas „{value}“ není ve tvaru HH:MM") from exc


def _parse_days(value: Any) -> frozenset[int]:
    days: set[int] = set()
    for item in value:
        if isinstance(item, int) and 0 <= item <= 6:
            days.add(item)
            continue
        key = str(item).strip().lower()
        if key not in _DAY_NAMES:
            raise WindowError(
                f"quiet_hours.days: neznámý den „{item}“ (platné: po, út, st, čt, pá, so, ne)"
            )
        days.add(_DAY_NAMES[key])
    return frozenset(days)


def window_from(value: Any) -> SendingWindow:
    """A window from a blueprint's `quiet_hours`: absent or true = the default; false = any
    time; a table (or model) with start, end, days, holidays, timezone, enabled."""
    if value is None or value is True:
        return DEFAULT_WINDOW
    if value is False:
        return SendingWindow(enabled=False)
    if isinstance(value, SendingWindow):
        return value
    if hasattr(value, "model_dump"):
        value = value.model_dump()
    if not isinstance(value, Mapping):
        raise WindowError(f"quiet_hours: nečekaná hodnota {value!r}")
    kwargs: dict[str, Any] = {}
    for key, raw in value.items():
        if raw is None:
            continue
        if key == "start":
            kwargs["start"] = _parse_time(raw, key)
        elif key == "end":
            kwargs["end"] = _parse_time(raw, key)
        elif key in ("days", "weekdays"):
            kwargs["weekdays"] = _parse_days(raw)
        elif key in ("holidays", "skip_holidays"):
            kwargs["skip_holidays"] = bool(raw)
        elif key == "timezone":
            kwargs["timezone"] = str(raw)
        elif key == "enabled":
            kwargs["enabled"] = bool(raw)
    window = SendingWindow(**kwargs)
    if window.enabled and window.start >= window.end:
        raise WindowError("quiet_hours: začátek musí být před koncem")
    if window.enabled and not window.weekdays:
        raise WindowError("quiet_hours: alespoň jeden den v týdnu musí být povolen")
    return window


def window_for(blueprint: Any) -> SendingWindow:
    """The sending window of a campaign blueprint.

    Without a `[quiet_hours]` table in the TOML: working days 8:00–17:00 without holidays.
    With one (compose's model: quiet from `start` to `end`, optionally all weekend): sends run
    from `end` to `start` on the days it allows, still skipping Czech public holidays."""
    quiet = getattr(blueprint, "quiet_hours", None)
    if quiet is None or "quiet_hours" not in getattr(blueprint, "model_fields_set", set()):
        return DEFAULT_WINDOW
    if isinstance(quiet, bool | Mapping | SendingWindow):
        return window_from(quiet)
    start, end = getattr(quiet, "start", None), getattr(quiet, "end", None)
    if not isinstance(start, time) or not isinstance(end, time):
        return window_from(quiet)
    weekdays = frozenset(range(5)) if getattr(quiet, "weekends", True) else frozenset(range(7))
    if start == end:
        # No quiet time in the day: any hour of an allowed day.
        return SendingWindow(start=time(0, 0), end=time(23, 59, 59), weekdays=weekdays)
    if end < start:
        # The usual nightly quiet time, e.g. 17:00–8:00: sends run 8:00–17:00.
        return SendingWindow(start=end, end=start, weekdays=weekdays)
    raise WindowError(
        "quiet_hours: klidová doba přes poledne (začátek před koncem) není podporována"
    )
