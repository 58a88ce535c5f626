"""What an SMTP result means for a message: the outcome kinds, the verdict on a transport
result (sent, retry, failed, bounced, or a policy refusal that pauses the run) and the Czech
reason a run pauses with.

Fault rules: 2xx sent; 4xx or no reply → retry; 5xx from RCPT or DATA → failed, and 5.1.x (no
such mailbox) → bounced; 5.7.x, or any 5xx at connect/MAIL, or a TLS or AUTH failure → policy
(our account or our sender is refused: the run pauses).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime

from mailer.delivery import outbox as ob
from mailer.delivery.transport import NO_REPLY, SendResult

__all__ = [
    "BOUNCED",
    "FAILED",
    "REQUEUE",
    "RETRY",
    "SENT",
    "SKIPPED",
    "Outcome",
    "judge",
    "pause_reason",
]

SENT, RETRY, FAILED, BOUNCED, REQUEUE, SKIPPED = (
    "sent",
    "retry",
    "failed",
    "bounced",
    "requeue",
    "skipped",
)


@dataclass(slots=True)
class Outcome:
    message: ob.Claimed
    kind: str
    text: str = ""
    retry_at: datetime | None = None
    enhanced: str = ""
    # No reply at all (connection failed): the sender pauses before its next message.
    no_reply: bool = False
    done: asyncio.Future[None] | None = None


def judge(result: SendResult) -> str:
    """What a transport result means: sent, retry, failed, bounced, or policy (pause the run)."""
    if result.ok:
        return SENT
    if result.stage in ("tls", "auth"):
        # Our settings or our account, never a passing fault: the whole pool got the same no.
        return "policy"
    code = result.code
    if code == NO_REPLY or 400 <= code < 500:
        return RETRY
    enhanced = result.enhanced
    # Refusals of our account, our sender or our content as policy: not the recipient's fault.
    if enhanced.startswith("5.7.") or code in (530, 534, 535, 538):
        return "policy"
    if result.stage in ("connect", "mail"):
        return "policy"
    if enhanced.startswith("5.1."):
        return BOUNCED
    return FAILED


_STAGES = {
    "connect": "při připojení",
    "mail": "u adresy odesílatele",
    "rcpt": "u adresy příjemce",
    "data": "u obsahu zprávy",
}


def pause_reason(result: SendResult) -> str:
    """Why a run pauses on a refusal that is ours to fix, in Czech, with what to do."""
    if result.stage == "tls":
        return (
            f"Zabezpečené spojení (TLS) s odesílacím serverem nelze navázat: {result.message}. "
            "Ověřte adresu serveru v SMTP_URL; server s vlastním certifikátem potřebuje "
            "ca_file=cesta/k/ca.pem (validate_certs=false jen v důvěryhodné síti)."
        )[:1000]
    if result.stage == "auth":
        return (
            f"Odesílací server odmítl přihlášení ({result.code} {result.message}). Zkontrolujte "
            "jméno a heslo v SMTP_URL. Další pokusy o přihlášení se zastavily, aby server účet "
            "nezablokoval; po opravě rozesílku obnovte."
        )[:1000]
    where = _STAGES.get(result.stage, result.stage)
    return f"Odesílací server odmítl odeslání ({where}): {result.describe()}"[:1000]
