"""Open pixel, click redirects and token handling of the public routes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from events_factory import LINKS, make_world
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func
from sqlmodel import Session, select

from mailer.models import Contact, Event, EventKind, MessageStatus, OutboxMessage, TopicOptOut
from mailer.tokens import Purpose, Signer, default_signer
from mailer.web.app import create_app

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    with TestClient(
        create_app(), base_url="https://kampane.sdruk.test", headers={"User-Agent": BROWSER}
    ) as test_client:
        yield test_client


def _token(purpose: Purpose, *ids: int) -> str:
    return default_signer().sign(purpose, *ids)


def _events(engine: Engine) -> list[Event]:
    with Session(engine) as session:
        return list(session.exec(select(Event).order_by(Event.id)).all())  # type: ignore[arg-type]


def _state(engine: Engine) -> tuple[object, ...]:
    """Everything a token route could change."""
    with Session(engine) as session:
        return (
            session.exec(select(func.count()).select_from(Event)).one(),
            tuple(session.exec(select(Contact.status).order_by(Contact.id)).all()),  # type: ignore[arg-type]
            tuple(session.exec(select(OutboxMessage.status).order_by(OutboxMessage.id)).all()),  # type: ignore[arg-type]
            session.exec(select(func.count()).select_from(TopicOptOut)).one(),
        )


def test_it_serves_an_uncacheable_pixel_and_records_the_open(
    engine: Engine, client: TestClient
) -> None:
    world = make_world(engine)
    response = client.get(f"/o/{_token(Purpose.OPEN, world.outbox_ids[0])}.gif")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.content.startswith(b"GIF89a") and len(response.content) < 64
    assert "no-store" in response.headers["cache-control"]
    assert "max-age=0" in response.headers["cache-control"]
    [event] = _events(engine)
    assert (event.kind, event.outbox_id, event.run_id, event.contact_id) == (
        EventKind.OPEN,
        world.outbox_ids[0],
        world.run_id,
        world.contact_ids[0],
    )
    assert (event.is_machine, event.user_agent) == (False, BROWSER)


def test_it_counts_anonymous_opens_without_a_contact(engine: Engine, client: TestClient) -> None:
    world = make_world(engine)
    response = client.get(f"/o/{_token(Purpose.OPEN_ANONYMOUS, world.run_id)}.gif")
    assert response.status_code == 200
    [event] = _events(engine)
    assert (event.run_id, event.outbox_id, event.contact_id) == (world.run_id, None, None)
    assert (event.user_agent, event.ip) == (None, None)


def test_it_redirects_a_click_only_to_the_signed_link(engine: Engine, client: TestClient) -> None:
    world = make_world(engine)
    token = _token(Purpose.CLICK, world.outbox_ids[0], 1)
    response = client.get(f"/c/{token}", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == LINKS[1]
    assert response.headers["referrer-policy"] == "no-referrer"
    [event] = _events(engine)
    assert (event.kind, event.link_index, event.contact_id) == ("click", 1, world.contact_ids[0])

    anonymous = _token(Purpose.CLICK_ANONYMOUS, world.run_id, 2)
    response = client.get(f"/c/{anonymous}", follow_redirects=False)
    assert response.headers["location"] == LINKS[2]


def test_it_redirects_a_message_link_by_its_index(engine: Engine, client: TestClient) -> None:
    world = make_world(engine)
    token = _token(Purpose.MESSAGE_CLICK, world.outbox_ids[0])
    response = client.get(f"/c/{token}/2", follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == LINKS[2]
    [event] = _events(engine)
    assert (event.kind, event.link_index, event.outbox_id) == ("click", 2, world.outbox_ids[0])
    assert event.contact_id == world.contact_ids[0]


def test_it_refuses_a_message_link_with_a_bad_index_or_token_changing_nothing(
    engine: Engine, client: TestClient
) -> None:
    world = make_world(engine, links=[*LINKS, "javascript:alert(1)"])
    outbox_id = world.outbox_ids[0]
    token = _token(Purpose.MESSAGE_CLICK, outbox_id)
    before = _state(engine)
    for path in (
        f"/c/{token}/9",  # no such link
        f"/c/{token}/3",  # not http(s)
        f"/c/{token}/-1",
        f"/c/{token}/01",
        f"/c/{token}/1e0",
        f"/c/{token}/99999999999999999999",
        f"/c/{_token(Purpose.OPEN, outbox_id)}/0",  # another purpose
        f"/c/{_token(Purpose.CLICK, outbox_id, 0)}/0",  # a per-link token is not a message's
        f"/c/{_token(Purpose.MESSAGE_CLICK, 10**9)}/0",  # no such message
        f"/c/{token[:-2]}AA/0",
    ):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 404, path
        assert "location" not in response.headers
    assert _state(engine) == before


def test_it_cannot_be_made_to_redirect_to_an_unsigned_url(
    engine: Engine, client: TestClient
) -> None:
    world = make_world(engine, links=[*LINKS, "javascript:alert(1)"])
    before = _state(engine)
    attempts = [
        f"/c/{_token(Purpose.CLICK, world.outbox_ids[0], 9)}",  # no such link
        f"/c/{_token(Purpose.CLICK, world.outbox_ids[0], 3)}",  # not http(s)
        f"/c/{_token(Purpose.CLICK, world.outbox_ids[0], 0)}?url=https://evil.example",
        "/c/https://evil.example",
        "/c/aHR0cHM6Ly9ldmlsLmV4YW1wbGU",
    ]
    for path in attempts[:2] + attempts[3:]:
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 404, path
        assert "location" not in response.headers
    assert _state(engine) == before
    # Extra query parameters are ignored: still the signed link.
    response = client.get(attempts[2], follow_redirects=False)
    assert response.headers["location"] == LINKS[0]


def test_it_refuses_altered_foreign_and_wrong_purpose_tokens_changing_nothing(
    engine: Engine, client: TestClient
) -> None:
    world = make_world(engine, status=MessageStatus.QUEUED)
    outbox_id = world.outbox_ids[0]
    good = _token(Purpose.UNSUBSCRIBE, outbox_id)
    altered = good[:-2] + ("AA" if good[-2:] != "AA" else "BB")
    foreign = Signer([b"somebody-else's-key"]).sign(Purpose.UNSUBSCRIBE, outbox_id)
    other_purpose = {
        "/u/": _token(Purpose.OPEN, outbox_id),
        "/p/": _token(Purpose.UNSUBSCRIBE, outbox_id),
        "/c/": _token(Purpose.OPEN, outbox_id),
        "/v/": _token(Purpose.CLICK, outbox_id, 0),
    }
    before = _state(engine)
    requests = [
        ("GET", f"/u/{altered}"),
        ("POST", f"/u/{altered}"),
        ("POST", f"/u/{foreign}"),
        ("POST", f"/u/{other_purpose['/u/']}"),
        ("POST", f"/u/{_token(Purpose.RETURN_PATH, outbox_id)}"),
        ("POST", f"/u/{other_purpose['/u/']}/undo"),
        ("POST", f"/p/{other_purpose['/p/']}"),
        ("GET", f"/o/{_token(Purpose.CLICK, outbox_id, 0)}.gif"),
        ("GET", f"/o/{altered}.gif"),
        ("GET", f"/c/{other_purpose['/c/']}"),
        ("GET", f"/v/{other_purpose['/v/']}"),
        ("GET", "/u/"),
        ("GET", "/u/x"),
    ]
    for method, path in requests:
        body = {"List-Unsubscribe": "One-Click", "action": "all", "undo": "1"}
        response = client.request(method, path, data=body if method == "POST" else None)
        assert response.status_code == 404, (method, path)
        assert "Stránka nenalezena" in response.text
        assert response.headers["x-content-type-options"] == "nosniff"
    assert _state(engine) == before


def test_it_accepts_tokens_signed_with_the_previous_key(
    engine: Engine, client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mailer import settings as mailer_settings

    world = make_world(engine)
    old = Signer([b"test-secret-key"]).sign(Purpose.OPEN, world.outbox_ids[0])
    monkeypatch.setenv("SECRET_KEY", "the-new-key")
    monkeypatch.setenv("PREVIOUS_SECRET_KEYS", '["test-secret-key"]')
    mailer_settings.get_settings.cache_clear()
    with TestClient(create_app()) as rotated:
        assert rotated.get(f"/o/{old}.gif").status_code == 200
        stranger = Signer([b"never-used"]).sign(Purpose.OPEN, world.outbox_ids[0])
        assert rotated.get(f"/o/{stranger}.gif").status_code == 404
    assert len(_events(engine)) == 1


def test_it_records_a_head_request_as_a_machine(engine: Engine, client: TestClient) -> None:
    world = make_world(engine)
    response = client.head(
        f"/c/{_token(Purpose.CLICK, world.outbox_ids[0], 0)}", follow_redirects=False
    )
    assert response.status_code == 302
    [event] = _events(engine)
    assert (event.is_machine, event.machine_reason) == (True, "head_request")


def test_it_shows_the_web_version_filled_for_its_recipient(
    engine: Engine, client: TestClient
) -> None:
    from mailer.compose.campaigns import load_blueprint
    from mailer.compose.freeze import freeze

    content = freeze(load_blueprint("join-this-year-2026"), "launch")
    world = make_world(engine, content=content, links=content["links"])
    response = client.get(f"/v/{_token(Purpose.WEB_VERSION, world.outbox_ids[0])}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "Vážená paní ředitelko" in response.text
    assert "script-src" not in response.headers["content-security-policy"]
    assert "'unsafe-inline'" in response.headers["content-security-policy"]
    anonymous = client.get(f"/v/{_token(Purpose.WEB_VERSION_ANONYMOUS, world.run_id)}")
    assert anonymous.status_code == 200
    assert "ředitelko" not in anonymous.text
    assert [(e.kind, e.contact_id) for e in _events(engine)] == [
        ("web_view", world.contact_ids[0]),
        ("web_view", None),
    ]


async def test_it_records_every_answered_hit_under_a_real_uvicorn(engine: Engine) -> None:
    import asyncio
    import socket

    import httpx

    from mailer.web.app import make_server

    world = make_world(engine)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = make_server("127.0.0.1", port, log_level="warning")
    serving = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    paths = [f"/o/{_token(Purpose.OPEN, oid)}.gif" for oid in world.outbox_ids] * 40
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        answers = await asyncio.gather(*(http.get(p) for p in paths))
    # Answered means committed: all rows are there before the server even stops.
    recorded_while_running = len(_events(engine))
    server.should_exit = True
    await serving
    assert [a.status_code for a in answers] == [200] * len(paths)
    assert recorded_while_running == len(paths)
