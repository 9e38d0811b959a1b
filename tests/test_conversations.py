"""Whole conversations through the real Rasa server, model and action server."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from actions import content
from actions.dates import add_months, long_date
from tests.conftest import RasaStack

pytestmark = pytest.mark.rasa
DANGER_FIRST = "If you are in danger now, call 999."


def new_sender() -> str:
    return f"test-{uuid.uuid4().hex}"


def texts(messages: list[dict]) -> list[str]:
    return [m.get("text", "") for m in messages]


def test_greeting_says_automated_not_police_and_999(rasa_stack: RasaStack) -> None:
    reply = " ".join(texts(rasa_stack.say(new_sender(), "hi")))
    assert reply.startswith(content.item("assistant.greet").parts[0])
    assert "999" in reply


@pytest.mark.parametrize(
    "text",
    [
        "he's outside my door now",
        "hes here and banging on the door",
        "i'm hiding in the bathroom, he's got a knife",
        "can't talk he's in the next room",
    ],
)
def test_danger_now_gets_999_in_the_very_first_reply(rasa_stack: RasaStack, text: str) -> None:
    sender = new_sender()
    rasa_stack.say(sender, "what does charged mean")
    first = texts(rasa_stack.say(sender, text))[0]
    assert first.startswith(DANGER_FIRST)
    assert "55" in first


def test_self_harm_gets_999_then_samaritans_and_shout(rasa_stack: RasaStack) -> None:
    reply = texts(rasa_stack.say(new_sender(), "everyone would be better off without me"))
    assert reply[0].startswith(DANGER_FIRST)
    assert "116 123" in " ".join(reply) and "85258" in " ".join(reply)


def test_emergency_in_the_middle_of_the_review_questions(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    reply = rasa_stack.say(sender, "the police said no further action, can i challenge that?")
    assert texts(reply)[0].startswith(content.item("rtr.overview").parts[0])
    assert reply[-1]["buttons"], "asks who made the decision, with buttons"

    first = texts(rasa_stack.say(sender, "he's outside my door now"))[0]
    assert first.startswith(DANGER_FIRST)
    assert not (rasa_stack.tracker(sender).get("active_loop") or {}).get("name")


def test_emergency_while_asked_for_the_date(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    rasa_stack.say(sender, "how do i ask for a review of the cps decision")
    rasa_stack.say(sender, '/inform{"decision_maker": "cps"}')
    first = texts(rasa_stack.say(sender, "he's found me, he's at the front door right now"))[0]
    assert first.startswith(DANGER_FIRST)


def test_review_deadline_is_three_months_from_being_told(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    rasa_stack.say(sender, "can i get the decision not to charge looked at again")
    asked = texts(rasa_stack.say(sender, '/inform{"decision_maker": "police"}'))
    assert any("When were you told" in t for t in asked)
    reply = texts(rasa_stack.say(sender, "2 weeks ago"))
    today = datetime.now(ZoneInfo("Europe/London")).date()
    told = today - timedelta(weeks=2)
    assert reply[0] == content.item("rtr.deadline").part(
        0, told_date=long_date(told), deadline=long_date(add_months(told, 3))
    )
    assert reply[1].startswith(content.item("rtr.police").parts[0])


def test_saying_skip_stops_the_review_questions(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    rasa_stack.say(sender, "victims right to review")
    reply = texts(rasa_stack.say(sender, "not now"))
    assert reply and "999" not in reply[0]
    assert not (rasa_stack.tracker(sender).get("active_loop") or {}).get("name")


def test_two_misunderstandings_in_a_row_offer_a_person(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    first = texts(rasa_stack.say(sender, "/nlu_fallback"))
    assert first[0].startswith(content.item("assistant.fallback").parts[0])
    second = texts(rasa_stack.say(sender, "/nlu_fallback"))
    assert second[0].startswith(content.item("assistant.fallback_offer_person").parts[0])


def test_an_uncertain_turn_gets_one_fallback_reply_not_a_loop(rasa_stack: RasaStack) -> None:
    # "2" after an answer with no choices: no policy is confident, so the core fallback
    # answers, once, and the assistant waits for the person.
    sender = new_sender()
    rasa_stack.say(sender, "what does bail mean")
    replies = texts(rasa_stack.say(sender, "2"))
    assert len(replies) == 1
    assert replies[0].startswith(content.item("assistant.fallback").parts[0])


def test_bot_challenge_is_answered_honestly(rasa_stack: RasaStack) -> None:
    reply = texts(rasa_stack.say(new_sender(), "am i talking to a real person?"))
    assert reply[0].startswith(content.item("assistant.bot_challenge").parts[0])


def test_stage_then_more(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    entry = content.item("stage.released_under_investigation")
    assert texts(rasa_stack.say(sender, "what does released under investigation mean"))[0] == (
        content.with_more_prompt(entry.parts[0])
    )
    assert texts(rasa_stack.say(sender, "MORE"))[0].startswith(entry.parts[1])


def test_no_stage_named_gets_buttons(rasa_stack: RasaStack) -> None:
    reply = rasa_stack.say(new_sender(), "what are the stages of the justice process")
    assert len(reply[0]["buttons"]) == 8


def test_anonymous_reporting_never_asks_for_a_name(rasa_stack: RasaStack) -> None:
    reply = " ".join(texts(rasa_stack.say(new_sender(), "can i report it without giving my name")))
    assert reply.startswith(content.item("report.anonymous").parts[0])
    assert "name?" not in reply
