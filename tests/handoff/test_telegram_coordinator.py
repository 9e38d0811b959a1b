"""Coordinators on Telegram, through the live gateway: the real python-telegram-bot
Application against the fake Bot API, the real Twilio client against the fake Twilio,
and the real Rasa model. A coordinator's private chat is never a victim's."""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
from typing import Any

import pytest
from sqlalchemy import func, select

from actions import content
from bot.handoff.models import AuditEntry, Coordinator, Handoff, HandoffEvent
from bot.models import Contact, Inbound, Outbound, Owner
from tests.fakes.telegram_api import callback_update, text_update
from tests.handoff.conftest import (
    conversation_of,
    coordinator,
    everyone_off_duty,
    open_handoff,
)
from tests.harness import LiveGateway, fresh_number, wait_until

pytestmark = pytest.mark.rasa
_updates = itertools.count(3_000_000)
_victim_chats = itertools.count(6_000_001)
CLAIMED = content.item("handoff.claimed").parts[0].split("{name}")[0]  # "You are now talking to "
BACK = content.item("handoff.back").parts[0]
RATING = content.item("feedback.ask").parts[0]


# -- helpers (the SMS and full-cycle tests use them too) -------------------------------


def chat(c: Coordinator) -> int:
    assert c.telegram_chat_id is not None
    return int(c.telegram_chat_id)


def say(live: LiveGateway, chat_id: int, text: str) -> dict[str, Any]:
    """A text message in a private chat; returns the update (to post it again)."""
    update = text_update(next(_updates), chat_id, text)
    assert live.telegram_update(update).status_code == 200
    return update


def tap(live: LiveGateway, chat_id: int, data: str) -> dict[str, Any]:
    update = callback_update(next(_updates), chat_id, data)
    assert live.telegram_update(update).status_code == 200
    return update


def texts(live: LiveGateway, chat_id: int) -> list[str]:
    return [str(m["text"]) for m in live.telegram.sent(chat_id)]


def wait_text(live: LiveGateway, chat_id: int, needle: str, timeout: float = 30) -> str:
    """The first message to `chat_id` containing `needle`, once there is one."""
    (found, *_) = wait_until(
        lambda: [t for t in texts(live, chat_id) if needle in t], 1, timeout=timeout
    )
    return found


