"""Campaigns in the database: revisions, optimistic saves, folder sync, export/import round
trip, and what a launched run keeps when the campaign is edited afterwards."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from delivery_support import add_contacts
from sqlalchemy import Engine
from typer.testing import CliRunner

from mailer import settings as mailer_settings
from mailer.cli import app
from mailer.compose import store
from mailer.compose.campaigns import blueprint_slugs, load_blueprint
from mailer.compose.composer import Composer, Recipient
from mailer.delivery.runs import launch
from mailer.models import AuditEntry, Run
from mailer.scheduling.sync import sync_blueprints

ROOT = Path(__file__).resolve().parent.parent
JOIN = "join-this-year-2026"
runner = CliRunner()


@pytest.fixture
def campaigns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Engine) -> Path:
    """A private copy of the shipped campaigns (after `engine`, which resets the settings)."""
    target = tmp_path / "campaigns"
    shutil.copytree(ROOT / "campaigns", target)
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(target))
    mailer_settings.get_settings.cache_clear()
    return target


def _tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_it_syncs_the_shipped_folders_into_revisions(engine: Engine, campaigns: Path) -> None:
    assert store.sync_folders(engine) == sorted(p.name for p in campaigns.iterdir())
    stored = store.latest(engine, JOIN)
    assert stored is not None and stored.number == 1 and stored.origin == "folder"
    assert stored.files == {
        p.name: p.read_text(encoding="utf-8") for p in (campaigns / JOIN).iterdir()
    }
    # Unchanged folders: nothing new.
    assert store.sync_folders(engine) == []
    assert load_blueprint(JOIN).revision == 1


def test_it_keeps_console_edits_until_the_folder_itself_changes(
    engine: Engine, campaigns: Path
) -> None:
    store.sync_folders(engine)
    first = store.latest(engine, JOIN)
    assert first is not None
    files = dict(first.files)
    files["campaign.toml"] = files["campaign.toml"].replace(
        'name = "', 'name = "Upraveno v konzoli: ', 1
    )
    store.save(engine, JOIN, files, author="jana@sdruk.cz", summary="název", base_revision=1)
    assert store.sync_folders(engine) == []
    assert load_blueprint(JOIN).name.startswith("Upraveno v konzoli: ")

    toml = campaigns / JOIN / "campaign.toml"
    toml.write_text(toml.read_text(encoding="utf-8") + "\n# změna ve složce\n", encoding="utf-8")
    assert store.sync_folders(engine) == [JOIN]
    latest = store.latest(engine, JOIN)
    assert latest is not None and latest.number == 3
    assert latest.author == store.FOLDER_AUTHOR
    assert not load_blueprint(JOIN).name.startswith("Upraveno")


def test_it_round_trips_a_campaign_through_export_and_import(
    engine: Engine, campaigns: Path, tmp_path: Path
) -> None:
    store.sync_folders(engine)
    # A campaign made in the console: a new slug, its own files (CRLF, diacritics, blocks).
    source = store.latest(engine, JOIN)
    assert source is not None
    files = dict(source.files)
    files["campaign.toml"] = files["campaign.toml"].replace("\n", "\r\n")
    files["blocks.json"] = '{"blocks": [{"type": "heading", "text": "Žluťoučký kůň"}]}\n'
    made = store.save(engine, "pozvanka-konzole", files, author="jana@sdruk.cz", base_revision=None)

    first, second = tmp_path / "a" / "pozvanka-konzole", tmp_path / "b" / "pozvanka-konzole"
    exported = runner.invoke(app, ["campaigns", "export", "pozvanka-konzole", str(first)])
    assert exported.exit_code == 0, exported.output
    (first / "campaign.toml").write_bytes((first / "campaign.toml").read_bytes())
    imported = runner.invoke(app, ["campaigns", "import", str(first)])
    assert imported.exit_code == 0, imported.output
    again = runner.invoke(app, ["campaigns", "export", "pozvanka-konzole", str(second)])
    assert again.exit_code == 0, again.output

    assert _tree(first) == _tree(second)
    assert _tree(first) == {k: v.encode("utf-8") for k, v in files.items()}
    after = store.latest(engine, "pozvanka-konzole")
    assert after is not None
    # Nothing changed, so the import made no new revision and the content is equal.
    assert after.number == made.number and after.files == made.files


def test_it_imports_a_folder_under_another_slug_and_refuses_a_broken_one(
    engine: Engine, campaigns: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "kopie"
    shutil.copytree(campaigns / JOIN, copy)
    done = runner.invoke(app, ["campaigns", "import", str(copy), "--slug", "nabor-2027"])
    assert done.exit_code == 0, done.output
    assert "nabor-2027" in blueprint_slugs()
    assert load_blueprint("nabor-2027").revision == 1

    body = copy / "body.mjml"
    body.write_text(body.read_text(encoding="utf-8").replace("</mj-text>", "", 1))
    broken = runner.invoke(app, ["campaigns", "import", str(copy), "--slug", "nabor-2027"])
    assert broken.exit_code == 1
    assert "body.mjml:" in broken.output and "nebyla načtena" in broken.output
    latest = store.latest(engine, "nabor-2027")
    assert latest is not None and latest.number == 1


def test_it_refuses_the_second_of_two_concurrent_saves(engine: Engine, campaigns: Path) -> None:
    store.sync_folders(engine)
    opened = store.latest(engine, JOIN)
    assert opened is not None
    mine = dict(opened.files, **{"body.mjml": opened.files["body.mjml"] + "\n"})
    theirs = dict(opened.files, **{"body.mjml": opened.files["body.mjml"] + "\n\n"})
    store.save(engine, JOIN, mine, author="jana@sdruk.cz", base_revision=opened.number)
    with pytest.raises(store.ConcurrentEdit) as refused:
        store.save(engine, JOIN, theirs, author="petr@sdruk.cz", base_revision=opened.number)
    message = str(refused.value)
    assert "jana@sdruk.cz" in message and "nebyly uloženy" in message
    latest = store.latest(engine, JOIN)
    assert latest is not None and latest.files == mine and latest.number == 2
    with engine.connect() as conn:
        saves = conn.execute(
            sa.select(AuditEntry.actor).where(AuditEntry.action == "campaign.save")  # type: ignore[arg-type]
        ).scalars()
        assert "jana@sdruk.cz" in list(saves)


def test_it_refuses_a_new_campaign_with_a_taken_slug(engine: Engine, campaigns: Path) -> None:
    store.sync_folders(engine)
    opened = store.latest(engine, JOIN)
    assert opened is not None
    with pytest.raises(store.StoreError, match="už existuje"):
        store.save(engine, JOIN, opened.files, author="x@sdruk.cz", base_revision=None)


def test_an_edit_after_launch_does_not_change_what_the_launched_run_sends(
    engine: Engine, campaigns: Path
) -> None:
    add_contacts(engine, 2)
    store.sync_folders(engine)
    result = launch(engine, load_blueprint(JOIN), now=None)
    with engine.connect() as conn:
        content = conn.execute(sa.select(Run.content).where(Run.id == result.run_id)).scalar_one()  # type: ignore[arg-type]
    assert content["revision"] == 1
    before = Composer(content, result.run_id).html(Recipient(outbox_id=1, email="a@b.cz"))

    opened = store.latest(engine, JOIN)
    assert opened is not None
    files = dict(opened.files)
    files["body.mjml"] = files["body.mjml"].replace(
        "<mj-text", "<mj-text>Zcela nový první odstavec.</mj-text><mj-text", 1
    )
    store.save(engine, JOIN, files, author="jana@sdruk.cz", base_revision=1)
    assert load_blueprint(JOIN).revision == 2

    with engine.connect() as conn:
        kept = conn.execute(sa.select(Run.content).where(Run.id == result.run_id)).scalar_one()  # type: ignore[arg-type]
    after = Composer(kept, result.run_id).html(Recipient(outbox_id=1, email="a@b.cz"))
    assert after == before and "Zcela nový" not in after
    # The reminder, not launched yet, is what the edit reaches.
    reminder = load_blueprint(JOIN).steps[1].name
    run2 = launch(engine, load_blueprint(JOIN), reminder)
    with engine.connect() as conn:
        later = conn.execute(sa.select(Run.content).where(Run.id == run2.run_id)).scalar_one()  # type: ignore[arg-type]
    assert later["revision"] == 2


def test_the_scheduler_sees_a_campaign_that_exists_only_in_the_database(
    engine: Engine, campaigns: Path
) -> None:
    store.sync_folders(engine)
    opened = store.latest(engine, JOIN)
    assert opened is not None
    store.save(engine, "jen-v-databazi", opened.files, author="jana@sdruk.cz", base_revision=None)
    report = sync_blueprints(engine)
    assert not report.invalid
    assert {s.campaign for s in report.steps} >= {"jen-v-databazi", JOIN}
