"""Working hours, on-duty status, and when the service reopens (London time)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.handoff.availability import (
    HoursError,
    available,
    is_working,
    next_start,
    parse_hours,
    reopens_at,
    say_when,
)
from bot.handoff.models import Coordinator

WEEKDAYS = parse_hours("mon-fri 09:00-17:00")
# Thursday 26 November 2026 (GMT, so London time is UTC).
THURSDAY_NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
THURSDAY_NIGHT = datetime(2026, 11, 26, 22, 30, tzinfo=UTC)
FRIDAY_EVENING = datetime(2026, 11, 27, 18, 0, tzinfo=UTC)


def coordinator(
    hours: list[dict[str, str]], *, on_duty: bool = True, active: bool = True
) -> Coordinator:
    return Coordinator(
        username="x", display_name="X", working_hours=hours, on_duty=on_duty, active=active
    )


def test_hours_are_read_and_checked() -> None:
    assert parse_hours("mon-fri 9:00-17:30; sat 10:00-14:00") == [
        {"days": "mon-fri", "start": "09:00", "end": "17:30"},
        {"days": "sat", "start": "10:00", "end": "14:00"},
    ]
    assert parse_hours("") == []
    for bad in ("weekdays 9-5", "mon-fri 17:00-09:00", "mon-fri 25:00-26:00", "xyz 09:00-10:00"):
        with pytest.raises(HoursError):
            parse_hours(bad)


def test_working_hours_follow_london_time() -> None:
    assert is_working(WEEKDAYS, THURSDAY_NOON)
    assert not is_working(WEEKDAYS, THURSDAY_NIGHT)
    # 08:30 UTC in June is 09:30 in London (BST).
    assert is_working(WEEKDAYS, datetime(2026, 6, 4, 8, 30, tzinfo=UTC))
    assert is_working([], THURSDAY_NIGHT)  # no hours set: any time


def test_available_needs_duty_hours_and_an_active_account() -> None:
    assert available(coordinator(WEEKDAYS), THURSDAY_NOON)
    assert not available(coordinator(WEEKDAYS, on_duty=False), THURSDAY_NOON)
    assert not available(coordinator(WEEKDAYS, active=False), THURSDAY_NOON)
    assert not available(coordinator(WEEKDAYS), THURSDAY_NIGHT)


def test_the_service_reopens_at_the_next_start_of_anyone_s_hours() -> None:
    assert next_start(WEEKDAYS, THURSDAY_NIGHT) == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    # Friday evening: the next weekday start is Monday.
    assert next_start(WEEKDAYS, FRIDAY_EVENING) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
    saturday = coordinator(parse_hours("sat 10:00-14:00"), on_duty=False)
    assert reopens_at([coordinator(WEEKDAYS), saturday], FRIDAY_EVENING) == datetime(
        2026, 11, 28, 10, 0, tzinfo=UTC
    )
    assert reopens_at([coordinator([])], FRIDAY_EVENING) is None  # nobody has set hours


def test_reopening_is_said_plainly() -> None:
    assert say_when(datetime(2026, 11, 27, 9, 0, tzinfo=UTC), THURSDAY_NIGHT) == "at 9am tomorrow"
    assert say_when(datetime(2026, 11, 30, 9, 30, tzinfo=UTC), FRIDAY_EVENING) == (
        "at 9:30am on Monday"
    )
    assert say_when(datetime(2026, 11, 26, 13, 0, tzinfo=UTC), THURSDAY_NOON) == "at 1pm today"
