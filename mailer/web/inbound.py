"""The inbound SMTP endpoint (aiosmtpd) for the bounce domain: List-Unsubscribe mailto
messages, delivery status notifications at the VERP return path, and abuse reports.

Recipients are checked at RCPT time (a token that does not verify is refused with 550, so
nothing is accepted that could not be acted on). What a message means is decided after DATA,
and recorded through `mailer.events.record`; a database failure answers 451 so the sending
server retries, which is safe because every recording is idempotent per message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope
from aiosmtpd.smtp import Session as SMTPSession
from sqlalchemy import Engine
from sqlmodel import Session

from mailer.db import session_scope
from mailer.events import bounces, record
from mailer.models import Run
from mailer.settings import get_settings
from mailer.tokens import Signer, default_signer

log = logging.getLogger(__name__)

# Where mailbox providers send feedback-loop (ARF) reports and postmasters write.
REPORT_MAILBOXES = frozenset({"fbl", "abuse", "postmaster", "arf"})
MAX_MESSAGE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Recipient:
    """What an accepted envelope recipient is for."""

    role: str  # "unsubscribe" | "bounce" | "report"
    outbox_id: int | None


def recipient_role(address: str, signer: Signer) -> Recipient | None:
    """None for addresses this endpoint does not serve (refused at RCPT)."""
    settings = get_settings()
    if (outbox_id := bounces.unsubscribe_outbox_id(address, signer)) is not None:
        return Recipient("unsubscribe", outbox_id)
    if (outbox_id := bounces.return_path_outbox_id(address, signer)) is not None:
        return Recipient("bounce", outbox_id)
    local, _, domain = address.strip("<>").rpartition("@")
    if domain.lower() == settings.bounce_domain.lower() and local.lower() in REPORT_MAILBOXES:
        return Recipient("report", None)
    return None


def process_message(
    engine: Engine, rcpt_tos: list[str], data: bytes, signer: Signer | None = None
) -> list[str]:
    """Act on one received message for each of its recipients; returns what was done
    (for logs and tests)."""
    signer = signer or default_signer()
    message = bounces.parse_message(data)
    arf = bounces.parse_arf(message)
    dsn = None if arf else bounces.parse_dsn(message) or bounces.parse_nonstandard_bounce(message)
    outcomes: list[str] = []
    with session_scope(engine) as session:
        for address in rcpt_tos:
            role = recipient_role(address, signer)
            if role is None:
                continue
            if role.role == "unsubscribe":
                assert role.outbox_id is not None
                target = record.BounceTarget.of(session, role.outbox_id)
                if target is None or target.contact_id is None:
                    outcomes.append("unsubscribe:unknown")
                    continue
                changed = record.unsubscribe(
                    session,
                    target.contact_id,
                    "mailto",
                    run_id=target.run_id,
                    outbox_id=target.outbox_id,
                )
                outcomes.append("unsubscribe" if changed else "unsubscribe:already")
                continue
            outbox_id = role.outbox_id
            if outbox_id is None and arf is not None:
                outbox_id = bounces.return_path_outbox_id(arf.original_mail_from, signer)
            if outbox_id is None:
                report = arf or dsn
                outbox_id = bounces.outbox_id_from_original(
                    report.original_headers if report else None, signer
                )
            target = record.BounceTarget.of(session, outbox_id) if outbox_id else None
            if target is None:
                outcomes.append("unmatched")
                continue
            if arf is not None:
                if not _own_message(session, arf.original_headers, target):
                    outcomes.append("complaint:unverified")
                    continue
                done = record.complaint(session, target, feedback_type=arf.feedback_type)
                outcomes.append("complaint" if done else "complaint:already")
            elif dsn is not None:
                failed = [r for r in dsn.recipients if r.failed]
                if not failed:
                    outcomes.append("dsn:not-failed")  # delayed / delivered notices
                    continue
                worst = next((r for r in failed if r.hard), failed[0])
                if worst.hard:
                    done = record.hard_bounce(
                        session, target, status=worst.status, diagnostic=worst.diagnostic
                    )
                    outcomes.append("hard" if done else "hard:already")
                else:
                    done = record.soft_bounce(
                        session, target, status=worst.status, diagnostic=worst.diagnostic
                    )
                    outcomes.append("soft" if done else "soft:already")
            else:
                outcomes.append("ignored")  # an auto-reply to the return path
    return outcomes


def _own_message(session: Session, headers: Message | None, target: record.BounceTarget) -> bool:
    """A complaint is recorded only for a report quoting the message's own Message-ID."""
    run = session.get(Run, target.run_id) if target.run_id is not None else None
    nonce = (run.content or {}).get("message_id_nonce") if run is not None else None
    return bounces.is_own_message(headers, target.run_id, target.outbox_id, nonce)


