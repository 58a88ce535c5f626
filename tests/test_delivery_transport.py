"""Transports against a real in-process SMTP server: bytes arrive intact, TLS and AUTH work,
refusals come back as results, passwords never go out in cleartext, capture writes .eml."""

from __future__ import annotations

import asyncio
import contextlib
import email
from email import policy
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest
from smtp_server import SMTPServer, server_tls_context, smtp_server, tls_files

from mailer.delivery.transport import (
    CaptureTransport,
    SMTPTransport,
    TransportConfigError,
    _take_reply,
    dot_stuff,
    parse_smtp_url,
    transport_from_url,
)

__all__ = ["smtp_server", "tls_files"]

MESSAGE = (
    b"From: =?utf-8?q?Sdru=C5=BEen=C3=AD?= <sdruk@sdruk.cz>\r\n"
    b"To: jana@knihovna.cz\r\n"
    b"Subject: test\r\n"
    b"\r\n"
    b".a line that starts with a dot\r\n"
    b"..two dots\r\n"
    b".\r\n"
    b"end\r\n"
)


def test_it_dot_stuffs_and_terminates_crlf() -> None:
    assert dot_stuff(b".a\r\nb\r\n.c") == b"..a\r\nb\r\n..c\r\n.\r\n"
    assert dot_stuff(b"a\nb\n.c\r\n") == b"a\r\nb\r\n..c\r\n.\r\n"
    assert dot_stuff(MESSAGE).count(b"\r\n..") == 3


async def test_it_delivers_bytes_intact_over_a_reused_connection(smtp_server: SMTPServer) -> None:
    transport = transport_from_url(smtp_server.url(concurrency="2"))
    try:
        for n in range(5):
            result = await transport.send(
                "bounce+x@bounces.sdruk.cz", [f"u{n}@knihovna.cz"], MESSAGE
            )
            assert result.ok, result
            assert result.message.startswith("2.0.0 Ok: queued as")
    finally:
        await transport.close()
    got = smtp_server.messages
    assert len(got) == 5
    assert all(m.data == MESSAGE for m in got)
    assert got[0].mail_from == "bounce+x@bounces.sdruk.cz"


async def test_it_sends_dot_safe_messages_unstuffed_and_distrusts_a_broken_promise(
    smtp_server: SMTPServer,
) -> None:
    safe = MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n\r\n=2Ea line that starts with a dot\r\n"
    config = parse_smtp_url(smtp_server.url())
    transport = SMTPTransport(config)
    try:
        assert (await transport.send("a@sdruk.cz", ["b@knihovna.cz"], safe, dot_safe=True)).ok
        # A message that claims to be dot-safe and is not: the spot check catches it on the
        # first message and the transport dot-stuffs from then on, so nothing is cut short.
        transport._sent = SMTPTransport.CHECK_EVERY
        result = await transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE, dot_safe=True)
        assert result.ok
        assert (await transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE, dot_safe=True)).ok
    finally:
        await transport.close()
    assert [m.data for m in smtp_server.messages] == [safe, MESSAGE, MESSAGE]


async def test_it_gives_up_on_a_server_that_stops_answering(smtp_server: SMTPServer) -> None:
    smtp_server.handler.data_delay = 3.0
    transport = SMTPTransport(parse_smtp_url(smtp_server.url(timeout="0.3")))
    try:
        result = await transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE)
        assert (result.code, result.stage) == (0, "data")
        assert "neodpověděl do 0.3 s" in result.message
        # The connection was dropped, not put back: the next message gets a fresh one.
        smtp_server.handler.data_delay = 0.0
        assert (await transport.send("a@sdruk.cz", ["c@knihovna.cz"], MESSAGE)).ok
    finally:
        await transport.close()


async def test_it_sends_the_same_bytes_through_aiosmtplib_sendmail(smtp_server: SMTPServer) -> None:
    transport = transport_from_url(smtp_server.url(use_sendmail="true"))
    try:
        assert (await transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE)).ok
    finally:
        await transport.close()
    assert smtp_server.messages[0].data == MESSAGE


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "command-by-command"])
async def test_it_returns_refusals_and_drops_as_results(pipelining: bool) -> None:
    # The same faults whether the envelope goes out in one write (a server that offers
    # PIPELINING) or command by command (one that does not).
    smtp_server = SMTPServer(pipelining=pipelining).start()
    try:
        await _refusals_and_drops(smtp_server)
    finally:
        smtp_server.stop()


