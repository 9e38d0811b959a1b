"""Phone numbers in the assistant's messages are tappable: phone-number entities on
Telegram (with UTF-16 offsets, and the message still sent if Telegram refuses them)."""

from __future__ import annotations

import json

import pytest

from bot.channels.phones import phone_spans
from tests.harness import LiveGateway
from tests.signposting.test_referrals import Person

pytestmark = pytest.mark.rasa


def spans(text: str) -> list[str]:
    units = text.encode("utf-16-le")
    return [units[o * 2 : (o + n) * 2].decode("utf-16-le") for o, n, _ in phone_spans(text)]


def test_the_numbers_the_content_uses_are_found() -> None:
    text = (
        "Call 0808 2000 247, or 999 then 55. Text SHOUT to 85258. Relay UK: 18001 0808 168 9111."
        " Samaritans: 116 123. Text 07717 989 025. Call 101."
    )
    assert spans(text) == [
        "0808 2000 247",
        "999",
        "85258",
        "18001 0808 168 9111",
        "116 123",
        "07717 989 025",
        "101",
    ]
    assert [d for _, _, d in phone_spans("Call 0808 2000 247.")] == ["08082000247"]


def test_dates_times_and_amounts_are_not_numbers() -> None:
    text = "Since 2024, open 10:00 to 20:30, within 12 months, £9.75, 28 days, ref 4301234/26."
    assert spans(text) == []


def test_offsets_count_utf16_units_like_telegram() -> None:
    text = "🙂 Call 0808 2000 247"  # the emoji is 2 UTF-16 units
    ((offset, length, _),) = phone_spans(text)
    assert (offset, length) == (8, 13)


def telegram_person(live: LiveGateway) -> Person:
    person = Person(live, channel="telegram")
    return person


def sent_to(live: LiveGateway, person: Person) -> list[dict[str, object]]:
    return live.telegram.sent(int(person.address))


def test_results_on_telegram_mark_each_phone_number(live_gateway: LiveGateway) -> None:
    person = telegram_person(live_gateway)
    person.marker({"services": {"crime_types": ["domestic_abuse"], "location": "Lewisham"}})
    messages = sent_to(live_gateway, person)
    assert messages
    marked = 0
    for message in messages:
        text = str(message["text"])
        raw = message.get("entities") or []
        entities = json.loads(raw) if isinstance(raw, str) else raw
        expected = [(o, n) for o, n, _ in phone_spans(text)]
        assert [(e["offset"], e["length"]) for e in entities] == expected
        assert all(e["type"] == "phone_number" for e in entities)
        marked += len(entities)
    assert marked >= 2


def test_a_refused_entity_still_delivers_the_message_plain(live_gateway: LiveGateway) -> None:
    person = telegram_person(live_gateway)
    live_gateway.telegram.refuse_entities = True
    try:
        # A 24-hour line: a service's phone is only shown while it is open, so a
        # weekday-only number would make this test depend on the clock.
        person.marker({"services": {"crime_types": ["domestic_abuse"]}})
    finally:
        live_gateway.telegram.refuse_entities = False
    messages = sent_to(live_gateway, person)
    plain = [m for m in messages if "entities" not in m]
    assert plain and any("0808 2000 247" in str(m["text"]) for m in plain)