# What process_message did, for the log staff read (one line per message).
OUTCOME_LABELS = {
    "unsubscribe": "odhlášení e-mailem zaznamenáno",
    "unsubscribe:already": "odhlášení e-mailem (kontakt už byl odhlášen)",
    "unsubscribe:unknown": "odhlášení e-mailem pro zprávu, kterou už neznáme",
    "hard": "trvalá nedoručitelnost zaznamenána, adresa blokována",
    "hard:already": "trvalá nedoručitelnost (už zaznamenána dříve)",
    "soft": "dočasná nedoručitelnost zaznamenána",
    "soft:already": "dočasná nedoručitelnost (už zaznamenána dříve)",
    "complaint": "stížnost na spam zaznamenána, kontakt odhlášen",
    "complaint:already": "stížnost na spam (už zaznamenána dříve)",
    "complaint:unverified": "hlášení o spamu bez identifikátoru naší zprávy (Message-ID), "
    "nezaznamenáno",
    "dsn:not-failed": "zpráva o zpoždění nebo doručení, nic se nemění",
    "unmatched": "nelze přiřadit k odeslané zprávě, nic se nemění",
    "ignored": "automatická odpověď, nic se nemění",
}


def describe_outcomes(outcomes: list[str]) -> str:
    if not outcomes:
        return "nic k zaznamenání"
    return "; ".join(OUTCOME_LABELS.get(o, o) for o in outcomes)


def _peer(session: SMTPSession) -> str:
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "?")


class InboundHandler:
    """aiosmtpd handler: checks recipients, then processes each message off the event loop.
    Every message is logged (INFO): what was accepted, refused and recorded."""

    def __init__(self, engine: Engine, signer: Signer | None = None) -> None:
        self.engine = engine
        self.signer = signer or default_signer()
        self.processed: list[list[str]] = []

    async def handle_RCPT(
        self,
        server: SMTP,
        session: SMTPSession,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if recipient_role(address, self.signer) is None:
            log.info(
                "Příchozí pošta od %s (%s): příjemce %s odmítnut (550, neznámá adresa)",
                envelope.mail_from or "<>",
                _peer(session),
                address,
            )
            return "550 5.1.1 No such recipient here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: SMTPSession, envelope: Envelope) -> str:
        data = envelope.content
        if isinstance(data, str):
            data = data.encode("utf-8", "surrogateescape")
        try:
            outcomes = await asyncio.to_thread(
                process_message, self.engine, list(envelope.rcpt_tos), data or b"", self.signer
            )
        except Exception:
            log.exception(
                "Příchozí zprávu od %s pro %s nelze zpracovat: odpověď 451, odesílatel ji "
                "pošle znovu",
                envelope.mail_from or "<>",
                ", ".join(envelope.rcpt_tos),
            )
            return "451 4.3.0 Temporary failure, please retry"
        log.info(
            "Příchozí zpráva od %s (%s) pro %s, %d bajtů: přijata (250); %s",
            envelope.mail_from or "<>",
            _peer(session),
            ", ".join(envelope.rcpt_tos),
            len(data or b""),
            describe_outcomes(outcomes),
        )
        self.processed.append(outcomes)
        return "250 OK"


async def serve_forever(
    *,
    stop: asyncio.Event,
    host: str | None = None,
    port: int | None = None,
    engine: Engine | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve SMTP on the running event loop until `stop` is set (`sdruk inbound`, and the
    inbound role of schedule.py). Host and port default to INBOUND_HOST / INBOUND_PORT."""
    from mailer.db import get_engine

    settings = get_settings()
    host = host or settings.inbound_host
    port = port or settings.inbound_port
    handler = InboundHandler(engine or get_engine())
    hostname = settings.bounce_domain

    def factory() -> SMTP:
        return SMTP(
            handler,
            hostname=hostname,
            data_size_limit=MAX_MESSAGE_BYTES,
            enable_SMTPUTF8=True,
        )

    server = await asyncio.get_running_loop().create_server(factory, host=host, port=port)
    try:
        if on_ready is not None:
            on_ready()
        await stop.wait()
    finally:
        server.close()
        await server.wait_closed()


def make_controller(
    engine: Engine, host: str = "127.0.0.1", port: int = 2525, **options: Any
) -> Controller:
    """An aiosmtpd controller (its own thread and loop); `.start()` / `.stop()`."""
    return Controller(
        InboundHandler(engine),
        hostname=host,
        port=port,
        server_hostname=get_settings().bounce_domain,
        data_size_limit=MAX_MESSAGE_BYTES,
        enable_SMTPUTF8=True,
        **options,
    )
