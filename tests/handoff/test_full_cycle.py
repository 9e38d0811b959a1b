"""A whole handoff, as it happens: a victim texts, a coordinator claims on Telegram and
talks to them, closes, and the assistant takes over again. Through the live gateway with
the real model, the real Telegram and Twilio libraries, and the local fakes."""

from __future__ import annotations

import time

import pytest

from actions import content
from bot.handoff.models import Handoff, Priority
from bot.models import Owner
from tests.conftest import RasaStack
from tests.handoff.conftest import conversation_of, coordinator, everyone_off_duty, open_handoff
from tests.handoff.test_telegram_coordinator import (
    BACK,
    CLAIMED,
    RATING,
    chat,
    claimed_by_telegram,
    handoff,
    inbound,
    keyboard,
    say,
    tap,
    texts,
    wait_text,
)
from tests.harness import LiveGateway, fresh_number, wait_until

pytestmark = pytest.mark.rasa
EMERGENCY = "he is outside with a knife, I'm scared"
EMERGENCY_REPLY = list(content.item("safety.emergency").parts)


def queued(live: LiveGateway, conversation_id: int) -> Handoff:
    (found,) = wait_until(
        lambda: [h for h in [open_handoff(live, conversation_id)] if h is not None], 1
    )
    return found


def full_cycle(live: LiveGateway, opening: str, reason: str) -> None:
    everyone_off_duty(live)
    sam = coordinator(live, telegram=True, name="Sam")
    number = fresh_number()

    # 1. The victim asks for a person by SMS: queued, and the coordinator alerted.
    live.sms(number, opening)
    conversation_id = conversation_of(live, "sms", number).id
    waiting = queued(live, conversation_id)
    assert (waiting.state, waiting.reason) == ("queued", reason)
    (alert,) = wait_until(
        lambda: [m for m in live.telegram.sent(chat(sam)) if f"#{waiting.id} (new)" in m["text"]],
        1,
    )
    ((_, data),) = keyboard(alert)

    # 2. The coordinator claims it with the button and gets the packet.
    tap(live, chat(sam), data)
    packet = wait_text(live, chat(sam), "Latest messages")
    assert packet.startswith(f"#{waiting.id}")
    assert f"Person{' [URGENT]' if reason == 'emergency' else ''}: {opening}" in packet
    assert number not in packet
    assert f"{CLAIMED}Sam" in " ".join(live.twilio.to(number))

    # 3. The coordinator's Telegram message reaches the victim by SMS.
    say(live, chat(sam), "Hello, I'm Sam from the Waymark team. How can I help?")
    assert "Hello, I'm Sam from the Waymark team. How can I help?" in live.twilio.to(number)

    # 4. The victim's next SMS goes to the coordinator's Telegram; the bot stays quiet.
    before = len(live.twilio.to(number))
    live.sms(number, "I need to know if he was charged")
    assert wait_text(live, chat(sam), "if he was charged") == (
        f"#{waiting.id} Person: I need to know if he was charged"
    )
    wait_until(lambda: inbound(live, conversation_id, note="for_human"), 1)
    time.sleep(1)  # a bot answer would have gone out by now
    assert len(live.twilio.to(number)) == before

    # 5. Closed: the victim is back with the assistant and offered a rating.
    say(live, chat(sam), "/close resolved")
    wait_text(live, chat(sam), f"Closed #{waiting.id} (resolved)")
    assert handoff(live, waiting.id).outcome == "resolved"
    assert conversation_of(live, "sms", number).owner == Owner.BOT
    after_close = live.twilio.to(number)
    assert BACK in after_close[before:]
    assert any(m.startswith(RATING) for m in after_close[before:])

    # 6. The next question is answered by the bot as usual.
    live.sms(number, "what does bail mean")
    answer = wait_until(lambda: live.twilio.to(number)[len(after_close) :], 1)
    assert "bail" in " ".join(answer).lower()
    wait_until(
        lambda: inbound(live, conversation_id, note="answered", text="what does bail mean"), 1
    )


def test_full_cycle(live_gateway: LiveGateway) -> None:
    """The issue's main path: "I want to talk to a person" (the assistant's handoff
    marker from action_request_human starts it)."""
    full_cycle(live_gateway, "I want to talk to a person", "request_human")


def test_full_cycle_from_a_safety_message(live_gateway: LiveGateway) -> None:
    """The same cycle started by the gateway's safety check (an urgent handoff)."""
    full_cycle(live_gateway, EMERGENCY, "emergency")


def test_an_emergency_while_a_person_owns_it_gets_999_and_is_flagged(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    sam, number, conversation_id, handoff_id = claimed_by_telegram(live)
    before = len(live.twilio.to(number))
    sent_at = time.monotonic()
    live.sms(number, EMERGENCY)
    wait_until(lambda: [m for m in live.twilio.to(number)[before:] if m in EMERGENCY_REPLY], 4)
    assert time.monotonic() - sent_at < 10  # at once, not after a coordinator
    flagged = wait_text(live, chat(sam), "with a knife")
    assert flagged == f"#{handoff_id} URGENT Person: {EMERGENCY}"
    assert handoff(live, handoff_id).priority == Priority.URGENT
    assert handoff(live, handoff_id).coordinator_id == sam.id
    wait_until(lambda: inbound(live, conversation_id, note="for_human"), 1)
    # Only the 999 reply went out: Sam still has them, nobody else was asked to.
    time.sleep(1)
    assert live.twilio.to(number)[before:] == EMERGENCY_REPLY
    assert not any("Claim" in t and f"#{handoff_id}" in t for t in texts(live, chat(sam)))


def test_a_rasa_session_expiry_during_a_handoff_does_not_let_the_bot_speak(
    live_gateway: LiveGateway, rasa_stack: RasaStack
) -> None:
    live = live_gateway
    sam, number, conversation_id, handoff_id = claimed_by_telegram(live)
    sender = conversation_of(live, "sms", number).rasa_sender
    assert rasa_stack.tracker(sender)["paused"] is True
    # What Rasa does when a session expires: the new session is not paused.
    live.run(live.gateway.rasa.add_event(sender, {"event": "session_started"}))
    assert rasa_stack.tracker(sender)["paused"] is False

    before = len(live.twilio.to(number))
    live.sms(number, "can I get compensation")
    assert wait_text(live, chat(sam), "compensation") == (
        f"#{handoff_id} Person: can I get compensation"
    )
    wait_until(lambda: inbound(live, conversation_id, note="for_human"), 1)
    time.sleep(1)
    assert live.twilio.to(number)[before:] == []
    assert conversation_of(live, "sms", number).owner == Owner.HUMAN
