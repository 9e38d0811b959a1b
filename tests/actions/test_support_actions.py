"""Signposting: the actions ask only what is needed and tell the gateway with markers.

The gateway finds the services, stores the needs and makes the referrals, and writes
every word the person sees about them; so a marker never comes with text of its own.
"""

from __future__ import annotations

from typing import Any

import pytest

from actions.more import ActionMore
from actions.needs import (
    NEEDS,
    ActionStoreNeeds,
    ValidateNeedsForm,
    needs_answers,
    typed_answer,
)
from actions.postcodes import district_of
from actions.referrals import (
    ActionMakeReferral,
    ActionRefuseReferral,
    ActionRequestReferral,
    ActionWithdrawReferral,
)
from actions.support import (
    ActionSupportServices,
    ValidateSupportForm,
    age_group_from,
    crime_types,
    gender_from,
    lgbt_from,
    place_from,
    stalking_from,
)
from tests.factories import domain, run, tracker, user_event

LEWISHAM = "is there anyone who can help me, I'm in Lewisham and my ex keeps turning up"


def markers(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["custom"]["waymark"] for m in messages if m.get("custom")]


def slots_set(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


def only_markers(messages: list[dict[str, Any]]) -> None:
    for message in messages:
        assert message.get("custom"), message
        assert not message.get("text") and not message.get("response")
        assert not message.get("buttons")


def services(**fields: Any) -> dict[str, Any]:
    query = {
        "crime_types": [],
        "location": None,
        "postcode": None,
        "place": None,
        "age_group": None,
        "gender": None,
        "lgbt": False,
        "language": None,
        "offset": 0,
    }
    return {"services": {**query, **fields}}


def support_request(text: str, entities: dict[str, str] | None = None, **kw: Any) -> Any:
    return tracker("ask_support_services", text, entities=entities, **kw)


# -- what the person's own words say ------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "group"),
    [
        ("I'm 15 and scared", "under_16"),
        ("im 16 years old", "16_17"),
        ("i am 17", "16_17"),
        ("aged 12", "under_16"),
        ("I'm under 16", "under_16"),
        ("im 45 and my husband hits me", "adult"),
        ("my son is 14 and got mugged", "under_16"),
        ("my 9 year old saw what happened", "under_16"),
        ("I'm 5 minutes away", None),
        ("i'm 16 weeks pregnant", None),
        ("is there support for my daughter", None),
    ],
)
def test_an_age_only_from_clear_words(text: str, group: str | None) -> None:
    assert age_group_from(text) == group


@pytest.mark.parametrize(
    ("text", "gender", "lgbt"),
    [
        ("I'm a man and my ex hits me", "man", False),
        ("as a man, is there anywhere for me", "man", False),
        ("I am female", "woman", False),
        ("im a single mum", "woman", False),
        ("I'm a trans woman", "woman", True),
        ("i'm a gay man", "man", True),
        ("I'm gay", None, True),
        ("im bi", None, True),
        ("my wife hits me", None, False),
        ("my boyfriend hits me", None, False),
        ("i'm not a man", None, False),
        ("i'm not gay", None, False),
    ],
)
def test_gender_and_lgbt_only_from_a_clear_self_description(
    text: str, gender: str | None, lgbt: bool
) -> None:
    assert gender_from(text) == gender
    assert lgbt_from(text) is lgbt


@pytest.mark.parametrize(
    "text",
    [
        "my ex keeps turning up",
        "he keeps following me",
        "he won't leave me alone",
        "she keeps messaging me",
        "he turned up at my work again",
    ],
)
def test_stalking_cues(text: str) -> None:
    assert stalking_from(text)


def test_no_stalking_cue_in_ordinary_words() -> None:
    assert not stalking_from("my ex took my phone")


