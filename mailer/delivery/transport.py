"""Transports: the one small interface delivery hands finished message bytes to, and its
implementations (an SMTP connection pool over aiosmtplib, a capture folder of .eml files, and a
null sink for benchmarks).

A transport never raises for a refused or failed message: it answers with a `SendResult` that
says what the server (or the connection) said, and `mailer.delivery.outcomes` judges what that
means for the recipient and the run.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import re
import ssl
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from mailer.delivery.limits import URL_OPTIONS

log = logging.getLogger(__name__)

__all__ = [
    "CaptureTransport",
    "NullTransport",
    "SMTPConfig",
    "SMTPTransport",
    "SendResult",
    "Transport",
    "TransportConfigError",
    "dot_stuff",
    "parse_smtp_url",
    "transport_from_url",
]

# A reply code of 0 means no reply at all: the connection failed or dropped mid-transaction.
NO_REPLY = 0


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of one SMTP transaction."""

    code: int
    message: str = ""
    # Which command drew the reply (connect, mail, rcpt, data): a 5xx at RCPT blames the
    # recipient, the same code at MAIL or connect blames us.
    stage: str = "data"

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300

    @property
    def enhanced(self) -> str:
        """The RFC 3463 enhanced status code (e.g. "5.1.1") when the server gave one."""
        match = _ENHANCED.match(self.message)
        return match.group(1) if match else ""

    def describe(self) -> str:
        if self.stage == "tls":
            return f"zabezpečené spojení (TLS) selhalo: {self.message}"[:1000]
        if self.code == NO_REPLY:
            return f"spojení selhalo ({self.stage}): {self.message}"[:1000]
        return f"{self.code} {self.message}".strip()[:1000]


_LINE_ENDINGS = re.compile(rb"\r\n|\r|\n")
_ENHANCED = re.compile(r"\s*([245]\.\d{1,3}\.\d{1,3})\b")


class Transport(Protocol):
    """Where finished messages go. `concurrency` is how many `send` calls may run at once."""

    concurrency: int

    async def send(
        self,
        envelope_from: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        dot_safe: bool = False,
        handover_after: Awaitable[None] | None = None,
    ) -> SendResult:
        """Deliver `data` (CRLF line endings) to `recipients`; never raises for a refusal.
        `dot_safe`: the caller guarantees no line starts with "." (compose's bodies), so the
        SMTP transport may skip dot-stuffing.
        `handover_after`: the message is handed over (for SMTP: the final dot that makes the
        server take it) only once this is done. Everything before may overlap with it."""
        ...

    async def close(self) -> None: ...

    def describe(self) -> str:
        """A one-line description for staff, without secrets."""
        ...


class TransportConfigError(ValueError):
    """SMTP_URL cannot be used as written; the message says why, in Czech."""


def tls_failure(exc: BaseException) -> str | None:
    """A Czech description when `exc` (or what caused it) is a failed TLS handshake or a
    certificate the client does not trust; None for any other error.

    Why it matters: a certificate problem is a setting to fix, not a passing fault, so the run
    pauses instead of retrying every message until it fails."""
    seen: BaseException | None = exc
    for _ in range(8):
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            detail = seen.verify_message or seen.reason or str(seen)
            return f"certifikát serveru není důvěryhodný ({detail})"
        if isinstance(seen, ssl.SSLError):
            return f"TLS se serverem nelze navázat ({seen.reason or seen})"
        if isinstance(seen, aiosmtplib.SMTPException) and "STARTTLS" in str(seen):
            return "server nenabízí STARTTLS, které SMTP_URL vyžaduje (starttls=true)"
        seen = seen.__cause__ or seen.__context__
    return None


def dot_stuff(data: bytes, *, check_line_endings: bool = True) -> bytes:
    """The DATA payload for CRLF message bytes: dot-stuffed, ending in CRLF and the
    terminating ".CRLF", ready to be written to the socket as one piece.

    Why not aiosmtplib's own: it runs two regular expressions over every message (line endings,
    then leading dots) and, when the server offers SIZE, the first one twice; on a 50 KB
    newsletter that is most of its per-message CPU. Here a message costs one C-speed scan for
    leading dots (and a replace only when there are some), plus, when asked, two scans that
    prove it is CRLF-only; only a message that breaks the compose contract pays for a fix-up."""
    # Equal counts of CR and LF is the cheap proof of CRLF-only (one C scan each).
    if check_line_endings and data.count(b"\n") != data.count(b"\r"):
        # Lone CR or LF: normalise as RFC 5321 wants (cold path, compose never takes it).
        data = _LINE_ENDINGS.sub(b"\r\n", data)
    if data.startswith(b"."):
        data = b"." + data
    if b"\n." in data:
        data = data.replace(b"\n.", b"\n..")
    if not data.endswith(b"\r\n"):
        return data + b"\r\n.\r\n"
    return data + b".\r\n"


