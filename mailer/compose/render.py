"""Rendering: freeze a campaign step once (MJML compiled, text made, links listed), then fill
it per recipient (`Composer`) into message bytes and the web version.

Order matters (DESIGN.md): MJML is compiled before Jinja runs, so a run compiles once and each
recipient costs one Jinja render of the compiled HTML and of the text made from it. Links with
a literal (or campaign-level) http(s) target are listed in `content["links"]` and replaced by
their tracked form; the web app resolves `/c/<token>/<index>` through that list.
"""

from __future__ import annotations

import binascii
import hashlib
import hmac
import html
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import jinja2
import jinja2.meta
from inscriptis import get_text
from inscriptis.model.config import ParserConfig
from mjml import mjml2html

from mailer.compose import czech
from mailer.compose.campaigns import Blueprint, Tracking
from mailer.compose.consent import tracked_consents
from mailer.compose.message import (
    _SAFE_QP_LINE,
    Attachment,
    DkimSigner,
    MessageShape,
    QPChunks,
    check_address,
    clean_header_text,
    encode_header_text,
    finish_qp,
    qp_template,
    qp_value,
)
from mailer.models import LIBRARY_TYPE_LABELS, TOPIC_LABELS, LibraryType, Topic, TrackingConsent
from mailer.tokens import MAC_BYTES, Purpose, Signer, address_encode

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
# Per-recipient names: a link that uses one cannot be resolved at freeze time.
_RECIPIENT_VALUES = ("salutation", "contact", "library", "links", "subject", "preheader")
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


def _to_json(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dict):
        return {k: _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _from_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$dt"}:
            return datetime.fromisoformat(value["$dt"])
        return {k: _from_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_json(v) for v in value]
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
        "values": _to_json(values),
        "frozen_at": datetime.now(UTC).isoformat(),
    }


def _registration_link(blueprint: Blueprint, links: list[str]) -> int | None:
    url = blueprint.event.registration_url if blueprint.event else None
    return links.index(url) if url in links else None


@dataclass(frozen=True, slots=True)
class Recipient:
    """What a message needs to know about one recipient (plain values, no ORM objects)."""

    outbox_id: int
    email: str
    contact_id: int | None = None
    first_name: str = ""
    last_name: str = ""
    role: str = ""
    gender: str | None = None
    salutation_override: str | None = None
    legal_basis: str | None = None
    library_id: int | None = None
    library_name: str = ""
    library_type: str = ""
    region: str = ""
    town: str = ""
    is_member: bool = False
    # TrackingConsent of the contact: "denied" gets no pixel and no personal click links.
    tracking_consent: str = TrackingConsent.UNKNOWN.value

    @classmethod
    def from_rows(cls, outbox_id: int, contact: Any, library: Any | None) -> Recipient:
        """From a Contact row and its Library row (or None)."""
        c = czech.clean
        return cls(
            outbox_id=outbox_id,
            email=contact.email,
            contact_id=contact.id,
            first_name=c(contact.first_name),
            last_name=c(contact.last_name),
            role=c(contact.role),
            gender=contact.gender,
            salutation_override=c(contact.salutation) or None,
            legal_basis=contact.legal_basis,
            library_id=library.id if library is not None else None,
            library_name=c(library.name) if library is not None else "",
            library_type=library.library_type if library is not None else "",
            region=c(library.region) if library is not None else "",
            town=c(library.town) if library is not None else "",
            is_member=bool(library.is_member) if library is not None else False,
            tracking_consent=contact.tracking_consent or TrackingConsent.UNKNOWN.value,
        )

    def salutation(self) -> str:
        return czech.salutation(
            self.first_name, self.last_name, self.role, self.gender, self.salutation_override
        )


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """Bytes ready for SMTP (CRLF) and their envelope. `dot_safe`: no line of `data` starts
    with "." (compose encodes such a dot as =2E), so the transport need not dot-stuff it."""

    envelope_from: str
    to: str
    data: bytes
    message_id: str = field(default="")
    dot_safe: bool = False


_EXPRESSION_RE = re.compile(r"\{\{.*?\}\}", re.S)
_SCOPE_RE = re.compile(r"\{%-?\s*(set|with|macro|call|import|from|include)\b")
_FOR_TARGETS_RE = re.compile(r"\{%-?\s*for\s+([\w\s,]+?)\s+in\b")