@pytest.mark.parametrize(
    ("text", "district"),
    [
        ("E8", "E8"),
        ("e8 1ab", "E8"),
        ("SE13 6AB", "SE13"),
        ("cr0", "CR0"),
        ("EC1A 1BB", "EC1A"),
        ("sw1a", "SW1A"),
        ("my postcode is N15", "N15"),
        ("pls w8", None),
        ("4301234/25", None),
        ("M1", None),
    ],
)
def test_only_the_postcode_district_is_kept(text: str, district: str | None) -> None:
    assert district_of(text) == district


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("Leeds", "Leeds"),
        ("I live in leeds", "Leeds"),
        ("im in newcastle upon tyne", "Newcastle upon Tyne"),
        ("outside london", "outside London"),
        ("LS1 4AB", "LS1"),
        ("London", None),
        ("north london", None),
        ("thank you", None),
        ("what do you mean", None),
    ],
)
def test_a_place_outside_london_is_kept_short(text: str, place: str | None) -> None:
    assert place_from(text) == place


# -- action_support_services ---------------------------------------------------------------


def test_the_issues_sentence_finds_domestic_abuse_and_stalking_services_in_lewisham() -> None:
    t = support_request(
        LEWISHAM,
        entities={"location": "Lewisham", "crime_type": "domestic_abuse"},
        slots={"location": "Lewisham", "crime_type": "domestic_abuse"},
    )
    messages, events = run(ActionSupportServices(), t)
    only_markers(messages)
    assert markers(messages) == [
        services(crime_types=["domestic_abuse", "stalking"], location="Lewisham")
    ]
    assert slots_set(events) == {"more_key": "services", "more_index": 3.0}


def test_rather_not_say_sends_no_crime_type_and_no_place() -> None:
    t = support_request("who can help", slots={"crime_type": "any", "location": "any"})
    messages, _ = run(ActionSupportServices(), t)
    assert markers(messages) == [services()]


def test_something_else_is_sent_as_other() -> None:
    t = support_request("who can help", slots={"crime_type": "other", "postcode": "E8"})
    messages, _ = run(ActionSupportServices(), t)
    assert markers(messages) == [services(crime_types=["other"], postcode="E8")]


def test_clear_words_in_the_request_give_age_gender_lgbt_and_are_kept() -> None:
    earlier = [user_event("ask_support_services", "I'm 17 and gay, who can help")]
    t = tracker(
        "inform",
        "as a man i don't know where to go",
        slots={"crime_type": "assault", "place": "Leeds", "language": "Polish"},
        events=earlier,
    )
    messages, events = run(ActionSupportServices(), t)
    assert markers(messages) == [
        services(
            crime_types=["assault"],
            place="Leeds",
            age_group="16_17",
            gender="man",
            lgbt=True,
            language="Polish",
        )
    ]
    assert slots_set(events) == {
        "age_group": "16_17",
        "gender": "man",
        "lgbt": True,
        "more_key": "services",
        "more_index": 3.0,
    }


def test_the_answer_to_the_age_question_is_used_with_everything_else_kept() -> None:
    earlier = [user_event("ask_support_services", LEWISHAM)]
    t = tracker(
        "inform",
        '/inform{"age_group":"any"}',
        entities={"age_group": "any"},
        slots={"age_group": "any", "crime_type": "domestic_abuse", "location": "Lewisham"},
        events=earlier,
    )
    messages, _ = run(ActionSupportServices(), t)
    assert markers(messages) == [
        services(crime_types=["domestic_abuse", "stalking"], location="Lewisham", age_group="any")
    ]


def test_crime_types_come_from_the_slot_then_the_request() -> None:
    earlier = [
        user_event(
            "ask_support_services",
            "my ex stalked me",
            [{"entity": "crime_type", "value": "stalking"}],
        )
    ]
    t = tracker("inform", "hackney", slots={"crime_type": "domestic_abuse"}, events=earlier)
    assert crime_types(t) == ["domestic_abuse", "stalking"]


def test_cancelled_questions_say_ok_and_send_no_marker() -> None:
    messages, events = run(
        ActionSupportServices(), support_request("cancel", slots={"support_stopped": True})
    )
    assert [m.get("response") for m in messages] == ["utter_form_stopped"]
    assert slots_set(events) == {"support_stopped": None}


