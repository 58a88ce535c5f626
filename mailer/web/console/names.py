"""Names staff read where the database keeps ids and slugs: campaign titles for folder names,
Czech labels for step ids ("připomínka 10 dní po rozeslání" for „pripominka“), and the audit
log's details with library and run names instead of `library_id: 469; run_id: 2`.

One `Names` lives for one page render, so each campaign is loaded at most once per page."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from sqlmodel import Session

from mailer.compose.campaigns import Blueprint, load_blueprint
from mailer.compose.czech import format_moment
from mailer.compose.step_labels import LAUNCH_LABEL, describe_step
from mailer.models import LIBRARY_TYPE_LABELS, Library, Run

DETAIL_LABELS = {
    "run": "rozesílka",
    "run_id": "rozesílka",
    "library_id": "knihovna",
    "contact_id": "kontakt",
    "recipients": "příjemců",
    "starts_at": "začátek",
    "outside_window": "mimo okno pro odesílání",
    "reason": "důvod",
    "note": "poznámka",
    "kind": "druh",
    "created": "nové",
    "updated": "změněné",
    "unchanged": "beze změny",
    "rejected": "odmítnuté řádky",
    "without_basis": "bez právního základu",
    "basis_assigned": "se zvoleným právním základem",
    "legal_basis": "zvolený právní základ",
    "libraries_created": "nové knihovny",
    "evidence": "doklad",
    "role": "role",
    "old": "dříve",
    "new": "nově",
    "steps": "kroky",
    "confirmed_size": "potvrzený počet příjemců",
    "definition": "podmínky",
    "ip": "adresa IP",
    "salutation": "oslovení",
    "status": "stav",
    "topics_out": "odhlášená témata",
    "topics_in": "přihlášená témata",
    "cancelled": "zrušeno zpráv",
    "skipped": "vynecháno zpráv",
    "reminders": "zrušené připomínky",
    "by": "kdo",
    "campaign": "kampaň",
    "step": "krok",
    "scheduled_for": "naplánováno na",
    "revision": "verze",
    "summary": "popis změny",
}
# Details that say nothing to staff (hashes are shown shortened in the target already).
HIDDEN_DETAILS = {"address_hash"}
VALUE_LABELS = {
    "csv": "tabulka CSV",
    "gdpr": "výpis údajů (GDPR)",
    "legitimate_interest": "oprávněný zájem",
    "consent": "souhlas",
    "admin": "správce",
    "editor": "editor",
    "viewer": "čtenář",
    "active": "aktivní",
    "unsubscribed": "odhlášen/a",
    "membership": "členství a nábor",
    "events": "akce, workshopy a konference",
    "newsletter": "zpravodaj",
    **{t.value: label for t, label in LIBRARY_TYPE_LABELS.items()},
}


class Names:
    """Looks names up for one page: campaigns from their blueprints, libraries and runs from
    the database (when a session is given)."""

    def __init__(self, session: Session | None = None) -> None:
        self.session = session
        self._blueprints: dict[str, Blueprint | None] = {}

    def blueprint(self, slug: str) -> Blueprint | None:
        if slug not in self._blueprints:
            try:
                self._blueprints[slug] = load_blueprint(slug)
            except Exception:  # a campaign removed since: its slug is all there is
                self._blueprints[slug] = None
        return self._blueprints[slug]

    def campaign(self, slug: str | None) -> str:
        """A campaign's title ("Pozvánka do SDRUK 2026"), else its folder name."""
        if not slug:
            return "–"
        blueprint = self.blueprint(slug)
        return blueprint.name if blueprint else slug

    def step(self, name: str, campaign: str | None = None) -> str:
        """A step's Czech label; with its campaign, the label says when the step goes out."""
        if name == "launch":
            return LAUNCH_LABEL
        blueprint = self.blueprint(campaign) if campaign else None
        if blueprint is not None:
            for step in blueprint.steps:
                if step.name == name:
                    return describe_step(step, blueprint)
        return f"připomínka „{name}“"

    def run(self, run_id: Any) -> str:
        run = self.session.get(Run, run_id) if self.session and isinstance(run_id, int) else None
        if run is None:
            return f"rozesílka č. {run_id}"
        return f"{self.campaign(run.campaign)} – {self.step(run.step, run.campaign)}"

    def library(self, library_id: Any) -> str:
        library = (
            self.session.get(Library, library_id)
            if self.session and isinstance(library_id, int)
            else None
        )
        return library.name if library else f"knihovna č. {library_id}"

    def target(self, text: str) -> str:
        """An audit target: "slug/step" and "run/12" become names, the rest stays."""
        match = re.fullmatch(r"run/(\d+)", text or "")
        if match:
            return self.run(int(match.group(1)))
        match = re.fullmatch(r"campaign/([a-z0-9-]+)", text or "")
        if match:
            return self.campaign(match.group(1))
        match = re.fullmatch(r"([a-z0-9-]+)/([a-z0-9-]+)", text or "")
        if match and self.blueprint(match.group(1)) is not None:
            return f"{self.campaign(match.group(1))} – {self.step(match.group(2), match.group(1))}"
        if text and re.fullmatch(r"[a-z0-9-]+", text) and self.blueprint(text) is not None:
            return self.campaign(text)
        return text

    def value(self, key: str, value: Any) -> str:
        if key in ("run", "run_id"):
            return self.run(value)
        if key == "library_id":
            return self.library(value)
        if isinstance(value, bool):
            return "ano" if value else "ne"
        if value is None or value == "" or value == [] or value == {}:
            return "–"
        if isinstance(value, list):
            return ", ".join(self.value(key, v) for v in value)
        if isinstance(value, dict):
            return ", ".join(f"{k}: {self.value(k, v)}" for k, v in value.items())
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value)
            except ValueError:
                return VALUE_LABELS.get(value, value)
            if moment.tzinfo is not None:
                return format_moment(moment)
            return VALUE_LABELS.get(value, value)
        return str(value)

    def details(self, detail: dict[str, Any] | None) -> str:
        """An audit entry's details in words: "rozesílka: Pozvánka – hlavní rozeslání; …"."""
        parts = []
        for key, value in (detail or {}).items():
            if key in HIDDEN_DETAILS:
                continue
            parts.append(f"{DETAIL_LABELS.get(key, key)}: {self.value(key, value)}")
        return "; ".join(parts)
