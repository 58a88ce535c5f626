"""The public forms' rate limits and spent proofs of work live in the database: another web
process sees the same counts, no address is stored in clear, and the client address is the
connection's peer unless that peer is a proxy named in TRUSTED_PROXIES."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from public_support import protection, submit
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from mailer import settings as mailer_settings
from mailer.models import FormRateCounter, SubscriptionRequest
from mailer.web.app import create_app
from mailer.web.public import counters, guard
from mailer.web.public.counters import Limit

TESTS = Path(__file__).resolve().parent
BASE = "https://kampane.sdruk.test"


def _signup(email: str) -> dict[str, Any]:
    return {"email": email, "first_name": "Jana", "last_name": "Nová", "library_name": "",
            "topic": ["events"], "consent": "1"}  # fmt: skip


def _client(engine: Engine, peer: str = "203.0.113.9") -> TestClient:
    return TestClient(create_app(engine=engine), base_url=BASE, client=(peer, 50000))


def _rows(engine: Engine) -> list[FormRateCounter]:
    with Session(engine) as session:
        return list(session.exec(select(FormRateCounter)).all())


# --- the counters --------------------------------------------------------------------------


def test_it_counts_a_limit_and_refuses_without_counting(engine: Engine) -> None:
    limit = Limit(3, 600)
    now = 1_800_000_000.0  # the start of a window
    assert [counters.hit(engine, "k", limit, now + i) for i in range(5)] == [True] * 3 + [False] * 2
    assert [r.count for r in _rows(engine)] == [3]  # refused hits were not counted
    assert counters.hit(engine, "other", limit, now + 5)


def test_it_slides_the_window_rather_than_resetting_at_its_edge(engine: Engine) -> None:
    limit = Limit(4, 600)
    start = 1_800_000_000.0
    # Four hits at the end of one window: the next window's start still sees them.
    assert all(counters.hit(engine, "k", limit, start + 590) for _ in range(4))
    assert not counters.hit(engine, "k", limit, start + 600)
    # Halfway through the next window half of them still weigh: two more pass, not four.
    halfway = start + 900
    assert [counters.hit(engine, "k", limit, halfway) for _ in range(3)] == [True, True, False]
    # Two windows later nothing weighs any more.
    assert counters.hit(engine, "k", limit, start + 1800)


def test_it_prunes_expired_rows_when_a_new_one_opens(engine: Engine) -> None:
    limit = Limit(3, 600)
    start = 1_800_000_000.0
    counters.hit(engine, "old", limit, start)
    assert counters.take_once(engine, "salt", 60, start)
    counters.hit(engine, "new", limit, start + 5000)
    assert [r.key for r in _rows(engine)] == ["new"]


def test_a_mark_is_taken_once_until_it_expires(engine: Engine) -> None:
    now = 1_800_000_000.0
    assert counters.take_once(engine, "salt", 60, now)
    assert not counters.take_once(engine, "salt", 60, now + 30)
    assert counters.take_once(engine, "salt", 60, now + 61)


def test_racing_hits_never_pass_more_than_the_limit(engine: Engine) -> None:
    limit = Limit(5, 3600)
    results: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            passed = counters.hit(engine, "race", limit)
            with lock:
                results.append(passed)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 24 and results.count(True) == 5


# --- the forms -----------------------------------------------------------------------------


_OTHER_PROCESS = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from fastapi.testclient import TestClient
    from public_support import submit
    from mailer.web.app import create_app
    client = TestClient(create_app(), base_url={base!r}, client=("203.0.113.9", 50000))
    data = {{"email": "sdilena@example.cz", "first_name": "Jana", "last_name": "Nová",
            "library_name": "", "topic": ["events"], "consent": "1"}}
    print(" ".join(str(submit(client, "/odber", data).status_code) for _ in range(2)))
    """
)


