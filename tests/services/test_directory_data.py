"""The real directory (content/services/directory.yml): valid, sourced, dated, confirmed,
and the right services for real people and situations."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from functools import cache
from typing import Any

import pytest

from bot.services import hours, places, render, schema
from bot.services.matching import Directory, Query
from bot.services.schema import Service
from tests.factories import ROOT
from tests.services.builders import at
from tests.test_content import UNCONFIRMED_NUMBERS, sms_segments

FACTS = (ROOT / "docs" / "reference" / "victim-journey-facts.md").read_text(encoding="utf-8")

WEEKDAY = at("2026-12-02", "14:00")  # Wednesday afternoon
NIGHT = at("2026-12-02", "02:00")  # Wednesday, 2 am
EVENING = at("2026-12-02", "22:00")
WEEKEND = at("2026-12-05", "14:00")  # Saturday afternoon
BANK_HOLIDAY = at("2026-08-31", "14:00")  # summer bank holiday (Monday)
CHRISTMAS = at("2026-12-25", "12:00")  # Friday


@cache
def services() -> tuple[Service, ...]:
    return tuple(schema.load_file())


@cache
def directory() -> Directory:
    return Directory(services())


def by_id(service_id: str) -> Service:
    found = directory().get(service_id)
    assert found is not None, service_id
    return found


# -- the data ------------------------------------------------------------------------


def test_the_directory_loads_without_errors() -> None:
    assert len(services()) >= 20
    assert len({s.id for s in services()}) == len(services())


def test_every_service_has_a_source_and_a_date() -> None:
    for service in services():
        assert service.sources, service.id
        assert all(re.match(r"https?://", url) for url in service.sources), service.id
        assert service.last_verified <= date.today(), service.id


def test_every_source_is_in_the_fact_sheet() -> None:
    for service in services():
        for url in service.sources:
            assert url in FACTS, f"{service.id}: {url} is not in the fact sheet"


def _unconfirmed_passages() -> list[str]:
    """The parts of the fact sheet marked UNCONFIRMED: the table cell or bullet, split at
    ";" outside brackets (one cell can hold a confirmed and an unconfirmed detail)."""
    passages = []
    for line in FACTS.splitlines():
        if "UNCONFIRMED" not in line:
            continue
        text = re.sub(r"https?://\S+", "", line)  # the sources cited, not contact routes
        pieces = text.split("|") if text.startswith("|") else [text]
        for piece in pieces:
            depth, start = 0, 0
            for i, char in enumerate(piece + ";"):
                depth += {"(": 1, ")": -1}.get(char, 0)
                if char == ";" and depth == 0:
                    if "UNCONFIRMED" in piece[start:i]:
                        passages.append(piece[start:i])
                    start = i + 1
    return passages


def _routes(text: str) -> set[str]:
    """Phone numbers (digits only), web addresses and emails in some text, lower case."""
    found = {re.sub(r"\D", "", n) for n in re.findall(r"\+?\d[\d ]{2,}\d", text)}
    found |= {w.lower() for w in re.findall(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", text)}
    found |= {
        w.lower().removeprefix("www.")
        for w in re.findall(r"(?<![@\w.])(?:[a-z0-9-]+\.)+(?:uk|org|com|net)(?:/[\w/-]*)?", text)
    }
    return found


def _route(value: str, kind: str) -> str:
    return re.sub(r"\D", "", value) if kind in ("phone", "text") else value.lower()


def test_no_contact_is_one_the_fact_sheet_marks_unconfirmed() -> None:
    unconfirmed: set[str] = set().union(*(_routes(p) for p in _unconfirmed_passages()))
    # The reader finds what the sheet marks, and not the confirmed routes beside them.
    assert {"08085002222", "02032996900", "08088025565", "03450154033"} <= unconfirmed
    assert "247sexualabusesupport.org.uk" not in unconfirmed
    assert "08088020300" not in unconfirmed
    for service in services():
        for contact in service.contacts:
            route = _route(contact.value, contact.kind)
            assert route not in unconfirmed, f"{service.id}: {contact.value} is UNCONFIRMED"
            assert route not in UNCONFIRMED_NUMBERS, f"{service.id}: {contact.value}"


def test_every_phone_number_is_in_the_fact_sheet() -> None:
    sheet_digits = re.sub(r"\D", "", FACTS)
    for service in services():
        for contact in service.contacts:
            if contact.kind in ("phone", "text"):
                assert _route(contact.value, contact.kind) in sheet_digits, contact.value


@pytest.mark.parametrize(
    "service_id", ["mens-advice-line", "national-stalking-helpline", "karma-nirvana"]
)
def test_hours_the_sheet_does_not_confirm_are_unknown(service_id: str) -> None:
    for contact in by_id(service_id).contacts:
        if contact.kind in ("phone", "text", "chat"):
            assert contact.hours is None, service_id


def test_interpreters_and_mopac_only_where_the_sheet_says() -> None:
    with_interpreters = {s.id for s in services() if s.interpreters}
    assert with_interpreters <= {"national-domestic-abuse-helpline"}
    for service in services():
        if service.commissioned_by:
            assert service.commissioned_by == "MOPAC", service.id


def test_text_shown_in_an_sms_is_plain() -> None:
    for service in services():
        for text in (service.name, service.for_whom):
            assert sms_segments(text) == 1, text


def test_nothing_is_stale_yet() -> None:
    assert schema.stale(services(), today=date(2026, 11, 26)) == []
    assert len(schema.stale(services(), today=date(2027, 6, 1))) == len(services())


# -- people and situations -----------------------------------------------------------


@dataclass(frozen=True)
class Case:
    name: str
    query: Query
    top: tuple[str, ...] = ()  # the first services, in order
    includes: frozenset[str] = field(default_factory=frozenset)  # somewhere in the top 3
    excludes: frozenset[str] = field(default_factory=frozenset)  # nowhere in the top 3


def case(
    name: str,
    *,
    top: tuple[str, ...] = (),
    includes: tuple[str, ...] = (),
    excludes: tuple[str, ...] = (),
    place: str | None = None,
    **query: Any,
) -> Case:
    if place is not None:
        borough = places.borough_for(place)
        query["borough"] = borough
        query["outside_london"] = borough is None
    return Case(name, Query(**query), top, frozenset(includes), frozenset(excludes))


CASES = [
    case(
        "16-year-old in Hackney after sexual violence at 2 am",
        crime_types=("sexual_violence",),
        place="Hackney",
        age_group="16_17",
        at=NIGHT,
        top=("rape-and-sexual-abuse-support-line", "the-havens"),
        excludes=("nspcc-helpline", "victim-contact-scheme"),
    ),
    case(
        "14-year-old in E8 after sexual violence",
        crime_types=("sexual_violence",),
        place="E8 1AB",
        age_group="under_16",
        at=WEEKDAY,
        top=("the-havens",),
        includes=("childline",),
        excludes=("rape-and-sexual-abuse-support-line", "nspcc-helpline"),
    ),
    case(
        "a man in Croydon experiencing domestic abuse",
        crime_types=("domestic_abuse",),
        place="Croydon",
        gender="man",
        at=WEEKDAY,
        top=("mens-advice-line", "national-domestic-abuse-helpline", "victim-support"),
        excludes=("solace", "galop-lgbt-domestic-abuse-helpline"),
    ),
    case(
        "a man in CR0 experiencing domestic abuse, at night",
        crime_types=("domestic_abuse",),
        place="CR0 2AB",
        gender="man",
        at=NIGHT,
        top=("national-domestic-abuse-helpline", "mens-advice-line"),
    ),
    case(
        "a Polish speaker defrauded",
        crime_types=("fraud",),
        language="Polish",
        at=WEEKDAY,
        top=("report-fraud", "victim-support"),
    ),
    case(
        "a hate crime in Tower Hamlets",
        crime_types=("hate_crime",),
        place="Tower Hamlets",
        at=WEEKDAY,
        top=("stop-hate-uk", "true-vision", "victim-support"),
    ),
    case(
        "an LGBT+ person after a hate crime",
        crime_types=("hate_crime",),
        place="E1",
        lgbt=True,
        at=WEEKDAY,
        top=("galop-hate-crime-helpline", "stop-hate-uk"),
    ),
    case(
        "I'm in Lewisham and my ex keeps turning up",
        crime_types=("domestic_abuse", "stalking"),
        place="Lewisham",
        at=WEEKDAY,
        top=(
            "national-domestic-abuse-helpline",
            "london-stalking-support-service",
            "victim-support",
        ),
        excludes=("national-stalking-helpline",),  # the same number as the London service
    ),
    case(
        "a woman in Hackney experiencing domestic abuse",
        crime_types=("domestic_abuse",),
        place="Hackney",
        gender="woman",
        at=WEEKDAY,
        includes=("solace", "national-domestic-abuse-helpline"),
        excludes=("mens-advice-line",),
    ),
    case(
        "an LGBT+ person experiencing domestic abuse on a Saturday",
        crime_types=("domestic_abuse",),
        lgbt=True,
        at=WEEKEND,
        top=("galop-lgbt-domestic-abuse-helpline", "national-domestic-abuse-helpline"),
    ),
    case(
        "stalked in Leeds (outside London)",
        crime_types=("stalking",),
        place="Leeds",
        at=WEEKDAY,
        top=("national-stalking-helpline",),
        excludes=("london-stalking-support-service", "london-victim-and-witness-service"),
    ),
    case(
        "burgled, place not said",
        crime_types=("burglary",),
        at=WEEKDAY,
        top=("victim-support",),
        includes=("london-victim-and-witness-service",),
    ),
    case(
        "nothing said yet",
        at=WEEKDAY,
        top=("victim-support",),
        excludes=("police-101", "crimestoppers", "samaritans", "nspcc-helpline"),
    ),
]


@pytest.mark.parametrize("situation", CASES, ids=lambda c: c.name)
def test_the_right_services_for_people_and_situations(situation: Case) -> None:
    matches = directory().match(situation.query, limit=3)
    shown = [m.service.id for m in matches]
    assert len(shown) == 3, shown
    assert tuple(shown[: len(situation.top)]) == situation.top, shown
    assert situation.includes <= set(shown), shown
    assert not situation.excludes & set(shown), shown
    for found in matches:
        assert found.reason.endswith(".") and "for " in found.reason.lower()
    texts = render.results(
        matches, situation.query, offset=0, total=directory().total(situation.query)
    )
    for text in texts:
        assert sms_segments(text) <= 2, text


def test_the_lewisham_example_end_to_end() -> None:
    """The issue's "done when": three right services, a reason each, two SMS-sized messages."""
    query = Query(
        crime_types=("domestic_abuse", "stalking"),
        borough=places.borough_for("Lewisham"),
        at=WEEKDAY,
    )
    assert directory().question(query) is None  # age would not change the answer
    matches = directory().match(query)
    texts = render.results(matches, query, offset=0, total=directory().total(query))
    assert len(texts) == 2
    assert texts[0].startswith(
        "These services can help. 1) National Domestic Abuse Helpline: call 0808 2000 247. Free, 24/7,"
    )
    assert "2) London Stalking Support Service: call 0808 802 0300 (then press 2" in texts[0]
    assert texts[1].startswith("3) Victim Support: call 0808 168 9111. Free, 24/7, for any crime")
    assert texts[1].endswith(
        "Reply MORE for other services, or REFER and we can ask one to contact you."
    )
    for text in texts:
        assert sms_segments(text) <= 2


