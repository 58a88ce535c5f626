"""The launch gate: may this campaign go out where SMTP_URL points?

To a real relay (not capture:// or null://, nor one that SMTP_TEST_RELAY declares a test relay)
a launch is refused while unfinished content is left (a "doplnit"/"POTVRDIT" marker in the
campaign's files, an item of `to_be_confirmed`, a placeholder in the sender identity the footer
prints) or any error of `sdruk doctor` remains (mailer/doctor.py; its relay login is left to
`sdruk doctor` and to the worker, which pauses the run at the first refused login); doctor
warnings are shown. Capture and the demo go on, with everything shown as a warning. Every
launch path (CLI, console, scheduler) passes here through `delivery.runs.launch` (which raises
LaunchRefused); the CLI and the console's launch page show `readiness()` first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from mailer.compose.campaigns import Blueprint
from mailer.doctor import Level, Lookup, is_real_relay, run_doctor

_UNFINISHED = re.compile(r"POTVRDIT|doplnit", re.I)
FIELD_LABELS = {
    "title": "název",
    "start": "začátek",
    "end": "konec",
    "venue": "místo",
    "address": "adresa",
    "registration_url": "odkaz na registraci",
    "description": "popis",
}


@dataclass
class Readiness:
    real_relay: bool
    # Czech, each naming what to fill in and where.
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    # What the warnings mean for this launch (capture: it goes on, but fill these in first).
    note: str = ""

    @property
    def refused(self) -> bool:
        return self.real_relay and bool(self.errors)


def unfinished_content(blueprint: Blueprint) -> list[str]:
    """Placeholders and unconfirmed facts of the campaign, each with where to fix it."""
    found: list[str] = []
    directory = blueprint.directory
    files = [directory / "campaign.toml", *sorted(directory.glob("*.mjml"))]
    for path in files:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for number, line in enumerate(lines, 1):
            match = _UNFINISHED.search(line)
            # In campaign.toml a marker is a comment beside the value it marks; a comment line
            # of its own only explains the convention.
            if match and path.suffix == ".toml" and not line.split("#", 1)[0].strip():
                continue
            if match:
                found.append(
                    f"{blueprint.slug}/{path.name}:{number}: údaj označený „{match.group(0)}“ "
                    f"({line.strip()[:90]}); ověřte ho a značku smažte"
                )
    event = blueprint.event
    if event is not None:
        if event.to_be_confirmed:
            found.append(
                f"{blueprint.slug}/campaign.toml, [event]: nepotvrzené "
                f"{_labels(event.to_be_confirmed)}; potvrďte je a vyprázdněte to_be_confirmed"
            )
        for session in event.sessions:
            if session.to_be_confirmed:
                found.append(
                    f"{blueprint.slug}/campaign.toml, termín „{session.title}“: nepotvrzené "
                    f"{_labels(session.to_be_confirmed)}; potvrďte je a vyprázdněte "
                    "to_be_confirmed"
                )
    return found


def _labels(names: list[str]) -> str:
    return ", ".join(FIELD_LABELS.get(n, n) for n in names)


def readiness(
    blueprint: Blueprint,
    settings: Any | None = None,
    *,
    lookup: Lookup | None = None,
) -> Readiness:
    """What stands between this campaign and a real send. Asks the DNS only for a real relay."""
    from mailer.settings import get_settings

    settings = settings or get_settings()
    real = is_real_relay(settings.resolved_smtp_url(), settings)
    problems = unfinished_content(blueprint)
    checks = run_doctor(
        settings,
        lookup=lookup,
        campaign_from=[blueprint.from_email] if blueprint.from_email else [],
        network=real,
        relay=False,
    )
    problems += [f"{c.title}: {c.detail}" for c in checks if c.level is Level.ERROR]
    warnings = [f"{c.title}: {c.detail}" for c in checks if c.level is Level.WARNING]
    if not real:
        note = (
            "Zprávy nedojdou skutečným příjemcům (zachytávání nebo zkušební server), proto "
            "spuštění pokračuje. Před ostrým rozesíláním doplňte:"
            if problems
            else ""
        )
        return Readiness(False, [], [*problems, *warnings], note)
    return Readiness(True, problems, warnings)
