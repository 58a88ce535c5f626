"""Staff's wording cannot reach Python objects nor make a message (or the save, which renders
it) run away: every operation that can build a huge text or loop without end is refused at
the check, before anything renders, with the Czech "not allowed" problem naming the field;
what plain texts need (placeholders, `{% if %}`, a few filters) still works."""

from __future__ import annotations

import pytest

from mailer.compose.notice_texts import Wording, WordingError, check_wording, render_wording
from mailer.signups.notice_kinds import KINDS

KIND = KINDS["prihlaska-prijata"]


def _with_paragraph(paragraph: str) -> Wording:
    return Wording(
        subject="Přihláška {{ knihovna }}",
        heading="Děkujeme",
        paragraphs=(paragraph,),
        button_label="Zobrazit",
        why=KIND.default.why,
    )


@pytest.mark.parametrize(
    "paragraph",
    [
        "{{ 'x' * 100000000 }}",
        "{% set n = 100000000 %}{{ knihovna * n }}",
        "{{ (9 ** 9) ** (9 ** 9) }}",
        "{{ lipsum(n=100000) }}",
        "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
        "{% for c in knihovna %}{{ c }}{% endfor %}",
        "{{ knihovna|center(100000000) }}",
        "{{ knihovna|replace('', knihovna)|replace('', knihovna) }}",
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        "{{ '{0.__class__}'.format(knihovna) }}",
        "{{ knihovna.__class__ }}",
        "{{ knihovna.__init__.__globals__ }}",
        "{{ joiner() }}{{ namespace(a=1) }}",
        "{{ range(10) }}",
        "{% set a = knihovna ~ knihovna %}{% set a = a ~ a %}{% set a = a ~ a %}{{ a }}",
    ],
)
def test_it_refuses_what_could_run_away_or_reach_python(paragraph: str) -> None:
    problems = check_wording(_with_paragraph(paragraph), KIND.samples())
    assert [(p.field, p.position) for p in problems] == [("paragraphs", 1)]
    assert "není v textu povolená" in problems[0].message
    with pytest.raises(WordingError):
        render_wording(_with_paragraph(paragraph), KIND.samples())


@pytest.mark.parametrize(
    ("paragraph", "expected"),
    [
        ("Knihovna {{ knihovna }}.", "Knihovna Městská knihovna Tišnov."),
        (
            "{% if kontakt %}Milá {{ kontakt }}{% else %}Dobrý den{% endif %}",
            "Milá Marie Svobodová",
        ),
        ("{{ (knihovna ~ '!')|upper }}", "MĚSTSKÁ KNIHOVNA TIŠNOV!"),
        ("{{ knihovna[:7] if knihovna is defined }}", "Městská"),
        (
            "{{ kontakt|default('vy') }} {{ 'ano' if knihovna|length > 3 else 'ne' }}",
            "Marie Svobodová ano",
        ),
    ],
)
def test_plain_texts_still_render(paragraph: str, expected: str) -> None:
    wording = _with_paragraph(paragraph)
    assert check_wording(wording, KIND.samples()) == []
    assert render_wording(wording, KIND.samples()).paragraphs == (expected,)
