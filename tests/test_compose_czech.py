"""Czech courtesy: vocative salutations (function first), dates in Europe/Prague, plurals."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from mailer.compose.czech import (
    FALLBACK_SALUTATION,
    count_noun,
    format_clock,
    format_day,
    format_moment,
    format_weekday_day,
    plural,
    salutation,
)

# (first name, last name, function, gender or None, expected)
SALUTATIONS = [
    # function first: ředitel / ředitelka / vedoucí
    ("Marek", "Malý", "ředitel", None, "Vážený pane řediteli,"),
    ("Jana", "Chruščová", "ředitelka", None, "Vážená paní ředitelko,"),
    ("Martina", "Kovářová", "ředitelka", "f", "Vážená paní ředitelko,"),
    ("Petr", "Novák", "Ředitel", None, "Vážený pane řediteli,"),
    ("Alena", "Blažková", "vedoucí knihovny", None, "Vážená paní vedoucí,"),
    ("Josef", "Kříž", "vedoucí knihovny", None, "Vážený pane vedoucí,"),
    ("Eva", "Procházková", "vedoucí", None, "Vážená paní vedoucí,"),
    ("Karel", "Svoboda", "vedoucí", "m", "Vážený pane vedoucí,"),
    ("", "", "ředitelka", None, "Vážená paní ředitelko,"),
    ("", "", "ředitel", None, "Vážený pane řediteli,"),
    ("Jiří", "Marek", "  ředitel ", None, "Vážený pane řediteli,"),
    # no function that is addressed: the surname in the vocative (women's keep their form)
    ("Veronika", "Zemanová", "knihovnice", None, "Vážená paní Zemanová,"),
    ("Jan", "Němec", "knihovník", None, "Vážený pane Němče,"),
    ("Petr", "Novák", "", None, "Vážený pane Nováku,"),
    ("Karel", "Svoboda", "", None, "Vážený pane Svobodo,"),
    ("", "Dvořák", "", None, "Vážený pane Dvořáku,"),
    ("Tomáš", "Vaněk", "", None, "Vážený pane Vaňku,"),
    ("Jan", "Doležal", "", None, "Vážený pane Doležale,"),
    ("Ivo", "Sedláček", "", None, "Vážený pane Sedláčku,"),
    ("Jiří", "Kadlec", "", None, "Vážený pane Kadleci,"),
    ("Pavel", "Holub", "", None, "Vážený pane Holube,"),
    ("Tomáš", "Pokorný", "", None, "Vážený pane Pokorný,"),
    ("Josef", "Kučera", "", None, "Vážený pane Kučero,"),
    ("Lukáš", "Král", "", None, "Vážený pane Králi,"),
    ("Jan", "Bartoš", "", None, "Vážený pane Bartoši,"),
    ("Miroslav", "Růžička", "", None, "Vážený pane Růžičko,"),
    ("Jaroslav", "Kolář", "", None, "Vážený pane Koláři,"),
    ("Milan", "Navrátil", "", None, "Vážený pane Navrátile,"),
    ("David", "Hájek", "", None, "Vážený pane Hájku,"),
    ("Roman", "Říha", "", None, "Vážený pane Řího,"),
    ("Zdeněk", "Marek", "", None, "Vážený pane Marku,"),
    ("Marie", "Dvořáková", "", None, "Vážená paní Dvořáková,"),
    ("Hana", "Horáková", "knihovnice", None, "Vážená paní Horáková,"),
    ("Lenka", "Konečná", "", None, "Vážená paní Konečná,"),
    ("Marie", "Malá", "", None, "Vážená paní Malá,"),
    ("Ivana", "Kadlcová", "", "f", "Vážená paní Kadlcová,"),
    ("Petr", "Nový-Hrubý", "", None, "Vážený pane Nový-Hrubý,"),
    # nothing to go on: the neutral fallback
    ("", "", "", None, FALLBACK_SALUTATION),
    ("", "", "knihovnice", None, FALLBACK_SALUTATION),
    ("Jana", "", "", None, FALLBACK_SALUTATION),
]


@pytest.mark.parametrize(("first", "last", "role", "gender", "expected"), SALUTATIONS)
def test_it_addresses_people_in_the_vocative(
    first: str, last: str, role: str, gender: str | None, expected: str
) -> None:
    assert salutation(first, last, role, gender) == expected


def test_it_has_a_table_of_at_least_thirty_salutations() -> None:
    assert len(SALUTATIONS) >= 30
    assert sum(e.startswith("Vážená paní") and "," in e[11:] for *_, e in SALUTATIONS) >= 10
    assert sum(e.startswith("Vážený pane") for *_, e in SALUTATIONS) >= 10


def test_it_prefers_the_per_contact_override() -> None:
    assert salutation("Jana", "Nováková", "ředitelka", "f", "Milá Jano,") == "Milá Jano,"
    assert salutation("Jana", "Nováková", "", "f", "  ") == "Vážená paní Nováková,"
    assert salutation("", "", "", None, "Milý\r\nkolego,") == "Milý kolego,"


def test_it_formats_dates_and_times_in_prague() -> None:
    winter = datetime(2026, 3, 5, 13, 30, tzinfo=UTC)  # 14:30 in Prague (CET)
    summer = datetime(2027, 9, 15, 7, 0, tzinfo=UTC)  # 9:00 in Prague (CEST)
    assert format_day(winter) == "5. března 2026"
    assert format_clock(winter) == "14:30"
    assert format_moment(winter) == "5. března 2026 v 14:30"
    assert format_clock(summer) == "9:00"
    assert format_day(date(2026, 12, 15)) == "15. prosince 2026"
    assert format_weekday_day(date(2026, 11, 26)) == "čtvrtek 26. listopadu 2026"
    # Late evening UTC is already the next day in Prague.
    assert format_day(datetime(2026, 12, 31, 23, 30, tzinfo=UTC)) == "1. ledna 2027"
    with pytest.raises(ValueError):
        format_day(datetime(2026, 1, 1, 12, 0))


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, "0 knihoven"),
        (1, "1 knihovna"),
        (2, "2 knihovny"),
        (3, "3 knihovny"),
        (4, "4 knihovny"),
        (5, "5 knihoven"),
        (11, "11 knihoven"),
        (21, "21 knihoven"),
        (892, "892 knihoven"),
    ],
)
def test_it_picks_the_czech_plural(count: int, expected: str) -> None:
    assert count_noun(count, "knihovna", "knihovny", "knihoven") == expected
    assert plural(count, "knihovna", "knihovny", "knihoven") == expected.split()[1]
