"""MIME message bytes for one run: fixed parts encoded once, per-recipient parts filled in.

The stdlib `EmailMessage` route costs milliseconds a message; here every header and part that
is the same for all recipients is encoded once per run (`MessageShape`), and per recipient only
the filled body chunks and a few headers are encoded. Output is CRLF, no line over 78
characters, quoted-printable bodies, RFC 2047 headers; parse it with `email` to check.
Bodies are also dot-safe (no line starts with "."; quoted-printable writes such a dot as =2E),
so the SMTP transport can skip the per-message dot-stuffing scan (`OutgoingMessage.dot_safe`).
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime

from mailer.compose.czech import PRAGUE
from mailer.compose.dkim import DKIM_HEADERS, DkimSigner

__all__ = ["DKIM_HEADERS", "DkimSigner", "MessageShape"]

CRLF = b"\r\n"
SOFT_BREAK = b"=\r\n"
SAFE_QP_LINE = 75  # a soft break "=" may follow, and RFC 2045 allows 76


class InvalidRecipient(ValueError):
    """An address that cannot be put in a header as it is (whitespace, control characters)."""


def qp_encode(text: str) -> bytes:
    """Quoted-printable (RFC 2045) of a text chunk, CRLF line ends, last line ≤ 75 characters so
    that chunks can be joined with soft line breaks."""
    data = text.encode("utf-8")
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    encoded = binascii.b2a_qp(data, quotetabs=False, istext=True, header=False)
    last = encoded.rfind(b"\n") + 1
    if len(encoded) - last > SAFE_QP_LINE:
        # Break the final line early, never inside an "=XX" escape.
        cut = last + SAFE_QP_LINE - 2
        escape = encoded.rfind(b"=", cut - 2, cut)
        if escape != -1:
            cut = escape
        encoded = encoded[:cut] + b"=\n" + encoded[cut:]
    return escape_leading_dots(encoded).replace(b"\n", b"\r\n")


def escape_leading_dots(encoded: bytes) -> bytes:
    """Quoted-printable (LF line ends) with every line-leading "." written as "=2E", and no run
    of whitespace: a tab is written "=09", and every space after the first of a run "=20".

    Why the dots: SMTP ends DATA at a line holding only ".", so a transport must double every
    line-leading dot, which costs a scan of each ~50 KB message. Encoded here instead, once per
    template chunk or distinct value, every body is dot-safe by construction; binascii only
    encodes a dot that is alone on its line.
    Why the whitespace: DKIM's relaxed body canonicalisation folds whitespace runs into one
    space, which costs a scan and a rewrite of every signed body. Without runs (and
    quoted-printable never ends a line with whitespace) the body is already canonical, so the
    signer hashes it as it is (`body_is_canonical`). Receivers decode the same text.
    A line that grows past the limit is re-wrapped with soft breaks, and every line it produces
    stays at most 75 characters (so a soft break may still follow the last one)."""
    if not (encoded.startswith(b".") or b"\n." in encoded or b"  " in encoded or b"\t" in encoded):
        return encoded
    lines = encoded.split(b"\n")
    out: list[bytes] = []
    for line in lines:
        if b"  " in line or b"\t" in line:
            line = _WSP_RUN.sub(_spread_run, line.replace(b"\t", b"=09"))
            out.extend(_rewrap_dotted(line))
        elif line.startswith(b"."):
            out.extend(_rewrap_dotted(line))
        else:
            out.append(line)
    return b"\n".join(out)


_WSP_RUN = re.compile(rb"  +")


def _spread_run(match: re.Match[bytes]) -> bytes:
    return b" " + b"=20" * (len(match.group()) - 1)


def body_is_canonical(body: bytes) -> bool:
    """True when DKIM's relaxed canonicalisation leaves `body` unchanged but for its end (what
    `escape_leading_dots` guarantees for encoded parts; checked once per run)."""
    return b"\t" not in body and b"  " not in body and b" \r\n" not in body


def _rewrap_dotted(line: bytes) -> list[bytes]:
    soft = line.endswith(b"=")
    body = line[:-1] if soft else line
    pieces: list[bytes] = []
    current = b""
    i = 0
    while i < len(body):
        # An "=XX" escape is one unit: never split it across lines.
        size = 3 if body[i] == 0x3D else 1
        token = body[i : i + size]
        i += size
        if current and len(current) + len(token) > SAFE_QP_LINE:
            pieces.append(current + b"=")
            current = b""
        if not current and token == b".":
            token = b"=2E"
        current += token
    pieces.append(current + (b"=" if soft else b""))
    return pieces


def _qp_fast(text: str) -> bytes:
    # Most per-recipient values are short ASCII (links, tokens): quoted-printable leaves
    # them as they are, so skip the encoder.
    if (
        len(text) <= SAFE_QP_LINE
        and text.isascii()
        and text.isprintable()
        and "=" not in text
        and not text.endswith(" ")
        and not text.startswith(".")  # it starts a line: see escape_leading_dots
        and "  " not in text  # whitespace runs: see escape_leading_dots
        and "\t" not in text
    ):
        return text.encode("ascii")
    return qp_encode(text)


_QP_VALUES: dict[str, str] = {}


def qp_value(text: str) -> str:
    """A filled-in value, quoted-printable, followed by a soft break (see `qp_template`)."""
    if not text:
        return ""
    if (
        len(text) <= SAFE_QP_LINE
        and text.isascii()
        and text.isprintable()
        and "=" not in text
        and text[-1] != " "
        and text[0] != "."  # a value starts a line: see escape_leading_dots
        and "  " not in text  # whitespace runs: see escape_leading_dots
        and "\t" not in text
    ):
        return text + "=\r\n"  # links and tokens: quoted-printable leaves them as they are
    encoded = _QP_VALUES.get(text)
    if encoded is None:
        # Names, salutations and campaign values repeat across recipients: remember some.
        encoded = qp_encode(text).decode("ascii") + "=\r\n"
        if len(_QP_VALUES) < 20_000:
            _QP_VALUES[text] = encoded
    return encoded


_JINJA_TAG_RE = re.compile(r"(\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\})", re.S)
_UNSUPPORTED_RE = re.compile(r"\{[{%#]-|-[}%#]\}|\{%-?\s*raw\b")


def qp_template(source: str) -> str | None:
    """The template with its literal text already quoted-printable: each text run encoded once
    and ended by a soft line break. Rendered with an environment whose `finalize` is
    `qp_value` (after HTML escaping for HTML), its output *is* the encoded body: per recipient
    only the values are encoded. None for templates using whitespace control or raw blocks,
    which would change the encoded text."""
    if _UNSUPPORTED_RE.search(source):
        return None
    parts = _JINJA_TAG_RE.split(source)
    out = []
    for index, part in enumerate(parts):
        if index % 2:
            out.append(part)
        elif part:
            out.append(qp_encode(part).decode("ascii") + "=\r\n")
    return "".join(out)


def finish_qp(rendered: str) -> bytes:
    """A rendered `qp_template` as body bytes (without the final soft break)."""
    if rendered.endswith("=\r\n"):
        rendered = rendered[:-3]
    return rendered.encode("ascii")


class QPChunks:
    """Encodes a stream of template output chunks. The template's constant text (`constants`,
    the very string objects the compiled template yields) is encoded once; values in between
    are joined and encoded per render."""

    __slots__ = ("_cache",)

    def __init__(self, constants: Iterable[str] = ()) -> None:
        self._cache: dict[str, bytes] = {c: qp_encode(c) for c in constants if c}

    def encode(self, chunks: Iterable[str]) -> bytes:
        cache = self._cache
        get = cache.get
        out: list[bytes] = []
        append = out.append
        pending: list[str] = []
        for chunk in chunks:
            encoded = get(chunk)
            if encoded is None:
                pending.append(chunk)
            else:
                if pending:
                    value = "".join(pending)
                    if value:
                        append(_qp_fast(value))
                    pending.clear()
                append(encoded)
        if pending:
            value = "".join(pending)
            if value:
                append(_qp_fast(value))
        return SOFT_BREAK.join(out)


def clean_header_text(value: str) -> str:
    """Header text on one line: CR, LF and other control characters become spaces, so a value
    can never start a new header."""
    if value.isprintable():
        return value.strip()
    return " ".join("".join(c if c.isprintable() else " " for c in value).split())


def encode_header_text(value: str, name: str = "Subject") -> bytes:
    """Unstructured header text: as is when short plain ASCII, else RFC 2047 "B" encoded-words
    of whole characters, folded onto continuation lines (email.header takes ~0.5 ms)."""
    value = clean_header_text(value)
    if value.isascii() and len(value) + len(name) < 76 and "=?" not in value:
        return value.encode("ascii")
    data = value.encode("utf-8")
    words: list[bytes] = []
    start = 0
    while start < len(data):
        # 39 bytes become 52 base64 characters, a 64-character word ("Subject: " fits too);
        # never split a character: step back over UTF-8 continuation bytes.
        end = min(start + 39, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        words.append(b"=?utf-8?b?" + base64.b64encode(data[start:end]) + b"?=")
        start = end
    return b"\r\n ".join(words)


def encode_address(display_name: str, address: str, name: str = "From") -> bytes:
    """`Display Name <addr>` with the name RFC 2047 encoded when needed."""
    address = check_address(address)
    display = clean_header_text(display_name)
    if not display:
        return address.encode("ascii")
    if display.isascii():
        quoted = display.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{quoted}" <{address}>'.encode("ascii")
    words = Header(display, "utf-8", header_name=name).encode(linesep="\r\n")
    return f"{words} <{address}>".encode("ascii")


def check_address(address: str) -> str:
    """The address, if it is one token of printable ASCII with an @; else InvalidRecipient."""
    if (
        not address
        or not address.isascii()
        or not address.isprintable()
        or any(c in address for c in ' <>,;"\\')
        or address.count("@") != 1
    ):
        raise InvalidRecipient(f"adresa nejde použít v hlavičce: {address!r}")
    return address


def new_boundary() -> str:
    # "=_" can never occur in quoted-printable or base64 text, so no body can end a part.
    return f"=_sdruk_{secrets.token_hex(12)}"


def base64_lines(data: bytes) -> bytes:
    """Base64 in 76-character CRLF lines (used once per run, for attachments)."""
    return base64.encodebytes(data).replace(b"\n", b"\r\n")


class DateHeader:
    """The Date header value, formatted at most once a second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = b""

    def now(self) -> bytes:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._value = format_datetime(datetime.fromtimestamp(second, PRAGUE)).encode()
        return self._value


