"""Asking for a person and feedback: the actions tell the gateway with markers.

The gateway (bot/handoff/desk.py `HandoffDesk.on_marker`) starts the handoff and tells
the person what happens next, so a handoff marker never comes with text of its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from actions import content
from actions.fallback import ActionFallback
from actions.handoff import (
    HUMAN_BUTTON,
    ActionRequestHuman,
    ActionStoreFeedback,
    asks_how_to_give_feedback,
    handoff_reason,
)
from actions.topics import ActionAnswerTopic
from bot.handoff.models import REASONS
from tests.factories import run, tracker, user_event

BUTTON = {"title": "Talk to a person", "payload": "/request_human"}


def handoff(reason: str) -> dict[str, Any]:
    return {"waymark": {"handoff": {"reason": reason}}}


def markers(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["custom"] for m in messages if m.get("custom")]


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [m["text"] for m in messages if m.get("text")]


def turn(intent: str, action: str, text: str = "") -> list[dict[str, Any]]:
    """An earlier user message and the action that answered it."""
    return [
        user_event(intent, text),
        {"event": "action", "name": action},
        {"event": "action", "name": "action_listen"},
    ]


def only_the_marker(messages: list[dict[str, Any]], reason: str) -> None:
    assert len(messages) == 1
    assert messages[0]["custom"] == handoff(reason)
    assert not messages[0].get("text") and not messages[0].get("response")
    assert not messages[0].get("buttons")


def test_the_button_is_the_one_the_case_answer_offers() -> None:
    from bot.cases.status import HUMAN_BUTTON as CASE_BUTTON

    assert HUMAN_BUTTON == CASE_BUTTON == BUTTON


# -- action_request_human ---------------------------------------------------------------


def test_asking_for_a_person_sends_only_the_handoff_marker() -> None:
    messages, events = run(ActionRequestHuman(), tracker("request_human", "human please"))
    only_the_marker(messages, "request_human")
    assert events == []


def test_asking_while_locked_out_of_case_look_ups_says_so() -> None:
    t = tracker("request_human", "/request_human", slots={"case_access": "locked"})
    messages, events = run(ActionRequestHuman(), t)
    only_the_marker(messages, "verification_locked")
    assert events == []


def test_the_gateways_lock_out_flag_counts_too() -> None:
    # After the look-up questions lock someone out the slot is cleared; the gateway's
    # flag in the message's metadata still says so.
    t = tracker("request_human", "can i talk to someone")
    t.latest_message["metadata"] = {"case": {"verified": False, "locked": True}}
    messages, _ = run(ActionRequestHuman(), t)
    only_the_marker(messages, "verification_locked")


@pytest.mark.parametrize(
    ("earlier", "reason"),
    [
        (turn("withdraw_from_case", "action_answer_topic", "i want to drop it"), "withdraw"),
        (turn("complain", "action_answer_topic", "i want to complain"), "complain"),
        (
            turn("nlu_fallback", "action_fallback", "blah")
            + turn("nlu_fallback", "action_fallback", "blah again"),
            "fallback",
        ),
        (turn("nlu_fallback", "action_fallback", "blah"), "request_human"),  # no offer yet
        (
            turn("withdraw_from_case", "action_answer_topic")
            + turn("ask_court_support", "action_answer_topic"),
            "request_human",  # only the turn just before counts
        ),
        (turn("bot_challenge", "action_answer_topic", "are you a bot"), "request_human"),
        ([], "request_human"),
    ],
)
def test_the_reason_says_what_the_person_was_doing_just_before(
    earlier: list[dict[str, Any]], reason: str
) -> None:
    t = tracker("request_human", "/request_human", events=earlier)
    assert handoff_reason(t) == reason
    messages, _ = run(ActionRequestHuman(), t)
    only_the_marker(messages, reason)


def test_locked_out_comes_before_what_was_said_just_before() -> None:
    t = tracker(
        "request_human",
        "/request_human",
        slots={"case_access": "locked"},
        events=turn("complain", "action_answer_topic"),
    )
    assert handoff_reason(t) == "verification_locked"


def test_every_reason_is_one_the_gateway_knows() -> None:
    for reason in ("request_human", "fallback", "withdraw", "complain", "verification_locked"):
        assert reason in REASONS


# -- offers: a button, never a handoff ----------------------------------------------------


def test_the_second_misunderstanding_offers_a_person_with_a_button() -> None:
    t = tracker("nlu_fallback", "blah again", events=turn("nlu_fallback", "action_fallback"))
    messages, events = run(ActionFallback(), t)
    assert texts(messages) == [content.item("assistant.fallback_offer_person").parts[0]]
    assert messages[-1]["buttons"] == [BUTTON]
    assert markers(messages) == []
    assert events[-1] == {"event": "followup", "timestamp": None, "name": "action_listen"}


def test_the_first_misunderstanding_offers_no_button() -> None:
    messages, _ = run(ActionFallback(), tracker("nlu_fallback", "blah"))
    assert not messages[0].get("buttons")
    assert markers(messages) == []


@pytest.mark.parametrize(
    ("intent", "text", "key"),
    [
        ("withdraw_from_case", "i want to withdraw my statement", "assistant.withdraw"),
        ("complain", "how do i complain about the police", "complaints.overview"),
        ("bot_challenge", "am i talking to a real person", "assistant.bot_challenge"),
    ],
)
def test_withdrawing_and_complaining_keep_their_answer_and_offer_a_person(
    intent: str, text: str, key: str
) -> None:
    messages, events = run(ActionAnswerTopic(), tracker(intent, text))
    entry = content.item(key)
    assert texts(messages) == [content.with_more_prompt(entry.parts[0])]
    assert messages[-1]["buttons"] == [BUTTON]
    assert markers(messages) == []
    assert events[0] == {"event": "slot", "timestamp": None, "name": "more_key", "value": key}


@pytest.mark.parametrize(
    ("intent", "text"),
    [
        ("ask_court_support", "what happens at court"),
        ("greet", "hi"),
        ("express_distress", "i cant cope"),
    ],
)
def test_other_answers_offer_no_person_and_no_rating(intent: str, text: str) -> None:
    messages, _ = run(ActionAnswerTopic(), tracker(intent, text))
    assert all(not m.get("buttons") for m in messages)
    assert markers(messages) == []


# -- feedback -------------------------------------------------------------------------------


def test_goodbye_says_goodbye_then_lets_the_gateway_offer_a_rating() -> None:
    messages, events = run(ActionAnswerTopic(), tracker("goodbye", "bye"))
    assert texts(messages) == [content.item("assistant.goodbye").parts[0]]
    assert messages[-1]["custom"] == {"waymark": {"feedback": "offer"}}
    assert not messages[-1].get("text")
    assert len(messages) == 2
    assert [e["name"] for e in events] == ["more_key", "more_index"]


@pytest.mark.parametrize(
    "text", ["this was helpful", "you were useless", "the messages are too long"]
)
def test_feedback_is_thanked_and_kept(text: str) -> None:
    messages, events = run(ActionStoreFeedback(), tracker("feedback", text))
    assert texts(messages) == [content.item("feedback.thanks").parts[0]]
    assert messages[-1]["custom"] == {"waymark": {"feedback": "store"}}
    assert not messages[-1].get("text")
    assert len(messages) == 2
    assert [e["name"] for e in events] == ["more_key", "more_index"]


@pytest.mark.parametrize(
    "text", ["can i give feedback?", "how do i rate this", "I want to leave feedback", "feedback"]
)
def test_asking_how_to_give_feedback_gets_the_answer_and_nothing_is_kept(text: str) -> None:
    assert asks_how_to_give_feedback(text)
    messages, _ = run(ActionStoreFeedback(), tracker("feedback", text))
    assert texts(messages) == [content.item("assistant.feedback_how").parts[0]]
    assert markers(messages) == []


@pytest.mark.parametrize(
    "text",
    [
        "i want to give feedback: the answers were too long",
        "i want to give you 5 stars",
        "useless bot",
        "this made things a lot clearer",
    ],
)
def test_feedback_with_something_to_say_is_not_a_question(text: str) -> None:
    assert not asks_how_to_give_feedback(text)
