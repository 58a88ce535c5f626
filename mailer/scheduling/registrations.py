"""Registrations for a campaign's event, recorded as REGISTERED events so reminders skip those
who registered: from a file the registration system exports (`sdruk registrations import`),
and from people's clicks on the registration link of the campaign's messages."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer.audience.contacts import (
    HEADER_ALIASES,
    ImportFileError,
    InvalidAddress,
    _decode,  # the same reading rules as the contact import (BOM, UTF-8, Windows-1250)
    _dialect,
    fold,
    normalize_email,
)
from mailer.events.record import registered
from mailer.models import Contact, Event, EventKind, Run

_CAMPAIGN_HEADERS = {"kampan", "campaign", "slug"}
_DATE_HEADERS = {"datum", "datumregistrace", "registrovano", "registeredat", "date", "cas"}
_DATE_FORMATS = ("%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%d.%m.%Y", "%Y-%m-%d %H:%M")


@dataclass
class RegistrationReport:
    recorded: int = 0
    already: int = 0
    unknown: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "recorded": self.recorded,
            "already": self.already,
            "unknown": self.unknown,
            "rejected": self.rejected,
        }


def _key(header: str) -> str:
    return "".join(ch for ch in fold(header) if ch.isalnum())


def _parse_when(text: str, tz: Any) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    candidate = text.replace(". ", ".")
    parsed: datetime | None = None
    try:
        parsed = datetime.fromisoformat(candidate)
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(candidate, fmt)
                break
            except ValueError:
                continue
    if parsed is None:
        raise ValueError(f"datum „{text}“ neznám; použijte např. 5.3.2026 14:30 nebo 2026-03-05")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)


def _launch_run_id(session: Session, campaign: str) -> int | None:
    return session.exec(
        select(Run.id).where(Run.campaign == campaign, Run.step == "launch")
    ).first()


def import_registrations(
    engine: Engine, path: Path, *, campaign: str | None = None, now: datetime | None = None
) -> RegistrationReport:
    """Record REGISTERED events from a CSV with an e-mail column (and, unless `campaign` is
    given, a campaign column). Re-importing the same file records nothing new. Addresses that
    are not among the contacts are listed, not created."""
    from zoneinfo import ZoneInfo

    from mailer.settings import get_settings

    tz = ZoneInfo(get_settings().timezone)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"Soubor {path} nelze přečíst: {exc.strerror}") from exc
    text, _encoding = _decode(raw)
    reader = csv.reader(io.StringIO(text), _dialect(text))
    header = next(reader, None)
    if not header:
        raise ImportFileError("Soubor je prázdný.")
    keys = [_key(h) for h in header]
    email_col = next((i for i, k in enumerate(keys) if HEADER_ALIASES.get(k) == "email"), None)
    if email_col is None:
        raise ImportFileError("Soubor nemá sloupec s e-mailem (e-mail, email, mail).")
    campaign_col = next((i for i, k in enumerate(keys) if k in _CAMPAIGN_HEADERS), None)
    date_col = next((i for i, k in enumerate(keys) if k in _DATE_HEADERS), None)
    if campaign is None and campaign_col is None:
        raise ImportFileError("Uveďte kampaň (--campaign SLUG) nebo sloupec „kampaň“ v souboru.")
    report = RegistrationReport()
    with Session(engine) as session:
        run_ids: dict[str, int | None] = {}
        for line, row in enumerate(reader, start=2):
            if not any(cell.strip() for cell in row):
                continue
            cells = row + [""] * (len(header) - len(row))
            try:
                email = normalize_email(cells[email_col])
            except InvalidAddress as exc:
                report.rejected.append(
                    {"line": line, "column": header[email_col], "reason": str(exc)}
                )
                continue
            slug = campaign or cells[campaign_col or 0].strip()
            if not slug:
                report.rejected.append(
                    {"line": line, "column": header[campaign_col or 0], "reason": "chybí kampaň"}
                )
                continue
            try:
                when = _parse_when(cells[date_col], tz) if date_col is not None else None
            except ValueError as exc:
                report.rejected.append(
                    {"line": line, "column": header[date_col or 0], "reason": str(exc)}
                )
                continue
            contact_id = session.exec(select(Contact.id).where(Contact.email == email)).first()
            if contact_id is None:
                report.unknown.append({"line": line, "email": email})
                continue
            if slug not in run_ids:
                run_ids[slug] = _launch_run_id(session, slug)
            if registered(
                session,
                contact_id,
                campaign=slug,
                run_id=run_ids[slug],
                source="import",
                detail={"file": path.name, "line": line},
                now=when or now,
            ):
                report.recorded += 1
                # Flush so a second row for the same person in this file is seen as a repeat.
                session.flush()
            else:
                report.already += 1
        session.commit()
    return report


def record_registration_clicks(engine: Engine, blueprint: Any) -> int:
    """Record a REGISTERED event for each person (not a link scanner) who clicked the
    registration link in this campaign's messages. Idempotent; returns how many were new."""
    event = getattr(blueprint, "event", None)
    url = getattr(event, "registration_url", None)
    if not url:
        return 0
    recorded = 0
    with Session(engine) as session:
        runs = session.exec(select(Run.id, Run.content).where(Run.campaign == blueprint.slug)).all()
        for run_id, content in runs:
            links = (content or {}).get("links") or []
            indexes = [i for i, link in enumerate(links) if link == url]
            if not indexes:
                continue
            clickers = session.exec(
                select(Event.contact_id)
                .where(
                    Event.run_id == run_id,
                    Event.kind == EventKind.CLICK,
                    col(Event.is_machine).is_(sa.false()),
                    col(Event.link_index).in_(indexes),
                    col(Event.contact_id).is_not(None),
                )
                .distinct()
            ).all()
            for contact_id in clickers:
                assert contact_id is not None
                if registered(
                    session, contact_id, campaign=blueprint.slug, run_id=run_id, source="click"
                ):
                    recorded += 1
                    session.flush()
        session.commit()
    return recorded
