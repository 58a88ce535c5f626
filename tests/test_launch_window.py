"""A launch by hand outside the campaign's sending window says when it will start and waits
for the window; sending at once is an explicit, confirmed choice (CLI `--ihned`, console
checkbox), and such a run is not paused by the window afterwards."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

from console_support import BASE_URL, add_user, make_app, sign_in
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlmodel import Session, select
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    GRACE,
    PRAGUE,
    SLUG,
    add_people,
    campaigns_dir_fixture,
    runs,
    write_campaign,
)
from typer.testing import CliRunner

from mailer.cli import app
from mailer.compose.campaigns import load_blueprint
from mailer.compose.czech import format_moment
from mailer.delivery.send import WorkerOptions, drain
from mailer.delivery.transport import transport_from_url
from mailer.models import OutboxMessage, RunStatus, utcnow
from mailer.scheduling.steps import tick
from mailer.settings import get_settings
from mailer.web.console.render import fmt_dt

DAYS = ("po", "út", "st", "čt", "pá", "so", "ne")


def _closed_now(campaigns_dir: Path) -> datetime:
    """Rewrite the test campaign so that its window is closed now: open only on the day after
    tomorrow. Returns when it opens."""
    today = datetime.now(PRAGUE).date()
    opens_on = today + timedelta(days=2)
    day = DAYS[opens_on.weekday()]
    window = (
        f'[sending_window]\nstart = "08:00"\nend = "17:00"\ndays = ["{day}"]\nholidays = false\n'
    )
    write_campaign(campaigns_dir, window=window)
    opens = datetime(opens_on.year, opens_on.month, opens_on.day, 8, 0, tzinfo=PRAGUE)
    assert load_blueprint(SLUG).sending_window.next_open(utcnow()) == opens
    return opens


def _send_all(engine: Engine) -> None:
    transport = transport_from_url(get_settings().resolved_smtp_url())
    asyncio.run(drain(engine, transport, WorkerOptions(worker_id="test")))


def _statuses(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return sorted(m.status for m in session.exec(select(OutboxMessage)))


def test_it_waits_for_the_window_when_launched_by_hand_on_the_command_line(
    engine: Engine, campaigns_dir: Path
) -> None:
    add_people(engine, ["alena", "bara"])
    opens = _closed_now(campaigns_dir)
    result = CliRunner().invoke(app, ["campaigns", "launch", SLUG])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "zavřené" in said and f"začne {format_moment(opens)}" in said
    [run] = runs(engine)
    assert run.scheduled_for == opens and run.outside_window is False
    _send_all(engine)
    assert _statuses(engine) == ["queued", "queued"]
    # The scheduler does not pause a run that has not started: it starts on its own.
    tick(engine, now=utcnow(), grace=GRACE)
    [run] = runs(engine)
    assert run.status == RunStatus.SCHEDULED and run.status_reason is None


def test_it_sends_at_once_only_when_confirmed_on_the_command_line(
    engine: Engine, campaigns_dir: Path
) -> None:
    add_people(engine, ["alena", "bara"])
    _closed_now(campaigns_dir)
    refused = CliRunner().invoke(app, ["campaigns", "launch", SLUG, "--ihned"], input="n\n")
    assert refused.exit_code == 1
    assert "Opravdu odeslat hned?" in refused.output and "Nic nebylo spuštěno" in refused.output
    assert runs(engine) == []

    confirmed = CliRunner().invoke(app, ["campaigns", "launch", SLUG, "--ihned"], input="a\n")
    assert confirmed.exit_code == 0, confirmed.output
    assert "mimo okno" in " ".join(confirmed.output.split())
    [run] = runs(engine)
    assert run.outside_window is True
    _send_all(engine)
    assert _statuses(engine) == ["sent", "sent"]
    # Not paused by the window it was explicitly sent outside of.
    tick(engine, now=utcnow(), grace=GRACE)
    assert runs(engine)[0].status == RunStatus.SENT


def test_it_says_in_the_console_when_a_launch_will_start_and_waits(
    engine: Engine, campaigns_dir: Path
) -> None:
    add_people(engine, ["alena", "bara"])
    add_user(engine, "editor@sdruk.example", "editor")
    opens = _closed_now(campaigns_dir)
    with TestClient(make_app(engine), base_url=BASE_URL) as client:
        csrf = sign_in(client, "editor@sdruk.example")
        confirm = client.get(f"/console/campaigns/{SLUG}/launch").text
        assert "Okno pro odesílání je teď zavřené" in confirm
        assert fmt_dt(opens) in confirm
        assert 'name="immediately"' in confirm and "data-confirm-now=" in confirm
        response = client.post(
            f"/console/campaigns/{SLUG}/launch",
            data={"csrf_token": csrf, "step": "launch", "confirmed_size": "2"},
        )
        assert response.status_code == 200
        assert "odesílání začne" in response.text and fmt_dt(opens) in response.text
    [run] = runs(engine)
    assert run.scheduled_for == opens and run.outside_window is False
    _send_all(engine)
    assert _statuses(engine) == ["queued", "queued"]


def test_it_sends_at_once_from_the_console_when_ticked(engine: Engine, campaigns_dir: Path) -> None:
    add_people(engine, ["alena", "bara"])
    add_user(engine, "editor@sdruk.example", "editor")
    _closed_now(campaigns_dir)
    with TestClient(make_app(engine), base_url=BASE_URL) as client:
        csrf = sign_in(client, "editor@sdruk.example")
        response = client.post(
            f"/console/campaigns/{SLUG}/launch",
            data={
                "csrf_token": csrf,
                "step": "launch",
                "confirmed_size": "2",
                "immediately": "true",
            },
        )
        assert response.status_code == 200
        assert "bez ohledu na okno" in response.text
    [run] = runs(engine)
    assert run.outside_window is True
    _send_all(engine)
    assert _statuses(engine) == ["sent", "sent"]
