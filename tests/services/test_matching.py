"""Matching on small directories: each filter and ranking rule on its own."""

from __future__ import annotations

import zlib
from datetime import datetime
from typing import Any

import pytest

from bot.services.matching import Directory, Match, Query
from bot.services.schema import Service
from tests.services.builders import WEEKDAYS, at, contact, period, service

DAY = at("2026-12-02", "11:00")  # a Wednesday morning
NIGHT = at("2026-12-02", "23:30")
OFFICE = [period(WEEKDAYS, "09:00", "17:00")]


def svc(
    service_id: str,
    *,
    crimes: tuple[str, ...] = ("domestic_abuse",),
    area: str = "national",
    boroughs: tuple[str, ...] = (),
    hours: Any = None,
    kind: str = "phone",
    value: str | None = None,
    **changes: Any,
) -> Service:
    """A service with one contact (hours unknown unless given); a unique number by default."""
    number = value or f"0800 {zlib.crc32(service_id.encode()) % 10**6:06d}"
    if kind not in ("phone", "text"):
        number = value or f"{service_id}.org.uk"
    changes.setdefault("interpreters", False)
    return service(
        service_id,
        crime_types=list(crimes),
        coverage={"area": area, "boroughs": list(boroughs)},
        contacts=[contact(kind, number, hours=hours)],
        **changes,
    )


def ids(matches: list[Match]) -> list[str]:
    return [m.service.id for m in matches]


def ranked(services: list[Service], limit: int = 10, **query: Any) -> list[str]:
    query.setdefault("at", DAY)
    return ids(Directory(services).match(Query(**query), limit=limit))


# -- filters -------------------------------------------------------------------------


def test_crime_type_filter() -> None:
    services = [
        svc("da-line", crimes=("domestic_abuse",)),
        svc("fraud-line", crimes=("fraud",)),
        svc("any-crime", crimes=("any",)),
        svc("both", crimes=("fraud", "stalking")),
    ]
    assert set(ranked(services, crime_types=("fraud",))) == {"fraud-line", "any-crime", "both"}
    assert set(ranked(services, crime_types=("burglary",))) == {"any-crime"}
    assert set(ranked(services, crime_types=("domestic_abuse", "stalking"))) == {
        "da-line",
        "any-crime",
        "both",
    }
    assert len(ranked(services)) == 4  # no crime type said: every service


def test_coverage_filter() -> None:
    services = [
        svc("national"),
        svc("london-wide", area="london"),
        svc("hackney-only", area="boroughs", boroughs=("Hackney",)),
        svc("east", area="boroughs", boroughs=("Tower Hamlets", "Newham")),
    ]
    assert set(ranked(services, borough="Hackney")) == {"national", "london-wide", "hackney-only"}
    assert set(ranked(services, borough="Newham")) == {"national", "london-wide", "east"}
    assert set(ranked(services)) == {"national", "london-wide"}  # borough not known
    assert set(ranked(services, borough="Narnia")) == {"national", "london-wide"}
    assert ranked(services, outside_london=True) == ["national"]


@pytest.mark.parametrize(
    ("age_group", "shown"),
    [
        ("under_16", {"everyone", "children", "up-to-18"}),
        ("16_17", {"everyone", "sixteen-plus", "up-to-18"}),
        ("adult", {"everyone", "sixteen-plus", "adults", "up-to-18"}),
        ("any", {"everyone", "children", "sixteen-plus", "adults", "up-to-18"}),
        (None, {"everyone", "children", "sixteen-plus", "adults", "up-to-18"}),
    ],
)
def test_age_filter(age_group: str | None, shown: set[str]) -> None:
    services = [
        svc("everyone"),
        svc("children", eligibility={"age_max": 15}),
        svc("sixteen-plus", eligibility={"age_min": 16}),
        svc("adults", eligibility={"age_min": 18}),
        svc("up-to-18", eligibility={"age_max": 18}),  # an 18-year-old adult may use it
    ]
    assert set(ranked(services, age_group=age_group)) == shown


