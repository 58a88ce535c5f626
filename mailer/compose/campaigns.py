"""Campaign blueprints: `campaigns/<slug>/campaign.toml` read into typed models, and step times.

A blueprint says what is sent (subject, body file), to whom (segment, reminder audiences),
from whom, and when (the launch `send_at`, and each reminder's offset after the launch,
before the event, or fixed moment, all sent within the campaign's `[sending_window]`). Times
in the TOML are local times in Europe/Prague.
"""

from __future__ import annotations

import re
import tomllib
from datetime import date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from mailer.compose import store
from mailer.compose.czech import PRAGUE
from mailer.compose.window import DEFAULT_WINDOW, SendingWindow, window_from

SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9-]{1,80}$")
STEP_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")
_DURATION_RE = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*min)?\s*$")


class BlueprintError(ValueError):
    """A blueprint that cannot be loaded; `check` reports the details with lines."""


class Kind(StrEnum):
    RECRUITMENT = "recruitment"
    EVENT = "event"
    NEWSLETTER = "newsletter"


class Tracking(StrEnum):
    INDIVIDUAL = "individual"  # opens and clicks tied to the recipient
    ANONYMOUS = "anonymous"  # counted per run only
    OFF = "off"  # no pixel, links go straight to their target


def parse_duration(value: Any) -> timedelta:
    """ "10d", "36h", "1d 12h", "90min" (TOML has no duration type)."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(days=value)
    if not isinstance(value, str):
        raise ValueError('doba se píše jako text, např. "10d", "36h" nebo "1d 12h"')
    match = _DURATION_RE.match(value)
    if not match or not any(match.groups()):
        raise ValueError(f'neznámý zápis doby {value!r}; použijte např. "10d", "36h", "1d 12h"')
    days, hours, minutes = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


def local_datetime(value: Any) -> datetime:
    """A TOML date-time as an aware datetime: local times are Europe/Prague."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, date) and not isinstance(value, datetime):
        value = datetime.combine(value, time(9, 0))
    if not isinstance(value, datetime):
        raise ValueError("očekávám datum a čas, např. 2026-11-26T09:00:00")
    if value.tzinfo is None:
        return value.replace(tzinfo=PRAGUE)
    return value.astimezone(PRAGUE)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Session(_Model):
    """One dated occurrence of an event (a conference day, one workshop)."""

    title: str
    start: datetime
    end: datetime
    venue: str
    address: str = ""
    to_be_confirmed: list[str] = Field(default_factory=list)
    # Seats for the registration page; None: no limit.
    capacity: int | None = Field(default=None, ge=1)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _dt(cls, value: Any) -> datetime:
        return local_datetime(value)

    @model_validator(mode="after")
    def _ordered(self) -> Session:
        if self.end <= self.start:
            raise ValueError("konec musí být po začátku")
        return self