async def _refusals_and_drops(smtp_server: SMTPServer) -> None:
    smtp_server.fail("rcpt", "gone@knihovna.cz", "550 5.1.1 Mailbox unknown")
    smtp_server.fail("rcpt", "busy@knihovna.cz", "451 4.3.0 Try later")
    smtp_server.fail("data", "drop@knihovna.cz", "DISCONNECT")
    smtp_server.fail("mail", "blocked@sdruk.cz", "554 5.7.1 Sender blocked")
    transport = transport_from_url(smtp_server.url(concurrency="1"))
    try:
        gone = await transport.send("a@sdruk.cz", ["gone@knihovna.cz"], MESSAGE)
        busy = await transport.send("a@sdruk.cz", ["busy@knihovna.cz"], MESSAGE)
        drop = await transport.send("a@sdruk.cz", ["drop@knihovna.cz"], MESSAGE)
        blocked = await transport.send("blocked@sdruk.cz", ["ok@knihovna.cz"], MESSAGE)
        after = await transport.send("a@sdruk.cz", ["ok@knihovna.cz"], MESSAGE)
    finally:
        await transport.close()
    assert (gone.code, gone.enhanced, gone.stage) == (550, "5.1.1", "rcpt")
    assert (busy.code, busy.stage) == (451, "rcpt")
    assert not drop.ok and (drop.code in (0, 421)) and drop.stage == "data"
    assert (blocked.code, blocked.enhanced, blocked.stage) == (554, "5.7.1", "mail")
    # The pool recovered from every failure above and still delivers.
    assert after.ok
    assert [m.rcpt_tos for m in smtp_server.messages] == [["ok@knihovna.cz"]]


async def test_it_repairs_bare_line_feeds_and_quotes_unusual_addresses(
    smtp_server: SMTPServer,
) -> None:
    transport = transport_from_url(smtp_server.url())
    try:
        bare = await transport.send(
            "a@sdruk.cz", ["b@knihovna.cz"], MESSAGE.replace(b"\r\n", b"\n")
        )
        quoted = await transport.send("a@sdruk.cz", ['"jana novakova"@knihovna.cz'], MESSAGE)
    finally:
        await transport.close()
    assert bare.ok and quoted.ok
    assert [m.data for m in smtp_server.messages] == [MESSAGE, MESSAGE]
    assert smtp_server.messages[1].rcpt_tos == ['"jana novakova"@knihovna.cz']


async def test_it_reports_a_server_that_is_not_there() -> None:
    from smtp_server import free_port

    transport = transport_from_url(f"smtp://127.0.0.1:{free_port()}?timeout=2")
    result = await transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE)
    await transport.close()
    assert result.code == 0 and result.stage == "connect"


def test_it_refuses_a_password_without_certain_encryption() -> None:
    with pytest.raises(TransportConfigError, match="nešifrovaně"):
        parse_smtp_url("smtp://user:secret@relay.sdruk.cz:587")
    with pytest.raises(TransportConfigError, match="nešifrovaně"):
        parse_smtp_url("smtp://user:secret@relay.sdruk.cz:25?starttls=false")
    assert parse_smtp_url("smtp://user:secret@relay:587?starttls=true").starttls is True
    assert parse_smtp_url("smtps://user:secret@relay").port == 465
    allowed = parse_smtp_url("smtp://user:se%40cret@127.0.0.1:25?allow_insecure_auth=true")
    assert (allowed.username, allowed.password) == ("user", "se@cret")


def test_it_parses_an_smtp_url() -> None:
    config = parse_smtp_url("smtp://relay.sdruk.cz:2525?starttls=true&concurrency=8&timeout=5")
    assert (config.host, config.port, config.concurrency, config.timeout) == (
        "relay.sdruk.cz",
        2525,
        8,
        5.0,
    )
    assert "user:" not in config.describe()
    with pytest.raises(TransportConfigError, match="neznámý parametr"):
        parse_smtp_url("smtp://relay?concurency=8")
    with pytest.raises(TransportConfigError, match="schéma"):
        parse_smtp_url("http://relay")