def test_more_after_services_asks_for_the_next_three() -> None:
    t = tracker(
        "more",
        "MORE",
        slots={
            "more_key": "services",
            "more_index": 3.0,
            "crime_type": "fraud",
            "location": "Croydon",
        },
    )
    messages, events = run(ActionMore(), t)
    only_markers(messages)
    assert markers(messages) == [services(crime_types=["fraud"], location="Croydon", offset=3)]
    assert slots_set(events) == {"more_index": 6.0}


# -- validate_support_form ---------------------------------------------------------------


def support_turn(
    intent: str,
    text: str,
    asked: str,
    entities: dict[str, str] | None = None,
    slots: dict[str, Any] | None = None,
    asked_before: int = 1,
) -> Any:
    earlier = [
        user_event("ask_support_services", "who can help"),
        *[{"event": "slot", "name": "requested_slot", "value": asked}] * asked_before,
    ]
    return tracker(
        intent,
        text,
        entities=entities,
        slots={"requested_slot": asked, **(slots or {})},
        events=earlier,
        active_loop="support_form",
    )


def test_starting_with_everything_said_asks_nothing() -> None:
    t = support_request(
        LEWISHAM,
        entities={"location": "Lewisham", "crime_type": "domestic_abuse"},
        slots={"location": "Lewisham", "crime_type": "domestic_abuse", "postcode": "E8"},
    )
    messages, events = run(ValidateSupportForm(), t)
    assert messages == []
    set_ = slots_set(events)
    assert set_["requested_slot"] is None
    assert set_["location"] == "Lewisham" and set_["postcode"] is None  # the borough just said wins


def test_starting_with_a_crime_type_asks_only_where() -> None:
    t = support_request("help after fraud", slots={"crime_type": "fraud"})
    _, events = run(ValidateSupportForm(), t)
    assert slots_set(events)["requested_slot"] == "location"


def test_starting_with_nothing_asks_what_it_is_about_first() -> None:
    _, events = run(ValidateSupportForm(), support_request("who can help"))
    assert slots_set(events)["requested_slot"] == "crime_type"


def test_a_full_postcode_keeps_only_the_district() -> None:
    t = support_turn(
        "inform",
        "E8 1AB",
        "location",
        entities={"postcode": "E8"},
        slots={"crime_type": "domestic_abuse", "postcode": "E8"},
    )
    messages, events = run(ValidateSupportForm(), t)
    assert messages == []
    assert slots_set(events) == {
        "location": None,
        "postcode": "E8",
        "place": None,
        "requested_slot": None,
    }
    assert "1AB" not in str(events)


@pytest.mark.parametrize(
    ("intent", "text", "asked", "expected"),
    [
        ("deny", "skip", "crime_type", {"crime_type": "any"}),
        (
            "deny",
            "rather not say",
            "location",
            {"location": "any", "postcode": None, "place": None},
        ),
        (
            "nlu_fallback",
            "I don't know",
            "location",
            {"location": "any", "postcode": None, "place": None},
        ),
        ("inform", "something else", "crime_type", {"crime_type": "other"}),
        ("inform", "my neighbour", "crime_type", {"crime_type": "other"}),
        (
            "nlu_fallback",
            "Leeds",
            "location",
            {"location": None, "postcode": None, "place": "Leeds"},
        ),
        (
            "out_of_scope",
            "im in manchester",
            "location",
            {"location": None, "postcode": None, "place": "Manchester"},
        ),
    ],
)
def test_typed_answers(intent: str, text: str, asked: str, expected: dict[str, Any]) -> None:
    messages, events = run(ValidateSupportForm(), support_turn(intent, text, asked))
    assert messages == []
    set_ = slots_set(events)
    assert {k: set_[k] for k in expected} == expected


