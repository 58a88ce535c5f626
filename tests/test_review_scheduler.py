"""Review findings about the scheduler: a staff pause of a run the scheduler had paused outside
its sending window holds; the window opening does not resume it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    GRACE,
    add_people,
    campaigns_dir_fixture,
    runs,
    write_campaign,
)

from mailer.delivery.runs import pause
from mailer.models import Run, RunStatus
from mailer.scheduling.steps import tick
from mailer.scheduling.sync import sync_blueprints
from mailer.scheduling.windows import QUIET_PREFIX

PRAGUE = ZoneInfo("Europe/Prague")


def at(d: int, hh: int, mm: int = 0) -> datetime:
    return datetime(2026, 3, d, hh, mm, tzinfo=PRAGUE)


def test_it_keeps_a_staff_pause_of_a_run_paused_for_the_night(
    engine: Engine, campaigns_dir: Path
) -> None:
    write_campaign(campaigns_dir, send_at=at(3, 16, 50))
    add_people(engine, ["alena", "bara"])
    sync_blueprints(engine)
    tick(engine, now=at(3, 16, 50), grace=GRACE)
    tick(engine, now=at(3, 17, 0), grace=GRACE)  # the window closes: paused by the scheduler
    [run] = runs(engine)
    assert run.id is not None and run.status == RunStatus.PAUSED
    assert (run.status_reason or "").startswith(QUIET_PREFIX)

    # In the evening staff find a mistake and pause the run: it must stay paused.
    assert pause(engine, run.id, "obsluha: chyba v textu") == RunStatus.PAUSED
    report = tick(engine, now=at(4, 8, 0), grace=GRACE)
    assert report.resumed_runs == []
    with Session(engine) as session:
        again = session.get(Run, run.id)
        assert again is not None
        assert again.status == RunStatus.PAUSED
        assert again.status_reason == "obsluha: chyba v textu"


def test_it_lets_staff_hold_a_run_paused_for_the_night_in_the_console(
    engine: Engine, tmp_path: Path
) -> None:
    from console_support import BASE_URL, HTML, add_user, make_app, sign_in
    from events_factory import make_world
    from fastapi.testclient import TestClient

    world = make_world(engine)
    with Session(engine) as session:
        run = session.get(Run, world.run_id)
        assert run is not None
        run.status = RunStatus.PAUSED
        run.status_reason = f"{QUIET_PREFIX} (8–17 h); pokračuje zítra"
        session.add(run)
        session.commit()
    add_user(engine, "editor@sdruk.example", "editor")
    with TestClient(make_app(engine), base_url=BASE_URL) as client:
        csrf = sign_in(client, "editor@sdruk.example")
        detail = client.get(f"/console/runs/{world.run_id}", headers=HTML).text
        assert f"/console/runs/{world.run_id}/action/pause" in detail
        response = client.post(
            f"/console/runs/{world.run_id}/action/pause",
            data={"csrf_token": csrf, "reason": "kontrola textu"},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
    with Session(engine) as session:
        held = session.get(Run, world.run_id)
        assert held is not None
        assert (held.status, held.status_reason) == (RunStatus.PAUSED, "kontrola textu")
