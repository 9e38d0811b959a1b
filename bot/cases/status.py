"""Case progress in plain English: the answer to "any news on my case?" and the one-line
summaries of case events used in detailed notifications.

Every sentence comes from content/cases.yml. Every message fits 2 SMS segments (306 GSM-7
characters): a detail from an agency that would not fit (a long list of bail conditions,
a name outside GSM-7) is shortened or left out, never cut mid-word, and the plain
sentence for each event always fits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from actions import content
from actions.dates import add_months, long_date
from actions.right_to_review import REVIEW_WINDOW_MONTHS
from bot.cases.models import Case, CaseEvent
from bot.cases.vocabulary import EVENT_TYPES
from bot.channels.sms_text import segments, to_gsm7

if TYPE_CHECKING:
    from bot.gateway import Reply

LONDON = ZoneInfo("Europe/London")
MAX_SEGMENTS = 2
HEADLINE_DAYS = 28  # a headline event is shown first for this long
MAX_HEADLINES = 3
# Waymark's own local standard (Case.update_every_days defaults to it); any other
# frequency was agreed with the victim. Never worded as a legal rule.
STANDARD_UPDATE_DAYS = 28
SHORT_LISTS = (3, 2, 1)  # items kept, in turn, when a whole list does not fit
SEPARATOR = "\n\n"  # between parts packed into one message
# From charge until the case ends, the Witness Care Unit is the single point of contact.
COURT_STAGES = frozenset(
    {"charge", "first_hearing", "plea", "trial", "verdict", "sentencing", "appeal"}
)
# The person is free, or their bail changed: the danger line follows the news.
SAFETY_EVENTS = frozenset(
    {
        "bailed_with_conditions",
        "bail_conditions_changed",
        "released_under_investigation",
        "released_from_custody",
    }
)
DECIDED_BY = ("police", "cps")
DISPOSALS = ("caution", "conditional_caution", "community_resolution", "penalty_notice")
OUTCOMES = ("guilty", "not_guilty", "mixed")  # pleas and verdicts
NEXT_DATE_KEYS = {"hearing": "case.next_date.hearing", "trial": "case.next_date.trial"}
HUMAN_BUTTON = {"title": "Talk to a person", "payload": "/request_human"}
REVIEW_BUTTON = {"title": "Right to review", "payload": "/ask_right_to_review"}

Sentence = tuple[str, dict[str, str]]  # a content key and its fields


# -- dates --------------------------------------------------------------------------


def as_utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def london_date(moment: datetime) -> date:
    """The calendar day in London when `moment` happened (naive means UTC)."""
    return as_utc(moment).astimezone(LONDON).date()


def london_long_date(moment: datetime) -> str:
    """GOV.UK style, London day: "Tuesday 3 March 2026"."""
    return long_date(london_date(moment))


def _day(value: Any) -> date | None:
    """A date from event details: stored as ISO text, or a date when built in memory."""
    if isinstance(value, datetime):
        return london_date(value)
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            return None
    return None


# -- wording ------------------------------------------------------------------------


def fits(text: str, reserve: int = 0) -> bool:
    """Whether `text` fits the SMS budget, leaving `reserve` GSM-7 characters spare."""
    return 0 < segments("x" * reserve + text) <= MAX_SEGMENTS


def _say(key: str, **fields: str) -> str:
    return content.item(key).part(0, **fields)


def _render(sentences: Iterable[Sentence]) -> str:
    return " ".join(_say(key, **fields) for key, fields in sentences)


def _first_fit(options: Sequence[list[Sentence]], reserve: int = 0) -> str:
    """The first option that fits; the last option is the plainest and is used anyway."""
    for option in options[:-1]:
        text = _render(option)
        if fits(text, reserve):
            return text
    return _render(options[-1])


def _clean(value: Any) -> str:
    """Agency text for the middle of a sentence: one line, GSM-7 where it can be, and no
    closing full stop (the template has its own)."""
    if value is None:
        return ""
    return " ".join(to_gsm7(str(value)).split()).rstrip(" .;,")


def _join(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} and {items[-1]}"


def _lists(values: Any) -> list[str]:
    """A list as words: all of it, then shortened ("a, b and 3 more"). [] if empty."""
    items = [text for value in values or () if (text := _clean(value))]
    if not items:
        return []
    ways = [_join(items)]
    for keep in SHORT_LISTS:
        if keep < len(items):
            more = _say("case.list.more", count=str(len(items) - keep))
            ways.append(_join([*items[:keep], more]))
    return ways


# -- events -------------------------------------------------------------------------


def _event_options(event: CaseEvent) -> list[list[Sentence]]:
    """Ways to say what happened, most detailed first. The last needs only the date."""
    details = event.details or {}
    kind = event.type
    base = f"case.event.{kind}"
    if base not in content.catalogue():
        base = "case.event.other"
    when = {"date": london_long_date(event.occurred_at)}
    mains: list[Sentence] = []  # the event's sentence with a detail, most detailed first
    extras: list[Sentence] = []  # sentences that may follow it, dropped if they don't fit

    if kind == "bailed_with_conditions":
        mains = [
            (f"{base}.conditions", {**when, "conditions": c})
            for c in _lists(details.get("conditions"))
        ]
        if bail_date := _day(details.get("until")):
            extras.append((f"{base}.until", {"bail_date": long_date(bail_date)}))
    elif kind == "bail_conditions_changed":
        if details.get("removed"):
            mains = [(f"{base}.removed", when)]
        else:
            mains = [
                (f"{base}.conditions", {**when, "conditions": c})
                for c in _lists(details.get("conditions"))
            ]
    elif kind == "charged":
        mains = [
            (f"{base}.offences", {**when, "offences": o}) for o in _lists(details.get("offences"))
        ]
    elif kind == "no_further_action" and details.get("decided_by") in DECIDED_BY:
        mains = [(f"{base}.{details['decided_by']}", when)]
    elif kind == "out_of_court_disposal" and details.get("disposal_type") in DISPOSALS:
        mains = [(f"{base}.{details['disposal_type']}", when)]
    elif kind in ("first_hearing_scheduled", "trial_scheduled"):
        hearing, court = _day(details.get("date")), _clean(details.get("court"))
        if hearing and court:
            mains = [(f"{base}.when", {**when, "hearing_date": long_date(hearing), "court": court})]
    elif kind == "trial_adjourned":
        if new_date := _day(details.get("new_date")):
            fields = {**when, "hearing_date": long_date(new_date)}
            if court := _clean(details.get("court")):
                mains.append((f"{base}.when_court", {**fields, "court": court}))
            mains.append((f"{base}.when", fields))
    elif kind == "plea_entered" and details.get("plea") in OUTCOMES:
        mains = [(f"{base}.{details['plea']}", when)]
    elif kind == "verdict" and details.get("outcome") in OUTCOMES:
        mains = [(f"{base}.{details['outcome']}", when)]
    elif kind == "sentenced" and (sentence := _clean(details.get("sentence"))):
        mains = [(f"{base}.sentence", {**when, "sentence": sentence})]
    elif kind == "officer_changed":
        if name := _clean(details.get("officer_name")):
            mains = [(f"{base}.named", {**when, "officer_name": name})]
        if route := _clean(details.get("officer_contact")):
            extras.append((f"{base}.contact", {"officer_contact": route}))

    # The danger line is never dropped: it is in every option.
    safety: list[Sentence] = [("case.event.safety", {})] if kind in SAFETY_EVENTS else []
    tails = [extras, []] if extras else [[]]
    return [[main, *tail, *safety] for main in [*mains, (base, when)] for tail in tails]


def event_summary(case: Case, event: CaseEvent, *, reserve: int = 0) -> str:
    """What happened, in one SMS-sized message with the event's London date.

    `reserve` leaves room for words around it (a notification's opening), in GSM-7
    characters: details that would not fit are left out first.
    """
    return _first_fit(_event_options(event), reserve)


# -- the answer to "any news on my case?" -------------------------------------------


def next_update_due(case: Case, *, now: datetime, answering: bool = True) -> datetime:
    """When the victim's next update is due.

    Answering "any news?" is itself an update, so then the clock restarts from now.
    Otherwise it runs from the last update (or the case's creation); an overdue
    update is due now.
    """
    now = as_utc(now)
    every = timedelta(days=case.update_every_days or STANDARD_UPDATE_DAYS)
    if answering:
        return now + every
    last = case.last_victim_update_at or case.created_at
    return now if last is None else max(as_utc(last) + every, now)


def _headlines(case: Case, newest: Sequence[CaseEvent], now: datetime) -> list[CaseEvent]:
    """Recent headline events, newest first, one of each type."""
    shown: dict[str, CaseEvent] = {}
    for event in newest:
        kind = EVENT_TYPES.get(event.type)
        if kind is None or not kind.headline or event.type in shown:
            continue
        if now - as_utc(event.occurred_at) > timedelta(days=HEADLINE_DAYS):
            break  # newest first: the rest are older still
        # A stage a later event has replaced is old news (bailed, then charged).
        if kind.stage is not None and kind.stage != case.stage:
            continue
        shown[event.type] = event
        if len(shown) == MAX_HEADLINES:
            break
    return list(shown.values())


def _after_charge(case: Case, events: Sequence[CaseEvent]) -> bool:
    if case.stage in COURT_STAGES:
        return True
    # Bail after a charge moves the stage to "bail", but the Witness Care Unit stays.
    return case.stage == "bail" and any(event.type == "charged" for event in events)


def _contact(case: Case, events: Sequence[CaseEvent]) -> str:
    reference = _clean(case.reference)
    options: list[list[Sentence]] = []
    if _after_charge(case, events):
        if route := _clean(case.witness_care_contact):
            options.append([("case.contact.wcu", {"contact": route})])
        options.append([("case.contact.wcu.unknown", {"reference": reference})])
        return _first_fit(options)
    name, route = _clean(case.officer_name), _clean(case.officer_contact)
    if name and route:
        options.append([("case.contact.officer", {"officer_name": name, "officer_contact": route})])
    if route:
        options.append([("case.contact.officer.unnamed", {"officer_contact": route})])
    if name:
        options.append(
            [("case.contact.officer.named", {"officer_name": name, "reference": reference})]
        )
    options.append([("case.contact.default", {"reference": reference})])
    return _first_fit(options)


def _next_date(case: Case, today: date, latest: CaseEvent | None) -> str | None:
    when = case.next_key_date
    if when is None or when < today:
        return None
    kind = EVENT_TYPES.get(latest.type) if latest is not None else None
    field = kind.sets_key_date if kind else None
    if field and latest and _day((latest.details or {}).get(field)) == when:
        return None  # the latest event has just said it ("a date was set for the trial")
    key = NEXT_DATE_KEYS.get(case.next_key_date_kind or "", "case.next_date")
    first: Sentence = (key, {"next_date": long_date(when)})
    options: list[list[Sentence]] = []
    if place := _clean(case.next_key_place):
        options.append([first, ("case.next_date.place", {"place": place})])
    options.append([first])
    return _first_fit(options)


def _next_update(case: Case, now: datetime) -> str:
    days = case.update_every_days or STANDARD_UPDATE_DAYS
    key = "case.next_update" if days == STANDARD_UPDATE_DAYS else "case.next_update.agreed"
    due = london_date(next_update_due(case, now=now))
    return _say(key, due_date=long_date(due), days=str(days))


def review_dates(event: CaseEvent) -> tuple[date, date]:
    """After no further action: the day the victim was told, and the day to ask by."""
    told = _day((event.details or {}).get("victim_told_on")) or london_date(event.occurred_at)
    return told, add_months(told, REVIEW_WINDOW_MONTHS)


def _review(events: Sequence[CaseEvent], today: date) -> str | None:
    decision = next((e for e in events if e.type == "no_further_action"), None)
    if decision is None:
        return None
    decided_by = (decision.details or {}).get("decided_by")
    if decided_by not in DECIDED_BY:
        return None  # the button still offers the general explanation
    told, deadline = review_dates(decision)
    key = f"case.rtr.{decided_by}" if deadline >= today else f"case.rtr.{decided_by}.passed"
    return _say(key, told_date=long_date(told), deadline=long_date(deadline))


def _pack(sections: Sequence[str]) -> list[str]:
    """Sections joined into as few messages as fit, in order; none is split."""
    messages: list[str] = []
    for section in sections:
        if messages and fits(joined := f"{messages[-1]}{SEPARATOR}{section}"):
            messages[-1] = joined
        else:
            messages.append(section)
    return messages


def case_status(case: Case, events: Sequence[CaseEvent], *, now: datetime) -> list[Reply]:
    """The answer for a verified victim, as SMS-sized replies.

    In order: recent headline news (release, bail conditions, no further action), the
    stage and what usually happens next, the latest event, who to contact, the next key
    date, when the next update is due and, after no further action, the date to ask for
    a review by. `events` may be many, in any order; only what is needed is used.
    """
    # Imported here: the gateway may import the case desk, which imports this module.
    from bot.gateway import Reply

    now = as_utc(now)
    today = london_date(now)
    newest = sorted(events, key=lambda e: as_utc(e.occurred_at), reverse=True)

    headlines = _headlines(case, newest, now)
    sections = [event_summary(case, event) for event in headlines]
    stage_key = f"case.stage.{case.stage}"
    if stage_key in content.catalogue():
        sections.append(_say(stage_key))
    if newest and all(newest[0] is not event for event in headlines):
        sections.append(event_summary(case, newest[0]))
    sections.append(_contact(case, newest))
    if next_date := _next_date(case, today, newest[0] if newest else None):
        sections.append(next_date)
    if case.closed_at is None:
        sections.append(_next_update(case, now))

    buttons = [
        {
            "title": "What this stage means",
            "payload": "/ask_cjs_stage" + json.dumps({"cjs_stage": case.stage}),
        },
        HUMAN_BUTTON,
    ]
    if case.stage == "no_further_action":
        if review := _review(newest, today):
            sections.append(review)
        buttons.append(REVIEW_BUTTON)

    messages = _pack(sections)
    return [Reply(text) for text in messages[:-1]] + [
        Reply(messages[-1], tuple(dict(b) for b in buttons))
    ]
