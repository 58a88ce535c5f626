"""DKIM signatures (RFC 6376, relaxed/relaxed) at OpenSSL's speed: RSA-SHA256 and Ed25519-SHA256.

Why not dkimpy: it does the RSA operation in pure Python, about 5 ms a signature for a 2048-bit
key, where OpenSSL (through `cryptography`) takes about 0.2 ms. A run signs every message with
the same key over mostly the same headers, so what is fixed is prepared once
(`DkimSigner.prepare`): the parsed key objects, the `h=` list and the relaxed canonical form of
the headers that are the same in every message of the run (From, List-Id, Content-Type...).
Per message only the body hash (hashlib), the canonical form of the few per-recipient headers
and the signature itself are computed.

Every signed header name is listed once more in `h=` than it occurs ("oversigning", RFC 6376
§5.4.2), so a header added in transit (a second From or List-Unsubscribe) breaks the signature.
The signer is checked against two independent verifiers (dkimpy and OpenDKIM) by
tests/test_dkim_differential.py.

Keys: the current RSA key signs (at least 2048 bits: smaller ones are refused); an optional
Ed25519 key (RFC 8463) adds a second signature; previous selectors stay published during a
rotation but sign nothing. `txt_record()` gives the DNS record to publish for each.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

CRLF = b"\r\n"
# Headers the signature covers (DESIGN.md): List-Unsubscribe and List-Unsubscribe-Post must be
# covered for RFC 8058 one-click unsubscribe to be honoured by Gmail and Yahoo.
DKIM_HEADERS: tuple[bytes, ...] = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"feedback-id",
    b"mime-version",
    b"content-type",
)
MIN_RSA_BITS = 2048
RSA = "rsa-sha256"
ED25519 = "ed25519-sha256"

_WSP_RUN = re.compile(rb"[ \t]+")
_PKCS1 = padding.PKCS1v15()
_SHA256 = hashes.SHA256()


class DkimKeyError(ValueError):
    """A DKIM key that cannot be used; the message (Czech) says what to fix."""


@dataclass(frozen=True)
class DkimKey:
    """One private key published under `selector._domainkey.domain`."""

    selector: str
    domain: str
    private_key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    path: Path | None = None

    @property
    def algorithm(self) -> str:
        return ED25519 if isinstance(self.private_key, ed25519.Ed25519PrivateKey) else RSA

    @property
    def bits(self) -> int:
        return self.private_key.key_size if isinstance(self.private_key, rsa.RSAPrivateKey) else 256

    @property
    def dns_name(self) -> str:
        return f"{self.selector}._domainkey.{self.domain}"

    def public_key_b64(self) -> str:
        public = self.private_key.public_key()
        if isinstance(public, ed25519.Ed25519PublicKey):
            # RFC 8463: p= is the raw 32-byte key, not a SubjectPublicKeyInfo.
            raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        else:
            raw = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        return base64.b64encode(raw).decode("ascii")

    def txt_record(self) -> str:
        """The value of the TXT record to publish at `dns_name`."""
        kind = "ed25519" if self.algorithm == ED25519 else "rsa"
        return f"v=DKIM1; k={kind}; p={self.public_key_b64()}"

    def sign(self, data: bytes) -> bytes:
        """The signature over canonical header data (the `b=` value, before base64)."""
        key = self.private_key
        if isinstance(key, rsa.RSAPrivateKey):
            return key.sign(data, _PKCS1, _SHA256)
        # RFC 8463: Ed25519 signs the SHA-256 hash of the data (PureEdDSA over the digest).
        return key.sign(hashlib.sha256(data).digest())


def load_key(path: Path, selector: str, domain: str) -> DkimKey:
    """The key in a PEM file, checked; DkimKeyError (in Czech) when it cannot sign."""
    stat = _stat(path)
    return _load_key(path, stat, selector, domain)


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise DkimKeyError(
            f"Soubor s klíčem DKIM {path} nelze přečíst ({exc.strerror or exc}). "
            "Zkontrolujte DKIM_PRIVATE_KEY_FILE, nebo klíč vytvořte: sdruk dkim keygen."
        ) from None
    return st.st_mtime_ns, st.st_size


@lru_cache(maxsize=32)
def _load_key(path: Path, _stat: tuple[int, int], selector: str, domain: str) -> DkimKey:
    # Cached per file version: a worker parses each key once, not once per run.
    if not selector or not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62})", selector):
        raise DkimKeyError(
            f"Selektor DKIM „{selector}“ není platný název pro DNS (písmena, číslice, tečka, "
            "pomlčka)."
        )
    try:
        key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm, OSError) as exc:
        raise DkimKeyError(
            f"Soubor {path} neobsahuje soukromý klíč PEM bez hesla ({exc}). "
            "Nový klíč vytvoří sdruk dkim keygen."
        ) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise DkimKeyError(
                f"Klíč DKIM {path} má jen {key.key_size} bitů. Gmail, Yahoo i Outlook "
                f"považují klíče kratší než {MIN_RSA_BITS} bitů za slabé; vytvořte nový "
                f"(sdruk dkim keygen --selector NOVY) a zveřejněte jeho záznam TXT."
            )
    elif not isinstance(key, ed25519.Ed25519PrivateKey):
        raise DkimKeyError(
            f"Klíč v {path} není RSA ani Ed25519; DKIM umí jen tyto dva druhy klíčů."
        )
    return DkimKey(selector=selector, domain=domain, private_key=key, path=Path(path))


def generate_key(algorithm: str = RSA, bits: int = MIN_RSA_BITS) -> bytes:
    """A new private key as PEM (PKCS#8, unencrypted: the file's permissions protect it)."""
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == ED25519:
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        if bits < MIN_RSA_BITS:
            raise DkimKeyError(f"Klíč RSA musí mít alespoň {MIN_RSA_BITS} bitů.")
        key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


# -- canonicalisation (RFC 6376 §3.4.2 and §3.4.4) ------------------------------------------


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """`name:value` in relaxed form: lower-case name, unfolded, whitespace runs as one space,
    none around the colon or at the end; with CRLF."""
    value = value.replace(CRLF, b"")
    if b"\t" in value or b"  " in value:
        value = _WSP_RUN.sub(b" ", value)
    return name.strip().lower() + b":" + value.strip(b" \t") + CRLF


def relaxed_body(body: bytes) -> bytes:
    """The body in relaxed form, as a receiver sees it (SMTP ends a body that lacks a final
    CRLF with one). Plain `bytes.replace` passes instead of one regular expression: on a 30 KB
    body the expression costs more than the RSA signature itself."""
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    while b"  " in body:
        body = body.replace(b"  ", b" ")
    if b" \r\n" in body:
        body = body.replace(b" \r\n", CRLF)
    end = len(body)
    while body.endswith(CRLF, 0, end):
        end -= 2
    if end == 0:
        return b""  # an empty body (or only empty lines) hashes as empty in relaxed mode
    body = body[:end].rstrip(b" ")
    return body + CRLF


def body_hash(body: bytes | Sequence[bytes], canonical: bool = False) -> str:
    """bh= of `body` (bytes, or its parts in order). `canonical`: the caller knows the body
    has no whitespace run, no tab and no whitespace at a line end (see compose/message.py), so
    only its end is checked, and its parts are hashed without being joined first."""
    parts = [body] if isinstance(body, bytes) else list(body)
    last = next((p for p in reversed(parts) if p), b"")
    if canonical and last.endswith(CRLF) and not last.endswith(b"\r\n\r\n") and last != CRLF:
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        return base64.b64encode(digest.digest()).decode("ascii")
    whole = b"".join(parts)
    return base64.b64encode(hashlib.sha256(relaxed_body(whole)).digest()).decode("ascii")


def split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Headers (name, raw value with its folding, without the final CRLF) and the body of a
    CRLF message."""
    head, sep, body = message.partition(b"\r\n\r\n")
    if not sep:
        head, body = message.removesuffix(CRLF), b""
    headers: list[tuple[bytes, bytes]] = []
    for line in head.split(CRLF):
        if line[:1] in (b" ", b"\t") and headers:
            name, value = headers[-1]
            headers[-1] = (name, value + CRLF + line)
        else:
            name, _, value = line.partition(b":")
            headers.append((name, value.removeprefix(b" ")))
    return headers, body


# -- signing ---------------------------------------------------------------------------------


def _fold_list(prefix: bytes, items: Sequence[bytes], sep: bytes) -> bytes:
    """`prefix` + items joined by `sep`, folded so that lines stay under 78 characters."""
    lines = [prefix]
    for index, item in enumerate(items):
        piece = item + (sep if index < len(items) - 1 else b"")
        if len(lines[-1]) + len(piece) > 76 and lines[-1] != prefix:
            lines.append(b" ")
        lines[-1] += piece
    return CRLF.join(lines)


def _fold_b64(value: bytes) -> bytes:
    return b"\r\n ".join(value[i : i + 72] for i in range(0, len(value), 72))


class PreparedSignature:
    """What signing a run's messages needs, prepared once: the `h=` list and the canonical form
    of the fixed headers, for each key. `headers()` signs one message."""

    __slots__ = ("_canon_fixed", "_h", "_keys", "_second", "_tags")

    def __init__(self, keys: Sequence[DkimKey], h: Sequence[bytes], canon_fixed: bytes) -> None:
        self._keys = tuple(keys)
        self._h = list(h)
        self._canon_fixed = canon_fixed
        self._second = -1
        self._tags: list[tuple[bytes, bytes]] = []

    @property
    def keys(self) -> tuple[DkimKey, ...]:
        return self._keys

    def _tag_prefixes(self) -> list[tuple[bytes, bytes]]:
        """Per key: the raw header up to `bh=` and its canonical form, rebuilt once a second
        (t= is the signing time)."""
        second = int(time.time())
        if second != self._second:
            tags = []
            for key in self._keys:
                raw = (
                    b"DKIM-Signature: v=1; a="
                    + key.algorithm.encode()
                    + b"; c=relaxed/relaxed; d="
                    + key.domain.encode("idna")
                    + b";\r\n s="
                    + key.selector.encode("ascii")
                    + b"; t="
                    + str(second).encode()
                    + b";\r\n"
                    + _fold_list(b" h=", self._h, b":")
                    + b";\r\n bh="
                )
                name, _, value = raw.partition(b":")
                canon = relaxed_header(name, value)[:-2]
                tags.append((raw, canon))
            self._tags, self._second = tags, second
        return self._tags

    def headers(
        self,
        varying: Sequence[tuple[bytes, bytes]],
        body: bytes | Sequence[bytes],
        *,
        canonical: bool = False,
    ) -> bytes:
        """The DKIM-Signature header lines (one per key, CRLF-ended) for a message made of
        `varying` headers (in the order given to `prepare`), the fixed ones and `body`
        (`canonical`: see `body_hash`)."""
        bh = body_hash(body, canonical).encode("ascii")
        canon_headers = b"".join([relaxed_header(n, v) for n, v in varying]) + self._canon_fixed
        out = []
        for key, (raw, canon) in zip(self._keys, self._tag_prefixes(), strict=True):
            # The signature header is hashed last, with an empty b= and without its CRLF.
            signature = key.sign(canon_headers + canon + bh + b"; b=")
            b = base64.b64encode(signature)
            out.append(raw + bh + b";\r\n b=" + _fold_b64(b) + CRLF)
        # Receivers show the first signature first: the RSA one, which every receiver checks.
        return b"".join(out)


class DkimSigner:
    """Signs with the current key (and the optional Ed25519 key): `prepare()` for a run's
    messages, `sign()` for any single message."""

    def __init__(self, keys: Sequence[DkimKey], signed: Sequence[bytes] = DKIM_HEADERS) -> None:
        if not keys:
            raise ValueError("no DKIM key")
        self.keys = tuple(keys)
        self.signed = tuple(n.lower() for n in signed)

    @property
    def domain(self) -> str:
        return self.keys[0].domain

    def prepare(
        self, varying: Sequence[bytes], fixed: Sequence[tuple[bytes, bytes]]
    ) -> PreparedSignature:
        """For messages whose headers are `varying` (names; values given per message) and
        `fixed` (names and values, the same in every message); each name occurs once."""
        wanted = set(self.signed)
        names = [n.lower() for n in varying if n.lower() in wanted]
        fixed_signed = [(n, v) for n, v in fixed if n.lower() in wanted]
        names += [n.lower() for n, _ in fixed_signed]
        if len(set(names)) != len(names):
            raise ValueError("a signed header occurs twice; use DkimSigner.sign")
        canon_fixed = b"".join(relaxed_header(n, v) for n, v in fixed_signed)
        # Listed once more than they occur (absent ones once): nobody can add one unnoticed.
        return PreparedSignature(self.keys, names + list(self.signed), canon_fixed)

    def sign(self, message: bytes) -> bytes:
        """`message` (CRLF) with its DKIM-Signature headers in front."""
        headers, body = split_message(message)
        wanted = set(self.signed)
        # Bottom-up: a verifier takes the last instance of a name for its first mention in h=.
        present = [(n, v) for n, v in reversed(headers) if n.strip().lower() in wanted]
        names = [n.strip().lower() for n, _ in present]
        canon = b"".join(relaxed_header(n, v) for n, v in present)
        prepared = PreparedSignature(self.keys, names + list(self.signed), canon)
        return prepared.headers((), body) + message

    @classmethod
    def from_settings(cls, settings: Any) -> DkimSigner | None:
        """The signer a deployment configured, or None without DKIM_SELECTOR. A configured key
        that cannot sign raises DkimKeyError: mail must never go out unsigned by mistake."""
        keys = configured_keys(settings)
        signing = [k for k, role in keys if role in ("current", "ed25519")]
        return cls(signing) if signing else None


def dkim_domain(settings: Any) -> str:
    return str(getattr(settings, "dkim_domain", "") or settings.sender_domain)


def configured_keys(settings: Any) -> list[tuple[DkimKey, str]]:
    """Every key of the configuration with its role: "current" (signs), "ed25519" (second
    signature), "previous" (still published during a rotation, signs nothing)."""
    domain = dkim_domain(settings)
    out: list[tuple[DkimKey, str]] = []
    selector = getattr(settings, "dkim_selector", "")
    key_file = getattr(settings, "dkim_private_key_file", None)
    if selector or key_file:
        if not selector or key_file is None:
            raise DkimKeyError(
                "DKIM je nastavené jen napůl: vyplňte DKIM_SELECTOR i DKIM_PRIVATE_KEY_FILE."
            )
        key = load_key(Path(key_file), selector, domain)
        if key.algorithm != RSA:
            raise DkimKeyError(
                f"DKIM_PRIVATE_KEY_FILE ({key_file}) musí být klíč RSA: podpis Ed25519 zatím "
                "neověří všichni příjemci. Klíč Ed25519 patří do DKIM_ED25519_KEY_FILE."
            )
        out.append((key, "current"))
    ed_selector = getattr(settings, "dkim_ed25519_selector", "")
    ed_file = getattr(settings, "dkim_ed25519_key_file", None)
    if ed_selector or ed_file:
        if not ed_selector or ed_file is None:
            raise DkimKeyError(
                "Druhý podpis Ed25519 je nastavený jen napůl: vyplňte DKIM_ED25519_SELECTOR "
                "i DKIM_ED25519_KEY_FILE."
            )
        if not out:
            raise DkimKeyError(
                "Podpis Ed25519 se přidává k podpisu RSA: nastavte nejdřív DKIM_SELECTOR a "
                "DKIM_PRIVATE_KEY_FILE."
            )
        key = load_key(Path(ed_file), ed_selector, domain)
        if key.algorithm != ED25519:
            raise DkimKeyError(f"DKIM_ED25519_KEY_FILE ({ed_file}) není klíč Ed25519.")
        out.append((key, "ed25519"))
    for entry in getattr(settings, "dkim_previous_keys", None) or []:
        previous_selector, sep, path = str(entry).partition(":")
        if not sep or not path:
            raise DkimKeyError(
                f"Položka DKIM_PREVIOUS_KEYS „{entry}“ má mít tvar selektor:/cesta/ke/klíči.pem."
            )
        out.append((load_key(Path(path), previous_selector.strip(), domain), "previous"))
    selectors = [k.selector for k, _ in out]
    if len(set(selectors)) != len(selectors):
        raise DkimKeyError("Dva klíče DKIM mají stejný selektor; každý klíč potřebuje vlastní.")
    return out
