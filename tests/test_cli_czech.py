"""The `sdruk` command line speaks Czech also where Typer and Click write by themselves: every
command's --help, and the errors for a missing argument, an unknown option or command, a
value of the wrong type and an extra argument."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from mailer.cli import app

runner = CliRunner()
ENGLISH = re.compile(
    r"\b(Usage|Options|Arguments|Commands|Show|this|message|and|exit|Error|Missing|Invalid|"
    r"value|unexpected|extra|argument\(s\)|Try|for help|Install|completion|No such|required|"
    r"default|Aborted|OPTIONS|COMMAND|ARGS|Input should)\b"
)


def _commands(command: Any, path: list[str]) -> Iterator[list[str]]:
    yield path
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, [*path, name])


def _plain(text: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", text).split())


def test_every_help_page_is_czech() -> None:
    paths = list(_commands(typer.main.get_command(app), []))
    assert len(paths) > 30
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, (path, result.output)
        text = _plain(result.output)
        assert "Použití:" in text and "Zobrazí tuto nápovědu a skončí." in text, path
        # Option names and metavars are code; the words around them are not.
        words = re.sub(r"--?[\w-]+|<\w+>|\b[A-Z_]{2,}\b(?!\s*\])", " ", text)
        assert not ENGLISH.search(words), (path, ENGLISH.search(words), text)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["contacts", "import"], "Chybí argument"),
        (["contacts", "import", "x.csv", "--nic"], "Neznámá volba --nic."),
        (["contacts", "nic"], "Neznámý příkaz „nic“."),
        (["runs", "show", "abc"], "není celé číslo"),
        (["runs", "show", "1", "2"], "Nadbytečné argumenty: 2."),
        (["contacts", "import", "x.csv", "--legal-basis"], "potřebuje hodnotu"),
    ],
)
def test_usage_errors_are_czech(args: list[str], expected: str) -> None:
    result = runner.invoke(app, args, env={"COLUMNS": "120"})
    assert result.exit_code == 2, result.output
    text = _plain(result.output)
    assert expected in text, text
    assert "Chyba" in text
    assert not ENGLISH.search(re.sub(r"--?[\w-]+|\b[A-Z_]{2,}\b", " ", text)), text