def keyboard(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(title, callback data) of an inline keyboard's buttons."""
    markup = message.get("reply_markup")
    if not markup:
        return []
    markup = json.loads(markup) if isinstance(markup, str) else markup
    return [(b["text"], b["callback_data"]) for row in markup["inline_keyboard"] for b in row]


def sms_victim(live: LiveGateway, first: str = "what does bail mean") -> tuple[str, int]:
    """A new SMS victim whose first message the bot has answered: (number, conversation)."""
    number = fresh_number()
    live.sms(number, first)
    conversation = conversation_of(live, "sms", number)
    wait_until(lambda: inbound(live, conversation.id, state="done"), 1)
    return number, conversation.id


def start_handoff(live: LiveGateway, conversation_id: int, reason: str = "request_human") -> int:
    """As the assistant's handoff marker would: the person is told, coordinators alerted."""
    return live.run(live.gateway.handoffs.start(conversation_id, reason))


def inbound(live: LiveGateway, conversation_id: int, **where: Any) -> list[Inbound]:
    # Message text is sealed at rest (bot/privacy/crypto.py): compared here, not in SQL.
    text = where.pop("text", None)
    with live.db() as session:
        found = list(
            session.scalars(
                select(Inbound)
                .filter_by(conversation_id=conversation_id, **where)
                .order_by(Inbound.id)
            )
        )
    return [row for row in found if text is None or row.text == text]


def handoff(live: LiveGateway, handoff_id: int) -> Handoff:
    with live.db() as session:
        found = session.get(Handoff, handoff_id)
        assert found is not None
        return found


def events(live: LiveGateway, handoff_id: int, kind: str) -> list[HandoffEvent]:
    with live.db() as session:
        return list(
            session.scalars(
                select(HandoffEvent)
                .where(HandoffEvent.handoff_id == handoff_id, HandoffEvent.kind == kind)
                .order_by(HandoffEvent.id)
            )
        )


def refreshed(live: LiveGateway, c: Coordinator) -> Coordinator:
    with live.db() as session:
        found = session.get(Coordinator, c.id)
        assert found is not None
        return found


def contacts_at(live: LiveGateway, channel: str, address: str) -> int:
    with live.db() as session:
        return int(
            session.scalar(
                select(func.count())
                .select_from(Contact)
                .where(Contact.channel == channel, Contact.address == address)
            )
            or 0
        )


def close_everything(live: LiveGateway) -> None:
    """Close every open handoff quietly (as the timers do when nobody came)."""
    with live.db() as session:
        ids = session.scalars(select(Handoff.id).where(Handoff.state != "closed")).all()
    for handoff_id in ids:
        live.run(live.gateway.handoffs.close(handoff_id, None, "returned_to_bot"))


def claimed_by_telegram(live: LiveGateway) -> tuple[Coordinator, str, int, int]:
    """An on-duty Telegram coordinator who has claimed a new SMS victim's handoff:
    (coordinator, victim number, conversation id, handoff id)."""
    everyone_off_duty(live)
    sam = coordinator(live, telegram=True)
    number, conversation_id = sms_victim(live)
    handoff_id = start_handoff(live, conversation_id)
    tap(live, chat(sam), f"claim:{handoff_id}")
    wait_text(live, chat(sam), "Latest messages")
    return refreshed(live, sam), number, conversation_id, handoff_id


# -- alerts and claiming -----------------------------------------------------------------


def test_an_alert_with_a_claim_button_reaches_the_on_duty_coordinator(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    everyone_off_duty(live)
    on = coordinator(live, telegram=True)
    off = coordinator(live, telegram=True, on_duty=False)
    number, conversation_id = sms_victim(live, "what does bail mean")
    handoff_id = start_handoff(live, conversation_id)

    (alert,) = [m for m in live.telegram.sent(chat(on)) if f"#{handoff_id}" in m["text"]]
    assert alert["text"] == f"Handoff #{handoff_id} (new): Asked for a person."
    assert keyboard(alert) == [(f"Claim #{handoff_id}", f"claim:{handoff_id}")]
    assert live.telegram.sent(chat(off)) == []
    # No content and no number in an alert.
    assert number not in alert["text"] and "bail" not in alert["text"]
    assert open_handoff(live, conversation_id) is not None


def test_tapping_claim_claims_it_and_sends_the_packet(live_gateway: LiveGateway) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam = coordinator(live, telegram=True, name="Sam Okafor")
    number, conversation_id = sms_victim(live, "what happens at a plea hearing")
    handoff_id = start_handoff(live, conversation_id)

    update = tap(live, chat(sam), f"claim:{handoff_id}")

    answered = live.telegram.called("answerCallbackQuery")
    assert any(a["callback_query_id"] == update["callback_query"]["id"] for a in answered)
    claimed = handoff(live, handoff_id)
    assert (claimed.state, claimed.coordinator_id) == ("claimed", sam.id)
    assert conversation_of(live, "sms", number).owner == Owner.HUMAN
    assert refreshed(live, sam).current_handoff_id == handoff_id
    packet = wait_text(live, chat(sam), "Latest messages")
    assert packet.startswith(f"#{handoff_id}: Asked for a person")
    assert "Risk: standard" in packet
    assert "Summary:" in packet
    assert "Person: what happens at a plea hearing" in packet
    assert number not in packet
    # The person is told who they are talking to, on their own channel.
    assert f"{CLAIMED}Sam Okafor" in " ".join(live.twilio.to(number))
    # A tap is not a victim's message: the coordinator's chat has no contact.
    assert contacts_at(live, "telegram", str(chat(sam))) == 0


def test_losing_the_race_says_who_has_it(live_gateway: LiveGateway) -> None:
    live = live_gateway
    everyone_off_duty(live)
    first = coordinator(live, telegram=True, name="Ama")
    second = coordinator(live, telegram=True, name="Ben")
    _, conversation_id = sms_victim(live)
    handoff_id = start_handoff(live, conversation_id)
    tap(live, chat(first), f"claim:{handoff_id}")
    tap(live, chat(second), f"claim:{handoff_id}")
    assert wait_text(live, chat(second), "already has") == f"Ama already has #{handoff_id}."
    assert handoff(live, handoff_id).coordinator_id == first.id
    # Tapping your own again says so, without a second claim.
    tap(live, chat(first), f"claim:{handoff_id}")
    assert f"#{handoff_id} is already yours" in wait_text(live, chat(first), "already yours")
    assert len(events(live, handoff_id, "claimed")) == 1


def test_an_unknown_handoff_gives_a_clear_error(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam = coordinator(live, telegram=True, on_duty=False)
    say(live, chat(sam), "/claim 987654321")
    assert wait_text(live, chat(sam), "987654321") == "There is no handoff #987654321."
    say(live, chat(sam), "/claim soon")
    assert "/claim N" in wait_text(live, chat(sam), "Write /claim")
    say(live, chat(sam), "hello, are you there?")
    assert "no open handoff" in wait_text(live, chat(sam), "no open handoff")
    say(live, chat(sam), "/frobnicate")
    assert "Unknown command" in wait_text(live, chat(sam), "Unknown command")


# -- talking to the person ----------------------------------------------------------------


def test_the_coordinators_text_reaches_the_victim_on_their_own_channel(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    everyone_off_duty(live)
    sam = coordinator(live, telegram=True, name="Sam")
    victim = next(_victim_chats)
    say(live, victim, "what does bail mean")
    conversation_id = conversation_of(live, "telegram", str(victim)).id
    wait_until(lambda: inbound(live, conversation_id, state="done"), 1)
    handoff_id = start_handoff(live, conversation_id)
    tap(live, chat(sam), f"claim:{handoff_id}")
    wait_text(live, victim, CLAIMED + "Sam")

    say(live, chat(sam), "Hello, I'm Sam from the Waymark team. How can I help?")
    assert "Hello, I'm Sam from the Waymark team. How can I help?" in texts(live, victim)
    (reply,) = events(live, handoff_id, "reply")
    assert reply.channel == "telegram" and reply.text is None  # no content in the timeline

    # Their answer comes to the coordinator; the bot stays quiet.
    before = len(texts(live, victim))
    say(live, victim, "I want to know when the trial is")
    relayed = wait_text(live, chat(sam), "when the trial is")
    assert relayed == f"#{handoff_id} Person: I want to know when the trial is"
    wait_until(lambda: inbound(live, conversation_id, note="for_human"), 1)
    assert len(texts(live, victim)) == before


def test_a_redelivered_update_is_not_relayed_twice(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam, number, _, handoff_id = claimed_by_telegram(live)
    update = say(live, chat(sam), "Is it safe to text you here?")
    assert live.telegram_update(update).status_code == 200
    assert live.telegram_update(update).status_code == 200
    assert live.twilio.to(number).count("Is it safe to text you here?") == 1
    assert len(events(live, handoff_id, "reply")) == 1
    # A new message with the same words is a new message.
    say(live, chat(sam), "Is it safe to text you here?")
    assert live.twilio.to(number).count("Is it safe to text you here?") == 2


def test_a_chat_that_is_not_a_coordinators_is_still_a_victim(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    everyone_off_duty(live)
    coordinator(live, telegram=True)
    _, conversation_id = sms_victim(live)
    handoff_id = start_handoff(live, conversation_id)
    stranger = next(_victim_chats)
    # Commands and Claim buttons mean nothing from someone who is not a coordinator.
    tap(live, stranger, f"claim:{handoff_id}")
    say(live, stranger, "what does bail mean")
    answer = wait_text(live, stranger, "bail")
    assert "bail" in answer.lower()
    assert handoff(live, handoff_id).state == "queued"
    assert contacts_at(live, "telegram", str(stranger)) == 1
    # An account that was switched off is no longer a coordinator either.
    gone = coordinator(live, telegram=True, active=False)
    say(live, chat(gone), "/queue")
    wait_until(lambda: texts(live, chat(gone)), 1)
    assert contacts_at(live, "telegram", str(chat(gone))) == 1


# -- commands ------------------------------------------------------------------------------


def test_note_is_kept_and_never_sent(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam, number, _, handoff_id = claimed_by_telegram(live)
    sent_before = len(live.twilio.to(number))
    say(live, chat(sam), "/note Prefers a call after 6pm")
    assert wait_text(live, chat(sam), "Note saved") == (
        f"Note saved on #{handoff_id}. The person does not see it."
    )
    (note,) = events(live, handoff_id, "note")
    assert note.text == "Prefers a call after 6pm" and note.coordinator_id == sam.id
    assert len(live.twilio.to(number)) == sent_before
    say(live, chat(sam), "/note")
    assert wait_text(live, chat(sam), "empty") == "The note is empty."


def test_queue_lists_urgent_first_with_claim_buttons(live_gateway: LiveGateway) -> None:
    live = live_gateway
    close_everything(live)  # earlier tests' handoffs would crowd the list
    sam, _, _, mine = claimed_by_telegram(live)
    _, normal_conversation = sms_victim(live)
    normal = start_handoff(live, normal_conversation)
    _, urgent_conversation = sms_victim(live)
    urgent = start_handoff(live, urgent_conversation, "self_harm")

    say(live, chat(sam), "/queue")
    (message,) = wait_until(
        lambda: [m for m in live.telegram.sent(chat(sam)) if m["text"].startswith("Waiting")], 1
    )
    lines = message["text"].splitlines()
    waiting = [line for line in lines if line.startswith("#")]
    assert waiting.index(next(w for w in waiting if w.startswith(f"#{urgent} URGENT"))) < (
        waiting.index(next(w for w in waiting if w.startswith(f"#{normal},")))
    )
    assert f"#{mine}, you (current): Asked for a person" in lines
    buttons = keyboard(message)
    assert (f"Claim #{urgent}", f"claim:{urgent}") in buttons
    assert (f"Claim #{normal}", f"claim:{normal}") in buttons
    assert all(data != f"claim:{mine}" for _, data in buttons)  # already claimed
    with live.db() as session:
        assert session.scalar(
            select(AuditEntry.id).where(
                AuditEntry.coordinator_id == sam.id, AuditEntry.action == "view_queue"
            )
        )
    # Tidy up: the next tests' queues start empty of these.
    for handoff_id in (normal, urgent):
        live.run(live.gateway.handoffs.close(handoff_id, None, "returned_to_bot"))


def test_transfer_gives_the_conversation_to_another_coordinator(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    sam, number, _, handoff_id = claimed_by_telegram(live)
    kim = coordinator(live, telegram=True, name="Kim")
    say(live, chat(sam), "/transfer nobody-called-this")
    assert "no coordinator called" in wait_text(live, chat(sam), "no coordinator")

    say(live, chat(sam), f"/transfer {kim.username}")
    assert wait_text(live, chat(sam), "is now with") == f"#{handoff_id} is now with Kim."
    assert f"#{handoff_id} was transferred to you" in wait_text(live, chat(kim), "transferred")
    assert handoff(live, handoff_id).coordinator_id == kim.id
    assert refreshed(live, kim).current_handoff_id == handoff_id
    assert refreshed(live, sam).current_handoff_id is None
    assert f"{CLAIMED}Kim" in " ".join(live.twilio.to(number))

    say(live, chat(kim), "Hi, it's Kim now.")
    assert "Hi, it's Kim now." in live.twilio.to(number)
    say(live, chat(sam), "Still me?")
    assert "no open handoff" in wait_text(live, chat(sam), "no open handoff")
    assert "Still me?" not in live.twilio.to(number)


def test_close_with_an_outcome_hands_back_and_offers_a_rating(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    sam, number, conversation_id, handoff_id = claimed_by_telegram(live)
    say(live, chat(sam), "/close sorted")
    listed = wait_text(live, chat(sam), "Choose an outcome")
    assert all(outcome in listed for outcome in ("resolved", "referred", "callback_arranged"))
    assert handoff(live, handoff_id).state == "claimed"

    say(live, chat(sam), "/close referred")
    assert wait_text(live, chat(sam), "Closed") == (
        f"Closed #{handoff_id} (referred). They are back with the assistant."
    )
    closed = handoff(live, handoff_id)
    assert (closed.state, closed.outcome) == ("closed", "referred")
    assert conversation_of(live, "sms", number).owner == Owner.BOT
    assert refreshed(live, sam).current_handoff_id is None
    sent = live.twilio.to(number)
    assert BACK in sent
    assert any(m.startswith(RATING) for m in sent)
    assert open_handoff(live, conversation_id) is None


def test_back_hands_the_person_back_to_the_assistant(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam, number, _, handoff_id = claimed_by_telegram(live)
    say(live, chat(sam), "/back")
    assert wait_text(live, chat(sam), "back with") == (f"#{handoff_id} is back with the assistant.")
    closed = handoff(live, handoff_id)
    assert (closed.state, closed.outcome) == ("closed", "handed_back")
    assert len(events(live, handoff_id, "handed_back")) == 1
    assert BACK in live.twilio.to(number)


def test_switch_duty_and_help(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam, _, _, first = claimed_by_telegram(live)
    _, conversation_id = sms_victim(live)
    second = start_handoff(live, conversation_id)
    say(live, chat(sam), f"/claim {second}")
    wait_until(lambda: [t for t in texts(live, chat(sam)) if t.startswith(f"#{second}:")], 1)
    assert refreshed(live, sam).current_handoff_id == second

    say(live, chat(sam), f"/switch {first}")
    assert wait_text(live, chat(sam), "now go to") == f"Your messages now go to #{first}."
    assert refreshed(live, sam).current_handoff_id == first
    other = coordinator(live, telegram=True)
    say(live, chat(other), f"/switch {first}")
    assert f"#{first} is not yours" in wait_text(live, chat(other), "not yours")

    say(live, chat(sam), "/close")
    assert f"You still have #{second}" in wait_text(live, chat(sam), f"Closed #{first}")
    assert handoff(live, first).outcome == "resolved"

    say(live, chat(sam), "/duty off")
    wait_text(live, chat(sam), "You are off duty.")
    assert refreshed(live, sam).on_duty is False
    say(live, chat(sam), "/duty on")
    wait_text(live, chat(sam), "You are on duty")
    assert refreshed(live, sam).on_duty is True
    say(live, chat(sam), "/duty maybe")
    wait_text(live, chat(sam), "Write /duty on or /duty off.")
    say(live, chat(sam), "/help")
    assert "/transfer username" in wait_text(live, chat(sam), "Waymark coordinator commands")
    live.run(live.gateway.handoffs.close(second, None, "returned_to_bot"))


# -- two coordinators at once --------------------------------------------------------------


def test_two_coordinators_claiming_through_the_desk_at_once_one_wins(
    gateway_on: LiveGateway,
) -> None:
    live = gateway_on
    ama = coordinator(live, telegram=True)
    ben = coordinator(live, telegram=True)
    desk = live.gateway.handoffs
    for _ in range(3):
        _, conversation_id = sms_victim(live)
        handoff_id = start_handoff(live, conversation_id)

        async def both(handoff_id: int = handoff_id) -> list[bool]:
            return list(
                await asyncio.gather(desk.claim(handoff_id, ama), desk.claim(handoff_id, ben))
            )

        results = live.run(both())
        assert sorted(results) == [False, True]
        winner = ama if results[0] else ben
        assert handoff(live, handoff_id).coordinator_id == winner.id
        assert len(events(live, handoff_id, "claimed")) == 1
        told = [o for o in outbound(live, conversation_id) if o.text.startswith(CLAIMED)]
        assert len(told) == 1


def test_two_claim_taps_at_once_one_wins(gateway_on: LiveGateway) -> None:
    live = gateway_on
    ama = coordinator(live, telegram=True, name="Ama")
    ben = coordinator(live, telegram=True, name="Ben")
    _, conversation_id = sms_victim(live)
    handoff_id = start_handoff(live, conversation_id)

    ready = threading.Barrier(2)
    statuses: list[int] = []

    def tap_now(c: Coordinator) -> None:
        update = callback_update(next(_updates), chat(c), f"claim:{handoff_id}")
        ready.wait()
        statuses.append(live.telegram_update(update).status_code)

    threads = [threading.Thread(target=tap_now, args=(c,)) for c in (ama, ben)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert statuses == [200, 200]

    winner = handoff(live, handoff_id).coordinator_id
    assert winner in {ama.id, ben.id}
    won, lost = (ama, ben) if winner == ama.id else (ben, ama)
    assert wait_text(live, chat(won), "Latest messages").startswith(f"#{handoff_id}:")
    assert wait_text(live, chat(lost), "already has") == (
        f"{won.display_name} already has #{handoff_id}."
    )
    assert not any("Latest messages" in t for t in texts(live, chat(lost)))
    assert len(events(live, handoff_id, "claimed")) == 1
    with live.db() as session:
        claims = session.scalars(
            select(AuditEntry.coordinator_id).where(
                AuditEntry.handoff_id == handoff_id, AuditEntry.action == "claim"
            )
        ).all()
    assert claims == [won.id]
    # Both taps were handled before their webhooks returned: the person was told once.
    told = [o for o in outbound(live, conversation_id) if o.text.startswith(CLAIMED)]
    assert len(told) == 1


def outbound(live: LiveGateway, conversation_id: int) -> list[Outbound]:
    with live.db() as session:
        return list(
            session.scalars(
                select(Outbound)
                .where(Outbound.conversation_id == conversation_id)
                .order_by(Outbound.id)
            )
        )
