"""The results as SMS: 2 segments at most per message, numbered, with the right prompts."""

from __future__ import annotations

import itertools
import json
import random
from typing import Any

import pytest

from actions.content import item
from bot.services import render
from bot.services.matching import Directory, Match, Query
from bot.services.schema import Service
from tests.services.builders import WEEKDAYS, at, contact, period, service
from tests.test_content import sms_segments

DAY = at("2026-12-02", "11:00")
NIGHT = at("2026-12-02", "23:30")

NDAH = service(
    "national-domestic-abuse-helpline",
    name="National Domestic Abuse Helpline",
    contacts=[contact("phone", "0808 2000 247", hours="always")],
)
STALKING = service(
    "london-stalking-support-service",
    name="London Stalking Support Service",
    crime_types=["stalking"],
    for_whom="anyone in London affected by stalking",
    free=None,
    coverage={"area": "london"},
    contacts=[contact("phone", "0808 802 0300", hours=None, note="press 2 for the London service")],
)
VICTIM_SUPPORT = service(
    "victim-support",
    name="Victim Support",
    types=["general"],
    crime_types=["any"],
    for_whom="any crime, reported or not",
    contacts=[contact("phone", "0808 168 9111", hours="always")],
)
STOP_HATE = service(
    "stop-hate-uk",
    name="Stop Hate UK",
    crime_types=["hate_crime"],
    referrals=False,
    contacts=[
        contact("phone", "0800 138 1625", hours=[period(WEEKDAYS, "09:00", "17:00")]),
        contact("text", "07717 989 025", hours="always"),
    ],
)
TRUE_VISION = service(
    "true-vision",
    name="True Vision",
    types=["reporting", "hate_crime"],
    crime_types=["hate_crime"],
    referrals=False,
    free=None,
    contacts=[contact("web", "report-it.org.uk", hours=None, note="online form")],
)
RASSSL = service(
    "rape-and-sexual-abuse-support-line",
    name="Rape and Sexual Abuse Support Line",
    crime_types=["sexual_violence"],
    for_whom="anyone 16 or over affected by sexual violence, whenever it happened",
    referrals=False,
    contacts=[contact("chat", "247sexualabusesupport.org.uk", hours="always", note="online chat")],
)


def texts(
    services: list[Service], query: Query | None = None, *, offset: int = 0, limit: int = 3
) -> list[str]:
    query = query or Query(at=DAY)
    directory = Directory(services)
    matches = directory.match(query, limit=limit, offset=offset)
    return render.results(matches, query, offset=offset, total=directory.total(query))


def assert_sms_sized(messages: list[str]) -> None:
    for text in messages:
        assert render.sms_length(text) <= render.SMS_LIMIT, text
        assert sms_segments(text) <= 2, text


def test_three_results_in_two_messages_like_the_spec() -> None:
    query = Query(crime_types=("domestic_abuse", "stalking"), borough="Lewisham", at=DAY)
    first, second = texts([NDAH, STALKING, VICTIM_SUPPORT], query)
    assert first == (
        "These services can help. 1) National Domestic Abuse Helpline: call 0808 2000 247. "
        "Free, 24/7, for anyone affected by domestic abuse. 2) London Stalking Support Service: "
        "call 0808 802 0300 (press 2 for the London service). For anyone in London affected "
        "by stalking."
    )
    assert second == (
        "3) Victim Support: call 0808 168 9111. Free, 24/7, for any crime, reported or not. "
        "Reply REFER and we can ask one to contact you."
    )
    assert_sms_sized([first, second])