@pytest.mark.parametrize(
    ("gender", "shown"),
    [
        ("woman", {"anyone", "women-only"}),
        ("man", {"anyone", "men-only"}),
        (None, {"anyone", "women-only", "men-only"}),
    ],
)
def test_gender_filter_only_when_gender_is_known(gender: str | None, shown: set[str]) -> None:
    services = [
        svc("anyone"),
        svc("women-only", eligibility={"genders": "women"}),
        svc("men-only", eligibility={"genders": "men"}),
    ]
    assert set(ranked(services, gender=gender)) == shown


def test_emergency_services_are_never_ranked_but_can_be_looked_up() -> None:
    emergency = svc("emergency-999", types=["emergency"], crimes=("any",), value="999")
    directory = Directory([emergency, svc("helpline")])
    assert ids(directory.match(Query(at=DAY))) == ["helpline"]
    assert directory.total(Query(at=DAY)) == 1
    assert directory.get("emergency-999") == emergency
    assert directory.get("nothing") is None
    assert len(directory) == 1


def test_an_empty_directory() -> None:
    directory = Directory(())
    assert directory.match(Query(at=DAY)) == []
    assert directory.total(Query()) == 0
    assert directory.question(Query()) is None


def test_a_time_without_a_zone_is_refused() -> None:
    with pytest.raises(ValueError):
        Directory([svc("a-line")]).match(Query(at=datetime(2026, 12, 2, 11, 0)))


def test_now_is_the_default_time() -> None:
    assert ids(Directory([svc("a-line")]).match(Query())) == ["a-line"]


# -- ranking -------------------------------------------------------------------------


def test_a_specific_crime_type_beats_a_general_service() -> None:
    services = [
        svc("general-open", crimes=("any",), hours="always"),
        svc("specific-unknown-hours", crimes=("domestic_abuse",)),
    ]
    assert ranked(services, crime_types=("domestic_abuse",)) == [
        "specific-unknown-hours",
        "general-open",
    ]
    # With no crime type said, the general service fits best.
    assert ranked(services) == ["general-open", "specific-unknown-hours"]


def test_more_of_the_persons_crime_types_ranks_higher() -> None:
    services = [svc("da-only"), svc("da-and-stalking", crimes=("domestic_abuse", "stalking"))]
    assert ranked(services, crime_types=("domestic_abuse", "stalking")) == [
        "da-and-stalking",
        "da-only",
    ]


def test_local_then_london_then_national_when_otherwise_equal() -> None:
    services = [
        svc("a-national"),
        svc("b-london", area="london"),
        svc("c-hackney", area="boroughs", boroughs=("Hackney",)),
    ]
    assert ranked(services, borough="Hackney") == ["c-hackney", "b-london", "a-national"]


def test_open_now_before_closed_or_unknown() -> None:
    services = [
        svc("a-unknown"),
        svc("b-closed", hours=[period(["sat"], "09:00", "17:00")]),
        svc("c-open", hours=OFFICE),
    ]
    matches = Directory(services).match(Query(at=DAY), limit=3)
    assert ids(matches) == ["c-open", "a-unknown", "b-closed"]  # unknown and closed tie: by name
    assert [m.open_now for m in matches] == [True, None, False]


@pytest.mark.parametrize(
    ("moment", "urgent", "first"),
    [
        (DAY, False, "a-office"),  # both open: the better fit (a London service) first
        (NIGHT, False, "b-always"),
        (at("2026-12-02", "20:00"), False, "b-always"),  # still open, but it is night
        (DAY, True, "b-always"),
    ],
)
def test_at_night_or_when_urgent_24_7_first(moment: datetime, urgent: bool, first: str) -> None:
    services = [
        svc("a-office", area="london", hours=[period(WEEKDAYS, "09:00", "22:00")]),
        svc("b-always", hours="always"),
    ]
    assert ranked(services, at=moment, urgent=urgent)[0] == first


