"""`campaigns check`: shipped blueprints pass; broken ones fail with the file and the line."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mailer import settings as mailer_settings
from mailer.cli import app
from mailer.compose.campaigns import PRAGUE, load_blueprint, load_blueprints
from mailer.compose.check import Problem, check_blueprint, toml_key_lines
from mailer.compose.window import SendingWindow

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "campaigns"


@pytest.fixture(autouse=True)
def compose_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("SDRUK_DATA_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SECRET_KEY", "test-secret-key")
    monkeypatch.delenv("SDRUK_CAMPAIGNS_DIR", raising=False)
    mailer_settings.get_settings.cache_clear()
    yield
    mailer_settings.get_settings.cache_clear()


@pytest.fixture
def campaigns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private campaigns directory holding a copy of the join campaign."""
    target = tmp_path / "campaigns"
    shutil.copytree(SHIPPED / "join-this-year-2026", target / "join-this-year-2026")
    shutil.copytree(SHIPPED / "knihovny-soucasnosti-2027", target / "knihovny-soucasnosti-2027")
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(target))
    mailer_settings.get_settings.cache_clear()
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def line_of(path: Path, needle: str) -> int:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in line:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    return problems[0]


def test_it_passes_every_shipped_blueprint() -> None:
    slugs = [bp.slug for bp in load_blueprints()]
    assert slugs == [
        "join-this-year-2026",
        "knihovny-soucasnosti-2027",
        "leadership-workshops-2027",
    ]
    for slug in slugs:
        assert check_blueprint(slug) == [], slug


def test_it_exits_zero_for_shipped_and_one_for_broken(campaigns: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["campaigns", "check"])
    assert result.exit_code == 0, result.output
    assert "join-this-year-2026: v pořádku" in result.output

    body = campaigns / "join-this-year-2026" / "body.mjml"
    edit(body, "<mj-button mj-class", "<mj-buton mj-class")
    edit(body, "</mj-button>", "</mj-buton>")
    result = runner.invoke(app, ["campaigns", "check", "join-this-year-2026"])
    assert result.exit_code == 1
    line = line_of(body, "<mj-buton")
    assert f"{body}:{line}: neznámá značka <mj-buton>" in result.output
    result = runner.invoke(app, ["campaigns", "check", "knihovny-soucasnosti-2027"])
    assert result.exit_code == 0, result.output


def test_it_reports_toml_syntax_errors_with_the_line(campaigns: Path) -> None:
    toml = campaigns / "join-this-year-2026" / "campaign.toml"
    edit(toml, 'kind = "recruitment"', 'kind = "recruitment')
    problem = only(check_blueprint("join-this-year-2026"))
    assert problem.file == str(toml)
    assert problem.line == line_of(toml, 'kind = "recruitment')
    assert "TOML" in problem.message


def test_it_reports_schema_errors_at_the_key(campaigns: Path) -> None:
    toml = campaigns / "join-this-year-2026" / "campaign.toml"
    edit(toml, 'kind = "recruitment"', 'kind = "nabor"')
    edit(toml, 'after_launch = "10d"', 'after_launch = "deset dní"')
    edit(toml, 'tracking = "anonymous"', 'tracking = "anonymous"\nsubjekt = "překlep"')
    problems = check_blueprint("join-this-year-2026")
    lines = {(p.line, p.message.split(":")[0]) for p in problems}
    assert (line_of(toml, 'kind = "nabor"'), "kind") in lines
    assert (line_of(toml, 'after_launch = "deset dní"'), "steps.1.after_launch") in lines
    assert (line_of(toml, "subjekt ="), "subjekt") in lines
    assert all(p.file == str(toml) for p in problems)


def test_it_reports_a_missing_required_key_and_bad_reminder_times(campaigns: Path) -> None:
    toml = campaigns / "knihovny-soucasnosti-2027" / "campaign.toml"
    edit(toml, 'title = "Knihovny současnosti 2027"', "")
    edit(toml, 'before_event = "14d"', 'before_event = "14d"\nafter_launch = "1d"')
    problems = check_blueprint("knihovny-soucasnosti-2027")
    assert any(p.line == line_of(toml, "[event]") and "title" in p.message for p in problems), (
        problems
    )


def test_it_reads_the_sending_window(campaigns: Path) -> None:
    join = load_blueprint("join-this-year-2026")
    assert join.sending_window.describe() == "po, út, st, čt, pá 08:00–19:00 mimo státní svátky"
    # Without the table: working days 8:00–17:00, no public holidays.
    toml = campaigns / "join-this-year-2026" / "campaign.toml"
    text = toml.read_text(encoding="utf-8")
    start = text.index("[sending_window]")
    toml.write_text(text[:start] + text[text.index("[segment]") :], encoding="utf-8")
    assert load_blueprint("join-this-year-2026").sending_window == SendingWindow()
    # `sending_window = false` (a top-level key, before any table): any time.
    edit(toml, 'tracking = "anonymous"', 'tracking = "anonymous"\nsending_window = false')
    assert not load_blueprint("join-this-year-2026").sending_window.enabled
    assert check_blueprint("join-this-year-2026") == []


