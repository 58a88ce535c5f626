"""E-mail addresses: validation with Czech reasons and the normalised form that is a contact's
identity.

email-validator does the checking; its English messages are mapped here, kind by kind, to
Czech sentences staff can act on. On top of it, addresses that spreadsheets would run as a
formula (`=cmd|'/c calc'!a0@example.cz`) are refused: they are valid by RFC 5322 but no
library mailbox looks like that, and exported into a CSV they attack whoever opens it.
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email


class InvalidAddress(ValueError):
    """An e-mail address that is refused; `reason` says why (Czech)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# email-validator's messages (2.x), matched by their wording, and what staff read instead.
# The order matters: the first pattern that matches wins.
_REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), czech)
    for pattern, czech in (
        (r"must have an @-sign", "chybí zavináč (@)"),
        (r"full-width|small commercial at", "místo zavináče je podobný, ale jiný znak"),
        (r"There must be something before the @-sign", "před zavináčem nic není"),
        (r"There must be something after the @-sign", "za zavináčem nic není"),
        (r"too long before the @-sign", "část před zavináčem je delší než 64 znaků"),
        (r"too long after the @-sign|too long \(", "adresa je příliš dlouhá"),
        (r"is too long", "adresa je příliš dlouhá"),
        (r"two periods in a row", "obsahuje dvě tečky za sebou"),
        (r"cannot start with a period", "nesmí začínat tečkou"),
        (r"cannot have a period immediately before the @-sign", "před zavináčem nesmí být tečka"),
        (r"cannot have a period immediately after the @-sign", "za zavináčem nesmí být tečka"),
        (r"cannot end with a period", "nesmí končit tečkou"),
        (r"hyphen", "pomlčka na nepovoleném místě (na začátku nebo konci části adresy)"),
        (r"Internationalized characters before", "před zavináčem jsou znaky s diakritikou"),
        (r"It should have a period", "doména za zavináčem nemá tečku (např. knihovna.cz)"),
        (r"not within a valid top-level domain", "doména za zavináčem nemá platnou koncovku"),
        (r"special-use or reserved name", "doména za zavináčem je vyhrazená a pošta na ni nechodí"),
        (r"unsafe characters", "obsahuje neviditelné nebo řídicí znaky"),
        (r"display name|angle bracket", "obsahuje jméno nebo lomené závorky; uveďte jen adresu"),
        (r"anything after the email address", "za adresou následuje další text"),
        (r"Quoting the part before the @-sign", "část před zavináčem je v uvozovkách"),
        (r"bracket", "za zavináčem je IP adresa místo domény"),
        (r"invalid characters? (before the @|in quotes)", "před zavináčem jsou nepovolené znaky"),
        (r"after the @-sign", "doména za zavináčem obsahuje nepovolené znaky"),
        (r"not valid ASCII|invalid character", "obsahuje nepovolené znaky"),
    )
)

# What spreadsheets treat as the start of a formula (OWASP "CSV injection"), and the pipe
# that DDE payloads need.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def czech_reason(error: EmailNotValidError) -> str:
    """email-validator's error as a short Czech phrase ("chybí zavináč (@)")."""
    message = str(error)
    for pattern, czech in _REASONS:
        if pattern.search(message):
            return czech
    return "není to platná e-mailová adresa"


def _formula_problem(text: str) -> str | None:
    if text.startswith(FORMULA_STARTS):
        return (
            f"začíná znakem „{text[0].strip() or 'tabulátor'}“, kterým tabulkové programy "
            "spouštějí vzorce"
        )
    if "|" in text:
        return "obsahuje svislou čáru „|“, kterou tabulkové programy spouštějí příkazy"
    return None


def normalize_email(raw: str) -> str:
    """The identity of an address: email-validator's normalised form (no DNS), lowercased
    whole, because staff files mix cases and no Czech mailbox distinguishes them.

    Raises InvalidAddress with a Czech reason."""
    text = (raw or "").strip()
    if not text:
        raise InvalidAddress("chybí e-mailová adresa")
    formula = _formula_problem(text)
    if formula:
        raise InvalidAddress(f"adresa „{text}“ {formula}")
    local, at, domain = text.rpartition("@")
    if at and len(text) <= 254 and len(local) <= 64 and _PLAIN_LOCAL.match(local):
        # The common case costs one dict look-up: the domain (the costly IDNA part) was
        # validated by email-validator for an earlier address, and a plain ASCII dot-atom
        # local part is valid as it is. Anything unusual takes the full path below.
        checked = _checked_domain(domain)
        if checked is not None:
            return f"{local}@{checked}".lower()
    try:
        info = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidAddress(f"neplatná e-mailová adresa „{text}“: {czech_reason(exc)}") from exc
    return info.normalized.lower()


_PLAIN_LOCAL = re.compile(
    r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*\Z"
)


@lru_cache(maxsize=65536)
def _checked_domain(domain: str) -> str | None:
    """The normalised domain, or None when email-validator rejects it (the caller then runs
    the full validation for the message)."""
    try:
        return validate_email(f"x@{domain}", check_deliverability=False).domain
    except EmailNotValidError:
        return None