def test_the_polish_speaker_hears_about_interpreters() -> None:
    query = Query(crime_types=("fraud",), language="Polish", at=WEEKDAY)
    matches = directory().match(query)
    texts = render.results(matches, query, offset=0, total=directory().total(query))
    assert "interpreter" in " ".join(texts)
    assert all(sms_segments(t) <= 2 for t in texts)


def test_age_is_asked_for_sexual_violence_when_not_known() -> None:
    query = Query(crime_types=("sexual_violence",), at=WEEKDAY)
    assert directory().question(query) == "age_group"
    assert directory().question(Query(crime_types=("hate_crime",), at=WEEKDAY)) is None


@pytest.mark.parametrize(
    ("service_id", "moment", "expected"),
    [
        # Galop's LGBT+ domestic abuse line: Mon-Thu 10:00-20:30, Fri 10:00-16:30.
        ("galop-lgbt-domestic-abuse-helpline", WEEKDAY, True),
        ("galop-lgbt-domestic-abuse-helpline", EVENING, False),
        ("galop-lgbt-domestic-abuse-helpline", NIGHT, False),
        ("galop-lgbt-domestic-abuse-helpline", WEEKEND, False),
        ("galop-lgbt-domestic-abuse-helpline", BANK_HOLIDAY, None),  # not known
        ("galop-lgbt-domestic-abuse-helpline", CHRISTMAS, None),
        # Report Fraud's phone line: Mon-Fri 8am to 8pm.
        ("report-fraud", WEEKDAY, True),
        ("report-fraud", EVENING, False),
        ("report-fraud", WEEKEND, False),
        ("report-fraud", BANK_HOLIDAY, None),
        # 24/7 lines are open whatever the day.
        ("national-domestic-abuse-helpline", NIGHT, True),
        ("national-domestic-abuse-helpline", WEEKEND, True),
        ("national-domestic-abuse-helpline", CHRISTMAS, True),
        ("victim-support", BANK_HOLIDAY, True),
        # Hours not known: never said to be open.
        ("mens-advice-line", WEEKDAY, None),
        ("national-stalking-helpline", NIGHT, None),
    ],
)
def test_open_now_across_the_week(service_id: str, moment: datetime, expected: bool | None) -> None:
    assert hours.service_open(by_id(service_id), moment) is expected


def test_open_now_in_the_reasons_shown() -> None:
    lgbt = Query(crime_types=("domestic_abuse",), lgbt=True)
    reasons = {
        name: directory().match(replace(lgbt, at=moment), limit=1)[0]
        for name, moment in (("day", WEEKDAY), ("weekend", WEEKEND), ("holiday", BANK_HOLIDAY))
    }
    assert reasons["day"].open_now is True and "open now" in reasons["day"].reason.lower()
    # The phone is closed at the weekend: the email address, which can be used now, is
    # shown instead, and the reason says nothing about hours it does not know.
    weekend = reasons["weekend"]
    assert weekend.open_now is False and "now" not in weekend.reason
    (text,) = render.results([weekend], replace(lgbt, at=WEEKEND), offset=0, total=1)
    assert "1) Galop National LGBT+ Domestic Abuse Helpline: email help@galop.org.uk." in text
    assert reasons["holiday"].open_now is None
    assert "now" not in reasons["holiday"].reason
