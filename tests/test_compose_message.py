"""Messages of the shipped campaigns, parsed back with the standard library: structure, every
header, escaping, header injection, tracked links, the .ics and DKIM."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import shutil
import subprocess
from collections.abc import Iterator
from email.message import EmailMessage
from email.utils import parseaddr, parsedate_to_datetime
from pathlib import Path
from typing import Any

import pytest

from mailer import settings as mailer_settings
from mailer.compose.campaigns import load_blueprint
from mailer.compose.composer import Composer, Recipient
from mailer.compose.freeze import freeze
from mailer.compose.message import InvalidRecipient, qp_encode
from mailer.tokens import Purpose, Signer

BASE_URL = "https://kampane.sdruk.test"
SLUGS = ["join-this-year-2026", "knihovny-soucasnosti-2027", "leadership-workshops-2027"]


@pytest.fixture(autouse=True)
def compose_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SDRUK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("BASE_URL", BASE_URL)
    monkeypatch.delenv("DKIM_SELECTOR", raising=False)
    monkeypatch.delenv("DKIM_PRIVATE_KEY_FILE", raising=False)
    mailer_settings.get_settings.cache_clear()
    yield
    mailer_settings.get_settings.cache_clear()


def recipient(**overrides: Any) -> Recipient:
    values: dict[str, Any] = {
        "outbox_id": 4242,
        "email": "jana.novakova@knihovna-pribram.example",
        "contact_id": 17,
        "first_name": "Jana",
        "last_name": "Nováková",
        "role": "ředitelka",
        "gender": "f",
        "legal_basis": "legitimate_interest",
        "library_name": "Knihovna Jana Drdy Příbram",
        "library_type": "mestska",
        "region": "Středočeský kraj",
        "town": "Příbram",
    }
    values.update(overrides)
    return Recipient(**values)


def composer(slug: str, step: str = "launch", run_id: int = 31) -> Composer:
    return Composer(freeze(load_blueprint(slug), step), run_id)


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def signer() -> Signer:
    return Signer([b"test-secret-key"])


@pytest.mark.parametrize("slug", SLUGS)
def test_it_builds_a_standard_message_with_every_header(slug: str) -> None:
    comp = composer(slug)
    out = comp.message(recipient())
    data = out.data
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF only
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    msg = parse(data)
    assert not msg.defects

    assert msg["To"] == "jana.novakova@knihovna-pribram.example"
    assert len(msg.get_all("To")) == 1
    assert out.to == "jana.novakova@knihovna-pribram.example"
    name, address = parseaddr(str(msg["From"]))
    assert (name, address) == ("Sdružení knihoven ČR", "sdruk@sdruk.cz")
    assert b"From: =?utf-8?" in data  # the display name is RFC 2047 encoded
    assert msg["Reply-To"] == "sdruk@sdruk.cz"
    assert msg["Subject"] == comp.subject(recipient())
    assert msg["Subject"].strip()
    assert parsedate_to_datetime(str(msg["Date"])).tzinfo is not None
    assert re.fullmatch(r"<[^@<>]+@sdruk\.cz>", str(msg["Message-ID"]))
    assert msg["MIME-Version"] == "1.0"
    assert msg["Precedence"] == "bulk"
    assert msg["List-Id"].endswith(f"<{slug}.kampane.sdruk.cz>")
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    feedback = str(msg["Feedback-ID"])
    assert feedback == f"{slug}:launch:{load_blueprint(slug).kind}:sdruk"
    assert "4242" not in feedback and "jana" not in feedback

    https, mailto = re.findall(r"<([^>]+)>", str(msg["List-Unsubscribe"]))
    assert https.startswith(f"{BASE_URL}/u/")
    assert signer().verify(Purpose.UNSUBSCRIBE, https.rsplit("/", 1)[1]) == (4242,)
    local, domain = mailto.removeprefix("mailto:").split("@")
    assert domain == "bounces.sdruk.cz"
    token = local.removeprefix("unsubscribe+")
    assert signer().verify_address(Purpose.UNSUBSCRIBE, token) == (4242,)
    assert token == token.lower()

    local, domain = out.envelope_from.split("@")
    assert domain == "bounces.sdruk.cz"
    assert signer().verify_address(Purpose.RETURN_PATH, local.removeprefix("bounce+")) == (4242,)
    assert local == local.lower()


@pytest.mark.parametrize("slug", SLUGS)
def test_it_puts_text_then_html_in_an_alternative_part(slug: str) -> None:
    comp = composer(slug)
    msg = parse(comp.message(recipient()).data)
    alternative = msg if msg.get_content_type() == "multipart/alternative" else None
    if load_blueprint(slug).event is not None:
        assert msg.get_content_type() == "multipart/mixed"
        alternative = msg.get_payload()[0]
    assert alternative is not None
    assert alternative.get_content_type() == "multipart/alternative"
    text, html = alternative.get_payload()
    assert text.get_content_type() == "text/plain"
    assert html.get_content_type() == "text/html"
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert html["Content-Transfer-Encoding"] in ("quoted-printable", "base64")
    assert text.get_content_charset() == "utf-8"
    plain = text.get_content().replace("\r\n", "\n")
    assert plain == comp.text(recipient())
    assert "Vážená paní ředitelko," in plain
    assert "Odhlásit odběr" in plain and f"{BASE_URL}/u/" in plain
    page = html.get_content().replace("\r\n", "\n")
    assert page == comp.html(recipient())
    assert "Vážená paní ředitelko," in page
    # The footer: sender identity (name, IČO, seat), why, and a visible unsubscribe link.
    assert "Sdružení knihoven ČR, IČO" in page and "se sídlem" in page
    assert "Proč vám píšeme" in page
    assert re.search(rf'<a href="{re.escape(BASE_URL)}/u/[^"]+">Odhlásit odběr</a>', page)
    assert f"{BASE_URL}/p/" in page


def test_it_keeps_quoted_printable_lines_within_76_characters() -> None:
    data = composer("join-this-year-2026").message(recipient()).data
    body = data.split(b"\r\n\r\n", 1)[1]
    longest = max(len(line) for line in body.split(b"\r\n"))
    assert longest <= 76
    chunk = "Příliš žluťoučký kůň úpěl ďábelské ódy " * 40 + "konec "
    encoded = qp_encode(chunk)
    lines = encoded.split(b"\r\n")
    assert max(len(line) for line in lines) <= 76
    assert len(lines[-1]) <= 75  # room for the soft break that joins the next chunk
    import quopri

    assert quopri.decodestring(encoded.replace(b"\r\n", b"\n")).decode() == chunk


def test_it_escapes_markup_in_contact_values() -> None:
    comp = composer("join-this-year-2026")
    evil = recipient(
        first_name="<script>alert(1)</script>",
        last_name="<script>",
        library_name='Knihovna <script>alert("x")</script> & spol.',
    )
    msg = parse(comp.message(evil).data)
    html = msg.get_body(("html",))
    assert html is not None
    page = html.get_content()
    assert "<script" not in page
    assert "&lt;script&gt;" in page
    assert "&amp; spol." in page
    web = comp.web_html(evil)
    assert "<script" not in web


def test_it_neutralises_cr_and_lf_in_contact_values() -> None:
    comp = composer("knihovny-soucasnosti-2027")
    evil = recipient(
        first_name="Jana\r\nBcc: victim@example.org",
        last_name="Nováková\nX-Injected: yes",
        role="ředitelka\r\n\r\n<b>body</b>",
        library_name="Knihovna\r\nSubject: fake",
        salutation_override=None,
    )
    data = comp.message(evil).data
    msg = parse(data)
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    assert len(msg.get_all("Subject")) == 1
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"Bcc" not in head and b"X-Injected" not in head

    # A subject made from contact values stays one header line.
    content = freeze(load_blueprint("join-this-year-2026"))
    content["subject"] = "Pro {{ contact.first_name }} z {{ library.name }}"
    per_contact = Composer(content, 5)
    msg = parse(per_contact.message(evil).data)
    assert msg["Bcc"] is None and msg["X-Injected"] is None
    assert len(msg.get_all("Subject")) == 1
    assert "\n" not in str(msg["Subject"]) and "\r" not in str(msg["Subject"])
    assert str(msg["Subject"]).startswith("Pro Jana Bcc: victim@example.org z Knihovna")

    with pytest.raises(InvalidRecipient):
        per_contact.message(recipient(email="jana@knihovna.example\r\nBcc: x@example.org"))


def test_it_uses_a_per_contact_salutation_override() -> None:
    comp = composer("join-this-year-2026")
    text = comp.text(recipient(salutation_override="Milá Jano,"))
    assert "Milá Jano," in text
    assert "Vážená paní ředitelko" not in text


def test_it_tracks_links_per_recipient_with_signed_click_tokens() -> None:
    content = freeze(load_blueprint("knihovny-soucasnosti-2027"))
    links = content["links"]
    assert "https://www.sdruk.cz" in links
    # The registration button opens the product's own page pre-filled, not a tracked external
    # link: registering there is what counts, not the click.
    assert content["registration_link"] is None
    comp = Composer(content, 31)
    html = comp.html(recipient())
    clicks = re.findall(rf'href="{re.escape(BASE_URL)}/c/([^"/]+)/([0-9]+)"', html)
    assert clicks
    # One token names the recipient's message; the index beside it names the link.
    assert {signer().verify(Purpose.MESSAGE_CLICK, token) for token, _ in clicks} == {(4242,)}
    indexes = {int(index) for _, index in clicks}
    assert indexes <= set(range(len(links)))
    assert links.index("https://www.sdruk.cz") in indexes
    assert len(clicks) == html.count(f'href="{BASE_URL}/c/')  # every tracked link has the shape
    assert 'href="https://www.sdruk.cz"' not in html  # only via the tracker
    register = re.search(
        rf'href="{re.escape(BASE_URL)}/registrace/knihovny-soucasnosti-2027/([^"]+)"', html
    )
    assert register and signer().verify(Purpose.REGISTER, register.group(1)) == (4242,)
    pixel = re.search(rf'<img src="{re.escape(BASE_URL)}/o/([^"]+)\.gif"', html)
    assert pixel and signer().verify(Purpose.OPEN, pixel.group(1)) == (4242,)
    web = comp.web_html(recipient())
    assert "/o/" not in web  # the web version does not count as an open
    version = re.search(rf"{re.escape(BASE_URL)}/v/([^\"<\s]+)", html)
    assert version and signer().verify(Purpose.WEB_VERSION, version.group(1)) == (4242,)


def test_it_counts_anonymously_or_not_at_all_as_the_blueprint_says() -> None:
    content = freeze(load_blueprint("join-this-year-2026"))
    assert content["tracking"] == "anonymous"
    html = Composer(content, 77).html(recipient())
    tokens = re.findall(rf'href="{re.escape(BASE_URL)}/c/([^"]+)"', html)
    assert tokens and all(signer().verify(Purpose.CLICK_ANONYMOUS, t)[0] == 77 for t in tokens)
    pixel = re.search(r"/o/([^\"]+)\.gif", html)
    assert pixel and signer().verify(Purpose.OPEN_ANONYMOUS, pixel.group(1)) == (77,)

    content["tracking"] = "off"
    content["html"] = content["html"].replace("{% if _o %}", "{% if false %}")
    html = Composer(content, 77).html(recipient())
    assert "/c/" not in html and "/o/" not in html
    assert 'href="https://www.sdruk.cz"' in html


def test_it_links_the_membership_form_prefilled_for_the_recipient() -> None:
    content = freeze(load_blueprint("join-this-year-2026"))
    html = Composer(content, 77).html(recipient())
    tokens = set(re.findall(rf'href="{re.escape(BASE_URL)}/chceme-byt-clenem/([^"]+)"', html))
    assert len(tokens) == 1
    assert signer().verify(Purpose.APPLY, tokens.pop()) == (4242,)
    # The web version, for no particular recipient, links the empty form.
    web = Composer(content, 77).web_html(None)
    assert f'href="{BASE_URL}/chceme-byt-clenem"' in web


def test_it_freezes_into_json_and_composes_from_the_json() -> None:
    import json

    content = freeze(load_blueprint("leadership-workshops-2027"), "tyden-pred")
    again = json.loads(json.dumps(content))
    assert again == content
    comp = Composer(again, 3)
    text = comp.text(recipient())
    assert "11. února 2027" in text and "14. října 2027" in text
    assert "za týden začíná" in text
    assert str(parse(comp.message(recipient()).data)["Subject"]).startswith("Za týden")


def test_it_attaches_an_ics_that_parses() -> None:
    import icalendar

    msg = parse(composer("leadership-workshops-2027").message(recipient()).data)
    attachments = list(msg.iter_attachments())
    ics = [a for a in attachments if a.get_content_type() == "text/calendar"]
    assert len(ics) == 1
    assert ics[0].get_filename() == "pozvanka.ics"
    calendar = icalendar.Calendar.from_ical(ics[0].get_content())
    assert calendar["METHOD"] == "PUBLISH"
    events = calendar.walk("VEVENT")
    assert len(events) == 6
    first = events[0]
    assert str(first["SUMMARY"]).startswith("Workshopy leadershipu 2027: ")
    start = first.decoded("DTSTART")
    assert start.isoformat() == "2027-02-11T09:30:00+01:00"
    assert "Praha" in str(first["LOCATION"])
    assert len({str(e["UID"]) for e in events}) == 6

    conference = parse(composer("knihovny-soucasnosti-2027").message(recipient()).data)
    (att,) = [a for a in conference.iter_attachments() if a.get_content_type() == "text/calendar"]
    (event,) = icalendar.Calendar.from_ical(att.get_content()).walk("VEVENT")
    assert event.decoded("DTSTART").isoformat() == "2027-09-15T09:00:00+02:00"
    assert str(event["STATUS"]) == "TENTATIVE"  # date still to be confirmed

    join = parse(composer("join-this-year-2026").message(recipient()).data)
    assert not list(join.iter_attachments())


def _openssl_key(tmp_path: Path, bits: int = 2048) -> tuple[Path, str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed (needed to generate a DKIM test key)")
    key = tmp_path / f"dkim{bits}.pem"
    subprocess.run(
        ["openssl", "genrsa", "-out", str(key), str(bits)], check=True, capture_output=True
    )
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    return key, base64.b64encode(der).decode()


def test_it_signs_with_dkim_covering_list_unsubscribe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dkim

    key, public = _openssl_key(tmp_path)
    monkeypatch.setenv("DKIM_SELECTOR", "kampane2026")
    monkeypatch.setenv("DKIM_PRIVATE_KEY_FILE", str(key))
    mailer_settings.get_settings.cache_clear()
    data = composer("knihovny-soucasnosti-2027").message(recipient()).data
    assert data.startswith(b"DKIM-Signature:")
    asked: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        asked.append(name)
        return f"v=DKIM1; k=rsa; p={public}".encode()

    assert dkim.verify(data, dnsfunc=dns)
    assert asked == [b"kampane2026._domainkey.sdruk.cz."]
    signature = parse(data)["DKIM-Signature"]
    signed = re.search(r"h=([^;]+)", str(signature).replace(" ", "").replace("\n", ""))
    assert signed is not None
    names = signed.group(1).lower().split(":")
    assert "list-unsubscribe" in names and "list-unsubscribe-post" in names
    assert "from" in names and "subject" in names
    # A changed List-Unsubscribe breaks the signature.
    tampered = data.replace(b"List-Unsubscribe: <https://", b"List-Unsubscribe: <http://", 1)
    assert not dkim.verify(tampered, dnsfunc=dns)


def test_it_does_not_sign_without_a_key() -> None:
    data = composer("join-this-year-2026").message(recipient()).data
    assert b"DKIM-Signature" not in data


def test_it_makes_the_same_tokens_as_the_signer() -> None:
    from mailer.tokens import TokenMaker

    maker = TokenMaker(b"test-secret-key")
    reference = signer()
    for outbox_id in (0, 1, 127, 128, 16_383, 16_384, 2_097_152, 10**9):
        assert maker.sign(Purpose.UNSUBSCRIBE, outbox_id) == reference.sign(
            Purpose.UNSUBSCRIBE, outbox_id
        )
        assert maker.sign_address(Purpose.RETURN_PATH, outbox_id) == reference.sign_address(
            Purpose.RETURN_PATH, outbox_id
        )
        for index in (0, 127, 128, 129):
            token = maker.sign(Purpose.CLICK, outbox_id, index)
            assert token == reference.sign(Purpose.CLICK, outbox_id, index)
            assert reference.verify(Purpose.CLICK, token) == (outbox_id, index)


def test_it_falls_back_to_chunk_encoding_for_templates_it_cannot_pre_encode() -> None:
    content = freeze(load_blueprint("join-this-year-2026"))
    content["html"] = content["html"].replace("<body", "{%- if true %}<body", 1)
    content["html"] = content["html"].replace("</body>", "</body>{% endif -%}", 1)
    comp = Composer(content, 8)
    msg = parse(comp.message(recipient()).data)
    assert comp._html_enc is None  # whitespace control: the pre-encoded route is not used
    html = msg.get_body(("html",))
    assert html is not None
    assert html.get_content().replace("\r\n", "\n") == comp.html(recipient())
    text = msg.get_body(("plain",))
    assert text is not None
    assert text.get_content().replace("\r\n", "\n") == comp.text(recipient())
    assert max(len(line) for line in msg.as_bytes().split(b"\n")) <= 998


def test_it_makes_bodies_dot_safe_without_changing_what_they_say() -> None:
    # Dots at the start of template lines, of soft-wrapped lines, and of filled-in values: SMTP
    # would end DATA at a lone "." line, so compose writes each line-leading dot as =2E.
    content = freeze(load_blueprint("join-this-year-2026"))
    dotted = "\n.tečka na začátku\n.\n..dvě\n" + "x" * 74 + ".za zlomem\n"
    content["text"] = "{{ contact.first_name }}" + dotted + content["text"]
    content["html"] = content["html"].replace("<body", "<body>{{ contact.last_name }}" + dotted, 1)
    comp = Composer(content, 9)
    for first, last in [(".Jana", ".Nováková"), (".", "." * 90), ("Jana", "Nováková")]:
        out = comp.message(recipient(first_name=first, last_name=last))
        assert out.dot_safe
        assert not out.data.startswith(b".") and b"\n." not in out.data
        body = out.data.split(b"\r\n\r\n", 1)[1]
        assert max(len(line) for line in body.split(b"\r\n")) <= 76
        msg = parse(out.data)
        text = msg.get_body(("plain",))
        html = msg.get_body(("html",))
        assert text is not None and html is not None
        assert text.get_content().replace("\r\n", "\n") == comp.text(
            recipient(first_name=first, last_name=last)
        )
        assert html.get_content().replace("\r\n", "\n") == comp.html(
            recipient(first_name=first, last_name=last)
        )
    # The encoder itself, on dots at every position a line can start.
    import quopri

    for chunk in [".", "..", ".a\n.b", "a" * 75 + "." * 200, "ž" * 30 + ".\n" + "." * 80]:
        encoded = qp_encode(chunk)
        assert not encoded.startswith(b".") and b"\n." not in encoded
        lines = encoded.split(b"\r\n")
        assert max(len(line) for line in lines) <= 76 and len(lines[-1]) <= 75
        assert quopri.decodestring(encoded.replace(b"\r\n", b"\n")).decode() == chunk


@pytest.mark.parametrize(
    "base_url",
    [
        BASE_URL,  # links pass through the encoder untouched
        "https://kampane.sdruk.test/a=b&c",  # "=" and "&" must be encoded and escaped
        "https://" + "k" * 60 + ".test",  # too long to fit a quoted-printable line whole
    ],
)
def test_it_writes_tracked_links_exactly_whatever_the_base_url(
    base_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BASE_URL", base_url)
    mailer_settings.get_settings.cache_clear()
    comp = composer("knihovny-soucasnosti-2027")
    person = recipient()
    msg = parse(comp.message(person).data)
    html = msg.get_body(("html",))
    text = msg.get_body(("plain",))
    assert html is not None and text is not None
    assert html.get_content().replace("\r\n", "\n") == comp.html(person)
    assert text.get_content().replace("\r\n", "\n") == comp.text(person)
    escaped = base_url.replace("&", "&amp;")
    assert f'href="{escaped}/c/' in html.get_content()
    assert f"{base_url}/u/" in text.get_content()
    for part in (html, text):
        encoded = part.get_payload(decode=False)
        assert max(len(line) for line in encoded.splitlines()) <= 76


def test_it_gives_each_run_its_own_message_ids_that_a_retry_keeps() -> None:
    """Two databases both have a run 1 with an outbox row 4242 (ids restart in a fresh
    database): their Message-IDs must differ, or a mailbox drops the second as a duplicate.
    A retry of the same row carries the same Message-ID, so a duplicate can be collapsed."""
    blueprint = load_blueprint("join-this-year-2026")
    first, second = freeze(blueprint), freeze(blueprint)

    def message_id(content: dict[str, Any]) -> str:
        data = Composer(content, 1).message(recipient()).data
        return str(parse(data)["Message-ID"])

    assert message_id(first) != message_id(second)
    assert message_id(first) == message_id(first)
    assert re.fullmatch(r"<sdruk\.1\.4242\.[0-9a-f]{12}@sdruk\.cz>", message_id(first))
