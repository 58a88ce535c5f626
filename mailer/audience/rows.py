"""Contact rows of an import file: header spellings, the vocabularies of each column, and
the validation of one row into normalised values, with a Czech reason for each refusal.

Also the salutation's gender guess from Czech endings, used when a file does not say."""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from mailer.audience.addresses import InvalidAddress, normalize_email
from mailer.csvfiles import ImportFileError, sniff_dialect
from mailer.models import LIBRARY_TYPE_LABELS, REGIONS, ContactStatus, LegalBasis, LibraryType


@dataclass(slots=True)
class Rejection:
    """A row, or a cell of it, that staff must look at: its line, column and a Czech reason."""

    line: int
    column: str
    reason: str


# How a column is named to staff when the file has no header for it.
COLUMN_LABELS = {
    "email": "e-mail",
    "first_name": "jméno",
    "last_name": "příjmení",
    "role": "funkce",
    "library": "knihovna",
    "library_type": "typ",
    "siglum": "sigla",
    "town": "obec",
    "region": "kraj",
    "member": "člen",
    "member_since": "členem od",
    "legal_basis": "souhlas",
    "status": "stav",
    "tags": "štítky",
    "gender": "pohlaví",
    "salutation": "oslovení",
    "tracking_consent": "sledování",
}


@dataclass
class FileTally:
    """What reading a file found besides its valid rows."""

    rows: int = 0
    delimiter: str = ""
    # The file's columns: field -> its header as written in the file.
    headers: dict[str, str] = field(default_factory=dict)
    rejected: list[Rejection] = field(default_factory=list)

    def column_label(self, key: str) -> str:
        """A field as staff know it: the file's own header, else its Czech name."""
        return self.headers.get(key) or COLUMN_LABELS.get(key, key)


@lru_cache(maxsize=65536)
def fold(text: str) -> str:
    """Case- and diacritics-insensitive form for matching headers and values."""
    decomposed = unicodedata.normalize("NFKD", text.strip().casefold())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def header_key(text: str) -> str:
    """A column header folded for matching ("E-mail" -> "email"), as HEADER_ALIASES keys are."""
    return "".join(ch for ch in fold(text) if ch.isalnum())


# Folded header spellings (no spaces, dashes, underscores, diacritics) -> field.
HEADER_ALIASES: dict[str, str] = {
    **dict.fromkeys(["email", "mail", "emailovaadresa", "emailadresa", "adresa"], "email"),
    **dict.fromkeys(["jmeno", "firstname", "krestnijmeno", "givenname"], "first_name"),
    **dict.fromkeys(["prijmeni", "lastname", "surname", "familyname"], "last_name"),
    **dict.fromkeys(["funkce", "role", "pozice", "position"], "role"),
    **dict.fromkeys(["knihovna", "library", "nazevknihovny", "libraryname"], "library"),
    **dict.fromkeys(["typ", "typknihovny", "librarytype", "type"], "library_type"),
    **dict.fromkeys(["sigla", "siglum"], "siglum"),
    **dict.fromkeys(["obec", "mesto", "town", "city"], "town"),
    **dict.fromkeys(["kraj", "region"], "region"),
    **dict.fromkeys(["clen", "member", "clenstvi", "membership", "jeclenem"], "member"),
    **dict.fromkeys(["clenemod", "clenod", "membersince"], "member_since"),
    **dict.fromkeys(
        ["souhlas", "consent", "pravnizaklad", "legalbasis", "zakladzpracovani"], "legal_basis"
    ),
    **dict.fromkeys(["stav", "status"], "status"),
    **dict.fromkeys(["stitky", "stitek", "tags", "tag"], "tags"),
    **dict.fromkeys(["pohlavi", "gender"], "gender"),
    **dict.fromkeys(["osloveni", "salutation"], "salutation"),
    **dict.fromkeys(
        ["sledovani", "tracking", "trackingconsent", "souhlassesledovanim"], "tracking_consent"
    ),
}

