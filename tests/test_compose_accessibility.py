"""Accessibility checks before launch: lang, alt text, link text, WCAG contrast, each reported
at the line that causes it; the shipped campaigns pass them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailer.compose.accessibility import contrast_ratio
from mailer.compose.check import check_all, check_blueprint

ROOT = Path(__file__).resolve().parent.parent
JOIN = "join-this-year-2026"


@pytest.fixture
def join(tmp_path: Path) -> Path:
    shutil.copytree(ROOT / "campaigns" / JOIN, tmp_path / JOIN)
    return tmp_path / JOIN / "body.mjml"


def _line_of(path: Path, needle: str) -> int:
    lines = path.read_text(encoding="utf-8").splitlines()
    return next(n for n, line in enumerate(lines, start=1) if needle in line)


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def test_it_computes_wcag_contrast() -> None:
    assert contrast_ratio("#000000", "#ffffff") == pytest.approx(21.0)
    assert contrast_ratio("#fff", "#fff") == pytest.approx(1.0)
    # The WCAG reference pair: #767676 on white is the lightest grey that passes 4.5:1.
    assert contrast_ratio("#767676", "#ffffff") >= 4.5 > contrast_ratio("#777777", "#ffffff")


def test_the_shipped_campaigns_pass() -> None:
    assert all(not problems for problems in check_all().values())


def test_it_reports_low_text_contrast_at_its_line(join: Path) -> None:
    _replace(join, '<mj-text mj-class="nadpis" font-size="19px">', '<mj-text color="#aaaaaa">')
    line = _line_of(join, 'color="#aaaaaa"')
    problems = check_blueprint(JOIN, join.parent.parent)
    assert [(p.file, p.line) for p in problems if "kontrast" in p.message] == [(str(join), line)]


def test_it_reports_a_pale_button_and_a_missing_lang(join: Path) -> None:
    _replace(join, 'mj-class="tlacitko" href=', 'background-color="#f4c7cc" href=')
    _replace(join, '<mjml lang="cs">', "<mjml>")
    problems = check_blueprint(JOIN, join.parent.parent)
    messages = {(p.line, p.message.split(" má ")[0]) for p in problems}
    assert (_line_of(join, "#f4c7cc"), "text tlačítka") in messages
    assert any(p.line == 1 and 'lang="cs"' in p.message for p in problems)


def test_it_reports_an_image_without_alt_and_a_vague_link(join: Path) -> None:
    _replace(
        join,
        '<mj-text mj-class="nadpis" font-size="19px">',
        '<mj-image src="https://www.sdruk.cz/logo.png" width="200px" />\n'
        '        <mj-text mj-class="nadpis" font-size="19px">',
    )
    _replace(
        join,
        '<mj-text mj-class="nadpis" font-size="19px">',
        '<mj-text><p>Přihlášku najdete <a href="https://sdruk.cz/prihlaska">klikněte sem</a>.</p>'
        '</mj-text>\n        <mj-text mj-class="nadpis" font-size="19px">',
    )
    problems = check_blueprint(JOIN, join.parent.parent)
    assert any(p.line == _line_of(join, "logo.png") and "alt" in p.message for p in problems), (
        problems
    )
    # The trial render runs only once the rest passes: fix the image, then the link shows.
    _replace(join, 'width="200px" />', 'width="200px" alt="Logo SDRUK" />')
    problems = check_blueprint(JOIN, join.parent.parent)
    assert [(p.line, "klikněte sem" in p.message) for p in problems] == [
        (_line_of(join, "klikněte sem"), True)
    ]
