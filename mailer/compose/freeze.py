"""Freezing a campaign step into a run's content: the step's MJML compiled once, its text
part made from the HTML, its links listed, its campaign-level values fixed, as JSON immune to
later edits. Also the one Jinja environment every template renders in.

Order matters (DESIGN.md): MJML is compiled before Jinja runs, so a run compiles once and each
recipient costs one Jinja render of the compiled HTML and of the text made from it. Links with
a literal (or campaign-level) http(s) target are listed in `content["links"]` and replaced by
their tracked form; the web app resolves `/c/<token>/<index>` through that list.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jinja2
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from mjml import mjml2html

from mailer.compose import czech
from mailer.compose.campaigns import Blueprint, Tracking
from mailer.models import TOPIC_LABELS, Topic

if TYPE_CHECKING:
    from mjml import IncludeLoader

CONTENT_VERSION = 1
# The public membership form (mailer.web.public.apply), for `links.apply`.
APPLY_PATH = "/chceme-byt-clenem"
# An event campaign's registration page (mailer.web.public.register), for `links.register`.
REGISTER_PATH = "/registrace"
# The names a template may use (checked by `campaigns check`).
TEMPLATE_VALUES: dict[str, str] = {
    "salutation": "oslovení v 5. pádě, např. „Vážená paní ředitelko,“",
    "contact": "first_name, last_name, email, role, legal_basis",
    "library": "name, town, region, type (text), member (bool)",
    "campaign": "slug, name, kind, topic, topic_label",
    "step": "name (launch, nebo název připomínky)",
    "session": "termín, o kterém krok je (title, start, end, venue, address, number): u "
    "připomínky before_session její termín, u akce s jediným termínem ten; jinak prázdné",
    "event": "title, start, end, venue, address, registration_url, description, "
    "to_be_confirmed, sessions (title, start, end, venue, address)",
    "sender": "name, email, web, web_label, ico, seat",
    "links": "unsubscribe, preferences, web_version, apply (přihláška do SDRUK, předvyplněná), "
    "register (registrace na akci kampaně, předvyplněná)",
    "subject": "předmět zprávy",
    "preheader": "úvodní text (náhled v poštovním programu)",
    "plural": "plural(n, 'knihovna', 'knihovny', 'knihoven')",
    "count_noun": "count_noun(n, 'knihovna', 'knihovny', 'knihoven') -> '5 knihoven'",
}
TEMPLATE_FILTERS: dict[str, Callable[..., str]] = {
    "datum": czech.format_day,
    "datum_den": czech.format_weekday_day,
    "cas": czech.format_clock,
    "datum_cas": czech.format_moment,
}
_HREF_RE = re.compile(r'href="([^"]*)"')
_MD_LINK_RE = re.compile(r"\[([^\]\n]*)\]\((\{\{[^}]*\}\}|[^)\s]*)\)")
_STATEMENT_LINE_RE = re.compile(r"^\{%-?[^%]*-?%\}$")
_PIXEL = (
    '{% if _o %}<img src="{{ _o }}" width="1" height="1" alt="" '
    'style="display:block;width:1px;height:1px;border:0;" />{% endif %}'
)


class ComposeError(ValueError):
    """A campaign step that cannot be rendered."""


def _email_templates_dir() -> Path:
    from mailer.settings import get_settings

    return get_settings().templates_dir / "email"


def include_loader(directory: Path, campaign_dir: Path | None = None) -> IncludeLoader:
    """mj-include paths: the campaign's own directory first, then templates/email."""

    def load(path: str) -> str:
        for base in (campaign_dir, directory):
            if base is None:
                continue
            candidate = (base / path).resolve()
            if candidate.is_file() and candidate.is_relative_to(base.resolve()):
                return candidate.read_text(encoding="utf-8")
        raise ComposeError(f"mj-include: soubor {path!r} neexistuje")

    return load


