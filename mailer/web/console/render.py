"""Rendering console pages: one Jinja2 environment over templates/web/ and Czech formatting."""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from babel.numbers import format_decimal, format_percent
from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from mailer.compose.czech import plural as czech_plural
from mailer.models import (
    LIBRARY_TYPE_LABELS,
    TOPIC_LABELS,
    ContactStatus,
    EventKind,
    LibraryType,
    MessageStatus,
    RunStatus,
    Topic,
)
from mailer.settings import get_settings
from mailer.web.console.audit import ACTION_LABELS, ACTOR_LABELS
from mailer.web.console.auth import CSRF_FIELD, ROLE_LABELS, Staff
from mailer.web.console.names import Names

CONTACT_STATUS_LABELS = {
    ContactStatus.ACTIVE: "aktivní",
    ContactStatus.UNSUBSCRIBED: "odhlášen/a",
    ContactStatus.BOUNCED: "nedoručitelný",
    ContactStatus.COMPLAINED: "stížnost na spam",
}
RUN_STATUS_LABELS = {
    RunStatus.SCHEDULED: "naplánováno",
    RunStatus.SENDING: "odesílá se",
    RunStatus.PAUSED: "pozastaveno",
    RunStatus.SENT: "odesláno",
    RunStatus.CANCELLED: "zrušeno",
}
MESSAGE_STATUS_LABELS = {
    MessageStatus.QUEUED: "ve frontě",
    MessageStatus.SENDING: "odesílá se",
    MessageStatus.SENT: "odesláno",
    MessageStatus.RETRY: "čeká na nový pokus",
    MessageStatus.FAILED: "selhalo",
    MessageStatus.SKIPPED: "vynecháno",
}
EVENT_LABELS = {
    EventKind.OPEN: "otevření",
    EventKind.CLICK: "kliknutí",
    EventKind.WEB_VIEW: "webová verze",
    EventKind.UNSUBSCRIBE: "odhlášení",
    EventKind.RESUBSCRIBE: "opětovné přihlášení",
    EventKind.TOPIC_OPT_OUT: "odhlášení tématu",
    EventKind.TOPIC_OPT_IN: "přihlášení tématu",
    EventKind.BOUNCE_HARD: "trvalá nedoručitelnost",
    EventKind.BOUNCE_SOFT: "dočasná nedoručitelnost",
    EventKind.COMPLAINT: "stížnost",
    EventKind.REGISTERED: "registrace na akci",
    EventKind.JOINED: "vstup do SDRUK",
    EventKind.APPLIED: "přihláška do SDRUK",
}
STEP_STATUS_LABELS = {
    "pending": "čeká na spuštění",
    "launched": "spuštěno",
    "late": "spuštěno se zpožděním",
    "missed": "zmeškáno",
    "failed": "spuštění selhalo",
}
KIND_LABELS = {"recruitment": "nábor členů", "event": "pozvánka na akci", "newsletter": "zpravodaj"}
TRACKING_LABELS = {
    "individual": "po jednotlivcích",
    "anonymous": "anonymně (jen souhrnná čísla)",
    "off": "vypnuto",
}
LEGAL_BASIS_LABELS = {"legitimate_interest": "oprávněný zájem", "consent": "souhlas"}


# Own scripts and styles only. Inline style attributes are allowed (layout tweaks in templates);
# previews are sandboxed srcdoc frames, which inherit this policy: e-mail HTML keeps its inline
# styles and https images but runs no script.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: https:; connect-src 'self'; frame-src 'self'; form-action 'self'; "
    "frame-ancestors 'self'; base-uri 'none'"
)
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": CONSOLE_CSP,
    "X-Frame-Options": "SAMEORIGIN",
    "Referrer-Policy": "same-origin",
}


def _tz() -> ZoneInfo:
    return ZoneInfo(get_settings().timezone)


def fmt_dt(value: datetime | None, fmt: str = "d. M. yyyy H:mm") -> str:
    if value is None:
        return "–"
    # Non-breaking spaces: Czech typography keeps "24. 11. 2026 9:30" on one line.
    return format_datetime(value.astimezone(_tz()), fmt, locale="cs_CZ").replace(" ", "\u00a0")


def fmt_num(value: float | int | None) -> str:
    if value is None:
        return "–"
    return format_decimal(value, locale="cs_CZ")


def fmt_pct(part: float | int, whole: float | int) -> str:
    if not whole:
        return "–"
    return format_percent(part / whole, "#,##0.0 %", locale="cs_CZ")