def test_another_web_process_shares_the_limit_per_address(engine: Engine) -> None:
    other = subprocess.run(
        [sys.executable, "-c", _OTHER_PROCESS.format(tests=str(TESTS), base=BASE)],
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert other.returncode == 0, other.stderr
    assert other.stdout.split() == ["200", "200"]
    with _client(engine) as client:
        answers = [submit(client, "/odber", _signup("sdilena@example.cz")) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 429]
        assert "Příliš mnoho odeslání" in answers[1].text
        # Another address from the same client is not slowed.
        assert submit(client, "/odber", _signup("jina@example.cz")).status_code == 200
    stored = " ".join(f"{r.key} {r.window_start}" for r in _rows(engine))
    assert "sdilena" not in stored and "203.0.113" not in stored


def test_a_spent_proof_of_work_is_refused_by_another_app(engine: Engine) -> None:
    with _client(engine) as first, _client(engine) as second:
        page = first.get("/odber")
        fields = {**protection(page.text), **_signup("jednou@example.cz")}
        assert first.post("/odber", data=fields).status_code == 200
        # The same solved challenge, replayed to another worker (its own form cookie).
        second.cookies.update(first.cookies)
        replay = second.post("/odber", data=fields)
        assert replay.status_code == 400 and "Ověření se nezdařilo" in replay.text


@pytest.fixture
def tight(monkeypatch: pytest.MonkeyPatch) -> Limit:
    """Two forms per client address, so a test floods it in a few requests."""
    limit = Limit(2, 600)
    monkeypatch.setattr(guard, "PER_IP", limit)
    return limit


def _flood(client: TestClient, n: int, **headers: str) -> list[int]:
    return [
        submit(client, "/odber", _signup(f"ctenar{i}@example.cz"), **headers).status_code
        for i in range(n)
    ]


def test_a_forged_forwarded_header_is_ignored_without_trusted_proxies(
    engine: Engine, tight: Limit
) -> None:
    with _client(engine, "203.0.113.9") as client:
        assert _flood(client, 3) == [200, 200, 429]
        forged = submit(
            client, "/odber", _signup("podvrh@example.cz"), **{"X-Forwarded-For": "192.0.2.1"}
        )
        assert forged.status_code == 429
    with _client(engine, "203.0.113.10") as neighbour:
        assert submit(neighbour, "/odber", _signup("soused@example.cz")).status_code == 200


@pytest.fixture
def behind_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1")
    mailer_settings.get_settings.cache_clear()


def test_the_client_behind_a_trusted_proxy_is_its_forwarded_address(
    engine: Engine, tight: Limit, behind_proxy: None
) -> None:
    with _client(engine, "10.0.0.2") as proxy:
        # The proxy appends the address it saw; whatever the client wrote before it is theirs.
        flooder = {"X-Forwarded-For": "198.51.100.7"}
        assert _flood(proxy, 2, **flooder) == [200, 200]
        spoofed = {"X-Forwarded-For": "192.0.2.99, 198.51.100.7, 10.0.0.3"}
        again = submit(proxy, "/odber", _signup("znovu@example.cz"), **spoofed)
        assert again.status_code == 429
        # Another client behind the same proxy is not slowed by the flood.
        other = {"X-Forwarded-For": "198.51.100.8"}
        assert submit(proxy, "/odber", _signup("jiny@example.cz"), **other).status_code == 200
    with Session(engine) as session:
        ips = set(
            session.exec(select(SubscriptionRequest.ip).order_by(col(SubscriptionRequest.id)))
        )
    assert ips == {"198.51.100.7", "198.51.100.8"}
    # A peer that is not a trusted proxy cannot borrow the header.
    with _client(engine, "203.0.113.50") as outsider:
        header = {"X-Forwarded-For": "198.51.100.77"}
        assert submit(outsider, "/odber", _signup("venku@example.cz"), **header).status_code == 200
    with Session(engine) as session:
        last = session.exec(
            select(SubscriptionRequest.ip).order_by(col(SubscriptionRequest.id).desc())
        ).first()
    assert last == "203.0.113.50"


def test_one_ipv6_network_is_one_client_however_it_spells_its_addresses(
    engine: Engine, tight: Limit
) -> None:
    """A home or office line gets a whole /64; its device picks any address in it, so a limit
    per exact IPv6 address is no limit. The /64 counts as one client, and an IPv4 address
    written as IPv4-mapped IPv6 is that IPv4 address."""
    statuses = []
    for i, peer in enumerate(("2001:db8:5:7::1", "2001:db8:5:7::2", "2001:db8:5:7:ab:cd:ef:1")):
        with _client(engine, peer) as client:
            statuses.append(submit(client, "/odber", _signup(f"v6-{i}@example.cz")).status_code)
    assert statuses == [200, 200, 429]
    with _client(engine, "2001:db8:5:8::1") as neighbour:
        assert submit(neighbour, "/odber", _signup("v6-soused@example.cz")).status_code == 200
    with _client(engine, "198.51.100.20") as client:
        assert _flood(client, 2) == [200, 200]
    with _client(engine, "::ffff:198.51.100.20") as mapped:
        assert submit(mapped, "/odber", _signup("mapped@example.cz")).status_code == 429


def test_a_wildcard_in_trusted_proxies_trusts_nobody(
    engine: Engine, tight: Limit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn reads "*" as "every peer is a proxy, the client is the left-most entry", which
    lets any client write its own address; `sdruk doctor` calls it not an address, and the
    app ignores it like any entry that is not one."""
    monkeypatch.setenv("TRUSTED_PROXIES", "*")
    mailer_settings.get_settings.cache_clear()
    with _client(engine, "203.0.113.60") as client:
        statuses = [
            submit(
                client,
                "/odber",
                _signup(f"hvezda{i}@example.cz"),
                **{"X-Forwarded-For": f"192.0.2.{i}"},
            ).status_code
            for i in range(3)
        ]
    assert statuses == [200, 200, 429]
    with Session(engine) as session:
        assert set(session.exec(select(SubscriptionRequest.ip))) == {"203.0.113.60"}


def test_a_malformed_forwarded_entry_neither_breaks_the_form_nor_is_stored_whole(
    engine: Engine, behind_proxy: None
) -> None:
    """A trusted proxy that passes on what the client wrote (instead of an address) must not
    make the form fail on a column too short for it; what is stored stays bounded."""
    with _client(engine, "10.0.0.2") as proxy:
        header = {"X-Forwarded-For": "nesmysl-" + "x" * 300}
        assert submit(proxy, "/odber", _signup("divna@example.cz"), **header).status_code == 200
    with Session(engine) as session:
        [ip] = session.exec(select(SubscriptionRequest.ip)).all()
    assert ip is not None and len(ip) <= 64
