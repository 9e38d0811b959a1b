"""Reading the dates people type, and writing dates the GOV.UK way."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from dateutil import parser
from dateutil.relativedelta import relativedelta

_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6}
_UNITS = {"day": "days", "week": "weeks", "month": "months", "year": "years", "fortnight": None}
_WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_AGO = re.compile(
    r"\b(?P<n>\d+|a|an|one|two|three|four|five|six)\s+(?P<unit>day|week|month|year|fortnight)s?\s+ago\b"
)


def parse_past_date(text: str, today: date) -> date | None:
    """The date a person means by `text` ("3 March", "2 weeks ago", "last Tuesday").

    Returns None when no date can be read. A date without a year that would fall
    in the future is taken to be last year's, because people are telling us when
    something already happened.
    """
    t = text.lower().strip()
    if not t:
        return None
    if re.search(r"\btoday\b|\bthis morning\b|\bearlier\b|\bjust now\b", t):
        return today
    if re.search(r"\byesterday\b|\blast night\b", t):
        return today - timedelta(days=1)
    if m := _AGO.search(t):
        n = int(m["n"]) if m["n"].isdigit() else _NUMBERS[m["n"]]
        unit = _UNITS[m["unit"]]
        if unit is None:
            return today - timedelta(weeks=2 * n)
        return today - relativedelta(**{unit: n})
    if re.search(r"\blast week\b", t):
        return today - timedelta(weeks=1)
    if re.search(r"\blast month\b", t):
        return today - relativedelta(months=1)
    for offset, name in enumerate(_WEEKDAYS):
        if re.search(rf"\b(last |on |this (past )?)?{name}\b", t):
            back = (today.weekday() - offset) % 7 or 7
            return today - timedelta(days=back)
    if not re.search(r"\d", t) and not re.search(
        r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)", t
    ):
        return None
    try:
        # Missing parts default to this month's 1st, so "the 14th" is this month.
        default = datetime(today.year, today.month, 1)
        parsed = parser.parse(t, dayfirst=True, fuzzy=True, default=default).date()
    except (ValueError, OverflowError):
        return None
    if parsed > today and not re.search(r"\b\d{4}\b", t):
        parsed -= relativedelta(years=1)
    return parsed


def add_months(start: date, months: int) -> date:
    return start + relativedelta(months=months)


def long_date(d: date) -> str:
    """GOV.UK style: "Monday 3 March 2027" (the year is always given for deadlines)."""
    return f"{d.strftime('%A')} {d.day} {d.strftime('%B')} {d.year}"