def plural(count: int | None, one: str, few: str, many: str) -> str:
    """Czech plural form after a number: 1 e-mail, 2 e-maily, 5 e-mailů."""
    return czech_plural(count or 0, one, few, many)


def step_label(name: str, campaign: str | None = None) -> str:
    """A step's Czech label (pages get a per-render `Names` that knows the campaigns)."""
    return Names().step(name, campaign)


DETAIL_LABELS = {
    "by": "kdo",
    "source": "zdroj",
    "topic": "téma",
    "note": "poznámka",
    "evidence": "doklad",
    "campaign": "kampaň",
    "reason": "důvod",
    "status": "stav",
    "diagnostic": "hlášení serveru",
    "feedback_type": "typ stížnosti",
}


# Where an unsubscribe, resubscribe or registration came from (Event.detail["source"]).
SOURCE_LABELS = {
    "page": "odhlašovací stránka",
    "one-click": "jedním kliknutím v poštovním programu",
    "preferences": "stránka nastavení odběru",
    "mailto": "e-mailem na odhlašovací adresu",
    "arf": "hlášení o stížnosti od poskytovatele",
    "import": "import ze souboru",
    "click": "kliknutí na odkaz v e-mailu",
}


def event_detail(detail: dict[str, Any] | None) -> str:
    """An event's detail in words staff read: known keys in Czech, empty and internal ones out."""
    topics = {t.value: label for t, label in TOPIC_LABELS.items()}
    parts = []
    for key, value in (detail or {}).items():
        if key in DETAIL_LABELS and value not in (None, "", [], {}):
            if key == "topic":
                shown = topics.get(value, value)
            elif key == "source":
                shown = SOURCE_LABELS.get(value, value)
            else:
                shown = value
            parts.append(f"{DETAIL_LABELS[key]}: {shown}")
    return "; ".join(parts)


def _label(mapping: dict[Any, str]) -> Any:
    return lambda value: mapping.get(value, value or "–")


@lru_cache
def _environment(templates_dir: Path) -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(templates_dir / "web")),
        autoescape=select_autoescape(["html", "xml"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        dt=fmt_dt,
        num=fmt_num,
        first_upper=lambda text: text[:1].upper() + text[1:] if text else text,
        contact_status=_label(CONTACT_STATUS_LABELS),
        run_status=_label(RUN_STATUS_LABELS),
        message_status=_label(MESSAGE_STATUS_LABELS),
        event_kind=_label(EVENT_LABELS),
        step_status=_label(STEP_STATUS_LABELS),
        event_detail=event_detail,
        library_type=_label({k.value: v for k, v in LIBRARY_TYPE_LABELS.items()}),
        topic=_label({k.value: v for k, v in TOPIC_LABELS.items()}),
        role=_label(ROLE_LABELS),
        actor=_label(ACTOR_LABELS),
        legal_basis=_label(LEGAL_BASIS_LABELS),
    )
    env.globals.update(
        pct=fmt_pct,
        plural=plural,
        step_label=step_label,
        action_labels=ACTION_LABELS,
        kind_labels=KIND_LABELS,
        tracking_labels=TRACKING_LABELS,
        CSRF_FIELD=CSRF_FIELD,
        LIBRARY_TYPES=[(t.value, LIBRARY_TYPE_LABELS[t]) for t in LibraryType],
        TOPICS=[(t.value, TOPIC_LABELS[t]) for t in Topic],
        CONTACT_STATUSES=[(s.value, CONTACT_STATUS_LABELS[s]) for s in ContactStatus],
    )
    return env


def environment() -> Environment:
    return _environment(get_settings().templates_dir)


def page(
    request: Request,
    template: str,
    staff: Staff | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A console page; every template gets the request, the signed-in staff and its CSRF token,
    and `campaign_name`/`step_label` that show titles and labels instead of slugs."""
    namer: Names = context.pop("namer", None) or Names()
    context.setdefault("campaign_name", namer.campaign)
    context.setdefault("step_label", namer.step)
    context.setdefault("audit_target", namer.target)
    context.setdefault("audit_details", namer.details)
    html = (
        environment()
        .get_template(f"console/{template}")
        .render(
            request=request,
            staff=staff,
            csrf=staff.csrf if staff else "",
            sender_name=get_settings().sender_name,
            **context,
        )
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers=PAGE_HEADERS,
    )