def test_more_only_when_more_remain_and_refer_only_for_referral_services() -> None:
    more_refer = item("services.more_refer").part(0)
    more = item("services.more").part(0)
    refer = item("services.refer").part(0)
    hate = Query(crime_types=("hate_crime",), at=DAY)
    # 3 shown of 4 (Victim Support is the 4th); none of the 3 takes referrals.
    shown = texts([STOP_HATE, TRUE_VISION, VICTIM_SUPPORT, NDAH], hate, limit=2)
    assert shown[-1].endswith(more)
    # Everything shown, and Victim Support takes referrals.
    last = texts([STOP_HATE, TRUE_VISION, VICTIM_SUPPORT], hate)
    assert last[-1].endswith(refer)
    assert more not in " ".join(last)
    # More remain and a shown service takes referrals.
    assert texts([NDAH, STALKING, VICTIM_SUPPORT, STOP_HATE], Query(at=DAY))[-1].endswith(
        more_refer
    )
    # Nothing more and no referrals: no prompt at all.
    (only,) = texts([STOP_HATE], hate)
    assert "Reply" not in only


def test_more_pages_continue_the_numbering() -> None:
    services = [
        service(f"line-{n}", name=f"Line {n}", contacts=[contact("phone", f"0800 00{n} 000")])
        for n in range(1, 6)
    ]
    page = texts(services, offset=3)
    assert page[0].startswith(
        f"{item('services.intro_more').part(0)} 4) Line 4: call 0800 004 000."
    )
    assert " 5) Line 5:" in " ".join(page)
    assert "Reply MORE" not in " ".join(page)


def test_the_contact_shown_is_the_best_open_now() -> None:
    day = " ".join(texts([STOP_HATE], Query(at=DAY)))
    night = " ".join(texts([STOP_HATE], Query(at=NIGHT)))
    assert "1) Stop Hate UK: call 0800 138 1625. Free, open now, for" in day
    assert "1) Stop Hate UK: text 07717 989 025. Free, 24/7, for" in night
    chat = " ".join(texts([RASSSL], Query(at=NIGHT)))
    assert "chat at 247sexualabusesupport.org.uk (online chat). Free, 24/7," in chat
    web = " ".join(texts([TRUE_VISION], Query(at=DAY)))
    assert "1) True Vision: go to report-it.org.uk (online form). For anyone" in web


def test_language_line_when_the_language_is_not_english() -> None:
    line = item("services.language").part(0)
    assert "interpreter" in line
    polish = Query(language="Polish", at=DAY)
    first_page = texts([NDAH, VICTIM_SUPPORT, STOP_HATE, STALKING], polish)
    assert line in " ".join(first_page)
    assert_sms_sized(first_page)
    # Said once: not again on the next page.
    assert line not in " ".join(
        texts([NDAH, VICTIM_SUPPORT, STOP_HATE, STALKING], polish, offset=3)
    )
    for language in ("English", "english", None):
        assert line not in " ".join(texts([NDAH], Query(language=language, at=DAY)))


def test_outside_london_says_these_are_national_services() -> None:
    query = Query(crime_types=("domestic_abuse",), outside_london=True, at=DAY)
    (message, *_) = texts([NDAH, STALKING, VICTIM_SUPPORT], query)
    assert message.startswith(item("services.intro_national").part(0))
    assert "national" in item("services.intro_national").part(0)
    assert "London Stalking" not in message


def test_no_results_points_to_victim_support() -> None:
    (message,) = render.results([], Query(at=DAY), offset=0, total=0)
    assert "Victim Support" in message and "0808 168 9111" in message and "24/7" in message
    (later,) = render.results([], Query(at=DAY), offset=3, total=3)
    assert later == item("services.no_more").part(0)
    assert "0808 168 9111" in later


def longest(service_id: str, n: int, *, kind: str = "web") -> Service:
    """Every shown field at its longest."""
    value = {"web": f"{'a' * 60}.org.uk/{'b' * 120}{n}", "phone": f"{n}" * 10 + " 1234567890"}[kind]
    return service(
        service_id,
        name=f"{n}" * 60,
        for_whom="w" * 70,
        coverage={"area": "boroughs", "boroughs": ["Kingston upon Thames"]},
        contacts=[contact(kind, value, hours="always", note="n" * 80)],
        free=True,
    )