def _has_leading_dot(data: bytes) -> bool:
    return data.startswith(b".") or b"\n." in data


# --- SMTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SMTPConfig:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    implicit_tls: bool = False
    # True: STARTTLS required; False: never; None: opportunistic (if the server offers it).
    starttls: bool | None = None
    validate_certs: bool = True
    allow_insecure_auth: bool = False
    concurrency: int = 16
    timeout: float = 60.0
    helo: str | None = None
    # Send through aiosmtplib's `sendmail` (its own line-ending and dot regexes) instead of the
    # pre-stuffed DATA path; kept to measure the difference in the benchmark.
    use_sendmail: bool = False
    # Write MAIL, RCPT and DATA together when the server offers PIPELINING (RFC 2920); false
    # for a server that offers it but gets it wrong.
    pipelining: bool = True
    ca_file: str | None = None

    def describe(self) -> str:
        scheme = "smtps" if self.implicit_tls else "smtp"
        user = f"{self.username}@" if self.username else ""
        tls = (
            "TLS"
            if self.implicit_tls
            else {True: "STARTTLS", False: "bez TLS", None: "TLS dle serveru"}[self.starttls]
        )
        return f"{scheme}://{user}{self.host}:{self.port} ({tls}, souběžnost {self.concurrency})"


_TRUE = {"1", "true", "yes", "on", "ano"}
_FALSE = {"0", "false", "no", "off", "ne"}


def _flag(query: dict[str, list[str]], name: str) -> bool | None:
    if name not in query:
        return None
    value = query[name][-1].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise TransportConfigError(f"SMTP_URL: parametr {name}={value!r} musí být true nebo false.")


def parse_smtp_url(url: str) -> SMTPConfig:
    """`smtp://user:pass@relay:587?starttls=true&concurrency=16` or `smtps://…:465`.

    Query parameters:
    - starttls=true|false: require STARTTLS, or never use it (default: when offered);
    - concurrency (16), timeout (60 s), helo (the name we greet with);
    - ca_file=/path/ca.pem: trust this certificate authority (a relay with a private or
      self-signed certificate) instead of the system's;
    - validate_certs=false: do not check the relay's certificate at all (only on a network you
      trust: anyone in between could read the mail and the password);
    - allow_insecure_auth=true: allow a password without certain encryption (loopback only);
    - pipelining=false: for a relay that offers PIPELINING but gets it wrong.
    A password is refused over a connection that is not certainly encrypted (implicit TLS or
    starttls=true) unless allow_insecure_auth=true. A certificate the client does not trust,
    or a refused password, pauses the run with the reason (see mailer.delivery.outcomes)."""
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps"):
        raise TransportConfigError(f"SMTP_URL: neznámé schéma {parts.scheme!r} (smtp, smtps).")
    if not parts.hostname:
        raise TransportConfigError("SMTP_URL: chybí adresa serveru.")
    query = parse_qs(parts.query)
    known = {
        "starttls",
        "concurrency",
        "timeout",
        "validate_certs",
        "allow_insecure_auth",
        "helo",
        "ca_file",
        "use_sendmail",
        "pipelining",
        # Sending limits: read by mailer.delivery.limits, not by the connection.
        *URL_OPTIONS,
    }
    unknown = sorted(set(query) - known)
    if unknown:
        raise TransportConfigError(
            f"SMTP_URL: neznámý parametr {', '.join(unknown)}; platné: {', '.join(sorted(known))}."
        )
    implicit_tls = parts.scheme == "smtps"
    starttls = _flag(query, "starttls")
    if implicit_tls and starttls:
        raise TransportConfigError(
            "SMTP_URL: smtps:// už je šifrované, starttls=true nedává smysl."
        )
    try:
        concurrency = int(query.get("concurrency", ["16"])[-1])
        timeout = float(query.get("timeout", ["60"])[-1])
    except ValueError as exc:
        raise TransportConfigError(f"SMTP_URL: {exc}") from exc
    if concurrency < 1:
        raise TransportConfigError("SMTP_URL: concurrency musí být aspoň 1.")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    allow_insecure = bool(_flag(query, "allow_insecure_auth"))
    if username and not implicit_tls and starttls is not True and not allow_insecure:
        # Opportunistic STARTTLS is not enough: whoever can strip the STARTTLS offer reads the
        # password. Ask for certain encryption, or an explicit opt-out for a trusted loopback.
        raise TransportConfigError(
            "SMTP_URL: heslo by šlo po síti nešifrovaně. Použijte smtps:// nebo ?starttls=true, "
            "případně (jen pro důvěryhodnou síť) ?allow_insecure_auth=true."
        )
    return SMTPConfig(
        host=parts.hostname,
        port=parts.port or (465 if implicit_tls else 587 if starttls else 25),
        username=username,
        password=password,
        implicit_tls=implicit_tls,
        starttls=starttls,
        validate_certs=_flag(query, "validate_certs") is not False,
        allow_insecure_auth=allow_insecure,
        concurrency=concurrency,
        timeout=timeout,
        helo=query.get("helo", [None])[-1],
        use_sendmail=bool(_flag(query, "use_sendmail")),
        pipelining=_flag(query, "pipelining") is not False,
        ca_file=query.get("ca_file", [None])[-1],
    )


