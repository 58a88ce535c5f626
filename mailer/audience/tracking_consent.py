"""Recording a contact's tracking consent: the current value on the contact and every change
as evidence (value, source, wording shown, IP, who, when), never overwritten, like the legal
basis records. The wording public pages show is defined here, so what is stored is what was
shown."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from mailer.models import (
    TRACKING_CONSENT_LABELS,
    Contact,
    TrackingConsent,
    TrackingConsentRecord,
    utcnow,
)

__all__ = [
    "EXPLANATION",
    "QUESTION",
    "SOURCE_CONSOLE",
    "SOURCE_IMPORT",
    "SOURCE_PREFERENCES",
    "SOURCE_SUBSCRIBE",
    "history",
    "parse_answer",
    "record_consent",
    "wording",
]

QUESTION = "Smíme u zpráv zjišťovat, zda jste je otevřeli a na které odkazy jste klikli?"
EXPLANATION = (
    "Když odpovíte ne, zprávy vám nebudou obsahovat sledovací obrázek ani osobní odkazy. "
    "Kliknutí na odkazy pak počítáme jen anonymně, jako souhrnné číslo za celou rozesílku, "
    "bez vazby na vaši adresu. Zprávy vám chodit nepřestanou a odpověď můžete kdykoli změnit "
    "v nastavení odběru."
)
ANSWERS = {
    TrackingConsent.GRANTED.value: "Ano, smíte",
    TrackingConsent.DENIED.value: "Ne, nesledujte mě",
}
SOURCE_SUBSCRIBE = "formulář odběru"
SOURCE_PREFERENCES = "stránka nastavení"
SOURCE_CONSOLE = "konzole"
SOURCE_IMPORT = "import"


def wording(value: str) -> str:
    """The question and the chosen answer as the person saw them, for the evidence."""
    return f"{QUESTION} Odpověď: {ANSWERS.get(value, value)}. ({EXPLANATION})"


def parse_answer(raw: str | None) -> str | None:
    """A form's or a CSV cell's answer as a TrackingConsent value; None if it is none.
    Accepts the stored values and the Czech words staff write (ano/ne/nevím)."""
    text = (raw or "").strip().lower()
    aliases = {
        "granted": TrackingConsent.GRANTED,
        "ano": TrackingConsent.GRANTED,
        "souhlasí": TrackingConsent.GRANTED,
        "denied": TrackingConsent.DENIED,
        "ne": TrackingConsent.DENIED,
        "odmítl": TrackingConsent.DENIED,
        "odmítla": TrackingConsent.DENIED,
        "unknown": TrackingConsent.UNKNOWN,
        "nevím": TrackingConsent.UNKNOWN,
        "neznámý": TrackingConsent.UNKNOWN,
    }
    found = aliases.get(text)
    return found.value if found is not None else None


def label(value: str) -> str:
    """The Czech name of a consent value, as staff read it."""
    try:
        return TRACKING_CONSENT_LABELS[TrackingConsent(value)]
    except ValueError:
        return value


def record_consent(
    session: Session,
    contact: Contact,
    value: str,
    *,
    source: str,
    wording: str | None = None,
    ip: str | None = None,
    recorded_by: str | None = None,
    now: datetime | None = None,
) -> TrackingConsentRecord:
    """Set the contact's tracking consent and add its evidence. The caller commits. A record is
    written even when the value does not change: the person confirmed it again, and when."""
    TrackingConsent(value)  # refuse anything that is not a consent value
    assert contact.id is not None
    at = now or utcnow()
    contact.tracking_consent = value
    contact.updated_at = at
    session.add(contact)
    evidence = TrackingConsentRecord(
        contact_id=contact.id,
        value=value,
        source=source[:120],
        wording=(wording or None) and wording[:2000],
        ip=ip,
        recorded_by=recorded_by,
        recorded_at=at,
    )
    session.add(evidence)
    return evidence


@dataclass(frozen=True)
class ConsentEntry:
    value: str
    label: str
    source: str
    wording: str | None
    ip: str | None
    recorded_by: str | None
    recorded_at: datetime


def history(session: Session, contact_id: int) -> list[ConsentEntry]:
    """The contact's consent records, newest first."""
    rows = session.exec(
        select(TrackingConsentRecord)
        .where(TrackingConsentRecord.contact_id == contact_id)
        .order_by(
            col(TrackingConsentRecord.recorded_at).desc(), col(TrackingConsentRecord.id).desc()
        )
    ).all()
    return [
        ConsentEntry(
            r.value, label(r.value), r.source, r.wording, r.ip, r.recorded_by, r.recorded_at
        )
        for r in rows
    ]
