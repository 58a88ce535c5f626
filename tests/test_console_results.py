"""The console's results page, its chart and its CSV show the same numbers as
`sdruk runs stats --json`: both read mailer.events.stats."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_support import BASE_URL, HTML, add_user, make_app, sign_in
from events_factory import make_world
from fastapi.testclient import TestClient
from lxml import html as lxml_html
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from mailer.events import record
from mailer.events.record import BounceTarget
from mailer.models import Contact, EventKind, Library, MessageStatus, OutboxMessage, utcnow


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    add_user(engine, "editor@sdruk.example", "editor")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        yield test_client


def _scenario(engine: Engine) -> int:
    """Seven recipients (types and regions cycle mestska, obecni, krajska):
    a opens, clicks and is also fetched by Apple's proxy; b is only fetched by the proxy and
    unsubscribes with one click; c hard-bounces; d reads the web version only and registers;
    e clicks without the pixel, soft-bounces and leaves on the preferences page (no message
    token); f complains and its library joins SDRUK; g's message failed."""
    # A recruitment run (kind), so that f's library joining is credited to it.
    world = make_world(
        engine, contacts=7, campaign="konference-2026", content={"kind": "recruitment"}
    )
    a, b, c, d, e, f, g = world.outbox_ids
    ca, cb, _, cd, ce, cf, _ = world.contact_ids
    run = {"run_id": world.run_id}
    with Session(engine) as session:
        failed = session.get(OutboxMessage, g)
        assert failed is not None
        failed.status, failed.sent_at = MessageStatus.FAILED, None
        record.record_event(session, EventKind.OPEN, outbox_id=a, contact_id=ca, **run)
        record.record_event(session, EventKind.OPEN, outbox_id=a, contact_id=ca, **run)
        record.record_event(
            session, EventKind.CLICK, outbox_id=a, contact_id=ca, link_index=1, **run
        )
        for outbox_id in (a, b):
            record.record_event(
                session,
                EventKind.OPEN,
                outbox_id=outbox_id,
                is_machine=True,
                machine_reason="apple_mpp",
                **run,
            )
        record.unsubscribe(session, cb, "one-click", outbox_id=b, **run)
        target = BounceTarget.of(session, c)
        assert target is not None
        record.hard_bounce(session, target, status="5.1.1")
        record.record_event(session, EventKind.WEB_VIEW, outbox_id=d, contact_id=cd, **run)
        record.registered(session, cd, campaign="konference-2026")
        record.record_event(
            session, EventKind.CLICK, outbox_id=e, contact_id=ce, link_index=0, **run
        )
        target = BounceTarget.of(session, e)
        assert target is not None
        record.soft_bounce(session, target, status="4.2.2")
        record.unsubscribe(session, ce, "preferences", **run)
        target = BounceTarget.of(session, f)
        assert target is not None
        record.complaint(session, target)
        contact = session.get(Contact, cf)
        assert contact is not None
        library = session.get(Library, contact.library_id)
        assert library is not None
        library.is_member, library.joined_at = True, utcnow()
        session.commit()
    return world.run_id


def _number(text: str) -> int:
    """The first number in a text as the console prints it (Czech: non-breaking spaces)."""
    match = re.search(r"\d[\d\u00a0\u202f]*", text)
    assert match, f"no number in {text!r}"
    return int(re.sub(r"\D", "", match.group()))


def _page_numbers(page: str) -> dict[str, Any]:
    """What the results page shows, read from its visible text."""
    tree = lxml_html.fromstring(page)

    def shown(xpath: str) -> int:
        (node,) = tree.xpath(xpath)
        return _number(node.text_content())

    def table(section: str) -> dict[str, dict[str, int]]:
        return {
            row.get("data-key"): {
                cell.get("data-measure"): _number(cell.text_content())
                for cell in row.xpath("td[@data-measure]")
            }
            for row in tree.xpath(f"//section[@id='{section}']//tr[@data-key]")
        }

    steps = ("sent", "delivered", "opened", "clicked", "joined", "registered")
    tiles = ("unsubscribes", "hard_bounces", "soft_bounces", "complaints")
    return {
        "funnel": {s: shown(f"//div[@data-step='{s}']/span/b") for s in steps},
        "libraries": _number(
            tree.xpath("//div[@data-step='joined']/following-sibling::div[1]")[0].text_content()
        ),
        "tiles": {t: shown(f"//div[@data-measure='{t}']/b") for t in (*tiles, "machine_opens")},
        "chart": {
            line.get("data-series"): _number(line.xpath("title")[0].text_content().split(":")[1])
            for line in tree.xpath("//svg//polyline")
        },
        "by_type": table("by-type"),
        "by_region": table("by-region"),
    }


