"""Cancelling a campaign's launch run cancels its reminder steps still waiting: they are never
run, a later sync does not bring them back, and `sdruk schedule` shows them with the reason."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    GRACE,
    SEND_AT,
    add_people,
    campaigns_dir_fixture,
    runs,
    steps,
)
from typer.testing import CliRunner

from mailer.cli import app
from mailer.delivery.runs import cancel
from mailer.models import StepStatus
from mailer.scheduling.steps import tick
from mailer.scheduling.sync import sync_blueprints

NOTE = "zrušeno: hlavní rozesílka byla zrušena"


def test_it_cancels_pending_reminders_when_the_launch_run_is_cancelled(
    engine: Engine, campaigns_dir: Path
) -> None:
    add_people(engine, ["alena", "bara"])
    sync_blueprints(engine)
    tick(engine, now=SEND_AT, grace=GRACE)
    [launch_run] = runs(engine)

    cancel(engine, launch_run.id, "chyba v textu")

    planned = steps(engine)
    assert planned["launch"].status == StepStatus.LAUNCHED
    assert (planned["pripominka"].status, planned["pripominka"].note) == (
        StepStatus.CANCELLED,
        NOTE,
    )
    # The reminder's time comes and goes (and blueprints are synced again): it never runs.
    sync_blueprints(engine)
    due = planned["pripominka"].due_at
    tick(engine, now=due, grace=GRACE)
    tick(engine, now=due + timedelta(hours=1), grace=GRACE)
    assert [r.step for r in runs(engine)] == ["launch"]
    assert steps(engine)["pripominka"].status == StepStatus.CANCELLED

    runner = CliRunner()
    listed = runner.invoke(app, ["schedule", "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.output)
    assert [(s["step"], s["status"], s["note"]) for s in data["cancelled"]] == [
        ("pripominka", "cancelled", NOTE)
    ]
    assert all(s["step"] != "pripominka" for s in data["upcoming"])
    human = runner.invoke(app, ["schedule"])
    assert human.exit_code == 0, human.output
    # The table wraps the note at the console's width; its own section lists the step.
    cancelled = " ".join(human.output.split("Zrušené kroky", 1)[1].split("Spuštěno", 1)[0].split())
    assert "připomínka" in cancelled
