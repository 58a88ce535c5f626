"""DKIM keys as a deployment configures them: a weak key is refused in Czech, a half or broken
configuration never sends unsigned mail, a rotation publishes both selectors and signs with
the new one, an Ed25519 key adds a second signature, and the TXT records are what verifiers
read."""

from __future__ import annotations

import base64
import binascii
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from dkim_verifiers import dkimpy_verify
from hypothesis import given
from hypothesis import settings as settings_h
from hypothesis import strategies as st

from mailer.compose.dkim import (
    ED25519,
    RSA,
    DkimKeyError,
    DkimSigner,
    configured_keys,
    generate_key,
    load_key,
    relaxed_body,
)
from mailer.compose.message import body_is_canonical, qp_encode, qp_value
from mailer.settings import Settings

MESSAGE = (
    b"From: =?utf-8?b?xaBrb2xh?= <skola@sdruk.cz>\r\nTo: a@example.cz\r\n"
    b"Subject: Test\r\nList-Unsubscribe: <https://x.test/u/1>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\nTelo  zpravy \r\n\r\n"
)


def settings(**values: Any) -> Settings:
    return Settings(SECRET_KEY="k", SENDER_DOMAIN="sdruk.cz", **values)


@pytest.fixture(scope="module")
def pems(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("pems")
    out = {}
    for name, pem in (
        ("new", generate_key(RSA)),
        ("old", generate_key(RSA)),
        ("ed", generate_key(ED25519)),
    ):
        out[name] = root / f"{name}.pem"
        out[name].write_bytes(pem)
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    out["weak"] = root / "weak.pem"
    out["weak"].write_bytes(
        weak.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    out["garbage"] = root / "garbage.pem"
    out["garbage"].write_text("toto není klíč")
    return out


def test_it_refuses_a_1024_bit_key_in_czech(pems: dict[str, Path]) -> None:
    with pytest.raises(DkimKeyError, match="má jen 1024 bitů"):
        load_key(pems["weak"], "s2026", "sdruk.cz")
    with pytest.raises(DkimKeyError, match="1024 bitů"):
        DkimSigner.from_settings(
            settings(DKIM_SELECTOR="s2026", DKIM_PRIVATE_KEY_FILE=str(pems["weak"]))
        )
    with pytest.raises(DkimKeyError, match="alespoň 2048"):
        generate_key(RSA, 1024)


def test_it_never_signs_silently_without_a_configured_key(pems: dict[str, Path]) -> None:
    assert DkimSigner.from_settings(settings()) is None
    cases = [
        ({"DKIM_SELECTOR": "s2026"}, "jen napůl"),
        ({"DKIM_SELECTOR": "s2026", "DKIM_PRIVATE_KEY_FILE": "/nonexistent/k.pem"}, "nelze"),
        ({"DKIM_SELECTOR": "s2026", "DKIM_PRIVATE_KEY_FILE": str(pems["garbage"])}, "PEM"),
        ({"DKIM_SELECTOR": "s 2026", "DKIM_PRIVATE_KEY_FILE": str(pems["new"])}, "Selektor"),
        ({"DKIM_SELECTOR": "s2026", "DKIM_PRIVATE_KEY_FILE": str(pems["ed"])}, "musí být"),
        ({"DKIM_ED25519_SELECTOR": "e", "DKIM_ED25519_KEY_FILE": str(pems["ed"])}, "nejdřív"),
    ]
    for values, message in cases:
        with pytest.raises(DkimKeyError, match=message):
            DkimSigner.from_settings(settings(**values))


def test_it_signs_with_the_new_selector_and_publishes_both(pems: dict[str, Path]) -> None:
    config = settings(
        DKIM_SELECTOR="s2027",
        DKIM_PRIVATE_KEY_FILE=str(pems["new"]),
        DKIM_PREVIOUS_KEYS=[f"s2026:{pems['old']}"],
        DKIM_ED25519_SELECTOR="e2027",
        DKIM_ED25519_KEY_FILE=str(pems["ed"]),
    )
    keys = configured_keys(config)
    assert [(k.selector, role) for k, role in keys] == [
        ("s2027", "current"),
        ("e2027", "ed25519"),
        ("s2026", "previous"),
    ]
    signer = DkimSigner.from_settings(config)
    assert signer is not None
    signed = signer.sign(MESSAGE)
    assert signed.count(b"DKIM-Signature:") == 2
    assert b"s=s2027;" in signed and b"s=e2027;" in signed and b"s=s2026;" not in signed
    zone = {k.dns_name: k.txt_record() for k, _ in keys}
    assert dkimpy_verify(signed, zone) == [True, True]
    # A message signed before the switch still verifies while the old record stays published.
    old = DkimSigner([load_key(pems["old"], "s2026", "sdruk.cz")]).sign(MESSAGE)
    assert dkimpy_verify(old, zone) == [True]
    del zone["s2026._domainkey.sdruk.cz"]
    assert dkimpy_verify(old, zone) == [False]


def test_its_txt_records_carry_the_public_keys(pems: dict[str, Path]) -> None:
    key = load_key(pems["new"], "s2027", "sdruk.cz")
    record = key.txt_record()
    assert record.startswith("v=DKIM1; k=rsa; p=")
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(pems["new"]), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    assert record.endswith(base64.b64encode(der).decode())
    ed = load_key(pems["ed"], "e2027", "sdruk.cz").txt_record()
    assert ed.startswith("v=DKIM1; k=ed25519; p=")
    assert len(base64.b64decode(ed.rpartition("p=")[2])) == 32  # RFC 8463: the raw key


def test_its_relaxed_body_matches_dkimpy() -> None:
    from dkim.canonicalization import Relaxed

    bodies = [
        b"",
        b"\r\n",
        b"\r\n\r\n",
        b"a",
        b"a \t b\t\r\n\r\n",
        b" \r\n\t\r\nx  \r\n",
        b"x" * 1000 + b"   " * 100 + b"\r\n",
        b"tail without newline   ",
    ]
    for body in bodies:
        # A body that does not end with CRLF gets one in SMTP; receivers verify that.
        sent = body if not body or body.endswith(b"\r\n") else body + b"\r\n"
        assert relaxed_body(body) == Relaxed.canonicalize_body(sent), body


@settings_h(max_examples=400, deadline=None)
@given(st.text(alphabet=st.sampled_from(list(" \t.\nabcčř=-<>x")), max_size=400))
def test_its_encoded_parts_are_already_canonical(value: str) -> None:
    """Quoted-printable parts carry no whitespace run, tab or line-end whitespace, so the
    signer may hash them as they are; they still decode to the same text, lines ≤ 76."""
    encoded = qp_encode(value)
    assert body_is_canonical(encoded)
    assert all(len(line) <= 76 for line in encoded.split(b"\r\n"))
    assert not any(line.startswith(b".") for line in encoded.split(b"\r\n"))
    assert binascii.a2b_qp(encoded).decode().replace("\r\n", "\n") == value
    filled = qp_value(value).encode("ascii")
    assert body_is_canonical(filled)
