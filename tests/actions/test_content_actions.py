"""Actions that send content: stages, topics, reporting, safety, MORE, fallback.

Support services are found by the gateway: see tests/actions/test_support_actions.py.
"""

from __future__ import annotations

import pytest

from actions import content
from actions.fallback import ActionFallback, misunderstandings_in_a_row
from actions.more import ActionMore
from actions.reporting import ActionExplainReportingOptions, reporting_key
from actions.safety_replies import ActionSafetyReply
from actions.stages import ActionExplainStage
from actions.topics import TOPICS, ActionAnswerTopic, topic_key
from bot.cases import vocabulary
from tests.factories import domain, run, tracker, user_event

STAGES = list(vocabulary.STAGES)  # the case store's stages are the domain's cjs_stage values


def test_the_case_store_uses_the_domains_stages_and_crime_types() -> None:
    slots = domain()["slots"]
    assert list(vocabulary.STAGES) == slots["cjs_stage"]["values"]
    # The slot also takes `any` (the person would rather not say).
    assert [*vocabulary.CRIME_TYPES, "any"] == slots["crime_type"]["values"]


def texts(messages: list[dict]) -> list[str]:
    return [m.get("text") or "" for m in messages]


@pytest.mark.parametrize("stage", STAGES)
def test_every_stage_is_explained_with_more_to_follow(stage: str) -> None:
    messages, events = run(
        ActionExplainStage(), tracker("ask_cjs_stage", entities={"cjs_stage": stage})
    )
    entry = content.item(f"stage.{stage}")
    assert texts(messages) == [content.with_more_prompt(entry.parts[0])]
    assert events == [
        {"event": "slot", "timestamp": None, "name": "more_key", "value": f"stage.{stage}"},
        {"event": "slot", "timestamp": None, "name": "more_index", "value": 1.0},
    ]


def test_no_stage_named_asks_which_with_buttons() -> None:
    messages, events = run(ActionExplainStage(), tracker("ask_cjs_stage", "what happens next"))
    assert [m["response"] for m in messages] == ["utter_ask_which_stage"]
    assert events == []


def test_more_sends_the_next_part_then_says_when_there_is_no_more() -> None:
    entry = content.item("stage.charge")
    messages, events = run(
        ActionMore(), tracker("more", "MORE", slots={"more_key": "stage.charge", "more_index": 1.0})
    )
    expected = entry.parts[1] if len(entry.parts) == 2 else content.with_more_prompt(entry.parts[1])
    assert texts(messages) == [expected]
    last = len(entry.parts) - 1
    messages, events = run(
        ActionMore(),
        tracker("more", "MORE", slots={"more_key": "stage.charge", "more_index": float(last)}),
    )
    assert texts(messages) == [entry.parts[last]]
    assert [e["value"] for e in events] == [None, None]
    messages, _ = run(ActionMore(), tracker("more", "more"))
    assert [m["response"] for m in messages] == ["utter_more_none"]


@pytest.mark.parametrize("intent", ["emergency", "self_harm_risk"])
def test_safety_reply_sends_999_first_and_every_part_at_once(intent: str) -> None:
    messages, events = run(ActionSafetyReply(), tracker(intent, "he's outside"))
    sent = texts(messages)
    assert [e["name"] for e in events] == ["more_key", "more_index"]
    assert sent[0].startswith("If you are in danger now, call 999.")
    key = "safety.emergency" if intent == "emergency" else "safety.self_harm"
    assert sent == list(content.item(key).parts)
    assert "MORE" not in " ".join(sent)


def test_emergency_reply_gives_the_silent_solution() -> None:
    messages, _ = run(ActionSafetyReply(), tracker("emergency", "help"))
    assert "55" in messages[0]["text"]


def test_self_harm_reply_gives_samaritans_and_shout() -> None:
    messages, _ = run(ActionSafetyReply(), tracker("self_harm_risk", "i want to end it"))
    everything = " ".join(texts(messages))
    assert "116 123" in everything and "85258" in everything