def test_a_website_open_24_7_counts_for_the_night_but_not_as_open_now() -> None:
    services = [svc("b-always-web", kind="web", hours="always"), svc("a-unknown-phone")]
    matches = Directory(services).match(Query(at=NIGHT))
    assert ids(matches) == ["b-always-web", "a-unknown-phone"]
    assert matches[0].open_now is None  # no one answers a website


@pytest.mark.parametrize(
    ("person", "group"),
    [
        ({"gender": "man"}, "men"),
        ({"gender": "woman"}, "women"),
        ({"lgbt": True}, "lgbt"),
        ({"age_group": "under_16"}, "children"),
        ({"age_group": "16_17"}, "young_people"),
    ],
)
def test_a_specialist_for_the_person_is_boosted(person: dict[str, Any], group: str) -> None:
    services = [
        svc("a-general-da", hours="always"),
        svc("b-specialist", eligibility={"specialist_for": [group]}),
    ]
    assert ranked(services, **person) == ["b-specialist", "a-general-da"]
    # Without that fact about the person, the specialist comes after everyone's service.
    assert ranked(services) == ["a-general-da", "b-specialist"]


def test_service_types_name_groups_too() -> None:
    services = [svc("a-general-da"), svc("b-mens-line", types=["domestic_abuse", "male_victims"])]
    assert ranked(services, gender="man") == ["b-mens-line", "a-general-da"]
    assert ranked(services, gender="woman") == ["a-general-da", "b-mens-line"]


def test_services_for_someone_else_come_after_general_services() -> None:
    services = [
        svc("a-lgbt-da", eligibility={"specialist_for": ["lgbt"]}, hours="always"),
        svc("b-any-crime", crimes=("any",)),
        svc("c-da", hours=None),
    ]
    assert ranked(services, crime_types=("domestic_abuse",)) == ["c-da", "b-any-crime", "a-lgbt-da"]
    assert ranked(services, crime_types=("domestic_abuse",), lgbt=True)[0] == "a-lgbt-da"


def test_gender_restricted_services_rank_lower_when_gender_is_unknown() -> None:
    services = [svc("a-women-only", eligibility={"genders": "women"}), svc("b-anyone")]
    assert ranked(services) == ["b-anyone", "a-women-only"]
    assert ranked(services, gender="woman") == ["a-women-only", "b-anyone"]  # by name


def test_a_partial_age_fit_ranks_lower() -> None:
    services = [svc("a-up-to-18", eligibility={"age_max": 18}), svc("b-anyone")]
    assert ranked(services, age_group="adult") == ["b-anyone", "a-up-to-18"]
    assert ranked(services, age_group="16_17") == ["a-up-to-18", "b-anyone"]


def test_side_routes_come_after_support() -> None:
    services = [
        svc("a-reporting", crimes=("any",), types=["reporting"], hours="always"),
        svc("b-crisis", crimes=("any",), types=["mental_health_crisis"], hours="always"),
        svc("c-support", crimes=("any",), types=["general"]),
    ]
    assert ranked(services)[0] == "c-support"
    # A reporting route for the crime itself is not a side route.
    reporting = svc("report-hate", crimes=("hate_crime",), types=["reporting", "hate_crime"])
    assert ranked([*services, reporting], crime_types=("hate_crime",))[0] == "report-hate"


def test_services_needing_a_police_report_come_later() -> None:
    services = [svc("a-reported-only", police_report_needed=True), svc("b-anyone")]
    assert ranked(services) == ["b-anyone", "a-reported-only"]


@pytest.mark.parametrize(
    ("language", "first"),
    [
        ("Polish", "b-polish"),
        ("polish", "b-polish"),
        ("Somali", "c-interpreters"),
        ("English", "a-english"),
        (None, "a-english"),
    ],
)
def test_language_boost(language: str | None, first: str) -> None:
    services = [
        svc("a-english"),
        svc("b-polish", languages=["English", "Polish"]),
        svc("c-interpreters", interpreters=True),
    ]
    assert ranked(services, language=language)[0] == first
    if language == "Polish":
        assert ranked(services, language=language)[1] == "c-interpreters"


