"""Reads what comes back: delivery status notifications (RFC 3464), abuse reports (ARF,
RFC 5965) and the VERP / List-Unsubscribe addresses that say which message they are about.

Parsing only, with the stdlib email package; `mailer.web.inbound` decides what to record.
"""

from __future__ import annotations

import email
import email.policy
import re
from dataclasses import dataclass
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses

from mailer.settings import get_settings
from mailer.tokens import Purpose, Signer, default_signer

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# Bounces that say the address itself is wrong (RFC 3463): 5.1.x bad mailbox, domain or
# address syntax; 5.2.1 mailbox disabled. Everything else that failed (full mailbox, policy,
# spam blocks, timeouts) may heal, so it only counts as a soft bounce.
_HARD_PREFIXES = ("5.1.",)
_HARD_STATUSES = frozenset({"5.2.1"})
_BOUNCE_SENDER = re.compile(r"mailer-daemon|postmaster", re.IGNORECASE)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status|delivery fail|failure notice|returned mail|nedoru", re.IGNORECASE
)
_LIST_UNSUBSCRIBE_TOKEN = re.compile(r"/u/([A-Za-z0-9_-]{8,200})")
_LIST_UNSUBSCRIBE_MAILTO = re.compile(r"<\s*mailto:([^>?\s]+)", re.IGNORECASE)


@dataclass(frozen=True)
class RecipientStatus:
    """One per-recipient block of a DSN."""

    final_recipient: str
    action: str  # failed | delayed | delivered | relayed | expanded
    status: str  # enhanced status code, e.g. 5.1.1
    diagnostic: str = ""

    @property
    def failed(self) -> bool:
        return self.action == "failed"

    @property
    def hard(self) -> bool:
        return self.failed and is_hard_status(self.status)


@dataclass(frozen=True)
class DeliveryReport:
    """A parsed DSN: its recipients and the original message's headers when returned."""

    recipients: list[RecipientStatus]
    reporting_mta: str = ""
    original_headers: Message | None = None


@dataclass(frozen=True)
class FeedbackReport:
    """A parsed ARF report (a recipient pressed "this is spam")."""

    feedback_type: str
    user_agent: str = ""
    original_mail_from: str = ""
    original_rcpt_to: tuple[str, ...] = ()
    original_headers: Message | None = None


def is_hard_status(status: str) -> bool:
    return status.startswith(_HARD_PREFIXES) or status in _HARD_STATUSES


def parse_message(data: bytes) -> Message:
    """Bytes off the wire to a Message (compat32 keeps the report parts' structure)."""
    return email.message_from_bytes(data, policy=email.policy.compat32)


def _report_type(msg: Message) -> str:
    if msg.get_content_type() != "multipart/report":
        return ""
    return str(msg.get_param("report-type", "", header="content-type")).lower()


def _original_headers(msg: Message) -> Message | None:
    """The returned original (message/rfc822 or text/rfc822-headers part), headers only."""
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                inner = payload[0]
                if isinstance(inner, Message):
                    return inner
        elif ctype == "text/rfc822-headers":
            text = part.get_payload(decode=True)
            if isinstance(text, bytes):
                return HeaderParser().parsestr(text.decode("utf-8", "replace"))
    return None


def _type_value(value: str | None) -> str:
    """`rfc822; user@example.org` → `user@example.org`."""
    if not value:
        return ""
    return value.split(";", 1)[-1].strip().strip("<>")


def _unfold(value: str | None) -> str:
    return " ".join((value or "").split())


def parse_dsn(msg: Message) -> DeliveryReport | None:
    """A DSN's per-recipient statuses, or None when `msg` is no RFC 3464 report."""
    if _report_type(msg) != "delivery-status":
        return None
    for part in msg.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        blocks = part.get_payload()
        if not isinstance(blocks, list) or not blocks:
            return None
        per_message, per_recipient = blocks[0], blocks[1:]
        recipients = []
        for block in per_recipient:
            if not isinstance(block, Message):
                continue
            action = (block.get("Action") or "").strip().lower()
            status_match = _STATUS.search(block.get("Status") or "")
            diagnostic = _unfold(block.get("Diagnostic-Code"))
            if status_match is None:
                status_match = _STATUS.search(diagnostic)
            status = status_match.group(0) if status_match else ""
            recipients.append(
                RecipientStatus(
                    final_recipient=_type_value(
                        block.get("Final-Recipient") or block.get("Original-Recipient")
                    ),
                    action=action,
                    status=status,
                    diagnostic=_type_value(diagnostic) if ";" in diagnostic else diagnostic,
                )
            )
        reporting = per_message.get("Reporting-MTA") if isinstance(per_message, Message) else ""
        return DeliveryReport(recipients, _type_value(reporting), _original_headers(msg))
    return None


