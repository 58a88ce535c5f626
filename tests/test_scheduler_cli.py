"""`sdruk campaigns sync`, `sdruk schedule --json` and `sdruk registrations import`."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine
from test_scheduler_fixtures import (  # noqa: F401 (fixtures)
    SLUG,
    add_people,
    campaigns_dir_fixture,
)
from typer.testing import CliRunner

from mailer.cli import app

runner = CliRunner()


def test_it_syncs_and_lists_the_schedule_as_json(engine: Engine, campaigns_dir: Path) -> None:
    add_people(engine, ["alena", "bara"])
    synced = runner.invoke(app, ["campaigns", "sync", "--json"])
    assert synced.exit_code == 0, synced.output
    assert {s["step"] for s in json.loads(synced.output)["steps"]} == {"launch", "pripominka"}

    listed = runner.invoke(app, ["schedule", "--json"])
    assert listed.exit_code == 0, listed.output
    data = json.loads(listed.output)
    by_step = {s["step"]: s for s in data["upcoming"]}
    assert by_step["launch"]["audience"] == 2
    # Nobody has received the launch yet, so the reminder would reach nobody today.
    assert by_step["pripominka"]["audience"] == 0
    assert data["missed"] == [] and data["late"] == []

    human = runner.invoke(app, ["schedule"])
    assert human.exit_code == 0
    assert "Nadcházející rozesílky" in human.output


def test_it_fails_sync_for_a_broken_blueprint(engine: Engine, campaigns_dir: Path) -> None:
    broken = campaigns_dir / "rozbita"
    broken.mkdir()
    (broken / "campaign.toml").write_text("name = \n", encoding="utf-8")
    result = runner.invoke(app, ["campaigns", "sync"])
    assert result.exit_code == 1
    assert "rozbita" in result.output
    assert "NENÍ naplánována" in result.output


def test_it_imports_registrations_once(engine: Engine, campaigns_dir: Path, tmp_path: Path) -> None:
    people = add_people(engine, ["alena", "bara"])
    export = tmp_path / "registrace.csv"
    export.write_bytes(
        (
            "e-mail;kampaň\n"
            f"alena{people['alena'] - 1}@knihovna-test.cz;{SLUG}\n"
            f"neznama@jinde.cz;{SLUG}\n"
            f"tohle-neni-adresa;{SLUG}\n"
        ).encode("cp1250")
    )
    first = runner.invoke(app, ["registrations", "import", str(export), "--json"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.output)
    assert report["recorded"] == 1
    assert [u["email"] for u in report["unknown"]] == ["neznama@jinde.cz"]
    assert [r["line"] for r in report["rejected"]] == [4]
    again = json.loads(
        runner.invoke(app, ["registrations", "import", str(export), "--json"]).output
    )
    assert again["recorded"] == 0 and again["already"] == 1
