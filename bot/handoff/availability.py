"""Who can take a handoff now, and when the service reopens.

A coordinator is available when their account is active, they are on duty, and it is
within their working hours (London time). Working hours are a list of spans such as
`{"days": "mon-fri", "start": "09:00", "end": "17:00"}`; an empty list means any time.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.handoff.models import Coordinator

LONDON = ZoneInfo("Europe/London")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(
    r"^\s*(?P<days>[a-z]{3}(?:-[a-z]{3})?(?:,[a-z]{3}(?:-[a-z]{3})?)*)\s+"
    r"(?P<start>\d{1,2}:\d{2})\s*-\s*(?P<end>\d{1,2}:\d{2})\s*$"
)


class HoursError(ValueError):
    """Working hours that can't be read; the message says which part."""


def _days(spec: str) -> set[int]:
    days: set[int] = set()
    for part in spec.lower().split(","):
        first, _, last = part.strip().partition("-")
        if first not in DAYS or (last and last not in DAYS):
            raise HoursError(f"Unknown day in {spec!r}: use mon, tue, wed, thu, fri, sat, sun.")
        a, b = DAYS.index(first), DAYS.index(last or first)
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return days


def _time(value: str) -> time:
    try:
        hours, minutes = (int(x) for x in value.split(":"))
        return time(hours, minutes)
    except ValueError as error:
        raise HoursError(f"Not a time of day: {value!r} (use HH:MM).") from error


def parse_hours(spec: str) -> list[dict[str, str]]:
    """`"mon-fri 09:00-17:00; sat 10:00-14:00"` as stored spans; "" means any time."""
    spans: list[dict[str, str]] = []
    for chunk in filter(None, (c.strip() for c in spec.split(";"))):
        match = _SPAN.match(chunk.lower())
        if not match:
            raise HoursError(f"Can't read {chunk!r}: write it like 'mon-fri 09:00-17:00'.")
        start, end = _time(match["start"]), _time(match["end"])
        if end <= start:
            raise HoursError(f"In {chunk!r} the end must be after the start.")
        _days(match["days"])
        spans.append({"days": match["days"], "start": f"{start:%H:%M}", "end": f"{end:%H:%M}"})
    return spans


def describe_hours(hours: Sequence[dict[str, str]]) -> str:
    return "; ".join(f"{h['days']} {h['start']}-{h['end']}" for h in hours) or "any time"


def _spans(hours: Iterable[dict[str, str]]) -> list[tuple[set[int], time, time]]:
    return [(_days(h["days"]), _time(h["start"]), _time(h["end"])) for h in hours]


def is_working(hours: Sequence[dict[str, str]], now: datetime) -> bool:
    if not hours:
        return True
    local = now.astimezone(LONDON)
    return any(
        local.weekday() in days and start <= local.time() < end
        for days, start, end in _spans(hours)
    )


def next_start(hours: Sequence[dict[str, str]], now: datetime) -> datetime | None:
    """The next time (after `now`) a span of these hours begins; None for "any time"."""
    if not hours:
        return None
    local = now.astimezone(LONDON)
    best: datetime | None = None
    for offset in range(8):
        day = (local + timedelta(days=offset)).date()
        for days, start, _end in _spans(hours):
            if day.weekday() not in days:
                continue
            moment = datetime.combine(day, start, LONDON)
            if moment > local and (best is None or moment < best):
                best = moment
        if best is not None:
            break
    return best.astimezone(UTC) if best else None


def available(coordinator: Coordinator, now: datetime) -> bool:
    return bool(
        coordinator.active
        and coordinator.on_duty
        and is_working(coordinator.working_hours or [], now)
    )


def reopens_at(coordinators: Iterable[Coordinator], now: datetime) -> datetime | None:
    """When someone's working hours next begin; None when nobody has set hours."""
    starts = [
        start
        for c in coordinators
        if c.active and (start := next_start(c.working_hours or [], now)) is not None
    ]
    return min(starts) if starts else None


def say_when(moment: datetime, now: datetime) -> str:
    """ "at 9am today", "at 9am tomorrow", "at 9:30am on Monday" (London time)."""
    local, today = moment.astimezone(LONDON), now.astimezone(LONDON).date()
    clock = f"{local:%I}".lstrip("0") + (f":{local:%M}" if local.minute else "")
    clock += "am" if local.hour < 12 else "pm"
    if local.date() == today:
        return f"at {clock} today"
    if local.date() == today + timedelta(days=1):
        return f"at {clock} tomorrow"
    return f"at {clock} on {local:%A}"