async def test_it_sends_over_starttls_with_auth(tls_files: tuple[Path, Path]) -> None:
    cert, key = tls_files
    server = SMTPServer(starttls=server_tls_context(cert, key), users={"sdruk": "tajné heslo"})
    server.start()
    try:
        url = server.url(starttls="true", ca_file=str(cert)).replace(
            "smtp://", "smtp://sdruk:tajn%C3%A9%20heslo@"
        )
        transport = transport_from_url(url.replace("127.0.0.1", "localhost"))
        result = await transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE)
        await transport.close()
    finally:
        server.stop()
    assert result.ok, result
    assert server.logins == ["sdruk"]
    assert server.messages[0].data == MESSAGE


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_it_reports_a_wrong_password_as_a_policy_refusal(
    tls_files: tuple[Path, Path],
) -> None:
    cert, key = tls_files
    server = SMTPServer(implicit_tls=server_tls_context(cert, key), users={"sdruk": "správné"})
    server.start()
    try:
        url = f"smtps://sdruk:spatne@localhost:{server.port}?ca_file={cert}"
        transport = transport_from_url(url)
        result = await transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE)
        await transport.close()
    finally:
        server.stop()
    assert result.code == 535 and result.stage == "auth"
    assert server.messages == []


async def test_it_captures_messages_as_eml_files(tmp_path: Path) -> None:
    transport = transport_from_url(f"capture://{tmp_path / 'outbox'}")
    assert isinstance(transport, CaptureTransport)
    result = await transport.send("bounce+t@bounces.sdruk.cz", ["jana@knihovna.cz"], MESSAGE)
    assert result.ok
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 1 and "jana@knihovna.cz" in files[0].name
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["Return-Path"] == "<bounce+t@bounces.sdruk.cz>"
    assert parsed["To"] == "jana@knihovna.cz"
    assert str(parsed["From"]).startswith("Sdružení")


def test_it_builds_an_smtp_pool_from_a_url() -> None:
    transport = transport_from_url("smtp://127.0.0.1:2525?concurrency=3", concurrency=7)
    assert isinstance(transport, SMTPTransport) and transport.concurrency == 7


async def _serve(handle: Any) -> tuple[asyncio.Server, int]:
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 test ESMTP\r\n")
    assert (await reader.readline()).startswith(b"EHLO")
    writer.write(b"250-test\r\n250-PIPELINING\r\n250 SIZE 10000000\r\n")


async def test_it_writes_the_envelope_in_one_go_and_reads_replies_however_they_arrive() -> None:
    """A server that answers nothing until it has MAIL, RCPT and DATA: a client that waited
    for each reply would hang. Its replies then come byte by byte, one of them multi-line."""
    received: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _greet(reader, writer)
        while True:
            commands = [await reader.readline() for _ in range(3)]
            if not commands[0] or commands[0].startswith(b"QUIT"):
                break
            assert [c.split()[0] for c in commands] == [b"MAIL", b"RCPT", b"DATA"]
            for byte in b"250-sender\r\n250 ok\r\n250 2.1.5 ok\r\n354 go on\r\n":
                writer.write(bytes([byte]))
                await writer.drain()
            received.append(await reader.readuntil(b"\r\n.\r\n"))
            writer.write(b"250 2.0.0 queued as P1\r\n")
        writer.close()

    server, port = await _serve(handle)
    transport = SMTPTransport(parse_smtp_url(f"smtp://127.0.0.1:{port}?timeout=5"))
    try:
        for _ in range(2):
            result = await transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE)
            assert (result.code, result.message) == (250, "2.0.0 queued as P1")
    finally:
        await transport.close()
        server.close()
    assert received == [dot_stuff(MESSAGE)] * 2


async def test_it_closes_a_connection_whose_server_takes_data_after_refusing_the_recipient() -> (
    None
):
    """Pipelined, a refused RCPT is normally followed by a refused DATA; a server that says
    354 anyway waits for a message, and neither RSET nor a dot may follow: the connection
    goes, nothing is delivered."""
    after_354: list[bytes] = []
    finished = asyncio.Event()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _greet(reader, writer)
        [await reader.readline() for _ in range(3)]
        writer.write(b"250 ok\r\n550 5.1.1 no such user\r\n354 go on\r\n")
        with contextlib.suppress(ConnectionError):
            after_354.append(await reader.read())  # everything until the client hangs up
        writer.close()
        finished.set()

    server, port = await _serve(handle)
    transport = SMTPTransport(parse_smtp_url(f"smtp://127.0.0.1:{port}?timeout=5"))
    try:
        result = await transport.send("a@sdruk.cz", ["gone@knihovna.cz"], MESSAGE)
        await transport.close()
        await asyncio.wait_for(finished.wait(), 5)
    finally:
        server.close()
    assert (result.code, result.enhanced, result.stage) == (550, "5.1.1", "rcpt")
    assert after_354 == [b""]  # no RSET, no message text, no dot: just the hang-up


