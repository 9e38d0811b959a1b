"""Is a service open now? Opening hours in London time, with England's bank holidays.

- `hours: always` is open at every moment, bank holidays included (24/7 means 365 days).
- `hours: null` is unknown: never claimed open (None), and never claimed closed either.
- A period whose `closes` is before its `opens` runs past midnight into the next day, and
  belongs to the day it opens on; "24:00" closes at midnight.
- On an England bank holiday, a period that opens that day follows `bank_holidays`:
  `usual` keeps the weekday's hours, `closed` drops them, and `null` (unknown) makes the
  whole bank holiday unknown rather than guessing. A period that opened the evening
  before and runs past midnight into a bank holiday still counts.

`service_open` looks only at the routes where a person answers (phone, text, chat): a
website or email address that is "open" is not someone to talk to, so a service that
has only those is None (no claim). The contact shown (`best_contact`) is about what
someone can use now instead: an open route first (phone, text, chat, web, email), then
one whose hours are not known, then a closed one; so at night a website that is there
24/7, or an email address, is shown rather than a phone line that is closed. Matching
counts a website with hours `always` as 24/7 for its night-time boost too.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from bot.cases.working_days import LONDON, bank_holidays
from bot.services.schema import DAYS, Contact, Period, Service, minutes

LIVE_KINDS = frozenset({"phone", "text", "chat"})  # a person answers
KIND_ORDER = ("phone", "text", "chat", "web", "email")  # the contact to show first
NIGHT_STARTS, NIGHT_ENDS = 20, 8  # London hours: 20:00 to 07:59


def london(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise ValueError("The time must include a time zone.")
    return at.astimezone(LONDON)


def is_bank_holiday(day: date) -> bool:
    """An England (and Wales) bank holiday, substitute days included."""
    return day in bank_holidays()


def is_night(at: datetime) -> bool:
    """London time 20:00 to 07:59."""
    hour = london(at).hour
    return hour >= NIGHT_STARTS or hour < NIGHT_ENDS


def _session(opened_on: date, bank_holidays: str | None) -> bool | None:
    """Whether a period that opened on `opened_on` really ran (None: not known)."""
    if not is_bank_holiday(opened_on) or bank_holidays == "usual":
        return True
    return False if bank_holidays == "closed" else None


def _periods_open(
    periods: tuple[Period, ...], bank_holidays: str | None, local: datetime
) -> bool | None:
    today = local.date()
    minute = local.hour * 60 + local.minute
    weekday = DAYS[local.weekday()]
    day_before = DAYS[(local.weekday() - 1) % 7]
    states: list[bool | None] = []
    for period in periods:
        opens, closes = minutes(period.opens), minutes(period.closes)
        overnight = closes < opens
        if weekday in period.days and opens <= minute and (overnight or minute < closes):
            states.append(_session(today, bank_holidays))
        if overnight and day_before in period.days and minute < closes:
            states.append(_session(today - timedelta(days=1), bank_holidays))
    if True in states:
        return True
    if None in states or (bank_holidays is None and is_bank_holiday(today)):
        return None
    return False


def open_now(contact: Contact, at: datetime) -> bool | None:
    """True open, False closed, None not known."""
    if contact.hours == "always":
        return True
    if contact.hours is None:
        return None
    return _periods_open(contact.hours, contact.bank_holidays, london(at))


def combine(states: list[bool | None]) -> bool | None:
    """Any open is open; otherwise any unknown is unknown; otherwise closed."""
    if True in states:
        return True
    if None in states or not states:
        return None
    return False


def service_open(service: Service, at: datetime) -> bool | None:
    """Whether a phone, text or chat route is open (True beats None beats False); None
    when the service has no such route."""
    return combine([open_now(c, at) for c in service.contacts if c.kind in LIVE_KINDS])


_STATE_ORDER = {True: 0, None: 1, False: 2}


def best_contact(service: Service, at: datetime) -> tuple[Contact, bool | None]:
    """The contact to show: open now first, then not known, then closed; within those,
    phone, text, chat, web, email (file order breaks ties)."""
    ranked = [
        (_STATE_ORDER[state], KIND_ORDER.index(c.kind), n, c, state)
        for n, c in enumerate(service.contacts)
        for state in (open_now(c, at),)
    ]
    *_, contact, state = min(ranked, key=lambda r: r[:3])
    return contact, state