def test_a_place_not_recognised_is_asked_again_then_skipped() -> None:
    messages, events = run(
        ValidateSupportForm(),
        support_turn(
            "nlu_fallback",
            "near the big park by the station",
            "location",
            slots={"crime_type": "fraud"},
        ),
    )
    assert [m["response"] for m in messages] == ["utter_location_not_understood"]
    assert slots_set(events) == {"location": None, "requested_slot": "location"}

    messages, events = run(
        ValidateSupportForm(),
        support_turn(
            "nlu_fallback",
            "by where the buses stop",
            "location",
            slots={"crime_type": "fraud"},
            asked_before=2,
        ),
    )
    assert messages == []
    assert slots_set(events)["location"] == "any"
    assert slots_set(events)["requested_slot"] is None


def test_just_london_asks_which_part() -> None:
    messages, _ = run(ValidateSupportForm(), support_turn("inform", "London", "location"))
    assert [m["response"] for m in messages] == ["utter_location_which_part"]


@pytest.mark.parametrize(
    ("intent", "text", "entities"),
    [
        ("emergency", "he's outside my door now", None),
        # Even when the message also names a crime type: danger comes first.
        ("emergency", "my ex is here with a knife", {"crime_type": "domestic_abuse"}),
        ("self_harm_risk", "i want to end it all", None),
        ("request_human", "can I talk to a real person please", None),
        ("out_of_scope", "what's the weather like tomorrow", None),
        ("ask_cjs_stage", "what does charged mean", None),
    ],
)
def test_danger_a_person_or_another_topic_is_left_to_the_rules(
    intent: str, text: str, entities: dict[str, str] | None
) -> None:
    messages, events = run(
        ValidateSupportForm(), support_turn(intent, text, "crime_type", entities=entities)
    )
    assert messages == []
    assert events == [
        {
            "event": "action_execution_rejected",
            "name": "support_form",
            "policy": None,
            "confidence": None,
            "timestamp": None,
        }
    ]


def test_cancel_ends_the_questions() -> None:
    _, events = run(ValidateSupportForm(), support_turn("deny", "cancel", "crime_type"))
    assert slots_set(events) == {
        "crime_type": None,
        "support_stopped": True,
        "requested_slot": None,
    }


def test_coming_back_after_another_answer_reads_nothing_from_that_message() -> None:
    t = support_turn("thank", "thanks", "location", slots={"crime_type": "fraud"})
    t.events.append({"event": "action", "name": "utter_thank"})
    messages, events = run(ValidateSupportForm(), t)
    assert messages == []
    assert slots_set(events) == {"requested_slot": "location"}


# -- validate_needs_form -----------------------------------------------------------------


def needs_turn(
    intent: str,
    text: str,
    asked: str,
    entities: dict[str, str] | None = None,
    slots: dict[str, Any] | None = None,
) -> Any:
    earlier = [
        user_event("tell_needs", "I want to tell you what support I need"),
        {"event": "active_loop", "name": "needs_form"},
        {"event": "slot", "name": "requested_slot", "value": asked},
    ]
    return tracker(
        intent,
        text,
        entities=entities,
        slots={"requested_slot": asked, **(slots or {})},
        events=earlier,
        active_loop="needs_form",
    )


def test_the_needs_questions_start_afresh_with_are_you_safe() -> None:
    t = tracker("tell_needs", "can I tell you about my needs", slots={"needs_contact": "call"})
    _, events = run(ValidateNeedsForm(), t)
    set_ = slots_set(events)
    assert all(set_[slot] is None for slot in NEEDS)
    assert set_["requested_slot"] == "needs_safe_now"


def test_starting_is_seen_the_way_rasa_starts_a_form() -> None:
    # Rasa marks the form active before asking its validation action at the start.
    t = tracker(
        "tell_needs",
        "I need an interpreter",
        slots={"needs_contact": "call"},
        active_loop="needs_form",
    )
    t.events.append({"event": "active_loop", "name": "needs_form"})
    _, events = run(ValidateNeedsForm(), t)
    set_ = slots_set(events)
    assert set_["needs_contact"] is None and set_["needs_communication"] == "interpreter"
    assert set_["requested_slot"] == "needs_safe_now"