_LIBRARY_TYPES: dict[str, str] = {fold(t.value): t.value for t in LibraryType}
_LIBRARY_TYPES.update({fold(label): t.value for t, label in LIBRARY_TYPE_LABELS.items()})
_LIBRARY_TYPES.update({"mistni": "obecni", "krajsky": "krajska", "mestsky": "mestska"})
_REGIONS: dict[str, str] = {fold(r): r for r in REGIONS}
_REGIONS.update({fold(r.replace("Kraj ", "").replace(" kraj", "")): r for r in REGIONS})
_REGIONS["praha"] = "Hlavní město Praha"
_BOOLS = {
    **dict.fromkeys(["ano", "a", "yes", "y", "true", "1", "x"], True),
    **dict.fromkeys(["ne", "n", "no", "false", "0"], False),
}
_BASES = {
    **dict.fromkeys(
        ["legitimate_interest", "legitimate interest", "opravneny zajem", "oz"],
        LegalBasis.LEGITIMATE_INTEREST.value,
    ),
    **dict.fromkeys(["consent", "souhlas", "ano", "yes"], LegalBasis.CONSENT.value),
}
_STATUSES = {
    **dict.fromkeys(["active", "aktivni", "ok"], ContactStatus.ACTIVE.value),
    **dict.fromkeys(
        ["unsubscribed", "odhlasen", "odhlaseny", "odhlasena", "odhlaseno"],
        ContactStatus.UNSUBSCRIBED.value,
    ),
    **dict.fromkeys(
        ["bounced", "nedorucitelny", "nedorucitelna", "nedorucitelne", "vraceno"],
        ContactStatus.BOUNCED.value,
    ),
    **dict.fromkeys(["complained", "stiznost", "spam"], ContactStatus.COMPLAINED.value),
}
_GENDERS = {
    **dict.fromkeys(["f", "z", "zena", "female", "woman"], "f"),
    **dict.fromkeys(["m", "muz", "male", "man"], "m"),
}
# Tracking consent (TrackingConsent) as staff write it.
_CONSENTS = {
    **dict.fromkeys(["granted", "ano", "a", "yes", "souhlasi", "povoleno"], "granted"),
    **dict.fromkeys(["denied", "ne", "n", "no", "odmitl", "odmitla", "odmitnuto"], "denied"),
    **dict.fromkeys(["unknown", "nevim", "nevi", "nezname", "neuvedeno"], "unknown"),
}
_MAX_LEN = {
    "first_name": 120,
    "last_name": 120,
    "role": 120,
    "library": 300,
    "siglum": 16,
    "town": 120,
    "salutation": 200,
}


@dataclass(slots=True)
class Row:
    """One valid row: values already normalised; None = cell empty (keep what is stored)."""

    line: int
    email: str
    values: dict[str, Any]
    tags: list[str]


def parse_rows(text: str, report: FileTally) -> Iterator[Row]:
    """The valid rows of decoded CSV text; refused rows go to `report.rejected`."""
    dialect = sniff_dialect(text)
    report.delimiter = dialect.delimiter
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("Soubor je prázdný.") from None
    except csv.Error as exc:
        raise ImportFileError(f"Hlavičku souboru nelze přečíst: {exc}") from exc
    columns: list[tuple[int, str, str]] = []  # (index, field, header as written)
    seen: set[str] = set()
    for index, name in enumerate(header):
        key = HEADER_ALIASES.get(header_key(name))
        if key and key not in seen:
            seen.add(key)
            columns.append((index, key, name.strip()))
    if "email" not in seen:
        raise ImportFileError(
            "Soubor nemá sloupec s e-mailovou adresou (očekávám „e-mail“ nebo „email“); "
            f"nalezené sloupce: {', '.join(h.strip() for h in header)}."
        )
    labels = {key: written for _, key, written in columns}
    report.headers = labels
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line = reader.line_num
            report.rejected.append(Rejection(start, "", _unreadable(exc)))
            continue
        line = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        report.rows += 1
        raw = {key: (cells[i].strip() if i < len(cells) else "") for i, key, _ in columns}
        try:
            email, values, tags = _validate(raw)
        except _RowError as exc:
            report.rejected.append(Rejection(start, report.column_label(exc.column), exc.reason))
            continue
        yield Row(start, email, values, tags)


def legal_basis_value(text: str) -> str | None:
    """A legal basis as staff write it ("oprávněný zájem", "opravneny-zajem", "souhlas",
    "consent") as its stored value, or None when it is none of them."""
    return _BASES.get(fold(text.replace("-", " ").replace("_", " ")))


