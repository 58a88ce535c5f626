"""Transactional messages (confirmations, welcomes, notifications): mail a person asked for.

Each one is frozen like a campaign step, from one shared MJML layout
(templates/email/transactional/layout.mjml) filled with the message's own text, so it goes
through the same Composer and has the same MIME shape as campaign mail, without tracking and
without List-Unsubscribe (the content says `transactional`)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from mjml import mjml2html

from mailer.compose.freeze import (
    CONTENT_VERSION,
    expand_includes,
    html_to_text_template,
    include_loader,
    sender_values,
    to_json,
)
from mailer.models import TRANSACTIONAL_TOPIC

LAYOUT = "transactional/layout.mjml"


@dataclass(frozen=True)
class Notice:
    """What one transactional message says. `kind` names it for staff (and the List-Id)."""

    kind: str
    subject: str
    heading: str
    paragraphs: list[str]
    button_label: str
    button_url: str
    why: str
    preheader: str = ""
    details: list[tuple[str, str]] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    # The greeting line; empty: the recipient's vocative salutation (or the neutral one).
    greeting: str = ""
    ics: str | None = None
    # The placeholder values the texts were filled with; staff's wording of this kind is
    # filled with the same values when the message is queued.
    values: dict[str, str] = field(default_factory=dict)


def _compiled_layout() -> str:
    from mailer.settings import get_settings

    directory = get_settings().templates_dir / "email"
    loader = include_loader(directory)
    source = expand_includes((directory / LAYOUT).read_text(encoding="utf-8"), loader)
    return str(mjml2html(source, disable_comments=True, include_loader=loader)).replace(
        "\r\n", "\n"
    )


def freeze_notice(notice: Notice) -> dict[str, Any]:
    """Run content for one transactional message, in the shape `Composer` fills."""
    from mailer.settings import get_settings

    settings = get_settings()
    html_template = _compiled_layout()
    values = {
        "campaign": {
            "slug": notice.kind,
            "name": notice.subject,
            "kind": "transactional",
            "topic": TRANSACTIONAL_TOPIC,
            "topic_label": "",
        },
        "step": {"name": notice.kind},
        "event": None,
        "sender": sender_values(),
        "message": {
            "subject": notice.subject,
            "preheader": notice.preheader,
            "heading": notice.heading,
            "greeting": notice.greeting,
            "paragraphs": list(notice.paragraphs),
            "details": [list(row) for row in notice.details],
            "button_label": notice.button_label,
            "button_url": notice.button_url,
            "after": list(notice.after),
            "why": notice.why,
        },
    }
    return {
        "version": CONTENT_VERSION,
        "transactional": True,
        # Message-IDs stay the same on a retry and differ between databases.
        "message_id_nonce": secrets.token_hex(6),
        "campaign": notice.kind,
        "step": notice.kind,
        "name": notice.subject,
        "kind": "transactional",
        "topic": TRANSACTIONAL_TOPIC,
        "tracking": "off",
        # The Composer reads subject and preheader as templates: these point at the text
        # instead of being it, so a `{{` typed into a public form (a library's name) stays text.
        "subject": "{{ message.subject }}",
        "preheader": "{{ message.preheader }}",
        "html": html_template,
        "text": html_to_text_template(html_template),
        "links": [],
        "registration_link": None,
        "from_name": settings.sender_name,
        "from_email": settings.sender_email,
        "reply_to": settings.sender_email,
        "list_id": f"{notice.kind}.transakcni.{settings.sender_domain}",
        "feedback_id": f"{notice.kind}:transakcni:transactional:sdruk",
        "ics": notice.ics,
        "values": to_json(values),
        "frozen_at": datetime.now(UTC).isoformat(),
    }
