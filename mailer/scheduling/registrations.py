"""Registrations for a campaign's event from a file the registration system exports
(`sdruk registrations import`), recorded as REGISTERED events so reminders skip those who
registered. (A person's click on the registration link counts too; that is read straight from
the click events, see `mailer.audience.engagement.registered_contacts`.)"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.audience.addresses import InvalidAddress, normalize_email
from mailer.audience.rows import HEADER_ALIASES, header_key
from mailer.csvfiles import ImportFileError, decode_csv_bytes, sniff_dialect
from mailer.events.record import registered
from mailer.models import Contact, Run

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
    # The same reading rules as the contact import (BOM, UTF-8 or Windows-1250, delimiter).
    text, _encoding = decode_csv_bytes(raw)
    reader = csv.reader(io.StringIO(text, newline=""), sniff_dialect(text))
    try:
        header = next(reader, None)
    except csv.Error as exc:
        raise ImportFileError(f"Hlavičku souboru nelze přečíst: {exc}") from exc
    if not header:
        raise ImportFileError("Soubor je prázdný.")
    keys = [header_key(h) for h in header]
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
        for row in reader:
            line = reader.line_num  # the file's line, also after a cell spanning lines
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
