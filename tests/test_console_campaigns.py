"""Console campaign pages: segment builder, preview, test send to oneself, launch with live
progress, pause/resume/cancel, scheduling, captured messages, and the results of a run."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from console_support import BASE_URL, HTML, add_user, load_contacts, make_app, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select

from mailer.delivery.send import WorkerOptions, drain
from mailer.delivery.transport import transport_from_url
from mailer.events import record
from mailer.models import (
    AuditEntry,
    EventKind,
    OutboxMessage,
    Run,
    RunStatus,
    SavedSegment,
    ScheduledStep,
    utcnow,
)
from mailer.settings import get_settings

CAMPAIGN = "join-this-year-2026"  # segment: libraries that are not members yet


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    load_contacts(engine, tmp_path)
    add_user(engine, "editor@sdruk.example", "editor")
    with TestClient(make_app(engine), base_url=BASE_URL) as test_client:
        yield test_client


def _send_all(engine: Engine) -> None:
    transport = transport_from_url(get_settings().resolved_smtp_url())
    asyncio.run(drain(engine, transport, WorkerOptions(worker_id="test")))


def _launch(client: TestClient, csrf: str) -> int:
    response = client.post(
        f"/console/campaigns/{CAMPAIGN}/launch",
        # At once whatever the time of day: these tests send what they launch.
        data={"csrf_token": csrf, "step": "launch", "confirmed_size": "3", "immediately": "true"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[1])


def test_it_counts_samples_and_saves_a_segment(client: TestClient, engine: Engine) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    preview = client.get(
        "/console/segments/preview.json", params={"library_type": "mestska", "member": "ne"}
    ).json()
    assert preview["count"] == 2 and preview["error"] is None
    assert {row["email"] for row in preview["sample"]} == {
        "reditel@knihovna-kladno.example",
        "petr.novak@knihovna-kladno.example",
    }
    assert 'library_type = "mestska"' in preview["toml"]
    excluded = client.get(
        "/console/segments/preview.json", params={"region": "Zlínský kraj", "not_region": "ano"}
    ).json()
    assert excluded["count"] == 3
    response = client.post(
        "/console/segments",
        data={
            "csrf_token": csrf,
            "name": "Městské nečlenské",
            "library_type": "mestska",
            "member": "ne",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    with Session(engine) as session:
        saved = session.exec(select(SavedSegment)).one()
    assert saved.definition == {"library_type": "mestska", "member": False}
    listing = client.get("/console/segments", headers=HTML).text
    assert "Městské nečlenské" in listing
    nameless = client.post(
        "/console/segments", data={"csrf_token": csrf, "library_type": "mestska"}, headers=HTML
    )
    assert nameless.status_code == 422 and "Zadejte název" in nameless.text


def test_it_previews_a_campaign_for_a_chosen_contact_at_two_widths(
    client: TestClient, engine: Engine
) -> None:
    sign_in(client, "editor@sdruk.example")
    page = client.get(
        f"/console/campaigns/{CAMPAIGN}/preview",
        params={"contact": "petr.novak@knihovna-kladno.example"},
        headers=HTML,
    )
    assert page.status_code == 200
    assert page.text.count("srcdoc=") == 2
    assert 'class="desktop"' in page.text and 'class="mobile"' in page.text
    assert "Pozvánka do Sdružení knihoven ČR" in page.text
    # The body is filled for the chosen contact (his vocative).
    assert "Vážený pane Nováku" in page.text


def test_it_sends_a_test_message_to_the_signed_in_user(client: TestClient, engine: Engine) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    response = client.post(
        f"/console/campaigns/{CAMPAIGN}/test-send",
        data={"csrf_token": csrf, "step": "launch", "contact_id": "1"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text
    captured = list((get_settings().data_dir / "outbox").glob("*.eml"))
    assert len(captured) == 1
    raw = captured[0].read_bytes()
    assert b"X-Envelope-To: editor@sdruk.example" in raw
    listing = client.get("/console/outbox", headers=HTML).text
    assert captured[0].name in listing
    message = client.get(f"/console/outbox/{captured[0].name}", headers=HTML)
    assert message.status_code == 200 and "srcdoc=" in message.text
    # Reading it in the console must not count as an open: the pixel is not in the preview.
    assert "/o/" in raw.decode("ascii", "replace").replace("=\r\n", "")
    assert f"{BASE_URL}/o/" not in message.text
    assert client.get("/console/outbox/..%2Fsecret.key", headers=HTML).status_code == 404
    with Session(engine) as session:
        assert session.exec(select(AuditEntry).where(AuditEntry.action == "test_send")).one()
        assert session.exec(select(Run)).all() == []  # a test send is not a run


def test_it_launches_after_confirming_the_audience_and_shows_progress(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    confirm = client.get(f"/console/campaigns/{CAMPAIGN}/launch", headers=HTML).text
    assert 'id="audience-size">3<' in confirm
    run_id = _launch(client, csrf)
    progress = client.get(f"/console/runs/{run_id}/progress.json").json()
    assert progress["total"] == 3 and progress["counts"]["sent"] == 0
    assert not progress["finished"]
    # Launching again does not make a second run.
    assert _launch(client, csrf) == run_id
    _send_all(engine)
    progress = client.get(f"/console/runs/{run_id}/progress.json").json()
    assert progress["counts"]["sent"] == 3 and progress["finished"]
    with Session(engine) as session:
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "launch")).first()
    assert entry is not None and entry.actor == "editor@sdruk.example"
    page = client.get(f"/console/runs/{run_id}", headers=HTML).text
    assert "data-progress-url" in page


def test_it_pauses_resumes_and_cancels_a_run_with_confirmation(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    run_id = _launch(client, csrf)
    confirm = client.get(f"/console/runs/{run_id}/action/pause", headers=HTML).text
    assert 'id="waiting">3<' in confirm
    for action, status in (
        ("pause", RunStatus.PAUSED),
        ("resume", RunStatus.SCHEDULED),
        ("cancel", RunStatus.CANCELLED),
    ):
        response = client.post(
            f"/console/runs/{run_id}/action/{action}",
            data={"csrf_token": csrf, "reason": f"test {action}"},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        with Session(engine) as session:
            run = session.get(Run, run_id)
            assert run is not None and run.status == status
    again = client.post(
        f"/console/runs/{run_id}/action/resume", data={"csrf_token": csrf}, headers=HTML
    )
    assert again.status_code == 409
    with Session(engine) as session:
        actions = [
            (a.action, a.actor)
            for a in session.exec(select(AuditEntry)).all()
            if a.action != "sign_in"
        ]
        skipped = session.exec(select(OutboxMessage).where(OutboxMessage.status == "skipped")).all()
    assert ("pause", "editor@sdruk.example") in actions
    assert ("resume", "editor@sdruk.example") in actions
    assert ("cancel", "editor@sdruk.example") in actions
    assert len(skipped) == 3


def test_it_hands_a_campaign_to_the_scheduler(client: TestClient, engine: Engine) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    response = client.post(
        f"/console/campaigns/{CAMPAIGN}/schedule",
        data={"csrf_token": csrf, "confirmed_size": "3"},
        follow_redirects=False,
    )
    assert response.status_code == 303
    with Session(engine) as session:
        steps = session.exec(select(ScheduledStep).where(ScheduledStep.campaign == CAMPAIGN)).all()
        entry = session.exec(select(AuditEntry).where(AuditEntry.action == "schedule")).one()
    assert "launch" in {s.step for s in steps}
    assert entry.detail["confirmed_size"] == 3


def test_it_shows_the_funnel_without_machine_opens_and_exports_csv(
    client: TestClient, engine: Engine
) -> None:
    csrf = sign_in(client, "editor@sdruk.example")
    run_id = _launch(client, csrf)
    _send_all(engine)
    with Session(engine) as session:
        messages = session.exec(
            select(OutboxMessage).where(OutboxMessage.run_id == run_id).order_by(OutboxMessage.id)
        ).all()
        first, second, third = messages
        later = utcnow() + timedelta(minutes=5)
        for message, machine in ((first, False), (second, True)):
            record.record_event(
                session,
                EventKind.OPEN,
                contact_id=message.contact_id,
                run_id=run_id,
                outbox_id=message.id,
                is_machine=machine,
                occurred_at=later,
            )
        record.record_event(
            session,
            EventKind.CLICK,
            contact_id=first.contact_id,
            run_id=run_id,
            outbox_id=first.id,
            link_index=0,
            occurred_at=later,
        )
        assert third.contact_id is not None
        record.unsubscribe(session, third.contact_id, "test", run_id=run_id, outbox_id=third.id)
        session.commit()
    page = client.get(f"/console/runs/{run_id}/results", headers=HTML)
    assert page.status_code == 200
    text = page.text
    assert "<svg" in text and "polyline" in text
    # The results page reads individual opens only when tracking is individual; the recruitment
    # campaign tracks anonymously, so its per-person columns stay hidden.
    assert "Odesláno" in text and "Otevřeno lidmi" in text and "Kliknuto" in text
    assert "automatická otevření" in text
    export = client.post(f"/console/runs/{run_id}/results.csv", data={"csrf_token": csrf})
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text.lstrip("\ufeff")), delimiter=";"))
    assert len(rows) == 3
    assert {r["odhlášeno"] for r in rows} == {"ano", "ne"}
    assert {r["kraj"] for r in rows} == {"Středočeský kraj", "Zlínský kraj"}


def test_it_counts_people_not_machines_in_the_funnel(engine: Engine, tmp_path: Path) -> None:
    from mailer.events.stats import run_stats
    from mailer.web.console.results import funnel_rows

    load_contacts(engine, tmp_path)
    with Session(engine) as session:
        run = Run(campaign="c", step="launch", content={"tracking": "individual"}, recipients=2)
        session.add(run)
        session.flush()
        assert run.id is not None
        ids = []
        for contact_id in (1, 2):
            message = OutboxMessage(
                run_id=run.id, contact_id=contact_id, email=f"x{contact_id}@a.cz", status="sent"
            )
            session.add(message)
            session.flush()
            ids.append(message.id)
        # One person opened twice and clicked; the other's only "open" was Apple's proxy.
        for outbox_id, kind, machine in (
            (ids[0], EventKind.OPEN, False),
            (ids[0], EventKind.OPEN, False),
            (ids[0], EventKind.CLICK, False),
            (ids[1], EventKind.OPEN, True),
            (ids[1], EventKind.CLICK, True),
        ):
            record.record_event(
                session, kind, run_id=run.id, outbox_id=outbox_id, is_machine=machine
            )
        session.commit()
        stats = run_stats(session, run.id)
    funnel = {label: n for _, label, n, _, _ in funnel_rows(stats)}
    assert funnel["Odesláno"] == 2 and funnel["Doručeno"] == 2
    assert funnel["Otevřeno lidmi"] == 1 and funnel["Kliknuto"] == 1
    assert stats.machine_opens == 1 and stats.machine_clicks == 1


def test_it_asks_again_when_the_audience_changed_since_the_confirmation(
    client: TestClient, engine: Engine
) -> None:
    from delivery_support import add_contacts

    csrf = sign_in(client, "editor@sdruk.example")
    confirm = client.get(f"/console/campaigns/{CAMPAIGN}/launch", headers=HTML).text
    assert 'id="audience-size">3<' in confirm
    # Someone imports a library while the editor reads the confirmation page.
    add_contacts(engine, 1, prefix="nova")

    again = client.post(
        f"/console/campaigns/{CAMPAIGN}/launch",
        data={"csrf_token": csrf, "step": "launch", "confirmed_size": "3"},
        headers=HTML,
        follow_redirects=False,
    )
    assert again.status_code == 409
    assert 'id="audience-size">4<' in again.text
    assert "Publikum se od vašeho potvrzení změnilo" in again.text
    assert 'name="confirmed_size" value="4"' in again.text
    with Session(engine) as session:
        assert session.exec(select(Run)).all() == []

    launched = client.post(
        f"/console/campaigns/{CAMPAIGN}/launch",
        data={"csrf_token": csrf, "step": "launch", "confirmed_size": "4"},
        follow_redirects=False,
    )
    assert launched.status_code == 303, launched.text
    with Session(engine) as session:
        [run] = session.exec(select(Run)).all()
    assert run.recipients == 4


def test_it_shows_one_time_per_step_after_a_launch_by_hand(
    client: TestClient, engine: Engine
) -> None:
    """The scheduler gave the launch up as missed (first start after its time); staff launch
    it by hand: the step is linked to the run, and the reminder shows one time, ten days after
    the real launch, with no "zmeškáno" anywhere on the page."""
    from mailer.compose.campaigns import load_blueprint
    from mailer.scheduling.steps import tick
    from mailer.scheduling.sync import sync_blueprints
    from mailer.web.console.render import fmt_dt

    blueprint = load_blueprint(CAMPAIGN)
    sync_blueprints(engine, slugs=[CAMPAIGN])
    tick(engine, now=blueprint.send_at + timedelta(days=2), grace=timedelta(hours=24))
    with Session(engine) as session:
        missed = session.exec(select(ScheduledStep).where(ScheduledStep.step == "launch")).one()
    assert missed.status == "missed"

    csrf = sign_in(client, "editor@sdruk.example")
    run_id = _launch(client, csrf)
    with Session(engine) as session:
        run = session.get(Run, run_id)
        assert run is not None
        rows = {
            s.step: s
            for s in session.exec(
                select(ScheduledStep).where(ScheduledStep.campaign == CAMPAIGN)
            ).all()
        }
    assert rows["launch"].run_id == run_id and rows["launch"].status == "launched"
    due = run.created_at + timedelta(days=10)
    assert rows["pripominka"].due_at == due and rows["pripominka"].status == "pending"
    page = client.get(f"/console/campaigns/{CAMPAIGN}").text
    table = page.split("Kroky kampaně", 1)[1]
    from mailer.compose.step_labels import describe_step

    reminder = describe_step(blueprint.step("pripominka"))
    last_call = describe_step(blueprint.step("posledni-vyzva"))
    reminder_row = table.split(reminder, 1)[1].split("</tr>", 1)[0]
    assert fmt_dt(due) in reminder_row
    assert "zmeškáno" not in table.split(last_call, 1)[0]


def test_it_names_each_workshops_reminder_by_its_session(client: TestClient) -> None:
    sign_in(client, "editor@sdruk.example")
    page = client.get("/console/campaigns/leadership-workshops-2027", headers=HTML)
    assert page.status_code == 200
    text = " ".join(page.text.split())
    first = "připomínka 2 dny před 1. termínem (11. února 2027, Praha, Městská knihovna v Praze)"
    assert first in text
    assert "připomínka 2 dny před 6. termínem (14. října 2027, Ostrava" in text
    assert "připomínka 7 dní před akcí" in text
    # The ids are for campaign.toml and links, not for the text staff read.
    assert "prakticke-informace" not in re.sub(r"<[^>]*>", " ", page.text)


@pytest.mark.parametrize(
    ("kind", "shown", "hidden"),
    [
        ("recruitment", "Vstoupilo do SDRUK", "Registrováno na akci"),
        ("event", "Registrováno na akci", "Vstoupilo do SDRUK"),
    ],
)
def test_the_funnel_ends_in_the_goal_the_campaign_pursues(
    engine: Engine, tmp_path: Path, kind: str, shown: str, hidden: str
) -> None:
    """A recruitment run's funnel does not end in "registered for an event: 0", nor an
    invitation's in "joined: 0"; a goal reached all the same is still shown."""
    from mailer.events.stats import run_stats
    from mailer.web.console.results import funnel_rows

    load_contacts(engine, tmp_path)
    with Session(engine) as session:
        run = Run(campaign="c", step="launch", content={"kind": kind}, recipients=1)
        session.add(run)
        session.commit()
        assert run.id is not None
        stats = run_stats(session, run.id)
    labels = {label for _, label, _, _, _ in funnel_rows(stats)}
    assert shown in labels and hidden not in labels
    stats.funnel = {**stats.funnel, "joined": 1, "registered": 1}
    labels = {label for _, label, _, _, _ in funnel_rows(stats)}
    assert {shown, hidden} <= labels