async def test_it_hands_the_message_over_only_when_told(smtp_server: SMTPServer) -> None:
    transport = SMTPTransport(parse_smtp_url(smtp_server.url()))
    handover: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    try:
        sending = asyncio.ensure_future(
            transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE, handover_after=handover)
        )
        await asyncio.sleep(0.3)
        # Envelope and body are out; without the final dot the server has taken nothing.
        assert not sending.done() and smtp_server.messages == []
        handover.set_result(None)
        assert (await sending).ok
    finally:
        await transport.close()
    assert [m.data for m in smtp_server.messages] == [MESSAGE]


async def test_it_does_not_blame_the_relay_for_a_slow_hand_over(
    smtp_server: SMTPServer,
) -> None:
    # The wait for the previous commit is ours: longer than the SMTP timeout, and still fine.
    transport = SMTPTransport(parse_smtp_url(smtp_server.url(timeout="0.2")))
    handover: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    try:
        sending = asyncio.ensure_future(
            transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE, handover_after=handover)
        )
        await asyncio.sleep(0.5)
        handover.set_result(None)
        assert (await sending).ok
    finally:
        await transport.close()
    assert [m.rcpt_tos for m in smtp_server.messages] == [["b@knihovna.cz"]]


async def test_it_delivers_nothing_when_the_relay_hangs_up_during_the_wait() -> None:
    got: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _greet(reader, writer)
        [await reader.readline() for _ in range(3)]
        writer.write(b"250 ok\r\n250 ok\r\n354 go on\r\n")
        await asyncio.sleep(0.2)
        got.append(await reader.read(1 << 20))  # the body so far, without its dot
        writer.close()  # the relay's own timeout

    server, port = await _serve(handle)
    transport = SMTPTransport(parse_smtp_url(f"smtp://127.0.0.1:{port}?timeout=5"))
    handover: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    try:
        sending = asyncio.ensure_future(
            transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE, handover_after=handover)
        )
        await asyncio.sleep(0.5)
        handover.set_result(None)
        result = await sending
    finally:
        await transport.close()
        server.close()
    assert (result.code, result.stage) == (0, "data")
    assert got and not got[0].endswith(b"\r\n.\r\n")


def test_it_parses_replies_and_refuses_malformed_or_endless_ones() -> None:
    buffer = bytearray(b"250-one\r\n250 two\r\n354 go")
    reply = _take_reply(buffer)
    assert reply is not None and (reply.code, reply.message) == (250, "one\ntwo")
    assert _take_reply(buffer) is None and buffer == bytearray(b"354 go")
    buffer += b"\r\n"
    reply = _take_reply(buffer)
    assert reply is not None and reply.code == 354 and buffer == bytearray()
    with pytest.raises(aiosmtplib.SMTPResponseException):
        _take_reply(bytearray(b"hello\r\n"))
    with pytest.raises(aiosmtplib.SMTPResponseException):
        _take_reply(bytearray(b"250-" + b"x" * 40_000))


async def test_it_greets_a_server_that_knows_only_helo_and_sends_command_by_command() -> None:
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 old SMTP\r\n")
        while line := await reader.readline():
            seen.append(line.split()[0] if line.strip() else line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                writer.write(b"502 5.5.1 what is EHLO\r\n")
            elif verb == b"DATA":
                writer.write(b"354 go on\r\n")
                await reader.readuntil(b"\r\n.\r\n")
                writer.write(b"250 taken\r\n")
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                break
            else:
                writer.write(b"250 ok\r\n")
        writer.close()

    server, port = await _serve(handle)
    transport = SMTPTransport(parse_smtp_url(f"smtp://127.0.0.1:{port}?starttls=false&timeout=5"))
    try:
        result = await transport.send("a@sdruk.cz", ["b@knihovna.cz"], MESSAGE)
    finally:
        await transport.close()
        server.close()
    assert (result.code, result.message) == (250, "taken")
    assert seen[:5] == [b"EHLO", b"HELO", b"MAIL", b"RCPT", b"DATA"]