def _unreadable(exc: csv.Error) -> str:
    message = str(exc)
    if "field larger" in message:
        return "řádek nelze přečíst: buňka je příliš dlouhá (chybí asi uzavírací uvozovka)"
    if "NUL" in message:
        return "řádek nelze přečíst: obsahuje nulový znak (není to binární soubor?)"
    return "řádek nelze přečíst: chybné uvozovky nebo zalomení řádku uvnitř buňky"


def _choice(mapping: dict[str, Any], text: str) -> Any:
    return mapping.get(fold(text)) if text else None


class _RowError(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column, self.reason = column, reason


# Columns with a fixed set of values: (field, folded spelling -> value, what to tell staff).
_CHOICES: list[tuple[str, dict[str, Any], str]] = [
    ("library_type", _LIBRARY_TYPES, "krajská, městská, obecní, vědecká, univerzitní, odborná"),
    ("region", _REGIONS, ", ".join(REGIONS)),
    ("member", _BOOLS, "ano, ne"),
    ("legal_basis", _BASES, "oprávněný zájem, souhlas"),
    ("status", _STATUSES, "aktivní, odhlášen, nedoručitelný, stížnost"),
    ("gender", _GENDERS, "ž, m"),
    ("tracking_consent", _CONSENTS, "ano, ne, nevím"),
]


def _validate(raw: dict[str, str]) -> tuple[str, dict[str, Any], list[str]]:
    """(email, values, tags) of a valid row; raises _RowError(column, reason) otherwise."""
    try:
        email = normalize_email(raw.get("email", ""))
    except InvalidAddress as exc:
        raise _RowError("email", exc.reason) from None
    values: dict[str, Any] = {}
    for key, limit in _MAX_LEN.items():
        text = raw.get(key, "")
        if len(text) > limit:
            raise _RowError(key, f"hodnota je delší než {limit} znaků")
        values[key] = text or None
    if values["siglum"]:
        values["siglum"] = values["siglum"].upper()
    for key, mapping, valid in _CHOICES:
        text = raw.get(key, "")
        values[key] = _choice(mapping, text)
        if text and values[key] is None:
            raise _RowError(key, f"neznámá hodnota „{text}“; platné jsou: {valid}")
    since = raw.get("member_since", "")
    values["member_since"] = None
    if since:
        if not since.isdigit() or not 1900 <= int(since) <= 2100:
            raise _RowError("member_since", f"„{since}“ není rok")
        values["member_since"] = int(since)
    tags = [t.strip() for t in raw.get("tags", "").replace(",", ";").split(";") if t.strip()]
    for tag in tags:
        if len(tag) > 80:
            raise _RowError("tags", f"štítek „{tag[:20]}…“ je delší než 80 znaků")
    return email, values, tags


# --- gender --------------------------------------------------------------------------------

# Role words: Czech feminine forms end in -ka, -ice, -yně ("ředitelka", "knihovnice");
# masculine ones in the suffixes below ("ředitel", "knihovník", "metodik").
_ROLE_F = tuple(fold(s) for s in ("ka", "ice", "yně", "ová"))
_ROLE_M = tuple(
    fold(s) for s in ("el", "ník", "ik", "tor", "ař", "ář", "ent", "ant", "ec", "ista", "log", "ta")
)


def infer_gender(role: str | None, first_name: str | None, last_name: str | None) -> str | None:
    """ "f", "m" or None, from simple Czech endings; a guess used only for the salutation.

    Order: the role (decisive when gendered), then the surname (-á/-ová is feminine), then
    the first name (-a/-e is feminine, a consonant masculine). Staff override per contact."""
    if role:
        word = fold(role.split()[0]) if role.split() else ""
        if word.endswith(_ROLE_F):
            return "f"
        if word.endswith(_ROLE_M):
            return "m"
    surname = (last_name or "").strip().lower()
    if surname.endswith("á"):
        return "f"
    name = fold(first_name or "")
    if name:
        if name.endswith(("a", "e")):
            return "f"
        if (name[-1].isalpha() and name[-1] not in "aeiouy") or name.endswith(("i", "y")):
            return "m"
    return None
