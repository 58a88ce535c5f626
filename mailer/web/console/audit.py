"""The audit trail: who launched, paused, exported, erased or imported what, and when."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from mailer.models import AuditEntry


def audit(session: Session, actor: str, action: str, target: str = "", **detail: Any) -> None:
    """Adds an audit entry to the caller's transaction, so it commits with the change itself."""
    session.add(AuditEntry(actor=actor, action=action, target=target[:300], detail=detail))


ACTION_LABELS = {
    "sign_in": "přihlášení",
    "sign_out_everywhere": "odhlášení na všech zařízeních",
    "two_factor_on": "zapnutí dvoufázového ověření",
    "two_factor_off": "vypnutí dvoufázového ověření",
    "two_factor_reset": "zrušení dvoufázového ověření správcem",
    "launch": "spuštění kampaně",
    "schedule": "naplánování kampaně",
    "pause": "pozastavení",
    "resume": "obnovení",
    "cancel": "zrušení",
    "test_send": "zkušební odeslání",
    "export": "export",
    "erase": "výmaz kontaktu (GDPR)",
    "import": "import kontaktů",
    "campaign.save": "uložení kampaně (nová verze)",
    "contact_edit": "úprava kontaktu",
    "resubscribe": "opětovné přihlášení se souhlasem",
    "membership": "zápis členství",
    "application_rejected": "zamítnutí přihlášky",
    "application_library": "přiřazení přihlášky ke knihovně",
    "registration_close": "uzavření registrace na akci",
    "registration_open": "otevření registrace na akci",
    "segment_save": "uložení segmentu",
    "segment_delete": "smazání segmentu",
    "suppress": "přidání na seznam blokovaných adres",
    "user_add": "nový uživatel",
    "user_role": "změna role uživatele",
    "user_password": "změna hesla uživatele",
    "user_remove": "odebrání uživatele",
    "step_late": "krok spuštěn se zpožděním",
    "step_missed": "zmeškaný krok kampaně",
    "step_failed": "spuštění kroku selhalo",
    "media.upload": "nahrání obrázku",
    "notice_text_save": "úprava textu automatického e-mailu",
    "notice_text_reset": "obnovení výchozího textu automatického e-mailu",
}

# Actors that are not staff e-mail addresses: the programs that act on their own.
ACTOR_LABELS = {
    "scheduler": "plánovač",
    "cli": "příkazová řádka",
    "make run": "první spuštění (make run)",
}
