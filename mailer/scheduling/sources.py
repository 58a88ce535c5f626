"""The two small interfaces the scheduler works through, and their real implementations:
where blueprints come from (compose's loader and checker) and what it asks of delivery
(launch, pause, resume). Also the blueprint-derived facts every scheduling job needs: a
step's due time and a campaign's sending window."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Engine

from mailer.compose.campaigns import blueprint_slugs, load_blueprint
from mailer.compose.check import check_blueprint
from mailer.compose.window import DEFAULT_WINDOW, SendingWindow
from mailer.delivery import runs

log = logging.getLogger(__name__)

LAUNCH_STEP = "launch"
ACTOR = "scheduler"


class BlueprintSource(Protocol):
    """Where blueprints come from (compose's loader and checker)."""

    def slugs(self) -> list[str]: ...

    def problems(self, slug: str) -> list[str]: ...

    def load(self, slug: str) -> Any: ...


class Launcher(Protocol):
    """What the scheduler asks of delivery."""

    def launch(self, engine: Engine, blueprint: Any, step: str, *, now: datetime) -> Any: ...

    def pause(self, engine: Engine, run_id: int, reason: str) -> None: ...

    def resume(self, engine: Engine, run_id: int, reason: str) -> None: ...


class CampaignFiles:
    """Blueprints in the campaigns directory, validated by compose before they are used."""

    def slugs(self) -> list[str]:
        return blueprint_slugs()

    def problems(self, slug: str) -> list[str]:
        return [_problem_text(p) for p in check_blueprint(slug)]

    def load(self, slug: str) -> Any:
        return load_blueprint(slug)


def _problem_text(problem: Any) -> str:
    file, line, message = (getattr(problem, k, None) for k in ("file", "line", "message"))
    if message is None:
        return str(problem)
    where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
    return f"{where}{message}"


class Delivery:
    """Delivery's run functions (mailer.delivery.runs)."""

    def launch(self, engine: Engine, blueprint: Any, step: str, *, now: datetime) -> Any:
        return runs.launch(engine, blueprint, step, actor=ACTOR, now=now)

    def pause(self, engine: Engine, run_id: int, reason: str) -> None:
        try:
            runs.pause(engine, run_id, reason, actor=ACTOR)
        except runs.RunStateError as exc:  # finished or cancelled since we looked: nothing to do
            log.info("%s", exc)

    def resume(self, engine: Engine, run_id: int, reason: str) -> None:
        try:
            runs.resume(engine, run_id, actor=ACTOR)
        except runs.RunStateError as exc:
            log.info("%s", exc)


class CachedBlueprints:
    """Blueprints read once per tick. `get` only loads (cheap: due times, windows); `checked`
    also runs compose's full check (MJML, Jinja: ~0.3 s), done only for a step about to
    launch, so nothing is sent from a blueprint that does not validate."""

    def __init__(self, source: BlueprintSource) -> None:
        self.source = source
        self.cache: dict[str, Any] = {}
        self.errors: dict[str, str] = {}
        self.verified: set[str] = set()

    def get(self, slug: str) -> Any | None:
        """The loaded blueprint, or None (reason in `errors`)."""
        if slug not in self.cache:
            try:
                self.cache[slug] = self.source.load(slug)
            except Exception as exc:
                self.cache[slug], self.errors[slug] = None, f"{type(exc).__name__}: {exc}"[:900]
        return self.cache[slug]

    def checked(self, slug: str) -> Any | None:
        """The blueprint if it passes the full check, else None (reason in `errors`)."""
        if slug in self.verified:
            return self.cache.get(slug)
        self.verified.add(slug)
        try:
            problems = self.source.problems(slug)
        except Exception as exc:
            problems = [f"{type(exc).__name__}: {exc}"]
        if problems:
            self.cache[slug], self.errors[slug] = None, "; ".join(problems)[:900]
            return None
        return self.get(slug)

    # The BlueprintSource interface, answered from the cache.
    def slugs(self) -> list[str]:
        return self.source.slugs()

    def problems(self, slug: str) -> list[str]:
        if self.checked(slug) is not None:
            return []
        return [self.errors.get(slug, "neznámá chyba")]

    def load(self, slug: str) -> Any:
        blueprint = self.get(slug)
        if blueprint is None:
            raise ValueError(self.errors.get(slug, f"kampaň {slug} nelze načíst"))
        return blueprint


def cached(source: BlueprintSource | CachedBlueprints | None) -> CachedBlueprints:
    if isinstance(source, CachedBlueprints):
        return source
    return CachedBlueprints(source or CampaignFiles())


def step_due(blueprint: Any, step: Any, launched_at: datetime | None) -> datetime:
    """When a step is due: the launch at send_at, reminders from the blueprint's rule (after
    the actual launch time once it is known)."""
    due: datetime = blueprint.due_at(step, launched_at)
    return due


def campaign_window(blueprint: Any | None) -> SendingWindow:
    """The blueprint's sending window (validated with the blueprint); the default one for a
    campaign whose blueprint cannot be loaded now, so its running runs still keep hours."""
    if blueprint is None:
        return DEFAULT_WINDOW
    window: SendingWindow = blueprint.sending_window
    return window
