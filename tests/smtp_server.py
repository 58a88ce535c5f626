"""A real SMTP server for tests: aiosmtpd in a thread, recording what it receives, with faults
injected per address and per command (4xx, 5xx, enhanced codes, dropped connections).

Use the `smtp_server` fixture (import it into a test module or conftest), or `SMTPServer`
directly for TLS/AUTH variants:

    def test_it_…(smtp_server):
        smtp_server.fail("rcpt", "nobody@example.cz", "550 5.1.1 Mailbox unknown")
        smtp_server.fail("data", "*", "DISCONNECT", times=1)
        ...
        assert smtp_server.received_by("someone@example.cz")
"""

from __future__ import annotations

import asyncio
import email
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

DISCONNECT = "DISCONNECT"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    # When the server took the message (time.time() at the end of DATA).
    at: float = 0.0

    @property
    def message(self) -> Message:
        return email.message_from_bytes(self.data)


@dataclass
class Fault:
    stage: str  # connect, mail, rcpt, data
    address: str  # recipient (rcpt, data), sender (mail) or "*"
    reply: str  # "550 5.1.1 …" or DISCONNECT
    times: int | None = None  # None: for ever


@dataclass
class Handler:
    messages: list[Received] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0
    # Keep only the header block of each message (large runs: tens of thousands of bodies).
    headers_only: bool = False
    # Seconds each DATA takes (to make transactions overlap), and the most transactions seen
    # at once per recipient domain (counted from RCPT to the end of DATA; fault-free runs).
    data_delay: float = 0.0
    active: dict[str, int] = field(default_factory=dict)
    peak: dict[str, int] = field(default_factory=dict)
    # Offer PIPELINING (RFC 2920) as Postfix does: the client may write MAIL, RCPT and DATA
    # together (aiosmtpd answers pipelined commands in order; it just does not say so).
    pipelining: bool = True

    def _fault(self, stage: str, addresses: list[str]) -> str | None:
        with self.lock:
            for fault in self.faults:
                if fault.stage != stage:
                    continue
                if fault.address != "*" and fault.address not in addresses:
                    continue
                if fault.times is not None:
                    if fault.times <= 0:
                        continue
                    fault.times -= 1
                return fault.reply
        return None

    @staticmethod
    def _answer(server: SMTP, reply: str) -> str:
        if reply == DISCONNECT:
            # Drop the connection mid-transaction, as a crashing relay would.
            if server.transport is not None:
                server.transport.abort()
            return "421 4.4.2 connection dropped"
        return reply

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        reply = self._fault("connect", ["*"])
        if reply is not None:
            return [self._answer(server, reply)]
        if self.pipelining:
            return [responses[0], "250-PIPELINING", *responses[1:]]
        return responses

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self._fault("mail", [address])
        if reply is not None:
            return self._answer(server, reply)
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        reply = self._fault("rcpt", [address])
        if reply is not None:
            return self._answer(server, reply)
        envelope.rcpt_tos.append(address)
        domain = address.rpartition("@")[2]
        with self.lock:
            self.active[domain] = self.active.get(domain, 0) + 1
            self.peak[domain] = max(self.peak.get(domain, 0), self.active[domain])
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._fault("data", list(envelope.rcpt_tos))
        if reply is not None:
            return self._answer(server, reply)
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self.lock:
            for address in envelope.rcpt_tos:
                domain = address.rpartition("@")[2]
                self.active[domain] = self.active.get(domain, 1) - 1
        data = envelope.original_content or b""
        if self.headers_only:
            data = data.split(b"\r\n\r\n", 1)[0]
        with self.lock:
            self.counter += 1
            n = self.counter
            self.messages.append(
                Received(str(envelope.mail_from), list(envelope.rcpt_tos), data, time.time())
            )
        return f"250 2.0.0 Ok: queued as T{n}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SMTPServer:
    """aiosmtpd on 127.0.0.1 at a free port, in its own thread."""

    def __init__(
        self,
        *,
        implicit_tls: ssl.SSLContext | None = None,
        starttls: ssl.SSLContext | None = None,
        users: dict[str, str] | None = None,
        headers_only: bool = False,
        pipelining: bool = True,
    ) -> None:
        self.handler = Handler(headers_only=headers_only, pipelining=pipelining)
        self.port = free_port()
        self.users = users
        self.logins: list[str] = []
        # Every AUTH attempt, failed or not: (mechanism, login, accepted).
        self.auth_attempts: list[tuple[str, str, bool]] = []
        kwargs: dict[str, Any] = {
            "hostname": "127.0.0.1",
            "port": self.port,
            "server_hostname": "localhost",
            "data_size_limit": 10 * 1024 * 1024,
        }
        if starttls is not None:
            kwargs.update(tls_context=starttls, require_starttls=True)
        if users is not None:
            kwargs.update(authenticator=self._authenticate, auth_required=True)
            # Implicit TLS is TLS too; aiosmtpd only knows about STARTTLS by itself.
            kwargs["auth_require_tls"] = implicit_tls is None
        self.controller = Controller(self.handler, ssl_context=implicit_tls, **kwargs)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        login = auth_data.login.decode()
        ok = self.users is not None and self.users.get(login) == auth_data.password.decode()
        self.auth_attempts.append((mechanism, login, ok))
        if ok:
            self.logins.append(login)
        return AuthResult(success=ok, handled=False)

    def start(self) -> SMTPServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def url(self, **query: str) -> str:
        q = "&".join(f"{k}={v}" for k, v in query.items())
        return f"smtp://127.0.0.1:{self.port}" + (f"?{q}" if q else "")

    # faults and inspection

    def fail(self, stage: str, address: str, reply: str, *, times: int | None = None) -> None:
        with self.handler.lock:
            self.handler.faults.append(Fault(stage, address, reply, times))

    def clear_faults(self) -> None:
        with self.handler.lock:
            self.handler.faults.clear()

    @property
    def messages(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.messages)

    def received_by(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost (openssl, as Debian ships it)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
