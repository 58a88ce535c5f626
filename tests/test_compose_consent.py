"""Tracking consent in composed messages: a contact who denied gets no open pixel (not even the
anonymous one) and no personal click links, only anonymous ones; "unknown" follows
TRACKING_WITHOUT_CONSENT; functional links (unsubscribe, preferences, forms) stay personal."""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailer import settings as mailer_settings
from mailer.compose.campaigns import load_blueprint
from mailer.compose.composer import Composer, Recipient
from mailer.compose.consent import individually_tracked
from mailer.compose.freeze import freeze
from mailer.tokens import Purpose, Signer

BASE_URL = "https://kampane.sdruk.test"
EVENT = "knihovny-soucasnosti-2027"  # tracking = individual
RECRUITMENT = "join-this-year-2026"  # tracking = anonymous
OID = 4242
RUN = 31


@pytest.fixture(autouse=True)
def compose_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SDRUK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("BASE_URL", BASE_URL)
    monkeypatch.delenv("DKIM_SELECTOR", raising=False)
    monkeypatch.delenv("TRACKING_WITHOUT_CONSENT", raising=False)
    mailer_settings.get_settings.cache_clear()
    yield
    mailer_settings.get_settings.cache_clear()


def recipient(consent: str, **overrides: Any) -> Recipient:
    values: dict[str, Any] = {
        "outbox_id": OID,
        "email": "jana.novakova@knihovna-pribram.example",
        "contact_id": 17,
        "first_name": "Jana",
        "last_name": "Nováková",
        "role": "ředitelka",
        "gender": "f",
        "legal_basis": "legitimate_interest",
        "library_name": "Knihovna Jana Drdy Příbram",
        "tracking_consent": consent,
    }
    values.update(overrides)
    return Recipient(**values)


def signer() -> Signer:
    return Signer([b"test-secret-key"])


def whole_message(comp: Composer, r: Recipient) -> str:
    """Both parts of the message as sent, decoded (links in the text part too)."""
    parsed = email.message_from_bytes(comp.message(r).data, policy=email.policy.default)
    wanted = ("text/plain", "text/html")
    parts = [p.get_content() for p in parsed.walk() if p.get_content_type() in wanted]
    assert len(parts) == 2
    return "\n".join(parts)


def our_links(body: str, path: str) -> list[str]:
    return re.findall(rf"{re.escape(BASE_URL)}/{path}/([A-Za-z0-9_-]+)", body)


def purposes(tokens: list[str]) -> set[Purpose]:
    found = set()
    for token in tokens:
        for purpose in Purpose:
            if signer().verify(purpose, token):
                found.add(purpose)
    return found


def test_it_leaves_out_the_pixel_and_personal_links_for_a_contact_who_denied() -> None:
    comp = Composer(freeze(load_blueprint(EVENT)), RUN)
    body = whole_message(comp, recipient("denied"))
    assert "/o/" not in body
    clicks = our_links(body, "c")
    assert clicks, "the links still go through the anonymous counter"
    assert purposes(clicks) == {Purpose.CLICK_ANONYMOUS}
    assert {signer().verify(Purpose.CLICK_ANONYMOUS, t)[0] for t in clicks} == {RUN}
    assert purposes(our_links(body, "v")) == {Purpose.WEB_VERSION_ANONYMOUS}
    # Functional links stay personal: leaving and the preferences must know who asks.
    assert signer().verify(Purpose.UNSUBSCRIBE, our_links(body, "u")[0]) == (OID,)
    assert signer().verify(Purpose.PREFERENCES, our_links(body, "p")[0]) == (OID,)
    assert not comp.tracks(recipient("denied"))


@pytest.mark.parametrize("consent", ["granted", "unknown"])
def test_it_tracks_granted_and_unknown_individually_by_default(consent: str) -> None:
    comp = Composer(freeze(load_blueprint(EVENT)), RUN)
    body = whole_message(comp, recipient(consent))
    assert purposes(our_links(body, "o")) == {Purpose.OPEN}
    assert purposes(our_links(body, "c")) == {Purpose.MESSAGE_CLICK}
    assert purposes(our_links(body, "v")) == {Purpose.WEB_VERSION}
    assert comp.tracks(recipient(consent))


def test_it_tracks_only_granted_under_the_strict_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRACKING_WITHOUT_CONSENT", "anonymous")
    mailer_settings.get_settings.cache_clear()
    comp = Composer(freeze(load_blueprint(EVENT)), RUN)
    unknown = whole_message(comp, recipient("unknown"))
    assert "/o/" not in unknown
    assert purposes(our_links(unknown, "c")) == {Purpose.CLICK_ANONYMOUS}
    granted = whole_message(comp, recipient("granted"))
    assert purposes(our_links(granted, "c")) == {Purpose.MESSAGE_CLICK}
    assert purposes(our_links(granted, "o")) == {Purpose.OPEN}


def test_it_gives_no_anonymous_pixel_to_a_contact_who_denied() -> None:
    comp = Composer(freeze(load_blueprint(RECRUITMENT)), RUN)
    assert purposes(our_links(whole_message(comp, recipient("unknown")), "o")) == {
        Purpose.OPEN_ANONYMOUS
    }
    body = whole_message(comp, recipient("denied"))
    assert "/o/" not in body
    assert purposes(our_links(body, "c")) == {Purpose.CLICK_ANONYMOUS}
    # The membership form stays pre-filled: a form the person fills in is not tracking.
    assert purposes(our_links(body, "chceme-byt-clenem")) == {Purpose.APPLY}


def test_it_keeps_messages_to_denied_and_tracked_contacts_apart_in_one_run() -> None:
    # The lazily built anonymous links must not leak into later tracked messages, nor the
    # other way round.
    comp = Composer(freeze(load_blueprint(EVENT)), RUN)
    for consent in ("granted", "denied", "unknown", "denied"):
        body = whole_message(comp, recipient(consent))
        expected = Purpose.CLICK_ANONYMOUS if consent == "denied" else Purpose.MESSAGE_CLICK
        assert purposes(our_links(body, "c")) == {expected}
        assert ("/o/" in body) is (consent != "denied")


def test_it_decides_like_the_composer_for_every_combination() -> None:
    for policy in ("individual", "anonymous"):
        for tracking in ("individual", "anonymous", "off"):
            for consent in ("unknown", "granted", "denied", None):
                expected = tracking == "individual" and (
                    consent == "granted" or (policy == "individual" and consent != "denied")
                )
                assert individually_tracked(tracking, consent, policy) is expected