def test_i_need_an_interpreter_answers_that_question_already() -> None:
    t = tracker("tell_needs", "i need a polish interpreter", entities={"language": "Polish"})
    _, events = run(ValidateNeedsForm(), t)
    set_ = slots_set(events)
    assert set_["needs_communication"] == "interpreter" and set_["language"] == "Polish"


def test_not_safe_now_ends_the_questions_at_once() -> None:
    t = needs_turn(
        "inform", '/inform{"needs_safe_now":"no"}', "needs_safe_now", {"needs_safe_now": "no"}
    )
    _, events = run(ValidateNeedsForm(), t)
    assert slots_set(events) == {"needs_safe_now": "no", "requested_slot": None}


def test_an_interpreter_asks_which_language_only_when_not_known() -> None:
    t = needs_turn(
        "inform",
        "an interpreter",
        "needs_communication",
        slots={"needs_safe_now": "yes"},
    )
    _, events = run(ValidateNeedsForm(), t)
    assert slots_set(events) == {"needs_communication": "interpreter", "requested_slot": "language"}

    t = needs_turn(
        "inform",
        "an interpreter",
        "needs_communication",
        slots={"needs_safe_now": "yes", "language": "Somali"},
    )
    _, events = run(ValidateNeedsForm(), t)
    assert slots_set(events)["requested_slot"] == "needs_disability"


def test_a_skipped_language_is_not_asked_again() -> None:
    t = needs_turn(
        "deny",
        "skip",
        "language",
        slots={"needs_safe_now": "yes", "needs_communication": "interpreter"},
    )
    _, events = run(ValidateNeedsForm(), t)
    assert slots_set(events) == {"language": None, "requested_slot": "needs_disability"}


def test_a_language_not_in_the_list_is_kept_as_typed() -> None:
    t = needs_turn(
        "nlu_fallback", "hausa", "language", slots={"needs_communication": "interpreter"}
    )
    _, events = run(ValidateNeedsForm(), t)
    assert slots_set(events)["language"] == "Hausa"


@pytest.mark.parametrize(
    ("slot", "text", "value"),
    [
        ("needs_safe_now", "yes", "yes"),
        ("needs_safe_now", "no", "no"),
        ("needs_safe_now", "not really", "no"),
        ("needs_safe_now", "i am at home with him", None),
        ("needs_communication", "no interpreter needed", "none"),
        ("needs_communication", "sign language", "bsl"),
        ("needs_communication", "easy read please", "easy_read"),
        ("needs_disability", "i have adhd", "yes"),
        ("needs_disability", "no", "no"),
        ("needs_others", "my two kids", "children"),
        ("needs_others", "no children", "no"),
        ("needs_others", "my mum lives with me", "adults"),
        ("needs_contact", "text me", "text"),
        ("needs_contact", "don't call, text me", "text"),
        ("needs_contact", "phone call", "call"),
        ("needs_contact", "through this chat", "chat"),
        ("needs_safe_times", "evenings", "evening"),
        ("needs_safe_times", "mornings are best", "morning"),
        ("needs_safe_times", "after lunch", "afternoon"),
        ("needs_safe_times", "any time is fine", "any"),
    ],
)
def test_typed_needs_answers_by_simple_words(slot: str, text: str, value: str | None) -> None:
    assert typed_answer(slot, text) == value


@pytest.mark.parametrize(
    ("intent", "text", "asked", "value"),
    [
        ("deny", "rather not say", "needs_disability", "skip"),
        ("deny", "not now", "needs_others", "skip"),
        ("deny", "no", "needs_safe_times", "skip"),  # a plain no that doesn't answer skips
        ("inform", '/inform{"needs_contact":"skip"}', "needs_contact", "skip"),
    ],
)
def test_every_question_can_be_skipped(intent: str, text: str, asked: str, value: str) -> None:
    entities = {asked: "skip"} if text.startswith("/") else None
    _, events = run(ValidateNeedsForm(), needs_turn(intent, text, asked, entities))
    assert slots_set(events)[asked] == value