def test_it_reports_a_bad_sending_window_at_its_key(campaigns: Path) -> None:
    toml = campaigns / "join-this-year-2026" / "campaign.toml"
    original = toml.read_text(encoding="utf-8")
    for old, new, needle, words in [
        ('"čt", "pá"]', '"čt", "pátek"]', "pátek", "neznámý den „pátek“"),
        ('end = "19:00"', 'end = "7 večer"', "7 večer", "sending_window.end"),
        ('start = "08:00"', 'start = "20:00"', 'start = "20:00"', "začátek musí být před"),
        ("holidays = true", "svatky = true", "svatky", "neznámý klíč „svatky“"),
        ("holidays = true", 'holidays = "ano"', 'holidays = "ano"', "holidays"),
    ]:
        toml.write_text(original, encoding="utf-8")
        edit(toml, old, new)
        problem = only(check_blueprint("join-this-year-2026"))
        assert (problem.file, problem.line) == (str(toml), line_of(toml, needle)), problem
        assert words in problem.message, problem


def test_it_checks_the_segment_and_reminder_audiences(campaigns: Path) -> None:
    toml = campaigns / "join-this-year-2026" / "campaign.toml"
    edit(toml, "member = false", 'member = false\nkraj = "Kraj Vysočina"')
    edit(
        toml,
        'at = 2026-12-15T09:30:00\naudience = { received = "launch", joined = false }',
        'at = 2026-12-15T09:30:00\naudience = { received = "zadny-takovy", joined = false }',
    )
    problems = check_blueprint("join-this-year-2026")
    segment = [p for p in problems if p.line == line_of(toml, "[segment]")]
    assert segment and "kraj" in segment[0].message
    audience = [p for p in problems if "zadny-takovy" in p.message]
    assert audience and audience[0].line == line_of(toml, "zadny-takovy")


def test_it_refuses_a_segment_nested_a_hundred_times(campaigns: Path) -> None:
    # It once passed the check and then broke the console's campaign list and the launch.
    toml = campaigns / "join-this-year-2026" / "campaign.toml"
    nested = "member = false"
    for _ in range(100):
        nested = f"not = {{ {nested} }}"
    edit(toml, "[segment]\nmember = false", f"[segment]\n{nested}")
    problems = check_blueprint("join-this-year-2026")
    segment = [p for p in problems if p.line == line_of(toml, "[segment]")]
    assert segment and "vnořen" in segment[0].message, problems
    result = CliRunner().invoke(app, ["campaigns", "check"])
    assert result.exit_code == 1 and "vnořen" in result.output, result.output
    assert "Traceback" not in result.output


def test_it_reports_malformed_mjml_with_the_line(campaigns: Path) -> None:
    body = campaigns / "join-this-year-2026" / "body.mjml"
    edit(body, "<mj-column>", "<mj-column><mj-section>")
    problems = check_blueprint("join-this-year-2026")
    assert problems and problems[0].file == str(body)
    assert any("není správně utvořené" in p.message for p in problems)


def test_it_reports_unknown_attributes_and_misplaced_components(campaigns: Path) -> None:
    body = campaigns / "join-this-year-2026" / "body.mjml"
    edit(body, '<mj-button mj-class="tlacitko"', '<mj-button mj-class="tlacitko" hreff="x"')
    edit(
        body,
        '<mj-include path="footer.mjml" />',
        '<mj-text>mimo sloupec</mj-text>\n    <mj-include path="footer.mjml" />',
    )
    problems = check_blueprint("join-this-year-2026")
    messages = {(p.line, p.message) for p in problems}
    assert (line_of(body, 'hreff="x"'), "<mj-button> nezná atribut 'hreff'") in messages
    assert any(
        line == line_of(body, "mimo sloupec") and "<mj-text> nemůže být uvnitř <mj-body>" in msg
        for line, msg in messages
    )


def test_it_reports_a_missing_include(campaigns: Path) -> None:
    body = campaigns / "join-this-year-2026" / "body.mjml"
    edit(body, 'path="footer.mjml"', 'path="paticka.mjml"')
    problem = only(check_blueprint("join-this-year-2026"))
    assert (problem.file, problem.line) == (str(body), line_of(body, "paticka.mjml"))
    assert "neexistuje" in problem.message


