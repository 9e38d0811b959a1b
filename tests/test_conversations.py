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


# -- signposting: the actions send markers; the gateway finds services and makes referrals --

LEWISHAM = "is there anyone who can help me, I'm in Lewisham and my ex keeps turning up"
NOT_STORED = {"channel": "sms", "needs": {"stored": False}}


def markers(messages: list[dict]) -> list[dict]:
    return [m["custom"]["waymark"] for m in messages if m.get("custom")]


def test_the_issues_sentence_asks_nothing_and_asks_for_the_services(
    rasa_stack: RasaStack,
) -> None:
    reply = rasa_stack.say(new_sender(), LEWISHAM, metadata=NOT_STORED)
    assert not [m for m in reply if m.get("text")]
    assert markers(reply) == [
        {
            "services": {
                "crime_types": ["domestic_abuse", "stalking"],
                "location": "Lewisham",
                "postcode": None,
                "place": None,
                "age_group": None,
                "gender": None,
                "lgbt": False,
                "language": None,
                "offset": 0,
            }
        }
    ]


def test_the_services_questions_keep_only_the_postcode_district(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    asked = rasa_stack.say(sender, "who can support me")
    assert len(asked[-1]["buttons"]) == 7
    asked = rasa_stack.say(sender, '/inform{"crime_type": "domestic_abuse"}')
    assert "borough" in asked[-1]["text"]
    reply = rasa_stack.say(sender, "E8 1AB")
    (found,) = markers(reply)
    assert found["services"]["postcode"] == "E8"
    assert found["services"]["crime_types"] == ["domestic_abuse"]
    slots = rasa_stack.tracker(sender)["slots"]
    assert slots["postcode"] == "E8" and "1AB" not in str(slots)
    assert (slots["more_key"], slots["more_index"]) == ("services", 3.0)
    (more,) = markers(rasa_stack.say(sender, "MORE"))
    assert more["services"]["offset"] == 3


def test_skipping_both_questions_still_asks_for_services(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    rasa_stack.say(sender, "who can support me")
    rasa_stack.say(sender, "rather not say")
    (found,) = markers(rasa_stack.say(sender, "skip"))
    assert found["services"]["crime_types"] == []
    assert found["services"]["location"] is None


def test_emergency_in_the_services_questions_gets_999_first(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    rasa_stack.say(sender, "who can support me")
    first = texts(rasa_stack.say(sender, "my ex is outside my door now"))[0]
    assert first.startswith(DANGER_FIRST)
    assert not (rasa_stack.tracker(sender).get("active_loop") or {}).get("name")


def test_asking_for_a_person_in_the_services_questions(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    rasa_stack.say(sender, "who can support me")
    reply = rasa_stack.say(sender, "/request_human")
    assert markers(reply) == [{"handoff": {"reason": "request_human"}}]
    assert not (rasa_stack.tracker(sender).get("active_loop") or {}).get("name")


def test_a_referral_asks_the_needs_first_then_for_consent(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    reply = rasa_stack.say(
        sender, '/request_referral{"service_id": "victim-support"}', metadata=NOT_STORED
    )
    assert texts(reply)[-1] == "Are you safe right now?"
    rasa_stack.say(sender, "yes", metadata=NOT_STORED)
    rasa_stack.say(sender, "an interpreter", metadata=NOT_STORED)
    asked = rasa_stack.say(sender, "polish", metadata=NOT_STORED)  # the language question
    assert "disability" in texts(asked)[-1]
    rasa_stack.say(sender, "skip", metadata=NOT_STORED)
    rasa_stack.say(sender, "my two kids", metadata=NOT_STORED)
    rasa_stack.say(sender, "text me", metadata=NOT_STORED)
    reply = rasa_stack.say(sender, "evenings", metadata=NOT_STORED)
    assert markers(reply) == [
        {
            "needs": {
                "safe_now": "yes",
                "communication": "interpreter",
                "language": "Polish",
                "disability": "skip",
                "others": "children",
                "contact": "text",
                "safe_times": "evening",
            }
        },
        {"referral": {"offer": "victim-support", "reason": None}},
    ]
    reply = rasa_stack.say(sender, "/affirm", metadata={"needs": {"stored": True}})
    assert markers(reply) == [{"referral": {"consent": "victim-support", "reason": None}}]
    slots = rasa_stack.tracker(sender)["slots"]
    assert slots["needs_contact"] is None and slots["referral_service"] is None


def test_a_referral_with_needs_stored_and_refused(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    stored = {"needs": {"stored": True}}
    rasa_stack.say(sender, LEWISHAM, metadata=stored)
    assert markers(rasa_stack.say(sender, "REFER", metadata=stored)) == [
        {"referral": {"choose": True}}
    ]
    reply = rasa_stack.say(
        sender, '/request_referral{"service_id": "national-stalking-helpline"}', metadata=stored
    )
    assert markers(reply) == [
        {"referral": {"offer": "national-stalking-helpline", "reason": "domestic_abuse"}}
    ]
    assert markers(rasa_stack.say(sender, "/deny", metadata=stored)) == [
        {"referral": {"refused": "national-stalking-helpline"}}
    ]
    reply = rasa_stack.say(sender, "cancel my referral please", metadata=stored)
    assert markers(reply) == [{"referral": {"withdraw": True}}]


def test_not_safe_now_sends_only_that(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    asked = rasa_stack.say(sender, "I want to tell you what support I need")
    assert texts(asked)[-1] == "Are you safe right now?"
    reply = rasa_stack.say(sender, "no")
    assert reply == [{**reply[0], "custom": {"waymark": {"needs": {"safe_now": "no"}}}}]
    assert not reply[0].get("text")
