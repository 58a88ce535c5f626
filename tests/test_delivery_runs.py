"""Launching runs: once per step, the segment minus everyone who may not be mailed, one message
per address; run states through pause, resume and cancel; progress on the command line."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from delivery_support import add_contacts, blueprint, rows
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner

from mailer.audience.contacts import suppress
from mailer.cli import app
from mailer.delivery.runs import RunStateError, cancel, launch, pause, progress, resume
from mailer.models import Contact, Run, TopicOptOut


def test_it_launches_a_step_once_without_those_who_may_not_be_mailed(engine: Engine) -> None:
    ids = add_contacts(engine, 8)
    add_contacts(engine, 1, prefix="gone", status="unsubscribed")
    add_contacts(engine, 1, prefix="nobasis", legal_basis=None)
    with Session(engine) as session:
        suppress(session, "k1@knihovna.cz", "bounced")
        session.add(TopicOptOut(contact_id=ids[2], topic="membership"))
        session.commit()
    # Same address but for the case of the local part: one message, to the older contact.
    add_contacts(engine, 1, prefix="K3x", domain="knihovna.cz")
    add_contacts(engine, 1, prefix="k3x", domain="knihovna.cz")

    first = launch(engine, blueprint())
    again = launch(engine, blueprint())

    assert first.created and not again.created
    assert again.run_id == first.run_id and again.recipients == first.recipients
    emails = sorted(r.email for r in rows(engine, first.run_id).values())
    expected = sorted(
        [f"k{i}@knihovna.cz" for i in range(8) if i not in (1, 2)] + ["K3x0@knihovna.cz"]
    )
    assert emails == expected
    assert first.recipients == len(expected)
    with Session(engine) as session:
        run = session.get(Run, first.run_id)
        assert run is not None and run.status == "scheduled"
        assert run.content["topic"] == "membership"


def test_it_moves_a_run_through_pause_resume_and_cancel(engine: Engine) -> None:
    add_contacts(engine, 5)
    run_id = launch(engine, blueprint()).run_id

    assert pause(engine, run_id, "kontrola textu") == "paused"
    assert progress(engine, run_id).status_reason == "kontrola textu"
    assert resume(engine, run_id) == "scheduled"
    assert cancel(engine, run_id, "chyba v textu") == 5
    p = progress(engine, run_id)
    assert p.status == "cancelled" and p.counts == {"skipped": 5}
    with pytest.raises(RunStateError, match="nelze pozastavit"):
        pause(engine, run_id, "x")
    with pytest.raises(RunStateError, match="nelze obnovit"):
        resume(engine, run_id)
    assert all(r.error == "rozesílka zrušena" for r in rows(engine, run_id).values())


def test_it_finishes_a_run_without_recipients_at_once(engine: Engine) -> None:
    result = launch(engine, blueprint())
    assert (result.created, result.recipients) == (True, 0)
    assert progress(engine, result.run_id).status == "sent"


def test_it_launches_and_shows_runs_on_the_command_line(engine: Engine) -> None:
    add_contacts(engine, 3)
    runner = CliRunner()
    launched = runner.invoke(app, ["campaigns", "launch", "join-this-year-2026", "--json"])
    assert launched.exit_code == 0, launched.output
    data = json.loads(launched.stdout)
    assert data["recipients"] == 3 and data["created"] is True
    again = runner.invoke(app, ["campaigns", "launch", "join-this-year-2026"])
    # Rich wraps the line at the terminal's width; the words are what matters.
    said = " ".join(again.output.split())
    assert again.exit_code == 0 and f"už spuštěno (rozesílka {data['run']}" in said

    shown = runner.invoke(app, ["runs", "show", str(data["run"]), "--json"])
    assert shown.exit_code == 0, shown.output
    state = json.loads(shown.stdout)
    assert state["counts"]["queued"] == 3 and state["status"] == "scheduled"
    listed = runner.invoke(app, ["runs", "list", "--json"])
    assert [(r["run"], r["campaign"]) for r in json.loads(listed.stdout)] == [
        (data["run"], "join-this-year-2026")
    ]
    assert "naplánov" in runner.invoke(app, ["runs", "list"]).output
    paused = runner.invoke(app, ["runs", "pause", str(data["run"])])
    assert paused.exit_code == 0 and "pozastavená" in paused.output
    missing = runner.invoke(app, ["runs", "show", "999"])
    assert missing.exit_code == 1 and "neexistuje" in missing.output


def test_it_refuses_an_unknown_step(engine: Engine) -> None:
    result = CliRunner().invoke(app, ["campaigns", "launch", "join-this-year-2026", "--step", "x"])
    assert result.exit_code == 1
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Contact)).scalar() == 0
