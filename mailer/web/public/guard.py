"""What protects every public form: a CSRF token bound to a cookie, a honeypot field, an ALTCHA
proof of work computed in the browser (no third-party service), size limits, and rate limits
per client address and per e-mail address.

Rate limits and spent proofs of work live in the database (`counters`), so several web
processes and a restart share them. Keys are HMACs: no e-mail or client address is stored in
clear. The client address is the connection's peer, or, behind a proxy in TRUSTED_PROXIES, the
address that proxy reports (see `mailer.web.app`). A throttled request is refused at once
(429), never delayed, so nobody else waits for it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import altcha
from fastapi import Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from mailer.settings import get_settings
from mailer.web import pages
from mailer.web.public import counters
from mailer.web.public.counters import Limit

FORM_COOKIE = "sdruk_form"
CSRF_FIELD = "csrf_token"
HONEYPOT_FIELD = "web_stranka"  # a field people never see; bots fill it in
ALTCHA_FIELD = "altcha"
MAX_BODY_BYTES = 32 * 1024
MAX_FIELDS = 60
# About 25,000 SHA-256 tries on average: a fraction of a second in a browser, a real cost for
# a script sending thousands of forms.
ALTCHA_MAX_NUMBER = 50_000
ALTCHA_LIFETIME = timedelta(minutes=30)
# Pages with the proof of work load one script of our own; everything else stays as strict.
PAGE_CSP_WITH_SCRIPT = pages.PAGE_CSP + "; script-src 'self'"


def _key(purpose: str) -> bytes:
    secret = get_settings().signing_keys()[0]
    return hmac.new(secret, purpose.encode(), hashlib.sha256).digest()


# --- CSRF --------------------------------------------------------------------------------------


def form_nonce(request: Request) -> tuple[str, bool]:
    """The browser's form cookie, or a new one (True: it must be set on the response)."""
    nonce = request.cookies.get(FORM_COOKIE, "")
    if 16 <= len(nonce) <= 64 and nonce.isalnum():
        return nonce, False
    return secrets.token_hex(16), True


def csrf_token(nonce: str) -> str:
    return hmac.new(_key("public-csrf"), nonce.encode(), hashlib.sha256).hexdigest()


def set_form_cookie(response: Response, nonce: str, request: Request) -> None:
    response.set_cookie(
        FORM_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        max_age=12 * 3600,
        path="/",
    )


def csrf_ok(request: Request, form: FormData) -> bool:
    nonce = request.cookies.get(FORM_COOKIE, "")
    sent = str(form.get(CSRF_FIELD) or "")
    return bool(nonce) and hmac.compare_digest(sent, csrf_token(nonce))


# --- ALTCHA ------------------------------------------------------------------------------------


def altcha_challenge() -> str:
    """A signed challenge, as the JSON the page's script reads."""
    options = altcha.ChallengeOptionsV1(
        hmac_key=_key("altcha").hex(),
        max_number=ALTCHA_MAX_NUMBER,
        expires=datetime.now(UTC) + ALTCHA_LIFETIME,
    )
    challenge = altcha.create_challenge_v1(options)
    return json.dumps(challenge.to_dict())


def _counter_key(kind: str, value: str) -> str:
    """What a counter row is keyed by: an HMAC, so the table holds no address in clear."""
    return hmac.new(_key("form-counters"), f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()


def altcha_ok(request: Request, form: FormData) -> bool:
    """A valid, unexpired solution not used before (a solved challenge buys one form)."""
    payload = str(form.get(ALTCHA_FIELD) or "")
    if not payload or len(payload) > 2000:
        return False
    try:
        ok, _error = altcha.verify_solution_v1(payload, _key("altcha").hex(), check_expires=True)
        salt = json.loads(base64.b64decode(payload)).get("salt", "")
    except Exception:
        return False
    if not ok or not isinstance(salt, str):
        return False
    lifetime = int(ALTCHA_LIFETIME.total_seconds())
    return counters.take_once(pages.engine_of(request), _counter_key("altcha", salt), lifetime)


# --- rate limits --------------------------------------------------------------------------------


PER_IP = Limit(20, 600)  # a library's shared address sends a few forms, not dozens
PER_ADDRESS = Limit(3, 3600)  # the same e-mail address: a retry or two, no flood


def _throttled(request: Request, family: str, email: str | None) -> bool:
    engine = pages.engine_of(request)
    ip = pages.client_network(pages.client_ip(request))
    if not counters.hit(engine, _counter_key(f"{family}:ip", ip), PER_IP):
        return True
    if not email:
        return False
    return not counters.hit(engine, _counter_key(f"{family}:address", email.lower()), PER_ADDRESS)


async def throttled(request: Request, family: str, email: str | None) -> bool:
    """Whether this submission is over a limit (client address, then e-mail address)."""
    return await run_in_threadpool(_throttled, request, family, email)


# --- reading a form -----------------------------------------------------------------------------


async def read_form(request: Request) -> FormData | None:
    """The posted form; None when it is larger than any honest one."""
    length = request.headers.get("content-length")
    if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
        return None
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return None
    try:
        return await request.form(max_files=0, max_fields=MAX_FIELDS, max_part_size=8 * 1024)
    except HTTPException:
        return None  # Starlette's refusal of too many fields or a too large part


def form_context(request: Request) -> tuple[dict[str, Any], str, bool]:
    """What a page with a protected form needs: csrf, honeypot and ALTCHA values; the nonce
    and whether to set its cookie."""
    nonce, fresh = form_nonce(request)
    context = {
        "csrf_field": CSRF_FIELD,
        "csrf_token": csrf_token(nonce),
        "honeypot_field": HONEYPOT_FIELD,
        "altcha_field": ALTCHA_FIELD,
        "altcha_challenge": altcha_challenge(),
    }
    return context, nonce, fresh


async def check_protection(request: Request, form: FormData) -> str | None:
    """Why a submitted form is refused ("csrf", "bot", "pow"), or None when it may proceed."""
    if not csrf_ok(request, form):
        return "csrf"
    if str(form.get(HONEYPOT_FIELD) or ""):
        return "bot"
    if not await run_in_threadpool(altcha_ok, request, form):
        return "pow"
    return None