class Event(_Model):
    """What an event campaign invites to; `sessions` list the dates (workshop series)."""

    title: str
    start: datetime
    end: datetime
    venue: str
    address: str = ""
    # An external registration page, for an event registered elsewhere (a person's click on it
    # counts as registering). None: the product's own page (BASE_URL/registrace/<slug>), which
    # messages link pre-filled per recipient as `links.register`.
    registration_url: str | None = None
    description: str = ""
    # Facts not yet confirmed by the association (e.g. ["start", "venue"]): templates say so.
    to_be_confirmed: list[str] = Field(default_factory=list)
    sessions: list[Session] = Field(default_factory=list)
    # Seats of a single-session event (sessions have their own); None: no limit.
    capacity: int | None = Field(default=None, ge=1)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _dt(cls, value: Any) -> datetime:
        return local_datetime(value)

    @field_validator("registration_url")
    @classmethod
    def _https(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError("odkaz na registraci musí začínat https://")
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Event:
        if self.end <= self.start:
            raise ValueError("konec akce musí být po začátku")
        return self

    def occurrences(self) -> list[Session]:
        """The sessions, or the event itself as its one session."""
        if self.sessions:
            return list(self.sessions)
        return [
            Session(
                title=self.title,
                start=self.start,
                end=self.end,
                venue=self.venue,
                address=self.address,
                to_be_confirmed=list(self.to_be_confirmed),
                capacity=self.capacity,
            )
        ]


class Step(_Model):
    """One send of the campaign: "launch", or a reminder with its time and audience."""

    name: str
    after_launch: timedelta | None = None
    before_event: timedelta | None = None
    # Before each session's own start: expanded into one step per session (see module doc).
    before_session: timedelta | None = None
    # The session (1-based) a `before_session` step is about; set by the expansion, or written
    # by hand for one session only.
    session: int | None = Field(default=None, ge=1)
    # The [[reminder]] a per-session step was expanded from (None: written as it is).
    series: str | None = None
    at: datetime | None = None
    # Segment syntax; may use engagement fields (received, opened, clicked, registered,
    # attending, attending_session, joined).
    audience: dict[str, Any] = Field(default_factory=dict)
    subject: str | None = None
    preheader: str | None = None
    body: str | None = None  # another MJML file of the campaign directory

    @field_validator("after_launch", "before_event", "before_session", mode="before")
    @classmethod
    def _dur(cls, value: Any) -> timedelta | None:
        return None if value is None else parse_duration(value)

    @field_validator("at", mode="before")
    @classmethod
    def _at(cls, value: Any) -> Any:
        return None if value is None else local_datetime(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not STEP_NAME_RE.match(value):
            raise ValueError("název kroku: malá písmena bez diakritiky, číslice a pomlčky")
        return value

    @property
    def is_launch(self) -> bool:
        return self.name == "launch"


class Blueprint(_Model):
    """A campaign as staff wrote it in `campaigns/<slug>/campaign.toml`."""

    slug: str
    name: str
    kind: Kind
    topic: Literal["membership", "events", "newsletter"]
    subject: str
    preheader: str = ""
    from_name: str = ""
    from_email: str = ""
    reply_to: str = ""
    segment: dict[str, Any] = Field(default_factory=dict)
    send_at: datetime
    tracking: Tracking = Tracking.ANONYMOUS
    # `[sending_window]` table, or `sending_window = false` for any time; default: working
    # days 8:00–17:00 without Czech public holidays.
    sending_window: Annotated[SendingWindow, BeforeValidator(window_from)] = DEFAULT_WINDOW
    event: Event | None = None
    # Shown in the public archive of past campaigns (BASE_URL/archiv) once launched.
    archive: bool = True
    steps: list[Step]
    body: str = "body.mjml"
    directory: Path
    # The stored revision this was read from (None for a folder read directly): a run records
    # it, so "what was sent" names the exact saved campaign.
    revision: int | None = None

    @field_validator("send_at", mode="before")
    @classmethod
    def _send_at(cls, value: Any) -> datetime:
        return local_datetime(value)

    @model_validator(mode="after")
    def _consistent(self) -> Blueprint:
        if not SLUG_RE.match(self.slug):
            raise ValueError(f"neplatný název složky kampaně {self.slug!r}")
        if not self.steps or self.steps[0].name != "launch":
            raise ValueError('první krok musí být "launch"')
        for step in self.steps[1:]:
            when = (step.after_launch, step.before_event, step.before_session, step.at)
            if sum(x is not None for x in when) != 1:
                raise ValueError(
                    f"připomínka {step.name!r}: uveďte právě jedno z after_launch, "
                    "before_event, before_session, at"
                )
            for key in ("before_event", "before_session"):
                if getattr(step, key) is not None and self.event is None:
                    raise ValueError(f"připomínka {step.name!r}: {key} jen u akcí ([event])")
            if step.session is not None:
                if step.before_session is None:
                    raise ValueError(
                        f"připomínka {step.name!r}: session jen spolu s before_session"
                    )
                assert self.event is not None
                if step.session > len(self.event.occurrences()):
                    raise ValueError(
                        f"připomínka {step.name!r}: termín č. {step.session} akce nemá "
                        f"(termínů je {len(self.event.occurrences())})"
                    )
        if self.kind is Kind.EVENT and self.event is None:
            raise ValueError("kampaň typu event potřebuje tabulku [event]")
        # Expanded here, once, so that every reader of `steps` (scheduler, launch, labels,
        # sdruk) sees the steps that are really sent. A frozen model: set through __dict__.
        self.__dict__["steps"] = self._expanded()
        names = [s.name for s in self.steps]
        if len(set(names)) != len(names):
            raise ValueError("názvy kroků se opakují")
        for name in names:
            if not STEP_NAME_RE.match(name):
                raise ValueError(f"název kroku {name!r} je příliš dlouhý (nejvýše 60 znaků)")
        return self

    def _expanded(self) -> list[Step]:
        """The steps with every `before_session` series written out, one step per session."""
        steps: list[Step] = []
        for step in self.steps:
            if step.before_session is None or step.session is not None or self.event is None:
                steps.append(step)
                continue
            for number in range(1, len(self.event.occurrences()) + 1):
                steps.append(
                    step.model_copy(
                        update={
                            "name": f"{step.name}-{number}",
                            "session": number,
                            "series": step.name,
                        }
                    )
                )
        return steps

    def reminder_index(self, step: Step) -> int | None:
        """The `[[reminder]]` table (0-based, as written) a step comes from; None for the
        launch. Per-session steps of one series share their table."""
        index = -1
        previous: str | None = None
        for candidate in self.steps:
            if candidate.is_launch:
                continue
            if candidate.series is None or candidate.series != previous:
                index += 1
            previous = candidate.series
            if candidate.name == step.name:
                return index
        return None

    def session_of(self, step: Step | str) -> Session | None:
        """The session a step is about: its own for a per-session step, the only one of a
        single-session event; None otherwise."""
        if isinstance(step, str):
            step = self.step(step)
        if self.event is None:
            return None
        occurrences = self.event.occurrences()
        if step.session is not None and step.session <= len(occurrences):
            return occurrences[step.session - 1]
        return occurrences[0] if len(occurrences) == 1 else None

    def step(self, name: str) -> Step:
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(f"kampaň {self.slug} nemá krok {name!r}")

    def due_at(self, step: Step | str, launched_at: datetime | None = None) -> datetime:
        """When a step is due (aware, Europe/Prague), as the blueprint says it.

        The launch is due at `send_at`; `after_launch` counts from the actual launch time
        (`launched_at`, else `send_at`). Not moved into the sending window: the scheduler
        holds a due step until `sending_window` opens (and does not count that as late).
        Except a step counted back from the event or a session: held until the window opened,
        "2 days before" a Monday workshop would go on the Monday morning, so it is due at the
        start of the last window before instead."""
        if isinstance(step, str):
            step = self.step(step)
        if step.is_launch:
            return self.send_at.astimezone(PRAGUE)
        if step.at is not None:
            due = step.at
        elif step.after_launch is not None:
            due = (launched_at or self.send_at) + step.after_launch
        elif step.before_event is not None and self.event is not None:
            # From the event's first moment: [event] start (for a series, its first session).
            due = self.sending_window.latest_open(self.event.start - step.before_event)
        elif step.before_session is not None and step.session is not None and self.event:
            session_start = self.event.occurrences()[step.session - 1].start
            due = self.sending_window.latest_open(session_start - step.before_session)
        else:  # unreachable for a validated blueprint
            raise BlueprintError(f"krok {step.name} nemá čas")
        return due.astimezone(PRAGUE)

    def audience_for(self, step: Step | str) -> dict[str, Any]:
        """The whole segment of a step: the campaign's segment AND the step's audience."""
        if isinstance(step, str):
            step = self.step(step)
        parts = [dict(self.segment)]
        if not step.is_launch and step.audience:
            parts.append(dict(step.audience))
        if not step.is_launch and step.session is not None:
            # A per-session step goes to that session's confirmed seats only.
            parts.append({"attending_session": step.session})
        return parts[0] if len(parts) == 1 else {"all": parts}

    def body_path(self, step: Step | str = "launch") -> Path:
        if isinstance(step, str):
            step = self.step(step)
        return self.directory / (step.body or self.body)

    def subject_for(self, step: Step | str) -> str:
        if isinstance(step, str):
            step = self.step(step)
        return step.subject or self.subject

    def preheader_for(self, step: Step | str) -> str:
        if isinstance(step, str):
            step = self.step(step)
        return step.preheader if step.preheader is not None else self.preheader


def campaigns_dir() -> Path:
    from mailer.settings import get_settings

    return get_settings().campaigns_dir


def read_toml(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        return tomllib.load(fh)


def blueprint_data(slug: str, raw: dict[str, Any], directory: Path) -> dict[str, Any]:
    """The TOML table shaped for the model: `[[reminder]]` tables become steps after launch."""
    data = dict(raw)
    reminders = data.pop("reminder", [])
    data["steps"] = [{"name": "launch"}, *(reminders if isinstance(reminders, list) else [])]
    data["slug"] = slug
    data["directory"] = directory
    data["revision"] = None
    return data


def load_blueprint(slug: str, directory: Path | None = None) -> Blueprint:
    """The campaign `slug`, validated (raises BlueprintError).

    Without `directory` the database's newest revision is read (campaigns made in the console,
    and the shipped folders once synced); a campaign not in the database is read from the
    campaigns directory. With `directory`, `<directory>/<slug>/campaign.toml` is read."""
    if not SLUG_RE.match(slug):
        # Checked before touching the file system: a name of thousands of characters or with
        # a slash must not reach a path.
        raise BlueprintError(f"kampaň {slug[:80]!r} neexistuje (neplatný název)")
    if directory is None:
        found = store.locate(slug)
        if found is not None:
            return _load_folder(slug, *found)
    return _load_folder(slug, directory or campaigns_dir(), None)


def stored_base(slug: str) -> Path | None:
    """The local folder that holds the newest stored revision of `slug` (None if not stored)."""
    found = store.locate(slug)
    return found[0] if found is not None else None


def _load_folder(slug: str, base: Path, revision: int | None) -> Blueprint:
    from pydantic import ValidationError

    from mailer.settings import get_settings

    folder = base / slug
    path = folder / "campaign.toml"
    if not path.is_file():
        raise BlueprintError(f"kampaň {slug!r} neexistuje ({path})")
    try:
        raw = read_toml(path)
    except tomllib.TOMLDecodeError as exc:
        raise BlueprintError(f"{path}: {exc}") from exc
    data = blueprint_data(slug, raw, folder)
    data["revision"] = revision
    settings = get_settings()
    data.setdefault("from_name", settings.sender_name)
    data.setdefault("from_email", settings.sender_email)
    data.setdefault("reply_to", data.get("from_email") or settings.sender_email)
    try:
        return Blueprint.model_validate(data)
    except ValidationError as exc:
        raise BlueprintError(f"{path}: {exc}") from exc


def blueprint_slugs(directory: Path | None = None) -> list[str]:
    """Slugs of the campaigns: without `directory`, those in the database and the folders."""
    base = directory or campaigns_dir()
    on_disk = {p.parent.name for p in base.glob("*/campaign.toml")} if base.is_dir() else set[str]()
    if directory is None:
        on_disk.update(store.all_stored_slugs())
    return sorted(on_disk)


def load_blueprints(directory: Path | None = None) -> list[Blueprint]:
    """Every blueprint (see `blueprint_slugs`), by slug."""
    return [load_blueprint(slug, directory) for slug in blueprint_slugs(directory)]