@pytest.mark.parametrize("kind", ["web", "phone"])
def test_even_the_longest_entries_fit(kind: str) -> None:
    services = [longest(f"long-{n}", n, kind=kind) for n in range(5)]
    query = Query(borough="Kingston upon Thames", language="Polish", at=DAY)
    messages = texts(services, query)
    assert_sms_sized(messages)
    joined = " ".join(messages)
    for n in range(1, 4):
        assert f"{n}) " in joined
    if kind == "phone":
        for digit in "012":
            assert f"call {digit * 10} 1234567890 (" in joined  # the number is never cut


def test_random_directories_always_fit() -> None:
    rng = random.Random(6)
    notes = [None, "press 2 for the London service", "online chat", "n" * 80]
    whom = ["anyone affected by crime", "w" * 70, "young people in London under 25"]
    for n in range(60):
        services = [
            service(
                f"random-{n}-{i}",
                name=rng.choice(["Short", "A much longer service name for testing", "x" * 60]),
                for_whom=rng.choice(whom),
                free=rng.choice([True, False, None]),
                referrals=rng.choice([True, False]),
                coverage=rng.choice([{"area": "national"}, {"area": "london"}]),
                contacts=[
                    contact(
                        rng.choice(["phone", "text", "chat", "web", "email"]),
                        hours=rng.choice(["always", None, [period(WEEKDAYS, "09:00", "17:00")]]),
                        note=rng.choice(notes),
                    )
                ],
            )
            for i in range(rng.randint(1, 6))
        ]
        query = Query(
            language=rng.choice([None, "Polish"]),
            outside_london=rng.choice([True, False]),
            at=rng.choice([DAY, NIGHT]),
        )
        for offset, limit in itertools.product((0, 3), (3, 5)):
            assert_sms_sized(texts(services, query, offset=offset, limit=limit))


def test_results_fit_two_messages_for_typical_entries() -> None:
    query = Query(crime_types=("sexual_violence",), at=NIGHT)
    survivors = service(
        "survivors-trust-helpline",
        name="The Survivors Trust helpline",
        crime_types=["sexual_violence"],
        for_whom="people of any gender affected by sexual violence",
        contacts=[contact("phone", "0808 801 0818")],
    )
    havens = service(
        "the-havens",
        name="The Havens",
        crime_types=["sexual_violence"],
        for_whom="anyone in London raped or sexually assaulted in the past 12 months",
        coverage={"area": "london"},
        contacts=[contact("web", "thehavens.org.uk", hours="always", note="3 centres in London")],
    )
    messages = texts([RASSSL, havens, survivors], query)
    assert len(messages) == 2
    assert "1) " in messages[0] and "2) " in messages[0] and "3) " in messages[1]
    assert_sms_sized(messages)


def test_a_match_never_loses_its_reason_or_number() -> None:
    query = Query(at=DAY)
    matches: list[Match] = Directory([NDAH]).match(query)
    line = render.result_line(1, matches[0], DAY, room=75)
    assert line == "1) National Domestic Abuse Helpline: call 0808 2000 247. Free, 24/7..."
    line = render.result_line(1, matches[0], DAY, room=60)
    assert line == "1) National Domestic Abuse Helpline: call 0808 2000 247."


def test_the_age_question_has_a_button_per_answer() -> None:
    text, buttons = render.age_question()
    assert text == item("services.age_question").part(0)
    payloads: list[Any] = [b["payload"] for b in buttons]
    assert payloads == [
        '/inform{"age_group":"under_16"}',
        '/inform{"age_group":"16_17"}',
        '/inform{"age_group":"adult"}',
        '/inform{"age_group":"any"}',
    ]
    for payload in payloads:
        json.loads(payload.removeprefix("/inform"))
    assert all(b["title"] for b in buttons)
    # On SMS the buttons become "Reply 1 for Under 16" lines: still 2 segments at most.
    typed = text + "".join(f"\nReply {n} for {b['title']}" for n, b in enumerate(buttons, 1))
    assert sms_segments(typed) <= 2