def prerender_fixed(source: str, values: Mapping[str, Any], env: jinja2.Environment) -> str:
    """The template with each `{{ … }}` that uses only campaign-level values (sender, event,
    campaign, step…) replaced by its text, so recipients do not pay for it again. Templates that
    bind names themselves (set, with, macros, loops over those names) are left as they are."""
    if _SCOPE_RE.search(source):
        return source
    for targets in _FOR_TARGETS_RE.findall(source):
        if {t.strip() for t in targets.split(",")} & set(values):
            return source
    names = set(values) | set(env.globals)

    def replace(match: re.Match[str]) -> str:
        tag = match.group(0)
        try:
            used = jinja2.meta.find_undeclared_variables(env.parse(tag))
            if not used or not used <= names:
                return tag
            text = env.from_string(tag).render(values)
        except Exception:
            return tag  # left to render per recipient (and to fail there, if it must)
        return tag if ("{" in text or "}" in text) else text

    return _EXPRESSION_RE.sub(replace, source)


def _link_values(urls: list[str]) -> dict[str, str]:
    return {f"_l{i}": url for i, url in enumerate(urls)}


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


_B64URL = bytes.maketrans(b"+/", b"-_")


class TokenMaker:
    """`Signer.sign` for the per-recipient hot path: the same token format (mailer.tokens:
    purpose byte, varint ids, truncated HMAC-SHA256, unpadded base64url) with the HMAC key
    schedule prepared once. Tests check it against Signer.verify."""

    __slots__ = ("_last", "_mac", "_purposes")

    def __init__(self, key: bytes) -> None:
        mac = hmac.new(key, digestmod=hashlib.sha256)
        # The OpenSSL object behind hmac.HMAC copies without the Python wrapper (~25% of a
        # token); the wrapper has the same copy/update/digest where it is absent.
        self._mac: Any = getattr(mac, "_hmac", None) or mac
        self._purposes = {purpose: bytes((purpose,)) for purpose in Purpose}
        # A message signs the same id seven times: its varint is kept between calls.
        self._last: tuple[int, bytes] = (-1, b"")

    def _data(self, purpose: Purpose, ids: tuple[int, ...]) -> bytes:
        if len(ids) != 1:
            return self._purposes[purpose] + b"".join(_varint(i) for i in ids)
        last_id, encoded = self._last
        if ids[0] != last_id:
            encoded = _varint(ids[0])
            self._last = (ids[0], encoded)
        return self._purposes[purpose] + encoded

    def sign(self, purpose: Purpose, *ids: int) -> str:
        data = self._data(purpose, ids)
        mac = self._mac.copy()
        mac.update(data)
        raw = data + mac.digest()[:MAC_BYTES]
        return binascii.b2a_base64(raw, newline=False).translate(_B64URL).rstrip(b"=").decode()

    def sign_address(self, purpose: Purpose, *ids: int) -> str:
        """Signer.sign_address: the same bytes, lowercase hex for an address's local part."""
        data = self._data(purpose, ids)
        mac = self._mac.copy()
        mac.update(data)
        return address_encode(data + mac.digest()[:MAC_BYTES])


_NEEDS_ESCAPE = re.compile(r"[&<>\"']")
# A link of ours is the base URL, a short path and a token: the longest must still fit a line.
_LINK_ROOM = 40


class _SafeLink(str):
    """A per-recipient link built from a base URL checked once (`_link_maker`) and a base64url
    token: nothing in it to escape or to quoted-printable encode, so the finalizers pass it
    through without looking (about 20 of them a message)."""

    __slots__ = ()


def _link_maker(base_url: str) -> Callable[[str], str]:
    """`_SafeLink` when every link under `base_url` is safe as it is, else plain `str`."""
    safe = (
        base_url.isascii()
        and base_url.isprintable()
        and not _NEEDS_ESCAPE.search(base_url)
        and "=" not in base_url
        and " " not in base_url
        and not base_url.startswith(".")
        and len(base_url) + _LINK_ROOM <= _SAFE_QP_LINE
    )
    return _SafeLink if safe else str