def test_it_reports_the_jinja_and_mjml_gotchas(campaigns: Path) -> None:
    body = campaigns / "join-this-year-2026" / "body.mjml"
    original = body.read_text(encoding="utf-8")

    edit(body, '<mj-text mj-class="nadpis">', '<mj-text {{ "mj-class" }}="nadpis">')
    problem = only(check_blueprint("join-this-year-2026"))
    assert problem.line == line_of(body, '{{ "mj-class" }}')
    assert "pozici atributu" in problem.message

    body.write_text(original, encoding="utf-8")
    edit(body, "<p>{{ salutation }}</p>", "<p>{% if 1 < 2 %}{{ salutation }}{% endif %}</p>")
    problem = only(check_blueprint("join-this-year-2026"))
    assert problem.line == line_of(body, "{% if 1 < 2 %}")
    assert "znak „<“" in problem.message

    body.write_text("{# úvod #}\n" + original, encoding="utf-8")
    problem = only(check_blueprint("join-this-year-2026"))
    assert problem.line == 1 and "před <mjml>" in problem.message

    body.write_text(original, encoding="utf-8")
    edit(
        body,
        '<mj-section background-color="#ffffff" padding="12px 0px 4px 0px">\n      <mj-column>',
        '<mj-section background-color="#ffffff" padding="12px 0px 4px 0px">\n'
        "      {% if library.member %}\n      <mj-column>",
    )
    edit(
        body,
        "</mj-column>\n    </mj-section>",
        "</mj-column>\n      {% endif %}\n    </mj-section>",
    )
    problem = only(check_blueprint("join-this-year-2026"))
    assert problem.line == line_of(body, "{% if library.member %}")
    assert "šířky sloupců" in problem.message


def test_it_reports_jinja_syntax_and_undefined_values_with_the_line(campaigns: Path) -> None:
    body = campaigns / "join-this-year-2026" / "body.mjml"
    original = body.read_text(encoding="utf-8")

    edit(body, "<p>{{ salutation }}</p>", "<p>{{ salutation }</p>")
    problem = only(check_blueprint("join-this-year-2026"))
    assert (problem.file, problem.line) == (str(body), line_of(body, "{{ salutation }</p>"))
    assert problem.message.startswith("Jinja")

    body.write_text(original, encoding="utf-8")
    edit(body, "<p>{{ salutation }}</p>", "<p>{{ osloveni }}</p>")
    problem = only(check_blueprint("join-this-year-2026"))
    assert problem.line == line_of(body, "{{ osloveni }}")
    assert "neznámá proměnná 'osloveni'" in problem.message

    body.write_text(original, encoding="utf-8")
    edit(
        body,
        "pozvat vaši knihovnu{% if library.name %} ({{ library.name }})",
        "pozvat vaši knihovnu{% if library.name %} ({{ library.nazev }})",
    )
    problem = only(check_blueprint("join-this-year-2026"))
    assert problem.line == line_of(body, "library.nazev")
    assert "nazev" in problem.message

    # `event` is only defined for event campaigns.
    body.write_text(original, encoding="utf-8")
    edit(body, "<p>{{ salutation }}</p>", "<p>{{ salutation }} {{ event.title }}</p>")
    problem = only(check_blueprint("join-this-year-2026"))
    assert problem.line == line_of(body, "{{ event.title }}")


def test_it_reports_a_subject_with_a_jinja_error(campaigns: Path) -> None:
    toml = campaigns / "join-this-year-2026" / "campaign.toml"
    edit(
        toml,
        'subject = "Připomínáme: členství ve Sdružení knihoven ČR"',
        'subject = "Připomínáme: {{ knihovna.name }}"',
    )
    problem = only(check_blueprint("join-this-year-2026"))
    assert problem.line == line_of(toml, "{{ knihovna.name }}")
    assert problem.message.startswith("subject")


def test_it_finds_the_lines_of_toml_keys() -> None:
    text = (SHIPPED / "leadership-workshops-2027" / "campaign.toml").read_text(encoding="utf-8")
    lines = toml_key_lines(text)
    rows = text.splitlines()
    assert rows[lines[("event", "sessions", 2, "start")] - 1].startswith("start = 2027-04-08")
    assert rows[lines[("reminder", 1, "before_event")] - 1] == 'before_event = "7d"'
    assert rows[lines[("segment",)] - 1] == "[segment]"


def test_it_computes_when_each_step_is_due() -> None:
    join = load_blueprint("join-this-year-2026")
    assert join.due_at("launch") == datetime(2026, 11, 26, 9, 30, tzinfo=PRAGUE)
    launched = datetime(2026, 11, 27, 10, 0, tzinfo=PRAGUE)  # Friday
    # +10 days is a Monday, inside working hours.
    assert join.due_at("pripominka", launched) == datetime(2026, 12, 7, 10, 0, tzinfo=PRAGUE)
    # From send_at +10 days is a Sunday: due then as written; the scheduler holds it until the
    # sending window opens on Monday morning.
    assert join.due_at("pripominka") == datetime(2026, 12, 6, 9, 30, tzinfo=PRAGUE)
    assert join.sending_window.next_open(join.due_at("pripominka")) == datetime(
        2026, 12, 7, 8, 0, tzinfo=PRAGUE
    )
    assert join.due_at("posledni-vyzva") == datetime(2026, 12, 15, 9, 30, tzinfo=PRAGUE)
    conference = load_blueprint("knihovny-soucasnosti-2027")
    start = conference.event.start if conference.event else None
    assert start is not None
    assert conference.due_at("14-dni-pred") == start - timedelta(days=14)
    assert conference.due_at("2-dny-pred") == start - timedelta(days=2)
    assert conference.audience_for("2-dny-pred") == {
        "all": [conference.segment, {"received": "launch", "registered": False}]
    }
    assert conference.audience_for("launch") == conference.segment