_UNSAFE_IN_PATH = re.compile(r"[^\x21-\x7e]|[<>]")


def _envelope_bytes(sender: str, recipients: Sequence[str]) -> tuple[bytes, list[bytes]] | None:
    """`FROM:<…>` and `TO:<…>` arguments, or None when an address needs aiosmtplib's quoting
    (non-ASCII, spaces, angle brackets or control characters)."""
    if _UNSAFE_IN_PATH.search(sender) or any(_UNSAFE_IN_PATH.search(r) for r in recipients):
        return None
    return b"FROM:<%s>" % sender.encode(), [b"TO:<%s>" % r.encode() for r in recipients]


class _Replies(asyncio.Protocol):
    """Reads the replies of one aiosmtplib connection during a transaction, several at a time
    when commands were written together (RFC 2920 PIPELINING).

    Why it exists: aiosmtplib's protocol reads one reply per command written and drops bytes
    that arrive while no read is pending, so replies to pipelined commands would be lost. This
    sits in front of it (`transport.set_protocol`): while a transaction waits for replies it
    parses them itself; otherwise (EHLO, RSET, QUIT, aiosmtplib's own `sendmail`) it passes
    everything through, so aiosmtplib still owns the connection, TLS and AUTH."""

    def __init__(self, inner: aiosmtplib.protocol.SMTPProtocol) -> None:
        self.inner = inner
        self._buffer = bytearray()
        self._want = 0
        self._got: list[aiosmtplib.SMTPResponse] = []
        self._waiter: asyncio.Future[list[aiosmtplib.SMTPResponse]] | None = None

    @classmethod
    def install(cls, client: aiosmtplib.SMTP) -> _Replies | None:
        protocol, transport = client.protocol, client.transport
        if protocol is None or transport is None:
            return None
        replies = cls(protocol)
        transport.set_protocol(replies)
        return replies

    def expect(self, count: int) -> asyncio.Future[list[aiosmtplib.SMTPResponse]]:
        """A future for the next `count` replies; ask before writing the commands."""
        waiter = asyncio.get_running_loop().create_future()
        self._want, self._got, self._waiter = count, [], waiter
        return waiter

    def data_received(self, data: bytes) -> None:
        waiter = self._waiter
        if waiter is None:
            self.inner.data_received(data)
            return
        buffer = self._buffer
        buffer += data
        try:
            while len(self._got) < self._want:
                reply = _take_reply(buffer)
                if reply is None:
                    return
                self._got.append(reply)
        except aiosmtplib.SMTPResponseException as exc:
            self._fail(exc)
            return
        self._waiter = None
        waiter.set_result(self._got)
        if buffer:
            # Nothing more was asked for: pass it on (aiosmtplib discards unsolicited bytes).
            rest = bytes(buffer)
            buffer.clear()
            self.inner.data_received(rest)

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        self._buffer.clear()
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
            waiter.exception()  # retrieved here: nobody may await it after a disconnect

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(aiosmtplib.SMTPServerDisconnected("Connection lost"))
        self.inner.connection_lost(exc)

    def eof_received(self) -> bool | None:
        self._fail(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


# A reply (with its continuation lines) longer than this is refused, as aiosmtplib does.
_MAX_REPLY = 8192 * 4


def _take_reply(buffer: bytearray) -> aiosmtplib.SMTPResponse | None:
    """The first complete reply in `buffer`, removed from it; None when it is not all there."""
    offset = 0
    lines: list[bytes] = []
    while True:
        end = buffer.find(b"\n", offset)
        if end == -1:
            if len(buffer) > _MAX_REPLY:
                raise aiosmtplib.SMTPResponseException(-1, "Response too long")
            return None
        line = bytes(buffer[offset : end + 1])
        offset = end + 1
        code = line[:3]
        if not code.isdigit():
            text = line.decode("utf-8", "replace").strip()
            raise aiosmtplib.SMTPResponseException(-1, f"Malformed SMTP response line: {text}")
        lines.append(line[4:].strip(b" \t\r\n"))
        if line[3:4] != b"-":
            del buffer[:offset]
            text = b"\n".join(lines).decode("utf-8", "surrogateescape")
            return aiosmtplib.SMTPResponse(int(code), text)
        if offset > _MAX_REPLY:
            raise aiosmtplib.SMTPResponseException(-1, "Response too long")


@dataclass(slots=True)
class _Connection:
    """A connection of the pool with what its server offered."""

    client: aiosmtplib.SMTP
    replies: _Replies | None
    pipelining: bool
    size: bool


# Replies that let a transaction go on, by the command they answer.
_MAIL_OK = (250,)
_RCPT_OK = (250, 251)
_DATA_OK = (354,)


class _Refused(Exception):
    """The pool's shared refusal (a password or a certificate), raised from `_connect`."""

    def __init__(self, result: SendResult) -> None:
        super().__init__(result.message)
        self.result = result


# Replies to AUTH after which another mechanism is worth a try: the server did not know the
# mechanism or the command. Anything else (535 bad credentials above all) is the answer.
_AUTH_TRY_NEXT = (500, 501, 502, 504)


class SMTPTransport:
    """A pool of persistent aiosmtplib connections, at most `concurrency` open at once.

    Each connection serves one transaction at a time and is reused for the next; a connection
    that failed is dropped and the next send opens a fresh one. When the server offers
    PIPELINING, MAIL, RCPT and DATA go out in one write and their replies are read together:
    two round trips a message instead of four.

    Logging in is shared by the pool: until one login has succeeded, connections log in one
    at a time, and a refused login (or a certificate the client does not trust) is the answer
    to every send for `REFUSAL_HOLD` seconds, without touching the server. Why: 16 connections
    each trying PLAIN and then LOGIN with a wrong password make 32 failed logins in a second,
    and a real relay locks the account for that."""

    CHECK_EVERY = 64
    REFUSAL_HOLD = 300.0

    def __init__(self, config: SMTPConfig) -> None:
        self.config = config
        self._sent = 0
        self._normalise = False
        self._trust_dot_safe = True
        self.concurrency = config.concurrency
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(config.concurrency)
        self._tls_context: ssl.SSLContext | None = None
        if config.ca_file:
            self._tls_context = ssl.create_default_context(cafile=config.ca_file)
        self._login_lock = asyncio.Lock()
        self._logged_in = False
        self._refusal: SendResult | None = None
        self._refused_at = 0.0

    def describe(self) -> str:
        return self.config.describe()

    async def connect_once(self) -> aiosmtplib.SMTP:
        """One connection, with TLS and AUTH as configured (`sdruk doctor`'s login check);
        the caller quits it."""
        return (await self._connect()).client

    async def _connect(self) -> _Connection:
        c = self.config
        self._raise_refusal()
        # No username here: aiosmtplib would log in on connect, trying every mechanism in turn.
        client = aiosmtplib.SMTP(
            hostname=c.host,
            port=c.port,
            use_tls=c.implicit_tls,
            start_tls=c.starttls,
            validate_certs=c.validate_certs,
            tls_context=self._tls_context,
            timeout=c.timeout,
            # Without it aiosmtplib asks the resolver for this host's FQDN on every connect.
            local_hostname=c.helo or "localhost",
        )
        try:
            await client.connect()
        except (aiosmtplib.SMTPException, OSError) as exc:
            problem = tls_failure(exc)
            if problem is None:
                raise
            client.close()
            self._refuse(SendResult(NO_REPLY, problem, "tls"))
            self._raise_refusal()
        if c.username:
            await self._log_in(client, c.username, c.password or "")
        if client.is_ehlo_or_helo_needed:
            # connect() greets only when it has to (STARTTLS, AUTH); the offer is read here.
            try:
                await client.ehlo()
            except aiosmtplib.SMTPHeloError:
                await client.helo()  # a server from before ESMTP: no PIPELINING, no SIZE
        return _Connection(
            client=client,
            replies=None if c.use_sendmail else _Replies.install(client),
            pipelining=client.supports_extension("pipelining") and c.pipelining,
            size=client.supports_extension("size"),
        )

    def _refuse(self, result: SendResult) -> None:
        self._refusal = result
        self._refused_at = time.monotonic()
        self._logged_in = False
        # Connections logged in before the refusal (a password changed at the relay) go too.
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.client.close()

    def _raise_refusal(self) -> None:
        refusal = self._refusal
        if refusal is None:
            return
        if time.monotonic() - self._refused_at < self.REFUSAL_HOLD:
            raise _Refused(refusal)
        # After the hold, one connection may try again (the login lock lets one in at a time).
        self._refusal = None

    async def _log_in(self, client: aiosmtplib.SMTP, username: str, password: str) -> None:
        """One login with one mechanism; the first one for the pool holds the others back."""
        lock = None if self._logged_in else self._login_lock
        if lock is not None:
            await lock.acquire()
        try:
            self._raise_refusal()
            await self._authenticate(client, username, password)
            self._logged_in = True
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            self._refuse(SendResult(exc.code, exc.message, "auth"))
            self._raise_refusal()
        except _Refused:
            client.close()
            raise
        finally:
            if lock is not None:
                lock.release()

    @staticmethod
    async def _authenticate(client: aiosmtplib.SMTP, username: str, password: str) -> None:
        """aiosmtplib's login() tries every mechanism the server offers after a refusal too: a
        wrong password then counts twice (PLAIN, LOGIN). Here the next mechanism is tried only
        when the server did not know the previous one."""
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()
        methods = client.supported_auth_methods
        if not methods:
            raise aiosmtplib.SMTPResponseException(
                530, "server nenabízí žádný způsob přihlášení (AUTH), který umíme"
            )
        last: aiosmtplib.SMTPAuthenticationError | None = None
        for name in methods:
            method = getattr(client, f"auth_{name.replace('-', '')}")
            try:
                await method(username, password)
                return
            except aiosmtplib.SMTPAuthenticationError as exc:
                if exc.code not in _AUTH_TRY_NEXT:
                    raise
                last = exc
        assert last is not None
        raise last

    async def send(
        self,
        envelope_from: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        dot_safe: bool = False,
        handover_after: Awaitable[None] | None = None,
    ) -> SendResult:
        async with self._slots:
            try:
                connection = self._idle.pop() if self._idle else await self._connect()
            except _Refused as refused:
                return refused.result
            except aiosmtplib.SMTPResponseException as exc:
                # A refusal at greeting, STARTTLS or AUTH: the server talks, it just says no.
                return SendResult(exc.code, exc.message, "connect")
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                return SendResult(NO_REPLY, str(exc) or type(exc).__name__, "connect")
            client = connection.client
            try:
                result = await self._transaction(
                    connection, envelope_from, recipients, data, dot_safe, handover_after
                )
            except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
                # Refusals come back as results; what gets here is a lost connection.
                client.close()
                result = SendResult(NO_REPLY, str(exc) or type(exc).__name__, "data")
            if client.is_connected and result.code != NO_REPLY and result.code != 421:
                self._idle.append(connection)
            else:
                client.close()
            return result

    async def _transaction(
        self,
        connection: _Connection,
        sender: str,
        recipients: Sequence[str],
        data: bytes,
        dot_safe: bool,
        handover_after: Awaitable[None] | None,
    ) -> SendResult:
        client = connection.client
        envelope = _envelope_bytes(sender, recipients)
        if envelope is None or connection.replies is None:
            # Non-ASCII or quoted addresses, or use_sendmail: aiosmtplib's own careful path
            # (SMTPUTF8 when needed); nothing of the transaction overlaps the hand-over wait.
            if handover_after is not None:
                await handover_after
            utf8 = not (sender.isascii() and all(r.isascii() for r in recipients))
            try:
                errors, message = await client.sendmail(
                    sender, list(recipients), data, mail_options=["SMTPUTF8"] if utf8 else None
                )
            except aiosmtplib.SMTPRecipientsRefused as exc:
                refused = exc.recipients[0]
                return SendResult(refused.code, refused.message, "rcpt")
            except aiosmtplib.SMTPResponseException as exc:
                await self._reset(client)
                return SendResult(exc.code, exc.message, "mail")
            if errors:
                first_error = next(iter(errors.values()))
                return SendResult(first_error.code, first_error.message, "rcpt")
            return SendResult(250, message)
        # Line endings are proven on a sample: compose builds every message of a run from
        # the same parts and strips CR/LF from recipient values, so a template that breaks
        # CRLF shows on the first message, and from then on every message is normalised.
        self._sent += 1
        if self._sent % self.CHECK_EVERY == 1:
            if not self._normalise:
                self._normalise = data.count(b"\n") != data.count(b"\r")
            if dot_safe and self._trust_dot_safe and _has_leading_dot(data):
                # A broken promise would end DATA early and smuggle the rest as commands:
                # from now on this transport stuffs every message, whatever it is told.
                log.error("Zpráva označená jako dot-safe má řádek začínající tečkou.")
                self._trust_dot_safe = False
        if dot_safe and self._trust_dot_safe and not self._normalise:
            # Compose already wrote every line-leading dot as =2E: no 50 KB scan, no copy.
            body = data if data.endswith(b"\r\n") else data + b"\r\n"
        else:
            body = dot_stuff(data, check_line_endings=self._normalise)[:-3]
        protocol, replies = client.protocol, connection.replies
        if protocol is None or replies is None:
            return SendResult(NO_REPLY, "spojení ztraceno", "connect")
        mail_from, rcpt_tos = envelope
        size = b" SIZE=%d" % (len(body) + 3) if connection.size else b""
        # Commands written straight to the protocol: aiosmtplib's mail()/rcpt() re-parse each
        # address with the stdlib's email parser, and even execute_command() adds a lock and a
        # control-character regex per command (this connection carries one transaction at a
        # time, and the addresses were checked for anything that could break the command line
        # just above).
        commands = [b"MAIL " + mail_from + size + b"\r\n"]
        commands += [b"RCPT " + rcpt + b"\r\n" for rcpt in rcpt_tos]
        commands.append(b"DATA\r\n")
        stages = ["mail", *("rcpt" for _ in rcpt_tos), "data"]
        accepted = [_MAIL_OK, *(_RCPT_OK for _ in rcpt_tos), _DATA_OK]
        write = protocol.write
        # One watchdog for the whole transaction instead of a timer per reply (wait_for
        # costs a timer, a future and two callbacks for each reply): when it fires, it closes
        # the connection and the pending read fails at once.
        timed_out = False

        def expire() -> None:
            nonlocal timed_out
            timed_out = True
            client.close()

        stage = "mail"
        watchdog = asyncio.get_running_loop().call_later(self.config.timeout, expire)
        try:
            answers: list[aiosmtplib.SMTPResponse] = []
            if connection.pipelining:
                expected = replies.expect(len(commands))
                write(b"".join(commands))
                answers = await expected
            else:
                for command, ok in zip(commands, accepted, strict=True):
                    expected = replies.expect(1)
                    write(command)
                    answers += await expected
                    if answers[-1].code not in ok:
                        break
            for stage, ok, answer in zip(stages, accepted, answers, strict=False):
                if answer.code not in ok:
                    if answers[-1].code == 354:
                        # Refused envelope, yet the server waits for the message (pipelined):
                        # RSET would be taken as message text, and the dot would deliver it.
                        client.close()
                        return SendResult(answer.code, answer.message, stage)
                    return await self._refused(client, answer, stage)
            stage = "data"
            # The message, but not yet the dot that hands it over: whatever the caller waits
            # for (the previous message's outcome on record) overlaps with this transaction.
            write(body)
            if handover_after is not None:
                # The wait is ours (a commit), not the server's: no watchdog meanwhile, or a
                # slow database would be blamed on the relay. The relay keeps its own timeout.
                watchdog.cancel()
                await handover_after
                if timed_out or not client.is_connected:
                    # Closed while waiting: the server drops an unfinished message.
                    return SendResult(NO_REPLY, "spojení ztraceno před předáním zprávy", stage)
                watchdog = asyncio.get_running_loop().call_later(self.config.timeout, expire)
            expected = replies.expect(1)
            write(b".\r\n")
            [reply] = await expected
        except (aiosmtplib.SMTPException, OSError) as exc:
            if timed_out:
                return SendResult(
                    NO_REPLY, f"server neodpověděl do {self.config.timeout:g} s", stage
                )
            client.close()
            return SendResult(NO_REPLY, str(exc) or "spojení ztraceno", stage)
        finally:
            watchdog.cancel()
        if reply.code == 421:
            client.close()
        return SendResult(reply.code, reply.message, "data")

    @classmethod
    async def _refused(
        cls, client: aiosmtplib.SMTP, reply: aiosmtplib.SMTPResponse, stage: str
    ) -> SendResult:
        if reply.code == 421:
            # The server is closing the connection (as SMTP.execute_command would, close it).
            client.close()
        else:
            await cls._reset(client)
        return SendResult(reply.code, reply.message, stage)

    @staticmethod
    async def _reset(client: aiosmtplib.SMTP) -> None:
        # RSET clears the half-built envelope so the connection can carry the next message.
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError, TimeoutError):
            client.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            try:
                await connection.client.quit()
            except (aiosmtplib.SMTPException, OSError, TimeoutError):
                connection.client.close()