def _html_qp_value(value: Any) -> str:
    # Autoescaping by hand (this environment cannot autoescape: it must encode after escaping),
    # on plain str: Markup objects would slow every later string step.
    if type(value) is _SafeLink:
        return value + "=\r\n"
    if type(value) is str:
        return qp_value(html.escape(value) if _NEEDS_ESCAPE.search(value) else value)
    if hasattr(value, "__html__"):
        return qp_value(str(value.__html__()))
    return qp_value(html.escape(str(value)))  # str() of StrictUndefined raises, as it should


def _text_qp_value(value: Any) -> str:
    if type(value) is _SafeLink:
        return value + "=\r\n"
    return qp_value(str(value))


def _template_constants(template: jinja2.Template) -> list[str]:
    """The literal text of a compiled template: the string constants of its code objects."""
    found: list[str] = []

    def walk(code: Any) -> None:
        for const in code.co_consts:
            if isinstance(const, str):
                found.append(const)
            elif hasattr(const, "co_consts"):
                walk(const)

    for func in (template.root_render_func, *template.blocks.values()):
        walk(func.__code__)
    return found


class _Fields(dict[str, Any]):
    """A recipient's group of values (contact, library, links): a dict that templates read
    as attributes directly. Jinja reads `contact.first_name` by trying the attribute first;
    on a plain dict that fails with an AttributeError before the key is tried, a cost paid
    for every per-recipient value of every message."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _render_shared(template: jinja2.Template, values: dict[str, Any]) -> str:
    """`template.render(values)` for values that already hold the template's globals: the
    context uses the dict as it is (Jinja's `shared=True`) instead of copying the globals and
    every value into a new one, which was a tenth of a message's composing."""
    context = template.new_context(values, shared=True)
    try:
        return template.environment.concat(template.root_render_func(context))
    except Exception:
        return template.environment.handle_exception()


def _type_label(code: str) -> str:
    try:
        return LIBRARY_TYPE_LABELS[LibraryType(code)]
    except ValueError:
        return code


class Composer:
    """Fills one frozen run per recipient. Build one per run (and process); it is not shared
    across threads while rendering."""

    def __init__(
        self,
        content: Mapping[str, Any],
        run_id: int,
        *,
        signer: Signer | None = None,
        settings: Any | None = None,
    ) -> None:
        from mailer.settings import get_settings

        if content.get("version") != CONTENT_VERSION:
            raise ComposeError("obsah běhu má neznámou verzi; zmrazte ho znovu")
        self.content = content
        self.run_id = run_id
        self.settings = settings or get_settings()
        # Runs frozen before the nonce existed get one per composer (per worker and run).
        self._message_id_nonce = str(content.get("message_id_nonce") or secrets.token_hex(6))
        self._tokens: TokenMaker | None = None
        if signer is None:
            keys = self.settings.signing_keys()
            self.signer = Signer(keys)
            self._tokens = TokenMaker(keys[0])
            self._sign: Callable[..., str] = self._tokens.sign
            self._sign_address: Callable[..., str] = self._tokens.sign_address
        else:
            self.signer = signer
            self._sign = signer.sign
            self._sign_address = signer.sign_address
        self.base_url = self.settings.base_url.rstrip("/")
        self._link = _link_maker(self.base_url)
        self.bounce_domain = self.settings.bounce_domain
        self.sender_domain = self.settings.sender_domain
        self.unsubscribe_mailbox = self.settings.unsubscribe_mailbox
        self.tracking = Tracking(content["tracking"])
        self.transactional = bool(content.get("transactional"))
        self.links: list[str] = list(content["links"])

        html_env = make_environment(autoescape=True)
        text_env = make_environment(autoescape=False)
        self._html = html_env.from_string(content["html"])
        self._text = text_env.from_string(content["text"])
        self._static: dict[str, Any] = _from_json(content["values"])
        # What a recipient's values start from: the campaign's, with the templates' globals
        # folded in, so a render can use it as its context as it is (`_render_shared`).
        self._base: dict[str, Any] = {**self._text.globals, **self._html.globals, **self._static}
        static_names = set(self._static) | {"plural", "count_noun"}

        def header_template(source: str) -> tuple[Any, str | None]:
            # Rendered once when it uses only campaign-level values, else per recipient.
            template = text_env.from_string(source)
            used = jinja2.meta.find_undeclared_variables(text_env.parse(source))
            if used <= static_names:
                return template, clean_header_text(template.render(self._static))
            return template, None

        self._subject_t, self._subject = header_template(content["subject"])
        self._preheader_t, self._preheader = header_template(content["preheader"])
        self._subject_bytes = (
            encode_header_text(self._subject) if self._subject is not None else None
        )
        # Encoded bodies are prepared on the first message: a Composer made for a web view
        # (or a preview) does not pay for them.
        self._html_enc: jinja2.Template | None = None
        self._text_enc: jinja2.Template | None = None
        self._html_qp: QPChunks | None = None
        self._text_qp: QPChunks | None = None

        sign = self._sign
        base = self.base_url
        n = len(self.links)
        self._anon_web = f"{base}/v/{sign(Purpose.WEB_VERSION_ANONYMOUS, run_id)}"
        if self.tracking is Tracking.ANONYMOUS:
            self._anon_links: list[str] | None = [
                f"{base}/c/{sign(Purpose.CLICK_ANONYMOUS, run_id, i)}" for i in range(n)
            ]
            self._anon_open: str | None = f"{base}/o/{sign(Purpose.OPEN_ANONYMOUS, run_id)}.gif"
        elif self.tracking is Tracking.OFF:
            self._anon_links, self._anon_open = list(self.links), None
        else:
            self._anon_links, self._anon_open = None, None
        self._link_names = [f"_l{i}" for i in range(n)]
        self._link_indexes = [str(i) for i in range(n)]
        self._anon_values = _link_values(self._anon_links or [])
        # Which tracking consents get the pixel and personal links (mailer.compose.consent):
        # none unless the campaign tracks individually. One set lookup per message.
        self._individual_for = (
            tracked_consents(self.settings.tracking_without_consent)
            if self.tracking is Tracking.INDIVIDUAL
            else frozenset()
        )
        # Links for recipients not tracked individually in a campaign that tracks (built on the
        # first such recipient): anonymous click links, counted per run only.
        self._untracked: dict[str, str] | None = None

        attachments = []
        if content.get("ics"):
            attachments.append(
                Attachment(
                    'text/calendar; charset="utf-8"; method=PUBLISH',
                    "pozvanka.ics",
                    content["ics"].encode("utf-8"),
                )
            )
        list_name = f"Sdružení knihoven ČR – {content['name']}"
        self._shape_args: dict[str, Any] = {
            "from_name": content["from_name"],
            "from_email": content["from_email"],
            "reply_to": content["reply_to"],
            "list_id": encode_header_text(list_name, "List-Id")
            + f" <{content['list_id']}>".encode(),
            "feedback_id": content["feedback_id"],
            "attachments": attachments,
            "transactional": self.transactional,
        }
        self._shape: MessageShape | None = None

    @property
    def shape(self) -> MessageShape:
        """The run's encoded message parts and DKIM signature, made on the first message (a
        Composer for a web view or a preview needs neither, nor a DKIM key)."""
        if self._shape is None:
            self._shape = MessageShape(
                **self._shape_args, dkim=DkimSigner.from_settings(self.settings)
            )
        return self._shape

    def _prepare_encoding(self) -> None:
        content = self.content
        html_env = make_environment(autoescape=True)
        text_env = make_environment(autoescape=False)
        # The bodies as sent: templates whose literal text is already quoted-printable, so a
        # render is the encoded body (values are escaped, then encoded, by `finalize`).
        # Measured on the 35 KB newsletter of bench/compose.py: this fill-and-encode ≈28 µs,
        # a plain render ≈34 µs, render + base64 of the part ≈120 µs: hence quoted-printable.
        fixed = dict(self._static)
        if self._subject is not None:
            fixed["subject"] = self._subject
        if self._preheader is not None:
            fixed["preheader"] = self._preheader
        html_qp = qp_template(prerender_fixed(content["html"], fixed, html_env))
        text_qp = qp_template(prerender_fixed(content["text"], fixed, text_env))
        if html_qp is not None and text_qp is not None:
            crlf: Literal["\r\n"] = "\r\n"
            self._html_enc = make_environment(
                autoescape=False, finalize=_html_qp_value, newline_sequence=crlf
            ).from_string(html_qp)
            self._text_enc = make_environment(
                autoescape=False, finalize=_text_qp_value, newline_sequence=crlf
            ).from_string(text_qp)
        self._verify_encoded()
        # The fallback (chunk by chunk) encodes the templates' constant text once, if needed.
        fallback = self._html_enc is None
        self._html_qp = QPChunks(_template_constants(self._html) if fallback else ())
        self._text_qp = QPChunks(_template_constants(self._text) if fallback else ())

    def _verify_encoded(self) -> None:
        """Use the pre-encoded templates only if they decode to exactly what the plain ones
        render (a template construct the splitter misreads falls back to chunk encoding)."""
        if self._html_enc is None or self._text_enc is None:
            return
        ctx, _ = self._context(None, for_web=False)
        for encoded, plain in ((self._html_enc, self._html), (self._text_enc, self._text)):
            body = binascii.a2b_qp(finish_qp(encoded.render(ctx)))
            if body.decode("utf-8").replace("\r\n", "\n") != plain.render(ctx):
                self._html_enc = self._text_enc = None
                return

    # -- per recipient ------------------------------------------------------------------

    def _context(self, r: Recipient | None, *, for_web: bool) -> tuple[dict[str, Any], str]:
        """Template values for one recipient (None: an anonymous web view) and the
        unsubscribe token."""
        base = self.base_url
        ctx = self._base.copy()
        if r is None:
            ctx["salutation"] = czech.FALLBACK_SALUTATION
            ctx["contact"] = _Fields(first_name="", last_name="", email="", role="", legal_basis="")
            ctx["library"] = _Fields(name="", town="", region="", type="", member=False)
            web = self.settings.sender_web
            ctx["links"] = _Fields(
                unsubscribe=web,
                preferences=web,
                web_version=self._anon_web,
                apply=f"{base}{APPLY_PATH}",
                register=f"{base}{REGISTER_PATH}/{self.content['campaign']}",
            )
            ctx.update(_link_values(self._anon_links or self.links))
            ctx["_o"] = None
            token = ""
        else:
            oid = r.outbox_id
            sign = self._sign
            clean = czech.clean
            token = sign(Purpose.UNSUBSCRIBE, oid)
            ctx["salutation"] = r.salutation()
            ctx["contact"] = _Fields(
                first_name=clean(r.first_name),
                last_name=clean(r.last_name),
                email=r.email,
                role=clean(r.role),
                legal_basis=r.legal_basis or "",
            )
            ctx["library"] = _Fields(
                name=clean(r.library_name),
                town=clean(r.town),
                region=clean(r.region),
                type=_type_label(r.library_type),
                member=r.is_member,
            )
            consent = r.tracking_consent
            if consent in self._individual_for:
                # One signed token for all of the message's links, the index beside it.
                prefix = f"{base}/c/{sign(Purpose.MESSAGE_CLICK, oid)}/"
                link = self._link
                ctx.update(
                    zip(
                        self._link_names,
                        [link(prefix + index) for index in self._link_indexes],
                        strict=True,
                    )
                )
                ctx["_o"] = None if for_web else link(f"{base}/o/{sign(Purpose.OPEN, oid)}.gif")
                web = link(f"{base}/v/{sign(Purpose.WEB_VERSION, oid)}")
            elif self.tracking is Tracking.INDIVIDUAL:
                # Not tracked individually (denied, or unknown under the strict setting): no
                # pixel and anonymous click links, as in an anonymous campaign.
                ctx.update(self._untracked_links())
                ctx["_o"] = None
                web = self._anon_web
            else:
                ctx.update(self._anon_values)
                # A contact who denied gets no pixel, not even the anonymous one.
                denied = consent == TrackingConsent.DENIED
                ctx["_o"] = None if for_web or denied else self._anon_open
                web = self._anon_web
            ctx["links"] = _Fields(
                unsubscribe=self._link(f"{base}/u/{token}"),
                preferences=self._link(f"{base}/p/{sign(Purpose.PREFERENCES, oid)}"),
                web_version=web,
                # The membership form, pre-filled for this recipient and credited to this run.
                apply=self._link(f"{base}{APPLY_PATH}/{sign(Purpose.APPLY, oid)}"),
                # The event's registration page, pre-filled for this recipient.
                register=self._register_link(base, sign(Purpose.REGISTER, oid)),
            )
        if self._subject is not None:
            ctx["subject"] = self._subject
        else:
            ctx["subject"] = clean_header_text(self._subject_t.render(ctx))
        if self._preheader is not None:
            ctx["preheader"] = self._preheader
        else:
            ctx["preheader"] = clean_header_text(self._preheader_t.render(ctx))
        return ctx, token

    def _register_link(self, base: str, token: str) -> str:
        # The campaign's slug makes this link longer than the room `_link_maker` keeps for
        # a link of ours: it passes the encoder untouched only when it fits a line whole.
        url = f"{base}{REGISTER_PATH}/{self.content['campaign']}/{token}"
        return self._link(url) if len(url) <= _SAFE_QP_LINE else url

    def _untracked_links(self) -> dict[str, str]:
        if self._untracked is None:
            base, sign, link = self.base_url, self._sign, self._link
            # Safe links, like the personal ones: the encoders pass them through unexamined.
            self._untracked = _link_values(
                [
                    link(f"{base}/c/{sign(Purpose.CLICK_ANONYMOUS, self.run_id, i)}")
                    for i in range(len(self.links))
                ]
            )
        return self._untracked

    def tracks(self, recipient: Recipient) -> bool:
        """Whether `recipient`'s message carries the open pixel and personal click links."""
        return recipient.tracking_consent in self._individual_for

    def message(self, recipient: Recipient) -> OutgoingMessage:
        """The complete message for one recipient."""
        to = check_address(recipient.email)
        ctx, token = self._context(recipient, for_web=False)
        subject = self._subject_bytes or encode_header_text(ctx["subject"])
        oid = recipient.outbox_id
        unsubscribe = (
            None
            if self.transactional
            else (
                f"<{self.base_url}/u/{token}>,\r\n "
                f"<mailto:{self.unsubscribe_mailbox}+"
                f"{self._sign_address(Purpose.UNSUBSCRIBE, oid)}@{self.bounce_domain}>"
            ).encode("ascii")
        )
        message_id = f"sdruk.{self.run_id}.{oid}.{self._message_id_nonce}@{self.sender_domain}"
        data = self.shape.build(
            to=to,
            subject=subject,
            message_id=message_id,
            list_unsubscribe=unsubscribe,
            text_qp=self._encode_text(ctx),
            html_qp=self._encode_html(ctx),
        )
        # Address-borne tokens are case-insensitive (hex): MTAs may change a local part's case.
        envelope = f"bounce+{self._sign_address(Purpose.RETURN_PATH, oid)}@{self.bounce_domain}"
        # Dot-safe by construction: headers never start a line with ".", boundaries start with
        # "--", base64 has no ".", and the quoted-printable bodies escape a leading one.
        return OutgoingMessage(
            envelope_from=envelope, to=to, data=data, message_id=message_id, dot_safe=True
        )

    def _encode_html(self, ctx: dict[str, Any]) -> bytes:
        if self._html_qp is None:
            self._prepare_encoding()
        if self._html_enc is not None:
            return finish_qp(_render_shared(self._html_enc, ctx))
        assert self._html_qp is not None
        return self._html_qp.encode(self._html.generate(ctx))

    def _encode_text(self, ctx: dict[str, Any]) -> bytes:
        if self._text_qp is None:
            self._prepare_encoding()
        if self._text_enc is not None:
            return finish_qp(_render_shared(self._text_enc, ctx))
        assert self._text_qp is not None
        return self._text_qp.encode(self._text.generate(ctx))

    @property
    def anonymous_web_url(self) -> str:
        """The web version's link for no particular recipient (counts an anonymous view)."""
        return self._anon_web

    def web_html(self, recipient: Recipient | None) -> str:
        """The HTML as the recipient saw it, without the open pixel (the web version)."""
        ctx, _ = self._context(recipient, for_web=True)
        return self._html.render(ctx)

    def html(self, recipient: Recipient) -> str:
        """The HTML part exactly as in the recipient's message (open pixel included)."""
        ctx, _ = self._context(recipient, for_web=False)
        return self._html.render(ctx)

    def text(self, recipient: Recipient | None) -> str:
        """The plain-text part as the recipient gets it."""
        ctx, _ = self._context(recipient, for_web=True)
        return self._text.render(ctx)

    def subject(self, recipient: Recipient | None) -> str:
        ctx, _ = self._context(recipient, for_web=True)
        return str(ctx["subject"])