def parse_nonstandard_bounce(msg: Message) -> DeliveryReport | None:
    """Some servers still send plain-text bounces: a bounce-looking message (from
    MAILER-DAEMON, or an undeliverable subject) with an enhanced status code in its text.
    Anything else (an auto-reply to the return path) is no bounce."""
    sender = msg.get("From") or ""
    subject = msg.get("Subject") or ""
    if not (_BOUNCE_SENDER.search(sender) or _BOUNCE_SUBJECT.search(subject)):
        return None
    for part in msg.walk():
        if part.get_content_maintype() != "text":
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        text = payload.decode(part.get_content_charset() or "utf-8", "replace")
        match = _STATUS.search(text)
        if match and match.group(1) in "45":
            line = next((ln.strip() for ln in text.splitlines() if match.group(0) in ln), "")
            return DeliveryReport(
                [RecipientStatus("", "failed", match.group(0), line[:500])],
                original_headers=_original_headers(msg),
            )
    return None


def parse_arf(msg: Message) -> FeedbackReport | None:
    """An ARF report's fields, or None when `msg` is no RFC 5965 feedback report."""
    if _report_type(msg) != "feedback-report":
        return None
    for part in msg.walk():
        if part.get_content_type() != "message/feedback-report":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):  # some parsers treat it like message/*: headers blocks
            text = "".join(p.as_string() for p in payload if isinstance(p, Message))
        else:
            raw = part.get_payload(decode=True)
            text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
        fields = HeaderParser().parsestr(text.lstrip())
        return FeedbackReport(
            feedback_type=(fields.get("Feedback-Type") or "abuse").strip().lower(),
            user_agent=_unfold(fields.get("User-Agent")),
            original_mail_from=_unfold(fields.get("Original-Mail-From")).strip("<>"),
            original_rcpt_to=tuple(
                _unfold(v).strip("<>") for v in fields.get_all("Original-Rcpt-To") or []
            ),
            original_headers=_original_headers(msg),
        )
    return None


def _local_token(address: str, mailbox: str, signer: Signer, purpose: Purpose) -> int | None:
    address = address.strip().strip("<>")
    local, _, domain = address.rpartition("@")
    if domain.lower() != get_settings().bounce_domain.lower():
        return None
    prefix = f"{mailbox.lower()}+"
    if not local.lower().startswith(prefix):
        return None
    # Address-borne tokens are lowercase hex: case-insensitive, since MTAs may change a local part.
    ids = signer.verify_address(purpose, local[len(prefix) :])
    return ids[0] if ids else None


def return_path_outbox_id(address: str, signer: Signer | None = None) -> int | None:
    """`bounce+<token>@<bounce_domain>` (VERP) → the outbox message id, or None."""
    return _local_token(address, "bounce", signer or default_signer(), Purpose.RETURN_PATH)


def unsubscribe_outbox_id(address: str, signer: Signer | None = None) -> int | None:
    """`unsubscribe+<token>@<bounce_domain>` (List-Unsubscribe mailto) → the outbox id."""
    mailbox = get_settings().unsubscribe_mailbox
    return _local_token(address, mailbox, signer or default_signer(), Purpose.UNSUBSCRIBE)


def outbox_id_from_original(headers: Message | None, signer: Signer | None = None) -> int | None:
    """Which of our messages a returned original is: its Return-Path (VERP) or the token in its
    List-Unsubscribe header. Used when a report does not arrive at the VERP address."""
    if headers is None:
        return None
    signer = signer or default_signer()
    for _, address in getaddresses(headers.get_all("Return-Path") or []):
        found = return_path_outbox_id(address, signer)
        if found is not None:
            return found
    for value in headers.get_all("List-Unsubscribe") or []:
        for token in _LIST_UNSUBSCRIBE_TOKEN.findall(str(value)):
            ids = signer.verify(Purpose.UNSUBSCRIBE, token)
            if ids:
                return ids[0]
        for address in _LIST_UNSUBSCRIBE_MAILTO.findall(str(value)):
            found = unsubscribe_outbox_id(address, signer)
            if found is not None:
                return found
    return None


# Our Message-IDs: sdruk.<run>.<outbox>[.<run's nonce>]@<sender domain> (see compose.composer).
_OWN_MESSAGE_ID = re.compile(r"<?sdruk\.(\d+)\.(\d+)(?:\.([0-9a-f]+))?@[^>\s]+>?", re.IGNORECASE)


def is_own_message(
    headers: Message | None, run_id: int | None, outbox_id: int, nonce: str | None
) -> bool:
    """Whether a returned original carries the Message-ID we gave message `outbox_id` of run
    `run_id` (with the run's nonce when it has one). Tokens in List-Unsubscribe are visible
    to whoever sees the message; a complaint must also quote the message's own id."""
    if headers is None or run_id is None:
        return False
    for value in headers.get_all("Message-ID") or []:
        match = _OWN_MESSAGE_ID.fullmatch(str(value).strip())
        if match is None:
            continue
        found_run, found_outbox, found_nonce = match.groups()
        if (int(found_run), int(found_outbox)) != (run_id, outbox_id):
            continue
        if nonce and (found_nonce or "").lower() != nonce.lower():
            continue
        return True
    return False