@pytest.mark.parametrize(
    ("intent", "text", "key"),
    [
        ("ask_court_support", "will i get travel expenses", "court.expenses"),
        ("ask_court_support", "can i have a screen so i dont see him", "court.special_measures"),
        ("ask_court_support", "what happens at court", "court.overview"),
        ("ask_compensation", "how do i claim from cica", "compensation.cica"),
        ("ask_victims_rights", "what are enhanced rights", "rights.enhanced"),
        ("ask_victims_rights", "how often should they update me", "rights.updates"),
        ("ask_victims_rights", "what is the victims code", "rights.overview"),
        ("bot_challenge", "are you a bot", "assistant.bot_challenge"),
        ("withdraw_from_case", "i want to drop it", "assistant.withdraw"),
        ("express_distress", "i cant cope", "safety.distress"),
    ],
)
def test_topics_pick_the_most_specific_item(intent: str, text: str, key: str) -> None:
    assert topic_key(intent, text) == key
    messages, _ = run(ActionAnswerTopic(), tracker(intent, text))
    assert texts(messages)[0].startswith(content.item(key).parts[0])


def test_every_topic_key_exists() -> None:
    keys = content.catalogue()
    for default, refinements in TOPICS.values():
        assert default in keys
        assert all(key in keys for _, key in refinements)


@pytest.mark.parametrize(
    ("text", "crime_type", "key"),
    [
        ("how do i report it", None, "report.overview"),
        ("can i report without giving my name", None, "report.anonymous"),
        ("it happened years ago, can i still report", "sexual_violence", "report.years_ago"),
        ("can i report it for my friend", None, "report.through_someone"),
        ("im deaf, how do i report", None, "report.deaf_access"),
        ("it happened years ago can i still report", None, "report.years_ago"),
        ("im deaf how do i contact the police", None, "report.deaf_access"),
        ("how do i report it", "hate_crime", "report.hate_crime"),
        ("how do i report it", "fraud", "report.fraud"),
        ("how do i report it", "cyber_crime", "report.fraud"),
        ("how do i report it", "sexual_violence", "report.sexual_violence"),
        ("how do i report it", "domestic_abuse", "report.domestic_abuse"),
        ("how do i report it", "burglary", "report.overview"),
        ("how do i report it", "other", "report.overview"),
        ("how do i report it", "any", "report.overview"),
    ],
)
def test_reporting_options_by_what_was_asked_then_crime_type(
    text: str, crime_type: str | None, key: str
) -> None:
    assert reporting_key(text, crime_type) == key
    messages, _ = run(
        ActionExplainReportingOptions(),
        tracker("ask_reporting_options", text, slots={"crime_type": crime_type}),
    )
    assert texts(messages)[0].startswith(content.item(key).parts[0])


def test_reporting_never_asks_for_a_name() -> None:
    for key, entry in content.catalogue().items():
        if key.startswith("report."):
            assert "your name?" not in " ".join(entry.parts).lower()


def _fallback_turn(text: str) -> list[dict]:
    return [user_event("nlu_fallback", text), {"event": "action", "name": "action_fallback"}]


def test_first_misunderstanding_asks_to_rephrase_second_offers_a_person() -> None:
    first = tracker("nlu_fallback", "blah")
    assert misunderstandings_in_a_row(first.events) == 1
    messages, events = run(ActionFallback(), first)
    assert texts(messages)[0].startswith(content.item("assistant.fallback").parts[0])
    # It then waits for the person, rather than being predicted again (a loop).
    assert events[-1] == {"event": "followup", "timestamp": None, "name": "action_listen"}

    second = tracker("nlu_fallback", "blah again", events=_fallback_turn("blah"))
    assert misunderstandings_in_a_row(second.events) == 2
    messages, _ = run(ActionFallback(), second)
    assert texts(messages)[0].startswith(content.item("assistant.fallback_offer_person").parts[0])


def test_an_understood_message_resets_the_count() -> None:
    events = [
        *_fallback_turn("blah"),
        user_event("greet", "hi"),
        {"event": "action", "name": "action_answer_topic"},
    ]
    assert misunderstandings_in_a_row(tracker("nlu_fallback", "blah", events=events).events) == 1
