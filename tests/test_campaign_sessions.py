"""Reminders before each session: a `before_session` reminder is expanded into one step per
session, due before that session and addressed to its confirmed seats; `before_event` counts
from the event's first session; the check, the step labels and the editor know the series."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mailer import settings as mailer_settings
from mailer.compose.campaigns import load_blueprint
from mailer.compose.check import check_blueprint
from mailer.compose.drafts import draft_from_files
from mailer.compose.step_labels import describe_step
from mailer.web.console.editor_form import _reminders, draft_to_form

ROOT = Path(__file__).resolve().parent.parent
WORKSHOPS = "leadership-workshops-2027"
CONFERENCE = "knihovny-soucasnosti-2027"


@pytest.fixture
def campaigns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    target = tmp_path / "campaigns"
    for slug in (WORKSHOPS, CONFERENCE, "join-this-year-2026"):
        shutil.copytree(ROOT / "campaigns" / slug, target / slug)
    monkeypatch.setenv("SDRUK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SECRET_KEY", "test-secret-key")
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(target))
    mailer_settings.get_settings.cache_clear()
    yield target
    mailer_settings.get_settings.cache_clear()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_it_expands_a_series_into_one_step_per_session(campaigns: Path) -> None:
    blueprint = load_blueprint(WORKSHOPS, campaigns)
    assert blueprint.event is not None
    sessions = blueprint.event.sessions
    series = [s for s in blueprint.steps if s.series == "prakticke-informace"]
    assert [s.name for s in series] == [f"prakticke-informace-{n}" for n in range(1, 7)]
    written = blueprint.reminder_index(series[0])
    for number, (step, session) in enumerate(zip(series, sessions, strict=True), start=1):
        assert step.session == number
        assert blueprint.due_at(step) == session.start - timedelta(days=2)
        assert blueprint.session_of(step) == session
        # Only that session's confirmed seats, within the campaign's segment.
        assert blueprint.audience_for(step) == {
            "all": [blueprint.segment, {"attending": True}, {"attending_session": number}]
        }
        assert blueprint.reminder_index(step) == written
    # Steps of the series are months apart, as the workshops are.
    assert blueprint.due_at(series[-1]) - blueprint.due_at(series[0]) > timedelta(days=200)
    label = describe_step(series[2], blueprint)
    assert (
        label
        == "připomínka 2 dny před 3. termínem (8. dubna 2027, Olomouc, Vědecká knihovna v Olomouci)"
    )
    assert "prakticke" not in label


def test_before_event_counts_from_the_first_session(campaigns: Path) -> None:
    workshops = load_blueprint(WORKSHOPS, campaigns)
    assert workshops.event is not None
    first = min(s.start for s in workshops.event.sessions)
    assert workshops.event.start == first
    assert workshops.due_at("tyden-pred") == first - timedelta(days=7)
    conference = load_blueprint(CONFERENCE, campaigns)
    assert conference.event is not None
    assert conference.due_at("prakticke-informace") == conference.event.start - timedelta(days=2)
    assert conference.audience_for("prakticke-informace") == {
        "all": [conference.segment, {"attending": True}]
    }


def test_it_reports_a_wrong_session_at_its_reminder(campaigns: Path) -> None:
    toml = campaigns / WORKSHOPS / "campaign.toml"
    assert check_blueprint(WORKSHOPS) == []
    _edit(toml, "audience = { attending = true }", "audience = { attending_session = 9 }")
    problems = check_blueprint(WORKSHOPS)
    line = next(
        n for n, text in enumerate(toml.read_text("utf-8").splitlines(), 1) if "= 9 }" in text
    )
    assert [(p.line, "attending_session = 9" in p.message) for p in problems] == [(line, True)]

    _edit(toml, "audience = { attending_session = 9 }", "session = 7")
    assert any("termín č. 7" in p.message for p in check_blueprint(WORKSHOPS))

    join = campaigns / "join-this-year-2026" / "campaign.toml"
    _edit(join, 'after_launch = "10d"', 'before_session = "2d"')
    assert any(
        "before_session jen u akcí" in p.message for p in check_blueprint("join-this-year-2026")
    )


def test_one_written_session_is_not_expanded(campaigns: Path) -> None:
    toml = campaigns / WORKSHOPS / "campaign.toml"
    _edit(toml, 'before_session = "2d"', 'before_session = "3d"\nsession = 4')
    blueprint = load_blueprint(WORKSHOPS, campaigns)
    [step] = [s for s in blueprint.steps if s.name.startswith("prakticke-informace")]
    assert step.name == "prakticke-informace" and step.session == 4
    assert blueprint.event is not None
    assert blueprint.due_at(step) == blueprint.event.sessions[3].start - timedelta(days=3)


def test_the_editor_keeps_a_series_and_its_own_body(campaigns: Path) -> None:
    folder = campaigns / WORKSHOPS
    files = {p.name: p.read_text("utf-8") for p in folder.iterdir()}
    draft = draft_from_files(files)
    shown = draft_to_form(draft)["reminders"]
    series = next(r for r in shown if r["name"] == "prakticke-informace")
    assert (series["when"], series["days"], series["audience"]) == (
        "before_session",
        "2",
        "attending",
    )
    form: dict[str, str] = {}
    for index, r in enumerate(shown):
        for key in ("name", "when", "days", "at", "audience", "subject", "preheader"):
            form[f"r-{index}-{key}"] = str(r[key])
    problems: list[str] = []
    reminders, _openings = _reminders(form, True, problems, draft.settings["reminder"])
    assert problems == []
    assert reminders == draft.settings["reminder"]


def test_a_reminder_before_a_session_goes_before_it_even_when_due_out_of_hours(
    campaigns: Path,
) -> None:
    """ "2 days before" a Monday session falls on Saturday: waiting for the window would send
    it on the morning of the workshop itself, so it goes in the last window before instead."""
    toml = campaigns / WORKSHOPS / "campaign.toml"
    _edit(
        toml,
        "start = 2027-02-11T09:30:00\nend = 2027-02-11T15:30:00",
        "start = 2027-02-15T09:30:00\nend = 2027-02-15T15:30:00",
    )
    blueprint = load_blueprint(WORKSHOPS, campaigns)
    first = next(s for s in blueprint.steps if s.session == 1)
    local = blueprint.due_at(first).astimezone(blueprint.sending_window.tz)
    assert (local.date().isoformat(), local.hour, local.minute) == ("2027-02-12", 8, 0)
    assert blueprint.sending_window.is_open(blueprint.due_at(first))
    # A step counted forward from the launch still waits for the window instead.
    after = next(s for s in blueprint.steps if s.after_launch is not None)
    assert blueprint.due_at(after) == blueprint.send_at + after.after_launch