def _groups(groups: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    measures = ("sent", "opened", "clicked", "unsubscribed", "bounced", "joined_libraries")
    return {g["key"]: {m: g[m] for m in measures} for g in groups}


def test_it_shows_in_the_console_the_numbers_of_runs_stats(
    client: TestClient, engine: Engine
) -> None:
    from mailer.cli import app

    run_id = _scenario(engine)
    cli = CliRunner().invoke(app, ["runs", "stats", str(run_id), "--json"])
    assert cli.exit_code == 0, cli.output
    stats = json.loads(cli.output)
    # The documented meaning: d (web version only) and e (a click, no pixel) opened; a
    # machine-only fetch did not; delivered leaves out both bounces.
    assert stats["funnel"] == {
        "sent": 6,
        "delivered": 4,
        "opened": 3,
        "clicked": 2,
        "joined": 1,
        "registered": 1,
    }
    assert (stats["unsubscribes"], stats["complaints"], stats["machine_only_recipients"]) == (
        2,
        1,
        1,
    )

    csrf = sign_in(client, "editor@sdruk.example")
    response = client.get(f"/console/runs/{run_id}/results", headers=HTML)
    assert response.status_code == 200
    shown = _page_numbers(response.text)
    assert shown["funnel"] == stats["funnel"]
    assert shown["libraries"] == stats["libraries"] == 6
    assert shown["tiles"] == {
        "unsubscribes": stats["unsubscribes"],
        "hard_bounces": stats["hard_bounces"],
        "soft_bounces": stats["soft_bounces"],
        "complaints": stats["complaints"],
        "machine_opens": stats["machine_opens"],
    }
    # Each series of the chart ends at the number in the funnel.
    assert shown["chart"] == {
        "sent": stats["sent"],
        "opened": stats["unique_human_opens"],
        "clicked": stats["unique_human_clicks"],
        "unsubscribed": stats["unsubscribes"],
    }
    assert shown["by_type"] == _groups(stats["by_library_type"])
    assert shown["by_region"] == _groups(stats["by_region"])
    assert set(shown["by_type"]) == {"krajska", "mestska", "obecni"}

    # The CSV's "ano" add up to the same numbers.
    export = client.post(f"/console/runs/{run_id}/results.csv", data={"csrf_token": csrf})
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text.lstrip("\ufeff")), delimiter=";"))
    assert len(rows) == stats["recipients"] == 7

    def yes(column: str) -> int:
        return sum(r[column] == "ano" for r in rows)

    assert {
        "delivered": yes("doručeno"),
        "opened": yes("otevřeno"),
        "clicked": yes("kliknuto"),
        "registered": yes("registrace"),
    } == {k: stats["funnel"][k] for k in ("delivered", "opened", "clicked", "registered")}
    assert (yes("odhlášeno"), yes("nedoručitelné"), yes("stížnost na spam")) == (
        stats["unsubscribes"],
        stats["bounced"],
        stats["complaints"],
    )


def test_it_counts_events_not_people_under_anonymous_tracking(
    client: TestClient, engine: Engine
) -> None:
    from mailer.cli import app

    world = make_world(engine, contacts=3, content={"tracking": "anonymous"})
    with Session(engine) as session:
        for kind, machine in (
            (EventKind.OPEN, False),
            (EventKind.OPEN, False),
            (EventKind.OPEN, True),
            (EventKind.CLICK, False),
        ):
            record.record_event(session, kind, run_id=world.run_id, is_machine=machine)
        session.commit()
    cli = CliRunner().invoke(app, ["runs", "stats", str(world.run_id), "--json"])
    assert cli.exit_code == 0, cli.output
    stats = json.loads(cli.output)
    assert (stats["funnel"]["opened"], stats["funnel"]["clicked"]) == (2, 1)
    assert stats["unique_human_opens"] == 0
    sign_in(client, "editor@sdruk.example")
    shown = _page_numbers(client.get(f"/console/runs/{world.run_id}/results", headers=HTML).text)
    assert shown["funnel"] == stats["funnel"]
    assert shown["chart"]["opened"] == 2 and shown["tiles"]["machine_opens"] == 1
