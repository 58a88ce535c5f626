"""The DKIM signer (mailer/compose/dkim.py) against two independent verifiers, dkimpy and
OpenDKIM's `opendkim-testmsg`, on 1,000 generated messages of every shipped campaign.

The messages vary the way real runs do and the canonicalisation cares about: long subjects
folded into several RFC 2047 words, sender and recipient names with diacritics and quotes, the
event campaign's .ics attachment (multipart/mixed), empty bodies and bodies of hundreds of
kilobytes with runs of spaces, tabs and trailing whitespace, and keys rotated between two
selectors, some messages with a second Ed25519 signature. A few are raw messages signed by
`DkimSigner.sign` (repeated headers, empty body, body of blank lines). Every signature must
pass both verifiers; then changing any signed header, adding one, or changing one byte of the
body must fail both.
"""

from __future__ import annotations

import copy
import os
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dkim_verifiers import dkimpy_verify, opendkim_unavailable, opendkim_verify

from mailer import settings as mailer_settings
from mailer.compose.campaigns import load_blueprint
from mailer.compose.composer import Composer, Recipient
from mailer.compose.dkim import DKIM_HEADERS, ED25519, DkimKey, DkimSigner, generate_key, load_key
from mailer.compose.freeze import freeze
from mailer.settings import Settings

SLUGS = ["join-this-year-2026", "knihovny-soucasnosti-2027", "leadership-workshops-2027"]
MESSAGES = 1000
SEED = int(os.environ.get("DKIM_TEST_SEED", "20261129"))
DOMAIN = "sdruk.cz"

WORDS = [
    "Vážená",
    "paní",
    "ředitelko",
    "knihovny",
    "Žďár",
    "nad",
    "Sázavou",
    "Čáslav",
    "Ústí",
    "nad",
    "Labem",
    "příliš",
    "žluťoučký",
    "kůň",
    "úpěl",
    "ďábelské",
    "ódy",
    "konference",
    "workshop",
    "„Knihovny",
    "současnosti“",
    "—",
    "přihláška",
    "2027",
    "×",
    "½",
    "€",
    "✓",
]


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("dkim-keys")
    paths = {}
    for name, algorithm in (("k2026a", "rsa"), ("k2026b", "rsa"), ("ed2026", ED25519)):
        path = root / f"{name}.pem"
        path.write_bytes(generate_key(algorithm if algorithm == ED25519 else "rsa-sha256"))
        paths[name] = path
    loaded = {name: load_key(path, name, DOMAIN) for name, path in paths.items()}
    return {"paths": paths, "keys": loaded}


@pytest.fixture(autouse=True)
def compose_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SDRUK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("BASE_URL", "https://kampane.sdruk.test")
    for name in ("DKIM_SELECTOR", "DKIM_PRIVATE_KEY_FILE", "DKIM_ED25519_SELECTOR"):
        monkeypatch.delenv(name, raising=False)
    mailer_settings.get_settings.cache_clear()
    yield
    mailer_settings.get_settings.cache_clear()


def records(keys: dict[str, DkimKey]) -> dict[str, str]:
    return {key.dns_name: key.txt_record() for key in keys.values()}