def test_call_me_answers_the_contact_question_rather_than_asking_for_a_person() -> None:
    _, events = run(ValidateNeedsForm(), needs_turn("request_human", "call me", "needs_contact"))
    assert slots_set(events)["needs_contact"] == "call"


def test_cancel_ends_the_needs_questions_keeping_what_was_given() -> None:
    t = needs_turn("deny", "cancel", "needs_disability", slots={"needs_safe_now": "yes"})
    _, events = run(ValidateNeedsForm(), t)
    assert slots_set(events) == {"needs_disability": None, "requested_slot": None}


def test_an_emergency_in_the_needs_questions_is_left_to_the_safety_rules() -> None:
    _, events = run(
        ValidateNeedsForm(), needs_turn("emergency", "he's outside my door now", "needs_safe_now")
    )
    assert [e["event"] for e in events] == ["action_execution_rejected"]


# -- action_store_needs ------------------------------------------------------------------

ANSWERS = {
    "needs_safe_now": "yes",
    "needs_communication": "interpreter",
    "needs_disability": None,  # cancelled before this one
    "needs_others": "children",
    "needs_contact": "text",
    "needs_safe_times": "evening",
}


def test_the_needs_go_to_the_gateway_and_are_cleared_here() -> None:
    t = tracker("inform", "evenings", slots={**ANSWERS, "language": "Polish"})
    messages, events = run(ActionStoreNeeds(), t)
    only_markers(messages)
    assert markers(messages) == [
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
        }
    ]
    assert slots_set(events) == {
        **{slot: None for slot in NEEDS},
        "referral_service": None,
        "referral_step": None,
    }


def test_the_needs_marker_has_every_field() -> None:
    assert list(needs_answers(tracker("inform", "x"))) == [
        "safe_now",
        "communication",
        "language",
        "disability",
        "others",
        "contact",
        "safe_times",
    ]


def test_after_the_needs_a_referral_goes_on_to_the_consent_question() -> None:
    t = tracker("inform", "evenings", slots={**ANSWERS, "referral_service": "victim-support"})
    messages, events = run(ActionStoreNeeds(), t)
    only_markers(messages)
    assert [list(m) for m in markers(messages)] == [["needs"], ["referral"]]
    assert markers(messages)[1] == {"referral": {"offer": "victim-support", "reason": None}}
    assert slots_set(events)["referral_step"] == "offer"


def test_not_safe_now_sends_only_that_and_drops_the_referral() -> None:
    t = tracker(
        "inform",
        "no",
        slots={
            "needs_safe_now": "no",
            "referral_service": "victim-support",
            "referral_step": "needs",
        },
    )
    messages, events = run(ActionStoreNeeds(), t)
    only_markers(messages)
    assert markers(messages) == [{"needs": {"safe_now": "no"}}]
    assert slots_set(events)["referral_service"] is None
    assert slots_set(events)["needs_safe_now"] is None


def test_cancelled_before_any_answer_stores_nothing() -> None:
    messages, _ = run(ActionStoreNeeds(), tracker("deny", "cancel"))
    assert markers(messages) == []
    assert [m.get("response") for m in messages] == ["utter_form_stopped"]

    t = tracker("deny", "cancel", slots={"referral_service": "victim-support"})
    messages, _ = run(ActionStoreNeeds(), t)
    assert markers(messages) == [{"referral": {"offer": "victim-support", "reason": None}}]


# -- referrals ---------------------------------------------------------------------------


def referral_request(service: str | None = None, stored: bool | None = None, **kw: Any) -> Any:
    entities = {"service_id": service} if service else None
    text = f'/request_referral{{"service_id":"{service}"}}' if service else "REFER"
    t = tracker("request_referral", text, entities=entities, **kw)
    if stored is not None:
        t.latest_message["metadata"] = {"needs": {"stored": stored}, "channel": "sms"}
    return t


def test_refer_with_no_service_lets_the_gateway_ask_which_one() -> None:
    messages, events = run(ActionRequestReferral(), referral_request())
    only_markers(messages)
    assert markers(messages) == [{"referral": {"choose": True}}]
    assert slots_set(events) == {"referral_service": None, "referral_step": "choose"}


