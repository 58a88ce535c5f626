"""Tells people from machines in open and click requests, so results and reminders count people.

Pure functions over what a request looked like (method, User-Agent, address, seconds since the
message was delivered, what happened before). Raw events are always kept; these functions
only decide `is_machine` and a short `machine_reason` stored beside them.

Decisions, where they are made:
- Apple Mail Privacy Protection fetches every image through Apple's proxy whether or not the
  person reads the mail; its requests carry the bare User-Agent "Mozilla/5.0" and come from
  Apple's 17.0.0.0/8 network. Such opens are machine opens.
- Gmail's GoogleImageProxy fetches images when the person opens the message (it caches them
  from then on), so a proxy fetch long after delivery is a person; only a proxy fetch within
  the prefetch window is counted as a machine (reason "google_image_proxy_prefetch"). Counting
  every Gmail open as a machine would hide the largest group of real readers.
- A fetch within seconds of delivery is a scanner or a prefetching client, not someone who has
  just read the subject line.
- Security gateways (Safe Links, Mimecast, Proofpoint, Barracuda…) follow every link right
  after delivery without loading images: a click with no open shortly after delivery, and a
  burst of clicks on most of the message's links within seconds, are machine clicks. A click
  with no open later on is a person whose mail client blocks images.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

# Window after delivery in which an open or click is a prefetch/scanner, not a reader.
PREFETCH_SECONDS = 10.0
# A click without any open earlier than this after delivery is a security gateway.
CLICK_WITHOUT_OPEN_SECONDS = 120.0
# Clicks closer together than this belong to one burst when looking for link scanners.
BURST_GAP_SECONDS = 5.0

_APPLE_NETWORK = ipaddress.ip_network("17.0.0.0/8")
_APPLE_MPP_USER_AGENT = "Mozilla/5.0"
# Link checkers, gateways and HTTP libraries that announce themselves.
_SCANNER_USER_AGENT = re.compile(
    r"bot\b|crawler|spider|preview|scanner|urldefense|proofpoint|mimecast|barracuda|"
    r"safelinks|microsoft office|ms-office|trendmicro|symantec|forcepoint|fireeye|"
    r"python-requests|python-httpx|aiohttp|curl/|wget/|go-http-client|java/|okhttp|"
    r"headlesschrome|phantomjs",
    re.IGNORECASE,
)
_GOOGLE_PROXY = "googleimageproxy"


@dataclass(frozen=True)
class Verdict:
    """Whether a request came from a machine, and the reason stored with the event."""

    is_machine: bool
    reason: str | None = None


HUMAN = Verdict(False)


def _machine(reason: str) -> Verdict:
    return Verdict(True, reason)


@lru_cache(maxsize=65536)  # the same proxies and gateways come back again and again
def _is_apple_address(ip: str | None) -> bool:
    if not ip:
        return False
    try:
        return ipaddress.ip_address(ip) in _APPLE_NETWORK
    except ValueError:
        return False


def _common(method: str, user_agent: str | None) -> Verdict | None:
    if method.upper() == "HEAD":
        return _machine("head_request")
    if not user_agent or not user_agent.strip():
        return _machine("no_user_agent")
    if _SCANNER_USER_AGENT.search(user_agent):
        return _machine("scanner_user_agent")
    return None


def classify_open(
    *,
    method: str,
    user_agent: str | None,
    ip: str | None,
    seconds_since_delivery: float | None,
) -> Verdict:
    """Human or machine for one open-pixel request."""
    ua = (user_agent or "").strip()
    if ua == _APPLE_MPP_USER_AGENT or (_is_apple_address(ip) and "mozilla" in ua.lower()):
        return _machine("apple_mpp")
    soon = seconds_since_delivery is not None and seconds_since_delivery < PREFETCH_SECONDS
    if _GOOGLE_PROXY in ua.lower():
        return _machine("google_image_proxy_prefetch") if soon else HUMAN
    common = _common(method, user_agent)
    if common is not None:
        return common
    if soon:
        return _machine("soon_after_delivery")
    return HUMAN


def classify_click(
    *,
    method: str,
    user_agent: str | None,
    ip: str | None,
    seconds_since_delivery: float | None,
    opened_before: bool,
) -> Verdict:
    """Human or machine for one click, from the request alone and whether a person opened the
    message before (bursts over several clicks are found by `scanner_burst`)."""
    common = _common(method, user_agent)
    if common is not None:
        return common
    if seconds_since_delivery is not None:
        if seconds_since_delivery < PREFETCH_SECONDS:
            return _machine("soon_after_delivery")
        if not opened_before and seconds_since_delivery < CLICK_WITHOUT_OPEN_SECONDS:
            return _machine("click_without_open")
    return HUMAN


@dataclass(frozen=True)
class Click:
    """One recorded click of one message, as `scanner_burst` needs it."""

    key: object  # the caller's handle (an event id, or a pending row)
    link_index: int
    occurred_at: datetime


def scanner_burst(clicks: Sequence[Click], link_count: int) -> list[object]:
    """Keys of the clicks that belong to a link-scanner burst: clicks on one message, each
    within BURST_GAP_SECONDS of the previous, covering every link of the message (or at least
    three distinct links when it has more). A person does not click all links in seconds."""
    if link_count < 2 or len(clicks) < 2:
        return []
    needed = min(link_count, 3)
    ordered = sorted(clicks, key=lambda c: c.occurred_at)
    machine: list[object] = []
    cluster: list[Click] = [ordered[0]]

    def close_cluster() -> None:
        if len({c.link_index for c in cluster}) >= needed:
            machine.extend(c.key for c in cluster)

    for click in ordered[1:]:
        gap = (click.occurred_at - cluster[-1].occurred_at).total_seconds()
        if gap <= BURST_GAP_SECONDS:
            cluster.append(click)
        else:
            close_cluster()
            cluster = [click]
    close_cluster()
    return machine
