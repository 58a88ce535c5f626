"""Human or machine, on request patterns recorded from real mail clients and gateways."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mailer.events.classify import Click, classify_click, classify_open, scanner_burst

IPHONE_MAIL = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Mobile/15E148"
)
OUTLOOK_DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0"
)
THUNDERBIRD = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Thunderbird/128.4.0"
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
SAFE_LINKS = "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
PROOFPOINT = "Mozilla/5.0 (compatible; Proofpoint URL Defense)"

# (method, User-Agent, address, seconds after delivery) → expected reason (None = a person)
OPENS = [
    ("GET", "Mozilla/5.0", "17.58.101.12", 3.0, "apple_mpp"),
    ("GET", "Mozilla/5.0", "17.58.101.12", 7200.0, "apple_mpp"),
    ("GET", IPHONE_MAIL, "17.123.4.5", 5400.0, "apple_mpp"),
    ("GET", GMAIL_PROXY, "66.249.84.1", 2.0, "google_image_proxy_prefetch"),
    ("GET", GMAIL_PROXY, "66.249.84.1", 1800.0, None),
    ("GET", OUTLOOK_DESKTOP, "185.8.236.4", 1.5, "soon_after_delivery"),
    ("GET", OUTLOOK_DESKTOP, "185.8.236.4", 2700.0, None),
    ("GET", THUNDERBIRD, "2a00:1028:8d1c::1", 86400.0, None),
    ("HEAD", OUTLOOK_DESKTOP, "185.8.236.4", 2700.0, "head_request"),
    ("GET", "", "185.8.236.4", 2700.0, "no_user_agent"),
    ("GET", "python-requests/2.32.3", "203.0.113.9", 2700.0, "scanner_user_agent"),
    ("GET", OUTLOOK_DESKTOP, "185.8.236.4", None, None),  # not sent yet (test sends)
]


@pytest.mark.parametrize(("method", "ua", "ip", "since", "reason"), OPENS)
def test_it_classifies_recorded_opens(
    method: str, ua: str, ip: str, since: float | None, reason: str | None
) -> None:
    verdict = classify_open(method=method, user_agent=ua, ip=ip, seconds_since_delivery=since)
    assert (verdict.is_machine, verdict.reason) == (reason is not None, reason)


CLICKS = [
    ("GET", OUTLOOK_DESKTOP, 3000.0, True, None),
    ("GET", OUTLOOK_DESKTOP, 3000.0, False, None),  # images blocked: still a person
    ("GET", OUTLOOK_DESKTOP, 40.0, False, "click_without_open"),
    ("GET", OUTLOOK_DESKTOP, 40.0, True, None),
    ("GET", OUTLOOK_DESKTOP, 2.0, True, "soon_after_delivery"),
    ("GET", SAFE_LINKS, 3000.0, True, "scanner_user_agent"),
    ("GET", PROOFPOINT, 3000.0, False, "scanner_user_agent"),
    ("HEAD", OUTLOOK_DESKTOP, 3000.0, True, "head_request"),
]


@pytest.mark.parametrize(("method", "ua", "since", "opened", "reason"), CLICKS)
def test_it_classifies_recorded_clicks(
    method: str, ua: str, since: float, opened: bool, reason: str | None
) -> None:
    verdict = classify_click(
        method=method,
        user_agent=ua,
        ip="185.8.236.4",
        seconds_since_delivery=since,
        opened_before=opened,
    )
    assert (verdict.is_machine, verdict.reason) == (reason is not None, reason)


T0 = datetime(2026, 11, 24, 21, 0, tzinfo=UTC)


def _clicks(*pattern: tuple[str, int, float]) -> list[Click]:
    return [Click(key, link, T0 + timedelta(seconds=at)) for key, link, at in pattern]


def test_it_finds_a_gateway_clicking_every_link_within_seconds() -> None:
    # A gateway followed all three links 0.4 s apart; the person clicked one an hour later.
    clicks = _clicks(("a", 0, 0.0), ("b", 1, 0.4), ("c", 2, 0.8), ("person", 1, 3600.0))
    assert sorted(map(str, scanner_burst(clicks, link_count=3))) == ["a", "b", "c"]


def test_it_leaves_a_person_clicking_two_of_many_links_alone() -> None:
    clicks = _clicks(("a", 0, 0.0), ("b", 3, 4.0), ("c", 3, 9.0))
    assert scanner_burst(clicks, link_count=6) == []
    # The same link twice (a double-click) is no burst either.
    assert scanner_burst(_clicks(("a", 0, 0.0), ("b", 0, 0.3)), link_count=2) == []


def test_it_finds_a_burst_on_a_two_link_message() -> None:
    assert sorted(map(str, scanner_burst(_clicks(("a", 0, 0.0), ("b", 1, 1.0)), 2))) == ["a", "b"]