def text(rng: random.Random, low: int, high: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def long_body(rng: random.Random, size: int) -> str:
    """Plain text with what relaxed canonicalisation rewrites: runs of spaces, tabs, trailing
    whitespace, blank lines (no Jinja or HTML syntax)."""
    lines = []
    total = 0
    while total < size:
        line = text(rng, 1, 30)
        if rng.random() < 0.3:
            line = line.replace(" ", " " * rng.randint(2, 9), rng.randint(1, 3))
        if rng.random() < 0.2:
            line = "\t" + line + rng.choice(["\t", "  ", " \t "])
        if rng.random() < 0.1:
            line = ""
        lines.append(line)
        total += len(line) + 1
    return "\n".join(lines)


def vary_content(content: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    content = copy.deepcopy(content)
    subject = rng.random()
    if subject < 0.4:
        # Folded into several encoded words, and different per recipient.
        content["subject"] = text(rng, 12, 40) + " {{ contact.first_name }}"
    elif subject < 0.5:
        content["subject"] = "Plain ASCII subject " + "x" * rng.randint(0, 120)
    if rng.random() < 0.5:
        content["from_name"] = rng.choice(
            ['Sdružení knihoven ČR "SDRUK"', "Ústřední knihovna – odd. ř", "O'Brien, Jana", "Žák"]
        )
    body = rng.random()
    if body < 0.15:
        content["html"] = ""
        content["text"] = ""
    elif body < 0.35:
        extra = long_body(rng, rng.choice([2_000, 60_000, 300_000]))
        content["text"] = content["text"] + "\n" + extra
        content["html"] = content["html"].replace(
            "</body>", "<pre>" + extra.replace("&", "&amp;").replace("<", "&lt;") + "</pre></body>"
        )
    return content


def person(rng: random.Random, index: int) -> Recipient:
    return Recipient(
        outbox_id=index + 1,
        email=f"ctenar.{index}@knihovna-{rng.randint(1, 999)}.example",
        first_name=rng.choice(["Jana", "Řehoř", "Žofie", "Ludmila  Anna", "Ø", "Jan"]),
        last_name=rng.choice(["Nováková", "Šťastný", "Dvořák", "O'Neil", "Ďurčová-Ňachová"]),
        role=rng.choice(["ředitelka", "knihovník", "", "vedoucí oddělení"]),
        gender=rng.choice(["f", "m", None]),
        library_name=text(rng, 2, 8),
        town=rng.choice(["Příbram", "Čáslav", "Ústí nad Labem"]),
    )


def settings_for(paths: dict[str, Path], selector: str, ed25519: bool) -> Settings:
    values: dict[str, Any] = {
        "SECRET_KEY": "test-secret-key",
        "BASE_URL": "https://kampane.sdruk.test",
        "DKIM_SELECTOR": selector,
        "DKIM_PRIVATE_KEY_FILE": str(paths[selector]),
    }
    if ed25519:
        values["DKIM_ED25519_SELECTOR"] = "ed2026"
        values["DKIM_ED25519_KEY_FILE"] = str(paths["ed2026"])
    return Settings(**values)


RAW_BODIES = [
    b"",
    b"\r\n",
    b"\r\n\r\n\r\n",
    b"one line without CRLF",
    b"trailing spaces   \r\n\ttabbed\tline\t\r\n\r\n\r\n",
    b"  leading and   inner   runs\r\n \r\n\t\r\nend",
    b"x" * 990 + b"\r\n" + b"y " * 400 + b"\r\n",
]


def raw_message(rng: random.Random, index: int) -> bytes:
    """A message not made by MessageShape: folded headers in any order, odd bodies. (RFC 5322
    allows no second To or Subject; OpenDKIM rejects such a message as a syntax error.)"""
    headers = [
        b"Received: from a.example by b.example; Sun, 29 Nov 2026 10:00:00 +0100",
        b"From: =?utf-8?b?xaBrb2xh?= <skola@sdruk.cz>",
        b"To: a@example.cz,\r\n\tb@example.cz",
        b"Received: from b.example by c.example; Sun, 29 Nov 2026 10:00:01 +0100",
        b"Subject:   folded\r\n   across\r\n\tthree lines  ",
        b"Date: Sun, 29 Nov 2026 10:00:00 +0100",
        f"Message-ID: <raw.{index}@sdruk.cz>".encode(),
        b"List-Unsubscribe: <https://kampane.sdruk.test/u/x>",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        b"MIME-Version: 1.0",
        b'Content-Type: text/plain; charset="utf-8"',
    ]
    rng.shuffle(headers)
    return b"\r\n".join(headers) + b"\r\n\r\n" + rng.choice(RAW_BODIES)


def single_signatures(message: bytes) -> list[bytes]:
    """The message once per DKIM-Signature, with the other signatures taken out (each
    signature is verified on its own; OpenDKIM reports one verdict per message)."""
    lines = message.split(b"\r\n")
    blocks: list[list[bytes]] = []
    rest = 0
    while lines[rest].startswith(b"DKIM-Signature:"):
        block = [lines[rest]]
        rest += 1
        while lines[rest][:1] in (b" ", b"\t"):
            block.append(lines[rest])
            rest += 1
        blocks.append(block)
    tail = lines[rest:]
    return [b"\r\n".join(block + tail) for block in blocks]


def generate(keys: dict[str, Any]) -> list[tuple[bytes, int]]:
    """(message, number of signatures it must carry)."""
    rng = random.Random(SEED)
    frozen = {slug: freeze(load_blueprint(slug)) for slug in SLUGS}
    out: list[tuple[bytes, int]] = []
    index = 0
    group = 0
    while len(out) < MESSAGES:
        if rng.random() < 0.05:
            # Rotation: the old and the new selector sign in turn, both published.
            key = keys["keys"]["k2026a" if group % 2 else "k2026b"]
            signer = DkimSigner([key] + ([keys["keys"]["ed2026"]] if rng.random() < 0.5 else []))
            out.append((signer.sign(raw_message(rng, index)), len(signer.keys)))
            index += 1
            continue
        slug = SLUGS[group % len(SLUGS)]
        selector = "k2026a" if group < 50 or group % 3 == 0 else "k2026b"
        ed25519 = group % 4 == 1
        composer = Composer(
            vary_content(frozen[slug], rng),
            run_id=group + 1,
            settings=settings_for(keys["paths"], selector, ed25519),
        )
        for _ in range(rng.randint(1, 15)):
            out.append((composer.message(person(rng, index)).data, 2 if ed25519 else 1))
            index += 1
        group += 1
    return out[:MESSAGES]


def tamper_header(message: bytes, name: bytes, rng: random.Random) -> bytes:
    """One character of the value of header `name` changed (a letter or digit, so that the
    change survives relaxed canonicalisation)."""
    match = re.search(rb"(?im)^" + re.escape(name) + rb":[^\r\n]*(?:\r\n[ \t][^\r\n]*)*", message)
    assert match is not None, name
    start, end = match.start() + len(name) + 1, match.end()
    candidates = [i for i in range(start, end) if chr(message[i]).isalnum()]
    pos = rng.choice(candidates)
    new = b"Q" if message[pos : pos + 1] != b"Q" else b"R"
    return message[:pos] + new + message[pos + 1 :]


def tamper_body(message: bytes, rng: random.Random) -> bytes | None:
    start = message.index(b"\r\n\r\n") + 4
    candidates = [i for i in range(start, len(message)) if chr(message[i]).isalnum()]
    if not candidates:
        return None
    pos = rng.choice(candidates)
    new = b"Q" if message[pos : pos + 1] != b"Q" else b"R"
    return message[:pos] + new + message[pos + 1 :]


def add_header(message: bytes, name: bytes) -> bytes:
    """A second instance of a signed header, added below the existing ones (where an
    attacker or a mailing list would put it, and where a verifier looks first)."""
    head, _, body = message.partition(b"\r\n\r\n")
    return head + b"\r\n" + name + b": injected@evil.example\r\n\r\n" + body


@pytest.fixture(scope="module")
def generated(keys: dict[str, Any]) -> list[tuple[bytes, int]]:
    return generate(keys)


def test_it_signs_what_dkimpy_and_opendkim_verify(
    keys: dict[str, Any], generated: list[tuple[bytes, int]]
) -> None:
    zone = records(keys["keys"])
    assert len(generated) == MESSAGES
    # The variety the issue asks for is really there.
    joined = [m for m, _ in generated]
    assert sum(b"multipart/mixed" in m for m in joined) > 100
    assert sum(m.count(b"=?utf-8?b?") > 4 for m in joined) > 100
    assert sum(len(m) > 200_000 for m in joined) > 5
    assert sum(b"a=ed25519-sha256" in m for m in joined) > 100
    assert {re.search(rb"s=(k2026[ab]);", m).group(1) for m in joined} == {b"k2026a", b"k2026b"}  # type: ignore[union-attr]

    for message, signatures in generated:
        assert message.count(b"DKIM-Signature:") == signatures
        assert dkimpy_verify(message, zone) == [True] * signatures, message[:2000]

    problem = opendkim_unavailable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    singles = [single for message, _ in generated for single in single_signatures(message)]
    verdicts = opendkim_verify(singles, zone)
    failed = [(v, s[:1500]) for v, s in zip(verdicts, singles, strict=True) if not v[0]]
    assert not failed, failed[:3]
    assert len(verdicts) > MESSAGES


def test_it_fails_both_verifiers_when_tampered(
    keys: dict[str, Any], generated: list[tuple[bytes, int]]
) -> None:
    zone = records(keys["keys"])
    rng = random.Random(SEED + 1)
    present_names = list(DKIM_HEADERS)
    tampered: list[bytes] = []
    for index in range(120):
        message = single_signatures(rng.choice(generated)[0])[0]
        if not message.startswith(b"DKIM-Signature: v=1; a=rsa"):
            continue
        name = present_names[index % len(present_names)]
        if re.search(rb"(?im)^" + re.escape(name) + rb":", message) is None:
            continue
        tampered.append(tamper_header(message, name, rng))
        tampered.append(add_header(message, name))
        body = tamper_body(message, rng)
        if body is not None:
            tampered.append(body)
    assert len(tampered) > 150
    for message in tampered:
        assert dkimpy_verify(message, zone) == [False], message[:3000]
    problem = opendkim_unavailable()
    if problem:
        if os.environ.get("CI"):
            pytest.fail(problem)
        pytest.skip(problem)
    verdicts = opendkim_verify(tampered, zone)
    passed = [m[:2000] for (ok, _), m in zip(verdicts, tampered, strict=True) if ok]
    assert not passed, passed[:2]
