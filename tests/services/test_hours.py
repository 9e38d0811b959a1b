"""Open now? Weekdays, nights, weekends, bank holidays and clock changes, in London time."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.services import hours
from bot.services.schema import Contact
from tests.services.builders import WEEKDAYS, at, contact, period, service


def line(hours_: Any, bank_holidays: str | None = None, kind: str = "phone") -> Contact:
    return Contact.model_validate(contact(kind, hours=hours_, bank_holidays=bank_holidays))


OFFICE = [period(WEEKDAYS, "09:00", "17:00")]


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (at("2026-12-02", "10:00"), True),  # Wednesday
        (at("2026-12-02", "09:00"), True),  # opens on the minute
        (at("2026-12-02", "08:59"), False),
        (at("2026-12-02", "16:59"), True),
        (at("2026-12-02", "17:00"), False),  # closed at closing time
        (at("2026-12-02", "02:00"), False),  # night
        (at("2026-12-05", "12:00"), False),  # Saturday
        (at("2026-12-06", "12:00"), False),  # Sunday
    ],
)
def test_weekday_office_hours(moment: datetime, expected: bool) -> None:
    assert hours.open_now(line(OFFICE), moment) is expected


def test_always_and_unknown() -> None:
    for moment in (at("2026-12-25", "03:00"), at("2026-08-31"), at("2026-12-05", "23:59")):
        assert hours.open_now(line("always"), moment) is True
        assert hours.open_now(line(None), moment) is None


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError):
        hours.open_now(line(OFFICE), datetime(2026, 12, 2, 10, 0))
    with pytest.raises(ValueError):
        hours.is_night(datetime(2026, 12, 2, 10, 0))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        # Summer (BST, UTC+1): 08:30 UTC is 09:30 in London.
        (datetime(2026, 7, 1, 8, 30, tzinfo=UTC), True),
        (datetime(2026, 7, 1, 16, 30, tzinfo=UTC), False),  # 17:30 in London
        # Winter (GMT): 08:30 UTC is 08:30 in London.
        (datetime(2026, 12, 1, 8, 30, tzinfo=UTC), False),
        (datetime(2026, 12, 1, 16, 30, tzinfo=UTC), True),
        # The Monday after the clocks go forward (29 March 2026).
        (datetime(2026, 3, 30, 8, 30, tzinfo=UTC), True),
        # The Monday after they go back (25 October 2026).
        (datetime(2026, 10, 26, 8, 30, tzinfo=UTC), False),
    ],
)
def test_bst_and_gmt(moment: datetime, expected: bool) -> None:
    assert hours.open_now(line(OFFICE), moment) is expected


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (at("2026-12-04", "21:59"), False),  # Friday, before it opens
        (at("2026-12-04", "22:00"), True),
        (at("2026-12-04", "23:59"), True),
        (at("2026-12-05", "00:00"), True),  # Saturday, past midnight: Friday's period
        (at("2026-12-05", "01:59"), True),
        (at("2026-12-05", "02:00"), False),
        (at("2026-12-05", "23:00"), False),  # Saturday night: no period opens on Saturday
        (at("2026-12-03", "23:00"), False),  # Thursday night
        (at("2026-12-04", "01:00"), False),  # Friday early: Thursday has no period
    ],
)
def test_a_period_past_midnight(moment: datetime, expected: bool) -> None:
    assert hours.open_now(line([period(["fri"], "22:00", "02:00")]), moment) is expected


def test_closing_at_24_00_and_whole_days() -> None:
    evening = line([period(["wed"], "18:00", "24:00")])
    assert hours.open_now(evening, at("2026-12-02", "23:59")) is True
    assert hours.open_now(evening, at("2026-12-03", "00:00")) is False
    whole = line([period(["sat", "sun"], "00:00", "24:00")])
    assert hours.open_now(whole, at("2026-12-05", "00:00")) is True
    assert hours.open_now(whole, at("2026-12-06", "23:59")) is True
    assert hours.open_now(whole, at("2026-12-07", "00:00")) is False


def test_england_bank_holidays() -> None:
    assert hours.is_bank_holiday(date(2026, 12, 25))  # Christmas Day, a Friday
    assert hours.is_bank_holiday(date(2026, 8, 31))  # summer bank holiday, a Monday
    assert hours.is_bank_holiday(date(2026, 12, 28))  # Boxing Day (Saturday) moved to Monday
    assert not hours.is_bank_holiday(date(2026, 12, 2))
    assert not hours.is_bank_holiday(date(2026, 3, 17))  # St Patrick's Day: not in England


@pytest.mark.parametrize("day", ["2026-12-25", "2026-08-31", "2026-12-28"])
@pytest.mark.parametrize(
    ("bank_holidays", "at_noon", "at_3am"),
    [
        (None, None, None),  # unknown: not claimed open, not claimed closed
        ("closed", False, False),
        ("usual", True, False),  # the weekday's own hours
    ],
)
def test_office_hours_on_a_bank_holiday(
    day: str, bank_holidays: str | None, at_noon: bool | None, at_3am: bool | None
) -> None:
    office = line(OFFICE, bank_holidays)
    assert hours.open_now(office, at(day, "12:00")) is at_noon
    assert hours.open_now(office, at(day, "03:00")) is at_3am


def test_bank_holiday_periods_belong_to_the_day_they_open() -> None:
    late = [period(["thu", "fri"], "22:00", "02:00")]
    # Thursday 24 December's period runs into Christmas Day: it opened on a normal day.
    assert hours.open_now(line(late, "closed"), at("2026-12-25", "01:00")) is True
    # Christmas Day's own period is closed, and so are the hours after its midnight.
    assert hours.open_now(line(late, "closed"), at("2026-12-25", "23:00")) is False
    assert hours.open_now(line(late, "closed"), at("2026-12-26", "01:00")) is False
    # Unknown on a bank holiday: its period, past midnight too, is unknown.
    assert hours.open_now(line(late, None), at("2026-12-25", "23:00")) is None
    assert hours.open_now(line(late, None), at("2026-12-26", "01:00")) is None
    assert hours.open_now(line(late, "usual"), at("2026-12-26", "01:00")) is True


@pytest.mark.parametrize(
    ("moment", "night"),
    [
        (at("2026-12-02", "19:59"), False),
        (at("2026-12-02", "20:00"), True),
        (at("2026-12-02", "02:00"), True),
        (at("2026-12-02", "07:59"), True),
        (at("2026-12-02", "08:00"), False),
        (datetime(2026, 7, 1, 19, 30, tzinfo=UTC), True),  # 20:30 BST
        (datetime(2026, 12, 1, 19, 30, tzinfo=UTC), False),  # 19:30 GMT
        (datetime(2026, 7, 1, 7, 0, tzinfo=UTC), False),  # 08:00 BST
    ],
)
def test_night_is_8pm_to_8am_london_time(moment: datetime, night: bool) -> None:
    assert hours.is_night(moment) is night


def test_service_open_looks_at_phone_text_and_chat() -> None:
    closed = contact("phone", hours=OFFICE)
    unknown = contact("phone", "0800 1111", hours=None)
    open_chat = contact("chat", hours="always")
    always_web = contact("web", hours="always")
    night = at("2026-12-02", "23:00")

    def open_with(*contacts: dict[str, Any]) -> bool | None:
        return hours.service_open(service("x-service", contacts=list(contacts)), night)

    assert open_with(closed, open_chat) is True  # any route open
    assert open_with(closed, unknown) is None  # unknown beats closed
    assert open_with(closed) is False
    assert open_with(closed, always_web) is False  # a website is not someone answering
    assert open_with(always_web, contact("email", hours="always")) is None
    assert open_with(contact("text", hours="always")) is True


def test_the_contact_to_show_is_the_best_one_open_now() -> None:
    night = at("2026-12-02", "23:00")
    day = at("2026-12-02", "11:00")

    def best(*contacts: dict[str, Any], moment: datetime = night) -> str:
        chosen, _ = hours.best_contact(service("x-service", contacts=list(contacts)), moment)
        return chosen.kind

    office_phone = contact("phone", hours=OFFICE)
    assert best(office_phone, contact("chat", hours="always")) == "chat"
    assert best(office_phone, contact("chat", hours="always"), moment=day) == "phone"
    assert best(contact("web", hours="always"), contact("text", hours="always")) == "text"
    assert best(contact("chat", hours="always"), contact("text", hours="always")) == "text"
    assert best(contact("web", hours=None), contact("phone", hours=None)) == "phone"
    assert best(office_phone, contact("web", hours=None)) == "web"  # unknown beats closed
    assert best(office_phone, contact("email", hours=OFFICE)) == "phone"