@dataclass(frozen=True)
class Attachment:
    content_type: str  # with parameters, e.g. 'text/calendar; charset="utf-8"; method=PUBLISH'
    filename: str
    data: bytes


# The headers `MessageShape.build` writes per message, in order.
_VARYING = (b"To", b"Subject", b"Date", b"Message-ID", b"List-Unsubscribe")
# Mail a person asked for (transactional) has no List-Unsubscribe.
_VARYING_TRANSACTIONAL = _VARYING[:-1]


class MessageShape:
    """The parts of a run's messages that do not change per recipient, already encoded.

    `fixed_headers` are written after the per-recipient ones; `build()` adds To, Subject, Date,
    Message-ID, List-Unsubscribe and the two filled bodies."""

    def __init__(
        self,
        *,
        from_name: str,
        from_email: str,
        reply_to: str,
        list_id: bytes,
        feedback_id: str,
        attachments: Sequence[Attachment] = (),
        dkim: DkimSigner | None = None,
        transactional: bool = False,
    ) -> None:
        self.dkim = dkim
        self.date = DateHeader()
        self.transactional = transactional
        alt = new_boundary()
        headers = [
            (b"From", encode_address(from_name, from_email)),
            (b"Reply-To", encode_address("", reply_to or from_email, "Reply-To")),
        ]
        if transactional:
            # Mail the person asked for (a confirmation, a welcome): not a list, so no List-*
            # headers and no bulk precedence.
            headers.append((b"Feedback-ID", clean_header_text(feedback_id).encode("ascii")))
        else:
            headers += [
                (b"List-Id", list_id),
                (b"List-Unsubscribe-Post", b"List-Unsubscribe=One-Click"),
                (b"Feedback-ID", clean_header_text(feedback_id).encode("ascii")),
                (b"Precedence", b"bulk"),
            ]
        headers.append((b"MIME-Version", b"1.0"))
        text_head = (
            b'Content-Type: text/plain; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        html_head = (
            b'Content-Type: text/html; charset="utf-8"\r\n'
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        )
        delim = b"--" + alt.encode()
        self._before_text = delim + CRLF + text_head
        self._before_html = CRLF + delim + CRLF + html_head
        if attachments:
            mixed = new_boundary()
            mdelim = b"--" + mixed.encode()
            headers.append((b"Content-Type", f'multipart/mixed; boundary="{mixed}"'.encode()))
            self._before_text = (
                mdelim
                + CRLF
                + f'Content-Type: multipart/alternative; boundary="{alt}"'.encode()
                + CRLF
                + CRLF
                + self._before_text
            )
            tail = [CRLF + delim + b"--" + CRLF]
            for att in attachments:
                tail.append(
                    mdelim
                    + CRLF
                    + f'Content-Type: {att.content_type}; name="{att.filename}"'.encode()
                    + CRLF
                    + f'Content-Disposition: attachment; filename="{att.filename}"'.encode()
                    + CRLF
                    + b"Content-Transfer-Encoding: base64"
                    + CRLF
                    + CRLF
                    + base64_lines(att.data)
                )
            tail.append(mdelim + b"--" + CRLF)
            self._after_html = b"".join(tail)
        else:
            headers.append((b"Content-Type", f'multipart/alternative; boundary="{alt}"'.encode()))
            self._after_html = CRLF + delim + b"--" + CRLF
        self._fixed_headers = b"".join(n + b": " + v + CRLF for n, v in headers) + CRLF
        # The signature's fixed part (canonical fixed headers, h=) is prepared once per run.
        varying_names = _VARYING_TRANSACTIONAL if transactional else _VARYING
        self._signature = dkim.prepare(varying_names, headers) if dkim is not None else None
        # Encoded parts carry no whitespace run (escape_leading_dots), so the signer can hash
        # the body as it is; the first body of the run is checked in full to make sure.
        self._canonical: bool | None = None

    def build(
        self,
        *,
        to: str,
        subject: bytes,
        message_id: str,
        list_unsubscribe: bytes | None,
        text_qp: bytes,
        html_qp: bytes,
    ) -> bytes:
        """The message bytes; `subject` is already header-encoded, bodies already QP.
        `list_unsubscribe` is None for transactional mail (no List-Unsubscribe)."""
        if self.transactional:
            list_unsubscribe = None
        elif list_unsubscribe is None:
            raise ValueError("campaign mail needs List-Unsubscribe")
        if self._signature is None:
            return b"".join(
                (
                    b"To: ",
                    check_address(to).encode("ascii"),
                    b"\r\nSubject: ",
                    subject,
                    b"\r\nDate: ",
                    self.date.now(),
                    b"\r\nMessage-ID: <",
                    message_id.encode("ascii"),
                    b">",
                    b""
                    if list_unsubscribe is None
                    else b"\r\nList-Unsubscribe: " + list_unsubscribe,
                    CRLF,
                    self._fixed_headers,
                    self._before_text,
                    text_qp,
                    self._before_html,
                    html_qp,
                    self._after_html,
                )
            )
        body = b"".join((self._before_text, text_qp, self._before_html, html_qp, self._after_html))
        varying: tuple[tuple[bytes, bytes], ...] = (
            (b"To", check_address(to).encode("ascii")),
            (b"Subject", subject),
            (b"Date", self.date.now()),
            (b"Message-ID", b"<" + message_id.encode("ascii") + b">"),
        )
        if list_unsubscribe is not None:
            varying += ((b"List-Unsubscribe", list_unsubscribe),)
        head = b"".join([n + b": " + v + CRLF for n, v in varying])
        if self._canonical is None:
            self._canonical = body_is_canonical(body)
        canonical = self._canonical
        signature = self._signature.headers(varying, body, canonical=canonical)
        return b"".join((signature, head, self._fixed_headers, body))
