"""`sdruk campaigns check` explains every problem in Czech: an undefined name says which name
and what exists there, a filter given a missing value says so (it used to print nothing), and
MJML parse errors come in Czech instead of the XML parser's English."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailer import settings as mailer_settings
from mailer.compose.check import Problem, check_blueprint

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "campaigns"
ENGLISH = re.compile(
    r"\b(has|no|attribute|object|is|undefined|mismatched|tag|token|not|well|formed|found|"
    r"element|junk|after|document|dict|NoneType|AssertionError|TypeError)\b"
)


@pytest.fixture
def campaigns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    target = tmp_path / "campaigns"
    for slug in ("join-this-year-2026", "knihovny-soucasnosti-2027"):
        shutil.copytree(SHIPPED / slug, target / slug)
    monkeypatch.setenv("SDRUK_CAMPAIGNS_DIR", str(target))
    monkeypatch.setenv("SDRUK_DATA_DIR", str(tmp_path / "var"))
    mailer_settings.get_settings.cache_clear()
    yield target
    mailer_settings.get_settings.cache_clear()


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, problems
    problem = problems[0]
    assert not ENGLISH.search(problem.message.split(":", 1)[-1]), problem.message
    return problem


def test_it_names_the_missing_attribute_given_to_a_filter_and_what_exists(
    campaigns: Path,
) -> None:
    body = campaigns / "knihovny-soucasnosti-2027" / "body.mjml"
    text = body.read_text(encoding="utf-8")
    assert "event.start | datum" in text or "event.start|datum" in text
    _edit(body, "event.start", "event.zacatek")
    problem = _only(check_blueprint("knihovny-soucasnosti-2027"))
    assert "„event“ nemá položku „zacatek“" in problem.message
    assert "start" in problem.message and "venue" in problem.message
    assert problem.message.startswith("Jinja (hlavní rozeslání)")


def test_it_names_a_missing_attribute_and_what_exists(campaigns: Path) -> None:
    body = campaigns / "join-this-year-2026" / "body.mjml"
    _edit(body, "{{ library.name }}", "{{ library.nazev }}")
    problem = _only(check_blueprint("join-this-year-2026"))
    assert "„library“ nemá položku „nazev“" in problem.message and "name" in problem.message


def test_it_says_an_event_value_is_missing_in_a_campaign_without_an_event(
    campaigns: Path,
) -> None:
    body = campaigns / "join-this-year-2026" / "body.mjml"
    _edit(body, "<p>{{ salutation }}</p>", "<p>{{ salutation }} {{ event.title }}</p>")
    problem = _only(check_blueprint("join-this-year-2026"))
    assert "„event“" in problem.message and "[event]" in problem.message


def test_it_explains_a_filter_given_the_wrong_kind_of_value(campaigns: Path) -> None:
    body = campaigns / "knihovny-soucasnosti-2027" / "body.mjml"
    _edit(body, "event.start", "event.venue")
    problem = _only(check_blueprint("knihovny-soucasnosti-2027"))
    assert "filtr „datum“" in problem.message


def test_it_explains_malformed_mjml_in_czech_with_the_open_tag(campaigns: Path) -> None:
    body = campaigns / "join-this-year-2026" / "body.mjml"
    _edit(body, "</mj-column>", "</mj-section>")
    problems = check_blueprint("join-this-year-2026")
    assert problems
    message = problems[0].message
    assert "uzavírací značka nepatří" in message and "<mj-column>" in message
    assert "mismatched" not in message
