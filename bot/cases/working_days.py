"""Working days in England and Wales, for the Victims' Code time limits.

A working day is Monday to Friday and not a bank holiday. England and Wales share one
list of bank holidays (the `holidays` library's GB/ENG subdivision, substitute days
included). Dates are London dates: a decision at 23:30 UTC on a summer evening was made
the next day in London.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from zoneinfo import ZoneInfo

import holidays

LONDON = ZoneInfo("Europe/London")


@cache
def bank_holidays() -> holidays.HolidayBase:
    # Built once; the library adds each year the first time a date in it is looked up.
    return holidays.country_holidays("GB", subdiv="ENG")


def is_working_day(day: date) -> bool:
    return day.weekday() < 5 and day not in bank_holidays()


@lru_cache(maxsize=8192)  # the watchdog asks about the same few hundred days again and again
def add_working_days(day: date, n: int) -> date:
    """The nth working day after `day` (`day` itself when n is 0)."""
    if n < 0:
        raise ValueError("n must not be negative.")
    while n:
        day += timedelta(days=1)
        if is_working_day(day):
            n -= 1
    return day


def london_date(moment: datetime) -> date:
    if moment.tzinfo is None:
        raise ValueError("The time must include a time zone.")
    return moment.astimezone(LONDON).date()


@lru_cache(maxsize=8192)
def end_of_day(day: date) -> datetime:
    """The UTC instant a London day ends: midnight at the start of the next day."""
    return datetime.combine(day + timedelta(days=1), time(), LONDON).astimezone(UTC)


def decision_due_date(occurred_at: datetime, working_days: int) -> date:
    """The last London day on which the victim may be told of a decision in time."""
    return add_working_days(london_date(occurred_at), working_days)


def decision_due_at(occurred_at: datetime, working_days: int) -> datetime:
    """When telling the victim becomes late: the end of the nth working day after the
    day of the decision."""
    return end_of_day(decision_due_date(occurred_at, working_days))
