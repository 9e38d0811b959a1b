"""Coordinators by SMS, through the live gateway: Twilio's real RequestValidator and REST
client against the fake Twilio, and the real Rasa model. A coordinator's phone is never
treated as a victim's."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from bot.handoff.models import Coordinator
from bot.models import Owner
from tests.handoff.conftest import conversation_of, coordinator, everyone_off_duty
from tests.handoff.test_telegram_coordinator import (
    BACK,
    CLAIMED,
    RATING,
    close_everything,
    contacts_at,
    events,
    handoff,
    inbound,
    refreshed,
    sms_victim,
    start_handoff,
)
from tests.harness import LiveGateway, fresh_number, wait_until

pytestmark = pytest.mark.rasa


def texted(live: LiveGateway, c: Coordinator, needle: str, timeout: float = 30) -> str:
    """The first text to the coordinator's phone containing `needle`."""
    assert c.phone is not None
    phone = c.phone
    (found, *_) = wait_until(
        lambda: [t for t in live.twilio.to(phone) if needle in t], 1, timeout=timeout
    )
    return found


def text_from(live: LiveGateway, c: Coordinator, body: str, sid: str | None = None) -> str:
    """A text from the coordinator's phone; returns its MessageSid."""
    assert c.phone is not None
    sid = sid or f"SM{uuid.uuid4().hex}"
    response = live.sms(c.phone, body, sid=sid)
    assert response.status_code == 200
    assert response.text == '<?xml version="1.0" encoding="UTF-8"?><Response />'
    return sid


def sms_coordinator(live: LiveGateway, **extra: Any) -> Coordinator:
    return coordinator(live, phone=fresh_number(), **extra)


def claimed_by_sms(live: LiveGateway) -> tuple[Coordinator, str, int, int]:
    everyone_off_duty(live)
    sam = sms_coordinator(live, name="Sam")
    number, conversation_id = sms_victim(live, "what is a victim personal statement")
    handoff_id = start_handoff(live, conversation_id)
    text_from(live, sam, f"CLAIM {handoff_id}")
    texted(live, sam, f"#{handoff_id} is yours")
    return refreshed(live, sam), number, conversation_id, handoff_id


def test_the_alert_is_one_text_with_how_to_claim(live_gateway: LiveGateway) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam = sms_coordinator(live)
    number, conversation_id = sms_victim(live)
    handoff_id = start_handoff(live, conversation_id)
    alert = texted(live, sam, f"#{handoff_id}")
    assert alert == (
        f"Handoff #{handoff_id} (new): Asked for a person. Reply CLAIM {handoff_id} to take it."
    )
    assert len(alert) <= 160
    assert number not in alert


def test_claim_sends_a_short_packet_and_tells_the_person(live_gateway: LiveGateway) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam = sms_coordinator(live, name="Sam Patel")
    number, conversation_id = sms_victim(live, "what is a victim personal statement")
    handoff_id = start_handoff(live, conversation_id)
    text_from(live, sam, f"claim #{handoff_id}")
    packet = texted(live, sam, "is yours")
    assert packet.startswith(f"#{handoff_id} is yours. Asked for a person. Risk: standard.")
    assert 'They said: "what is a victim personal statement"' in packet
    assert "DONE to close" in packet
    assert number not in packet
    assert handoff(live, handoff_id).coordinator_id == sam.id
    assert f"{CLAIMED}Sam Patel" in " ".join(live.twilio.to(number))
    # The coordinator's phone never became a contact.
    assert contacts_at(live, "sms", str(sam.phone)) == 0


