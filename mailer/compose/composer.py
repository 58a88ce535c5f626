"""Filling a frozen run per recipient (`Composer`): the recipient's values and signed links
into the message bytes, the web version and previews.

A run is frozen once (mailer.compose.freeze); each recipient then costs one Jinja render of
the compiled HTML and of the text part, both straight into quoted-printable
(mailer.compose.qp_templates).
"""

from __future__ import annotations

import binascii
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import jinja2
import jinja2.meta

from mailer.compose import czech
from mailer.compose.campaigns import Tracking
from mailer.compose.consent import tracked_consents
from mailer.compose.freeze import (
    APPLY_PATH,
    CONTENT_VERSION,
    REGISTER_PATH,
    ComposeError,
    from_json,
    make_environment,
)
from mailer.compose.message import (
    SAFE_QP_LINE,
    Attachment,
    DkimSigner,
    MessageShape,
    QPChunks,
    check_address,
    clean_header_text,
    encode_header_text,
    finish_qp,
    qp_template,
)
from mailer.compose.qp_templates import (
    html_qp_value,
    link_maker,
    prerender_fixed,
    template_constants,
    text_qp_value,
)
from mailer.models import LIBRARY_TYPE_LABELS, LibraryType, TrackingConsent
from mailer.tokens import Purpose, Signer, TokenMaker


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


def _link_values(urls: list[str]) -> dict[str, str]:
    return {f"_l{i}": url for i, url in enumerate(urls)}


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
        self._link = link_maker(self.base_url)
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
        self._static: dict[str, Any] = from_json(content["values"])
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
                autoescape=False, finalize=html_qp_value, newline_sequence=crlf
            ).from_string(html_qp)
            self._text_enc = make_environment(
                autoescape=False, finalize=text_qp_value, newline_sequence=crlf
            ).from_string(text_qp)
        self._verify_encoded()
        # The fallback (chunk by chunk) encodes the templates' constant text once, if needed.
        fallback = self._html_enc is None
        self._html_qp = QPChunks(template_constants(self._html) if fallback else ())
        self._text_qp = QPChunks(template_constants(self._text) if fallback else ())

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
        # The campaign's slug makes this link longer than the room `link_maker` keeps for
        # a link of ours: it passes the encoder untouched only when it fits a line whole.
        url = f"{base}{REGISTER_PATH}/{self.content['campaign']}/{token}"
        return self._link(url) if len(url) <= SAFE_QP_LINE else url

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