# --- capture and null -------------------------------------------------------------------------


class CaptureTransport:
    """Keeps every message as an .eml file in a folder staff can open; sends nothing anywhere.

    The envelope is recorded as Return-Path and X-Envelope-To headers on top, as a delivering
    mail server would, so a captured file shows who it was for and where bounces would go."""

    concurrency = 4

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._counter = itertools.count(1)
        self._prefix = f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"

    def describe(self) -> str:
        return f"capture://{self.folder} (zprávy se ukládají jako .eml, nic se neodesílá)"

    async def send(
        self,
        envelope_from: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        dot_safe: bool = False,
        handover_after: Awaitable[None] | None = None,
    ) -> SendResult:
        if handover_after is not None:
            await handover_after
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"{self._prefix}-{next(self._counter):07d}-{_safe(recipients[0])}.eml"
        trace = (
            f"Return-Path: <{envelope_from}>\r\nX-Envelope-To: {', '.join(recipients)}\r\n"
        ).encode()
        path = self.folder / name
        # Write to a temporary name and rename: a reader never sees half a message.
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(trace + data)
        tmp.replace(path)
        return SendResult(250, f"uloženo jako {name}")

    async def close(self) -> None:
        return None


def _safe(address: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", address)[:120]


class NullTransport:
    """Accepts and forgets every message (benchmarks of everything but SMTP)."""

    def __init__(self, concurrency: int = 16) -> None:
        self.concurrency = concurrency
        self.bytes = 0
        self.messages = 0

    def describe(self) -> str:
        return "null:// (zprávy se zahazují)"

    async def send(
        self,
        envelope_from: str,
        recipients: Sequence[str],
        data: bytes,
        *,
        dot_safe: bool = False,
        handover_after: Awaitable[None] | None = None,
    ) -> SendResult:
        if handover_after is not None:
            await handover_after
        self.messages += 1
        self.bytes += len(data)
        return SendResult(250, "zahozeno")

    async def close(self) -> None:
        return None


def transport_from_url(url: str, *, concurrency: int | None = None) -> Transport:
    """The transport an SMTP_URL names: smtp://, smtps://, capture://PATH or null://."""
    if url.startswith("capture://"):
        capture = CaptureTransport(Path(url.removeprefix("capture://")))
        if concurrency:
            capture.concurrency = concurrency
        return capture
    if url.startswith("null://"):
        return NullTransport(concurrency or 16)
    config = parse_smtp_url(url)
    if concurrency:
        config = SMTPConfig(**{**config.__dict__, "concurrency": concurrency})
    return SMTPTransport(config)
