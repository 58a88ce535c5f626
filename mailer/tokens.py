"""Signed, purpose-bound tokens for per-recipient links (unsubscribe, tracking, web version,
return path): a few integers and an HMAC, verifiable with the current or a retired key.

Two spellings of the same bytes: URL tokens are base64url (short, case-sensitive); tokens
carried in an e-mail address's local part (VERP return path, List-Unsubscribe mailto) are
lowercase hex, because some MTAs change the case of local parts on the way back."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Sequence
from enum import IntEnum
from typing import Any

MAC_BYTES = 12  # 96 bits: forging one takes ~2^96 tries; shorter links than a full digest.


class Purpose(IntEnum):
    """What a token may be used for; a token of one purpose never verifies as another."""

    UNSUBSCRIBE = 1  # ids: outbox message
    PREFERENCES = 2  # ids: outbox message
    OPEN = 3  # ids: outbox message
    CLICK = 4  # ids: outbox message, link index
    WEB_VERSION = 5  # ids: outbox message
    OPEN_ANONYMOUS = 6  # ids: run
    CLICK_ANONYMOUS = 7  # ids: run, link index
    WEB_VERSION_ANONYMOUS = 8  # ids: run
    RETURN_PATH = 9  # ids: outbox message (VERP bounce address)
    CONTACT_PREFERENCES = 10  # ids: contact (links not tied to one message)
    # ids: outbox message. One token for all tracked links of a message; the link's index
    # follows it in the path (/c/<token>/<index>). The index needs no MAC of its own: it can
    # only pick another link of the same frozen run for the same recipient, which that
    # recipient can click anyway. (CLICK, one token per link, is still verified for messages
    # already delivered with it.)
    MESSAGE_CLICK = 11
    # ids: outbox message. The membership form from a campaign's button: pre-filled from the
    # directory and credited to the message's run and step.
    APPLY = 12
    # ids: outbox message. The event registration page from a campaign's button.
    REGISTER = 13
    # ids: event registration. The cancel link in a registration's confirmation.
    CANCEL_REGISTRATION = 14
    # ids: subscription request, issue time (Unix seconds). The double opt-in link; the time
    # lets the link expire (7 days) without storing anything more.
    CONFIRM_SUBSCRIPTION = 15


def _varints(values: Sequence[int]) -> bytes:
    out = bytearray()
    for value in values:
        if value < 0:
            raise ValueError("token ids are non-negative")
        while True:
            byte = value & 0x7F
            value >>= 7
            if value:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                break
    return bytes(out)


def _unvarints(data: bytes) -> tuple[int, ...] | None:
    values: list[int] = []
    value = shift = 0
    for byte in data:
        value |= (byte & 0x7F) << shift
        if byte & 0x80:
            shift += 7
            if shift > 63:
                return None
        else:
            values.append(value)
            value = shift = 0
    return tuple(values) if shift == 0 else None


class Signer:
    """Signs with the first key; verifies with any (key rotation)."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys or not keys[0]:
            raise ValueError("a signing key is required")
        self._macs = [hmac.new(key, digestmod=hashlib.sha256) for key in keys]

    def _mac(self, index: int, data: bytes) -> bytes:
        mac = self._macs[index].copy()
        mac.update(data)
        return mac.digest()[:MAC_BYTES]

    def _raw(self, purpose: Purpose, ids: Sequence[int]) -> bytes:
        data = bytes((purpose,)) + _varints(ids)
        return data + self._mac(0, data)

    def sign(self, purpose: Purpose, *ids: int) -> str:
        """A token for a URL (base64url, case-sensitive)."""
        return base64.urlsafe_b64encode(self._raw(purpose, ids)).rstrip(b"=").decode()

    def sign_address(self, purpose: Purpose, *ids: int) -> str:
        """A token for an address's local part: lowercase hex, so it still
        verifies after an MTA changed the case of the address."""
        return address_encode(self._raw(purpose, ids))

    def verify(self, purpose: Purpose, token: str) -> tuple[int, ...] | None:
        """The ids, or None for a token that is altered, foreign or of another purpose."""
        if not token or len(token) > 200:
            return None
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            return None
        # The decoder skips characters outside the alphabet and ignores spare bits, so several
        # spellings decode alike; only the one sign() writes is the token.
        if base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != token:
            return None
        return self._check(purpose, raw)

    def verify_address(self, purpose: Purpose, token: str) -> tuple[int, ...] | None:
        """Like `verify`, for a token made by `sign_address`, in any letter case."""
        if not token or len(token) > 200 or not token.isascii():
            return None
        try:
            raw = binascii.unhexlify(token)
        except (binascii.Error, ValueError):
            return None
        if address_encode(raw) != token.lower():
            return None
        return self._check(purpose, raw)

    def _check(self, purpose: Purpose, raw: bytes) -> tuple[int, ...] | None:
        if len(raw) <= MAC_BYTES + 1 or raw[0] != purpose:
            return None
        data, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
        if not any(hmac.compare_digest(mac, self._mac(i, data)) for i in range(len(self._macs))):
            return None
        return _unvarints(data[1:])


def address_encode(raw: bytes) -> str:
    """The address-safe, case-insensitive spelling of a signed token's bytes: lowercase hex
    (C-speed on the per-recipient path; 32 characters fit a local part's 64 easily)."""
    return binascii.hexlify(raw).decode("ascii")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


_B64URL = bytes.maketrans(b"+/", b"-_")


class TokenMaker:
    """`Signer.sign` for the per-recipient hot path: the same token format (purpose byte,
    varint ids, truncated HMAC-SHA256, unpadded base64url) with the HMAC key schedule
    prepared once. Tests check it against Signer.verify."""

    __slots__ = ("_last", "_mac", "_purposes")

    def __init__(self, key: bytes) -> None:
        mac = hmac.new(key, digestmod=hashlib.sha256)
        # The OpenSSL object behind hmac.HMAC copies without the Python wrapper (~25% of a
        # token); the wrapper has the same copy/update/digest where it is absent.
        self._mac: Any = getattr(mac, "_hmac", None) or mac
        self._purposes = {purpose: bytes((purpose,)) for purpose in Purpose}
        # A message signs the same id seven times: its varint is kept between calls.
        self._last: tuple[int, bytes] = (-1, b"")

    def _data(self, purpose: Purpose, ids: tuple[int, ...]) -> bytes:
        if len(ids) != 1:
            return self._purposes[purpose] + b"".join(_varint(i) for i in ids)
        last_id, encoded = self._last
        if ids[0] != last_id:
            encoded = _varint(ids[0])
            self._last = (ids[0], encoded)
        return self._purposes[purpose] + encoded

    def sign(self, purpose: Purpose, *ids: int) -> str:
        data = self._data(purpose, ids)
        mac = self._mac.copy()
        mac.update(data)
        raw = data + mac.digest()[:MAC_BYTES]
        return binascii.b2a_base64(raw, newline=False).translate(_B64URL).rstrip(b"=").decode()

    def sign_address(self, purpose: Purpose, *ids: int) -> str:
        """Signer.sign_address: the same bytes, lowercase hex for an address's local part."""
        data = self._data(purpose, ids)
        mac = self._mac.copy()
        mac.update(data)
        return address_encode(data + mac.digest()[:MAC_BYTES])


def default_signer() -> Signer:
    from mailer.settings import get_settings

    return Signer(get_settings().signing_keys())
