"""The case look-up actions steer the conversation; they never see a case or a secret."""

from __future__ import annotations

from typing import Any

import pytest
from rasa_sdk.executor import CollectingDispatcher

from actions import content
from actions.cases import (
    ActionAskCaseCheck,
    ActionCaseResult,
    ActionCaseUpdate,
    ValidateCaseVerificationForm,
)
from tests.factories import domain, run, tracker


def with_flags(flags: dict[str, Any]) -> Any:
    t = tracker("request_case_update", "any news")
    t.latest_message["metadata"] = {"case": flags}
    return t


def test_a_verified_person_gets_the_case_rendered_by_the_gateway() -> None:
    messages, events = run(ActionCaseUpdate(), with_flags({"verified": True}))
    assert messages == [
        {**messages[0], "custom": {"waymark": {"render": "case_status"}}}
    ] and not messages[0].get("text")
    assert events == [
        {"event": "slot", "timestamp": None, "name": "case_access", "value": "verified"}
    ]


def test_a_locked_out_person_is_told_other_ways_to_get_news_and_offered_a_person() -> None:
    messages, events = run(ActionCaseUpdate(), with_flags({"verified": False, "locked": True}))
    assert len(messages) == 1
    assert messages[0]["text"] == content.item("case.locked").parts[0]
    assert messages[0]["buttons"] == [{"title": "Talk to a person", "payload": "/request_human"}]
    assert not messages[0].get("custom"), "offered, not started: the person chooses"
    assert events[-1]["name"] == "case_access" and events[-1]["value"] == "locked"


def test_anyone_else_is_asked_for_their_details() -> None:
    messages, events = run(ActionCaseUpdate(), with_flags({}))
    assert messages == []
    assert events[-1] == {"event": "slot", "timestamp": None, "name": "case_access", "value": "ask"}
    assert {"event": "slot", "timestamp": None, "name": "case_check", "value": None} in events


def test_the_secret_question_tells_the_gateway_to_take_the_next_reply() -> None:
    messages, _ = run(
        ActionAskCaseCheck(), tracker("inform", slots={"crime_reference": "4301234/26"})
    )
    assert messages[0]["response"] == "utter_ask_case_secret"
    assert messages[1]["custom"] == {"waymark": {"expect": "secret", "reference": "4301234/26"}}
    messages, _ = run(ActionAskCaseCheck(), tracker("inform", slots={"case_step": "code"}))
    assert messages[0]["response"] == "utter_ask_case_code"
    assert messages[1]["custom"] == {"waymark": {"expect": "code"}}


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("4301234/26", "4301234/26"),
        ("my ref is 4301234 26", "4301234/26"),
        ("4301234-26", "4301234/26"),
        ("I don't have it", None),
        ("12345/26", None),
        (None, None),
    ],
)
def test_crime_references_are_read_as_people_type_them(
    typed: str | None, expected: str | None
) -> None:
    dispatcher = CollectingDispatcher()
    result = ValidateCaseVerificationForm().validate_crime_reference(
        typed, dispatcher, tracker("inform", typed), domain()
    )
    assert result["crime_reference"] == expected
    if typed is None:  # the slot was just cleared: nothing typed yet, nothing to say
        assert dispatcher.messages == []
    elif expected is None:
        assert dispatcher.messages[0]["response"] == "utter_crime_reference_not_understood"


@pytest.mark.parametrize(
    ("verdict", "slots", "response"),
    [
        ("verified", {"case_check": "verified"}, None),
        ("locked", {"case_check": "locked"}, None),
        ("no_route", {"case_check": "no_route"}, None),
        ("code_sent", {"case_check": None, "case_step": "code"}, None),
        ("wrong_code", {"case_check": None, "case_step": "code"}, "utter_case_wrong_code"),
        (
            "no_match",
            {"case_check": None, "crime_reference": None, "case_step": None},
            "utter_case_no_match",
        ),
        ("anything else", {"case_check": None}, None),
    ],
)
def test_the_gateways_verdict_steers_the_questions(
    verdict: str, slots: dict[str, Any], response: str | None
) -> None:
    dispatcher = CollectingDispatcher()
    result = ValidateCaseVerificationForm().validate_case_check(
        verdict, dispatcher, tracker("inform"), domain()
    )
    assert result == slots
    assert [m.get("response") for m in dispatcher.messages] == ([response] if response else [])


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        ("verified", {"custom": {"waymark": {"render": "case_status"}}}),
        ("locked", {"text": content.item("case.locked").parts[0]}),
        ("no_route", {"text": content.item("case.no_route").parts[0]}),
        (None, {"response": "utter_form_stopped"}),
    ],
)
def test_after_the_questions(verdict: str | None, expected: dict[str, Any]) -> None:
    messages, events = run(ActionCaseResult(), tracker("inform", slots={"case_check": verdict}))
    assert expected.items() <= messages[0].items()
    assert {e["name"] for e in events} == {
        "crime_reference",
        "case_check",
        "case_step",
        "case_access",
    }
    handoffs = [
        m["custom"] for m in messages if (m.get("custom") or {}).get("waymark", {}).get("handoff")
    ]
    if verdict == "locked":
        assert handoffs == [{"waymark": {"handoff": {"reason": "verification_locked"}}}]
    else:
        assert handoffs == []


def test_being_locked_out_hands_over_after_the_lock_out_text() -> None:
    messages, _ = run(ActionCaseResult(), tracker("inform", slots={"case_check": "locked"}))
    assert messages[0]["text"] == content.item("case.locked").parts[0]
    assert not messages[0].get("buttons")
    # The marker comes last, on its own, with no text: the gateway says what happens next.
    assert messages[1]["custom"] == {"waymark": {"handoff": {"reason": "verification_locked"}}}
    assert not messages[1].get("text")
    assert len(messages) == 2
