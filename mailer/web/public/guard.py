"""What protects every public form: a CSRF token bound to a cookie, a honeypot field, an ALTCHA
proof of work computed in the browser (no third-party service), size limits, and rate limits
per client address and per e-mail address.

Rate limits live in this process's memory: enough for the one web process the product runs
(schedule.py or `sdruk web`); several web processes would each allow their own share. A
throttled request is refused at once (429), never delayed, so nobody else waits for it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import altcha
from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException

from mailer.settings import get_settings
from mailer.web import pages

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


class _Spent:
    """Solutions already used (by salt) until they expire: a solved challenge buys one form."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}

    def take(self, salt: str) -> bool:
        now = time.time()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen = {s: t for s, t in self._seen.items() if t > now}
            if self._seen.get(salt, 0) > now:
                return False
            self._seen[salt] = now + ALTCHA_LIFETIME.total_seconds()
            return True

    def reset(self) -> None:
        with self._lock:
            self._seen.clear()


spent = _Spent()


def altcha_ok(form: FormData) -> bool:
    payload = str(form.get(ALTCHA_FIELD) or "")
    if not payload or len(payload) > 2000:
        return False
    try:
        ok, _error = altcha.verify_solution_v1(payload, _key("altcha").hex(), check_expires=True)
        salt = json.loads(base64.b64decode(payload)).get("salt", "")
    except Exception:
        return False
    return bool(ok) and isinstance(salt, str) and spent.take(salt)


# --- rate limits --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limit:
    count: int
    seconds: float


class RateLimiter:
    """Sliding windows of recent hits per key."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hits: dict[str, deque[float]] = {}

    def hit(self, key: str, limit: Limit) -> bool:
        """Count a hit; False when the key is over its limit (the hit is not counted then)."""
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > 50_000:
                self._hits = {k: q for k, q in self._hits.items() if q and q[-1] > now - 3600}
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - limit.seconds:
                hits.popleft()
            if len(hits) >= limit.count:
                return False
            hits.append(now)
            return True

    def reset(self) -> None:
        with self._lock:
            self._hits.clear()


limiter = RateLimiter()
PER_IP = Limit(20, 600)  # a library's shared address sends a few forms, not dozens
PER_ADDRESS = Limit(3, 3600)  # the same e-mail address: a retry or two, no flood


def throttled(request: Request, family: str, email: str | None) -> bool:
    """Whether this submission is over a limit (client address, then e-mail address)."""
    ip = pages.client_ip(request) or "unknown"
    if not limiter.hit(f"{family}:ip:{ip}", PER_IP):
        return True
    if not email:
        return False
    return not limiter.hit(f"{family}:address:{email.lower()}", PER_ADDRESS)


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


def check_protection(request: Request, form: FormData) -> str | None:
    """Why a submitted form is refused ("csrf", "bot", "pow"), or None when it may proceed."""
    if not csrf_ok(request, form):
        return "csrf"
    if str(form.get(HONEYPOT_FIELD) or ""):
        return "bot"
    if not altcha_ok(form):
        return "pow"
    return None