def make_environment(
    *,
    autoescape: bool,
    finalize: Callable[[Any], Any] | None = None,
    newline_sequence: Literal["\n", "\r\n", "\r"] = "\n",
) -> jinja2.Environment:
    """The one Jinja setup for templates: StrictUndefined, Czech filters and helpers."""
    env = jinja2.Environment(
        autoescape=autoescape,
        finalize=finalize,
        newline_sequence=newline_sequence,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters.update(TEMPLATE_FILTERS)
    env.globals.update(plural=czech.plural, count_noun=czech.count_noun)
    return env


def sender_values() -> dict[str, str]:
    from mailer.settings import get_settings

    s = get_settings()
    return {
        "name": s.sender_name,
        "email": s.sender_email,
        "web": s.sender_web,
        "web_label": re.sub(r"^https?://", "", s.sender_web).rstrip("/"),
        "ico": s.sender_ico,
        "seat": s.sender_seat,
    }


def registration_page(blueprint: Blueprint) -> str:
    """Where the event is registered for: its external `registration_url`, else the product's
    own public page (not pre-filled; `links.register` is, per recipient)."""
    from mailer.settings import get_settings

    if blueprint.event is not None and blueprint.event.registration_url:
        return blueprint.event.registration_url
    return f"{get_settings().base_url.rstrip('/')}{REGISTER_PATH}/{blueprint.slug}"


def campaign_values(blueprint: Blueprint, step_name: str) -> dict[str, Any]:
    """Values that are the same for every recipient of a step (datetimes as objects)."""
    event: dict[str, Any] | None = None
    if blueprint.event is not None:
        ev = blueprint.event
        event = {
            "title": ev.title,
            "start": ev.start,
            "end": ev.end,
            "venue": ev.venue,
            "address": ev.address,
            "registration_url": registration_page(blueprint),
            "description": ev.description,
            "to_be_confirmed": list(ev.to_be_confirmed),
            "sessions": [s.model_dump() for s in ev.sessions],
        }
    occurrence = blueprint.session_of(step_name) if blueprint.event is not None else None
    session: dict[str, Any] | None = None
    if occurrence is not None:
        step = blueprint.step(step_name)
        session = {
            "title": occurrence.title,
            "start": occurrence.start,
            "end": occurrence.end,
            "venue": occurrence.venue,
            "address": occurrence.address,
            "number": step.session or 1,
        }
    return {
        "session": session,
        "campaign": {
            "slug": blueprint.slug,
            "name": blueprint.name,
            "kind": str(blueprint.kind),
            "topic": blueprint.topic,
            "topic_label": TOPIC_LABELS[Topic(blueprint.topic)].lower(),
        },
        "step": {"name": step_name},
        "event": event,
        "sender": sender_values(),
    }


class _PerRecipient(jinja2.ChainableUndefined):
    """A value that differs per recipient, as a staff page shows it in a subject."""

    def __str__(self) -> str:
        return "[podle adresáta]"


def shown_subject(blueprint: Blueprint, step_name: str = "launch") -> str:
    """A step's subject as recipients read it, for staff pages: campaign values (event date,
    names) filled in; anything that differs per recipient reads "[podle adresáta]". A subject
    that does not render (the check reports why) is shown as written."""
    source = blueprint.subject_for(blueprint.step(step_name))
    env = make_environment(autoescape=False)
    env.undefined = _PerRecipient
    try:
        text = env.from_string(source).render(campaign_values(blueprint, step_name))
    except Exception:
        return source
    return " ".join(text.split())


def to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dict):
        return {k: to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    return value


def from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$dt"}:
            return datetime.fromisoformat(value["$dt"])
        return {k: from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_json(v) for v in value]
    return value


def _track_links(compiled: str, values: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Replace each http(s) href by `{{ _l<i> }}` (link i of `links`; a plain name renders
    faster than an index); links are resolved with campaign-level values."""
    env = make_environment(autoescape=False)
    links: list[str] = []

    def replace(match: re.Match[str]) -> str:
        target = html.unescape(match.group(1))
        if "{{" in target or "{%" in target:
            try:
                target = env.from_string(target).render(values)
            except jinja2.UndefinedError:
                return match.group(0)  # uses per-recipient values: left as written
        if not target.startswith(("https://", "http://")):
            return f'href="{html.escape(target)}"'
        if target not in links:
            links.append(target)
        return 'href="{{ _l' + str(links.index(target)) + ' }}"'

    return _HREF_RE.sub(replace, compiled), links


def html_to_text_template(compiled: str) -> str:
    """The text part, made once from the compiled HTML by inscriptis; Jinja survives it."""
    text = get_text(compiled, ParserConfig(display_links=True))
    # inscriptis writes links as [label](url); mail readers expect "label (url)".
    text = _MD_LINK_RE.sub(_text_link, text)
    out: list[str] = []
    pending = ""  # Jinja statements waiting for the next line of text
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("* "):
            line = "  - " + line[2:]
        if _STATEMENT_LINE_RE.match(line):
            # A line holding only `{% if %}`/`{% for %}`… is glued to the next line of text,
            # so whichever branch renders brings its own spacing and no blank lines pile up.
            pending += line
            continue
        if not line and (pending or not out or not out[-1]):
            continue
        out.append(pending + line)
        pending = ""
    if pending:
        out.append(pending)
    return "\n".join(out).strip() + "\n"


def _text_link(match: re.Match[str]) -> str:
    label, url = match.group(1).strip(), match.group(2)
    if not label or label == url:
        return url
    if url.startswith("mailto:") and url[7:] == label:
        return label
    return f"{label} ({url})"


def build_ics(blueprint: Blueprint) -> str | None:
    """An iCalendar (METHOD:PUBLISH) of the event's sessions, for event campaigns."""
    if blueprint.event is None:
        return None
    import icalendar

    from mailer.settings import get_settings

    settings = get_settings()
    ev = blueprint.event
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Sdruzeni knihoven CR//SDRUK Campaigns//CS")
    cal.add("version", "2.0")
    cal.add("method", "PUBLISH")
    cal.add("x-wr-calname", ev.title)
    stamp = datetime.now(UTC).replace(microsecond=0)
    for index, session in enumerate(ev.occurrences()):
        item = icalendar.Event()
        item.add("uid", f"{blueprint.slug}-{index + 1}@{settings.sender_domain}")
        item.add("dtstamp", stamp)
        item.add("dtstart", session.start)
        item.add("dtend", session.end)
        title = session.title if session.title == ev.title else f"{ev.title}: {session.title}"
        item.add("summary", title)
        item.add("location", ", ".join(x for x in (session.venue, session.address) if x))
        item.add("url", registration_page(blueprint))
        description = ev.description
        if session.to_be_confirmed:
            description += " Termín a místo budou ještě potvrzeny."
        item.add(
            "description", f"{description}\nRegistrace: {registration_page(blueprint)}".strip()
        )
        item.add("status", "TENTATIVE" if session.to_be_confirmed else "CONFIRMED")
        organizer = icalendar.vCalAddress(f"mailto:{settings.sender_email}")
        organizer.params["cn"] = icalendar.vText(settings.sender_name)
        item.add("organizer", organizer)
        cal.add_component(item)
    add_tz = getattr(cal, "add_missing_timezones", None)
    if add_tz is not None:
        add_tz()
    return cal.to_ical().decode("utf-8")


_INCLUDE_RE = re.compile(r'<mj-include\s+path="([^"]+)"\s*(?:/>|>\s*</mj-include>)')


def expand_includes(source: str, load: Callable[[str], str], depth: int = 0) -> str:
    """`<mj-include path="…"/>` replaced by the partial's content, before compiling.

    mjml-python resolves includes itself, but sections it includes lose the body's width
    (they render full-width), so partials are spliced in as text instead."""
    if depth > 10:
        raise ComposeError("mj-include: příliš hluboké vnoření (zacyklené vložení?)")

    def splice(match: re.Match[str]) -> str:
        return expand_includes(load(match.group(1)), load, depth + 1)

    return _INCLUDE_RE.sub(splice, source)


def compile_mjml(blueprint: Blueprint, step_name: str) -> str:
    """The step's body MJML compiled to HTML (Jinja still inside)."""
    path = blueprint.body_path(step_name)
    loader = include_loader(_email_templates_dir(), blueprint.directory)
    source = expand_includes(path.read_text(encoding="utf-8"), loader)
    return mjml2html(source, disable_comments=True, include_loader=loader)


def freeze(blueprint: Blueprint, step_name: str = "launch") -> dict[str, Any]:
    """Everything a run needs to send, as JSON: compiled once, immune to later edits."""
    from mailer.settings import get_settings

    settings = get_settings()
    step = blueprint.step(step_name)
    values = campaign_values(blueprint, step.name)
    compiled = compile_mjml(blueprint, step.name).replace("\r\n", "\n")
    tracked = blueprint.tracking is not Tracking.OFF
    html_template, links = _track_links(compiled, values)
    text_template = html_to_text_template(html_template)
    if tracked:
        html_template = html_template.replace("</body>", _PIXEL + "</body>", 1)
    domain = settings.sender_domain
    return {
        "version": CONTENT_VERSION,
        # Part of every Message-ID of the run: ids restart at 1 in a fresh database, and a
        # repeated Message-ID makes mailbox providers drop the new message as a duplicate. Kept
        # in the run (not drawn per message) so a retry or a re-send after a crash carries the
        # same Message-ID, which lets a mailbox collapse the duplicate.
        "message_id_nonce": secrets.token_hex(6),
        "campaign": blueprint.slug,
        # The stored revision frozen here (None for a folder read directly).
        "revision": blueprint.revision,
        "step": step.name,
        "name": blueprint.name,
        "kind": str(blueprint.kind),
        "topic": blueprint.topic,
        "tracking": str(blueprint.tracking),
        "subject": blueprint.subject_for(step),
        "preheader": blueprint.preheader_for(step),
        "html": html_template,
        "text": text_template,
        "links": links,
        # Which of `links` is the event's registration: a person's click on it counts as
        # registering (engagement field `registered`); None when the step does not link it.
        "registration_link": _registration_link(blueprint, links),
        "from_name": blueprint.from_name or settings.sender_name,
        "from_email": blueprint.from_email or settings.sender_email,
        "reply_to": blueprint.reply_to or blueprint.from_email or settings.sender_email,
        "list_id": f"{blueprint.slug}.kampane.{domain}",
        "feedback_id": f"{blueprint.slug}:{step.name}:{blueprint.kind}:sdruk",
        "ics": build_ics(blueprint),
        "values": to_json(values),
        "frozen_at": datetime.now(UTC).isoformat(),
    }


def _registration_link(blueprint: Blueprint, links: list[str]) -> int | None:
    url = blueprint.event.registration_url if blueprint.event else None
    return links.index(url) if url in links else None