def test_a_service_id_that_is_not_one_is_ignored() -> None:
    messages, _ = run(ActionRequestReferral(), referral_request("../etc/passwd", stored=True))
    assert markers(messages) == [{"referral": {"choose": True}}]


def test_a_service_chosen_with_the_needs_stored_gets_the_consent_question() -> None:
    messages, events = run(ActionRequestReferral(), referral_request("victim-support", stored=True))
    only_markers(messages)
    assert markers(messages) == [{"referral": {"offer": "victim-support", "reason": None}}]
    assert slots_set(events) == {"referral_service": "victim-support", "referral_step": "offer"}


@pytest.mark.parametrize("stored", [False, None])
def test_a_service_chosen_without_needs_stored_asks_the_needs_first(stored: bool | None) -> None:
    messages, events = run(
        ActionRequestReferral(), referral_request("victim-support", stored=stored)
    )
    assert [m.get("response") for m in messages] == ["utter_needs_before_referral"]
    assert markers(messages) == []
    assert slots_set(events) == {"referral_service": "victim-support", "referral_step": "needs"}


def test_refer_again_while_asked_for_consent_asks_again() -> None:
    t = referral_request(slots={"referral_service": "victim-support", "referral_step": "offer"})
    messages, _ = run(ActionRequestReferral(), t)
    assert markers(messages) == [{"referral": {"offer": "victim-support", "reason": None}}]


def test_yes_makes_the_referral_with_the_first_crime_type_as_reason() -> None:
    earlier = [user_event("ask_support_services", LEWISHAM)]
    t = tracker(
        "affirm",
        "/affirm",
        slots={"referral_service": "victim-support", "crime_type": "domestic_abuse"},
        events=earlier,
    )
    messages, events = run(ActionMakeReferral(), t)
    only_markers(messages)
    assert markers(messages) == [
        {"referral": {"consent": "victim-support", "reason": "domestic_abuse"}}
    ]
    assert slots_set(events) == {"referral_service": None, "referral_step": None}


def test_yes_with_no_crime_type_gives_no_reason() -> None:
    t = tracker("affirm", "yes", slots={"referral_service": "victim-support", "crime_type": "any"})
    messages, _ = run(ActionMakeReferral(), t)
    assert markers(messages) == [{"referral": {"consent": "victim-support", "reason": None}}]


def test_no_drops_the_offer() -> None:
    t = tracker(
        "deny", "/deny", slots={"referral_service": "victim-support", "referral_step": "offer"}
    )
    messages, events = run(ActionRefuseReferral(), t)
    only_markers(messages)
    assert markers(messages) == [{"referral": {"refused": "victim-support"}}]
    assert slots_set(events) == {"referral_service": None, "referral_step": None}


def test_withdrawing_consent_tells_the_gateway_at_any_time() -> None:
    messages, events = run(
        ActionWithdrawReferral(), tracker("withdraw_referral", "cancel my referral")
    )
    only_markers(messages)
    assert markers(messages) == [{"referral": {"withdraw": True}}]
    assert slots_set(events)["referral_service"] is None


# -- the domain --------------------------------------------------------------------------


def test_every_question_has_a_skip_button_and_payloads_use_the_slot_values() -> None:
    responses = domain()["responses"]
    slots = domain()["slots"]
    for slot in NEEDS:
        buttons = responses[f"utter_ask_{slot}"][0]["buttons"]
        assert buttons[-1]["title"] == "Skip"
        for button in buttons:
            value = button["payload"].split('"')[-2]
            assert value in slots[slot]["values"], (slot, value)
    assert responses["utter_ask_language"][0]["buttons"] == [{"title": "Skip", "payload": "/deny"}]
    crime_buttons = responses["utter_ask_crime_type"][0]["buttons"]
    assert [b["payload"].split('"')[-2] for b in crime_buttons] == [
        "domestic_abuse",
        "sexual_violence",
        "stalking",
        "hate_crime",
        "fraud",
        "other",
        "any",
    ]