def test_texts_are_relayed_both_ways_and_end_closes(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam, number, conversation_id, handoff_id = claimed_by_sms(live)

    text_from(live, sam, "Hello, I'm Sam from the Waymark team. How can I help?")
    assert "Hello, I'm Sam from the Waymark team. How can I help?" in live.twilio.to(number)
    (reply,) = events(live, handoff_id, "reply")
    assert reply.channel == "sms"

    before = len(live.twilio.to(number))
    live.sms(number, "Can someone come to court with me?")
    relayed = texted(live, sam, "court with me")
    assert relayed == f"#{handoff_id} Person: Can someone come to court with me?"
    wait_until(lambda: inbound(live, conversation_id, note="for_human"), 1)
    assert len(live.twilio.to(number)) == before  # the bot said nothing

    text_from(live, sam, "END")
    assert texted(live, sam, "Closed") == (
        f"Closed #{handoff_id} (resolved). They are back with the assistant."
    )
    closed = handoff(live, handoff_id)
    assert (closed.state, closed.outcome) == ("closed", "resolved")
    assert conversation_of(live, "sms", number).owner == Owner.BOT
    sent = live.twilio.to(number)
    assert BACK in sent and any(m.startswith(RATING) for m in sent)
    assert contacts_at(live, "sms", str(sam.phone)) == 0


def test_a_redelivered_message_sid_is_not_relayed_twice(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam, number, _, handoff_id = claimed_by_sms(live)
    sid = text_from(live, sam, "Are you safe to talk now?")
    text_from(live, sam, "Are you safe to talk now?", sid=sid)
    text_from(live, sam, "Are you safe to talk now?", sid=sid)
    assert live.twilio.to(number).count("Are you safe to talk now?") == 1
    assert len(events(live, handoff_id, "reply")) == 1
    # A redelivered command is not run twice either.
    note = text_from(live, sam, "NOTE asked about court support")
    text_from(live, sam, "NOTE asked about court support", sid=note)
    wait_until(lambda: events(live, handoff_id, "note"), 1)
    assert len(events(live, handoff_id, "note")) == 1


def test_an_unknown_id_or_no_open_handoff_gives_a_clear_error(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    sam = sms_coordinator(live, on_duty=False)
    text_from(live, sam, "CLAIM 987654321")
    assert texted(live, sam, "987654321") == "There is no handoff #987654321."
    text_from(live, sam, "Hello?")
    assert texted(live, sam, "no open handoff") == (
        "You have no open handoff. Reply QUEUE to see who is waiting."
    )
    assert contacts_at(live, "sms", str(sam.phone)) == 0


def test_queue_note_duty_and_back(live_gateway: LiveGateway) -> None:
    live = live_gateway
    close_everything(live)  # earlier tests' handoffs would crowd the list
    sam, number, _, mine = claimed_by_sms(live)
    _, other_conversation = sms_victim(live)
    waiting = start_handoff(live, other_conversation)

    text_from(live, sam, "queue")
    listed = texted(live, sam, "waiting:")
    assert f"#{waiting} " in listed and "Reply CLAIM N." in listed
    assert f"Yours: #{mine} (current)." in listed
    assert len(listed) <= 320

    text_from(live, sam, "Note: wants a call back tomorrow")
    assert texted(live, sam, "Note saved") == (
        f"Note saved on #{mine}. The person does not see it."
    )
    (note,) = events(live, mine, "note")
    assert note.text == "wants a call back tomorrow"
    assert "wants a call back tomorrow" not in " ".join(live.twilio.to(number))

    text_from(live, sam, "DUTY OFF")
    texted(live, sam, "You are off duty.")
    assert refreshed(live, sam).on_duty is False
    text_from(live, sam, "duty on")
    texted(live, sam, "You are on duty.")
    assert refreshed(live, sam).on_duty is True

    text_from(live, sam, "END sorted")
    assert "Not closed. Outcomes: resolved" in texted(live, sam, "Not closed")
    text_from(live, sam, "BACK")
    assert texted(live, sam, "back with") == f"#{mine} is back with the assistant."
    assert handoff(live, mine).outcome == "handed_back"
    assert BACK in live.twilio.to(number)
    live.run(live.gateway.handoffs.close(waiting, None, "returned_to_bot"))


def test_words_that_look_like_commands_still_reach_the_person(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    sam, number, _, handoff_id = claimed_by_sms(live)
    for body in ("Back soon, I'm checking.", "End of the week is fine", "Yes"):
        text_from(live, sam, body)
        assert body in live.twilio.to(number)
    assert handoff(live, handoff_id).state == "claimed"
    # A command without its number is never sent on either: the commands are listed.
    text_from(live, sam, "Claim")
    assert texted(live, sam, "Waymark: CLAIM N").startswith("Waymark: CLAIM N, QUEUE")
    assert "Claim" not in live.twilio.to(number)
    # STOP is Twilio's opt-out for the coordinator's own number: never sent on.
    text_from(live, sam, "STOP")
    assert "STOP" not in live.twilio.to(number)
    text_from(live, sam, "DONE callback_arranged")
    texted(live, sam, "(callback_arranged)")
    assert handoff(live, handoff_id).outcome == "callback_arranged"