def test_ties_break_by_name_then_id() -> None:
    services = [svc("c-line", name="Same"), svc("b-line", name="Apple"), svc("a-line", name="Same")]
    assert ranked(services) == ["b-line", "a-line", "c-line"]
    assert ranked(list(reversed(services))) == ["b-line", "a-line", "c-line"]


def test_services_reached_the_same_way_are_shown_once() -> None:
    services = [
        svc("national-stalking", crimes=("stalking",), value="0808 802 0300"),
        svc("london-stalking", crimes=("stalking",), area="london", value="0808 802 0300"),
        svc("other", crimes=("stalking",)),
    ]
    directory = Directory(services)
    query = Query(crime_types=("stalking",), borough="Lewisham", at=DAY)
    assert ids(directory.match(query)) == ["london-stalking", "other"]
    assert directory.total(query) == 2
    outside = Query(crime_types=("stalking",), outside_london=True, at=DAY)
    assert ids(directory.match(outside)) == ["national-stalking", "other"]


def test_pages_and_total() -> None:
    services = [svc(f"line-{n:02d}", crimes=("any",)) for n in range(8)]
    directory = Directory(services)
    query = Query(at=DAY)
    assert directory.total(query) == 8
    pages = [ids(directory.match(query, limit=3, offset=offset)) for offset in (0, 3, 6, 9)]
    assert pages == [
        ["line-00", "line-01", "line-02"],
        ["line-03", "line-04", "line-05"],
        ["line-06", "line-07"],
        [],
    ]
    assert directory.match(query, limit=0) == []


# -- reasons -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"hours": "always", "free": True}, "Free, 24/7, for anyone affected by domestic abuse."),
        ({"hours": OFFICE, "free": None}, "Open now, for anyone affected by domestic abuse."),
        (
            {"hours": [period(["sat"], "09:00", "12:00")], "free": False},
            "Closed now, for anyone affected by domestic abuse.",
        ),
        ({"hours": None, "free": True}, "Free, for anyone affected by domestic abuse."),
        ({"hours": None, "free": None}, "For anyone affected by domestic abuse."),
        (
            {"area": "london", "free": True},
            "Free, London only, for anyone affected by domestic abuse.",
        ),
        (
            {"area": "london", "free": None, "for_whom": "anyone in London affected by stalking"},
            "For anyone in London affected by stalking.",
        ),
        (
            {"area": "boroughs", "boroughs": ("Newham", "Hackney")},
            "Free, in Hackney, for anyone affected by domestic abuse.",
        ),
    ],
)
def test_the_reason_is_built_from_the_data(changes: dict[str, Any], reason: str) -> None:
    changes.setdefault("free", True)
    (found,) = Directory([svc("a-line", **changes)]).match(Query(borough="Hackney", at=DAY))
    assert found.reason == reason


def test_the_reason_follows_the_contact_shown() -> None:
    line = svc("a-line", free=True, hours=OFFICE)
    chat = contact("chat", hours="always")
    both = service("b-line", contacts=[contact("phone", hours=OFFICE), chat])
    assert Directory([line]).match(Query(at=NIGHT))[0].reason.startswith("Free, closed now, for")
    # The phone is closed, the 24/7 chat is what is shown.
    assert Directory([both]).match(Query(at=NIGHT))[0].reason.startswith("Free, 24/7, for")


# -- the one question ----------------------------------------------------------------


def test_age_is_asked_only_when_it_changes_the_answer() -> None:
    sixteen_plus = svc("a-sixteen-plus", eligibility={"age_min": 16}, hours="always")
    directory = Directory([sixteen_plus, svc("b-anyone"), svc("c-anyone"), svc("d-anyone")])
    assert directory.question(Query(at=DAY)) == "age_group"
    for age_group in ("under_16", "16_17", "adult", "any"):
        assert directory.question(Query(age_group=age_group, at=DAY)) is None
    # An age limit below the top 3 changes nothing there.
    low = Directory(
        [svc("z-sixteen-plus", eligibility={"age_min": 16}), svc("a-1"), svc("b-1"), svc("c-1")]
    )
    assert low.question(Query(at=DAY)) is None
