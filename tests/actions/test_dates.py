from __future__ import annotations

from datetime import date

import pytest

from actions.dates import add_months, long_date, parse_past_date

TODAY = date(2026, 11, 26)  # a Thursday


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("today", date(2026, 11, 26)),
        ("yesterday", date(2026, 11, 25)),
        ("2 weeks ago", date(2026, 11, 12)),
        ("a month ago", date(2026, 10, 26)),
        ("three days ago", date(2026, 11, 23)),
        ("last week", date(2026, 11, 19)),
        ("last tuesday", date(2026, 11, 24)),
        ("on monday", date(2026, 11, 23)),
        ("thursday", date(2026, 11, 19)),
        ("3 march", date(2026, 3, 3)),
        ("3rd of March 2025", date(2025, 3, 3)),
        ("12/10/2026", date(2026, 10, 12)),
        ("the 14th", date(2026, 11, 14)),
        ("25 december", date(2025, 12, 25)),  # no year and in the future: last year
        ("it was on 1 nov", date(2026, 11, 1)),
    ],
)
def test_reads_the_dates_people_type(text: str, expected: date) -> None:
    assert parse_past_date(text, TODAY) == expected


@pytest.mark.parametrize("text", ["", "dunno", "the police told me", "ages"])
def test_no_date_gives_none(text: str) -> None:
    assert parse_past_date(text, TODAY) is None


def test_an_explicit_future_year_is_kept_so_the_form_can_question_it() -> None:
    assert parse_past_date("3 march 2027", TODAY) == date(2027, 3, 3)


def test_three_months_from_the_end_of_a_month_stays_in_range() -> None:
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)


def test_long_date_is_govuk_style() -> None:
    assert long_date(date(2027, 3, 3)) == "Wednesday 3 March 2027"
