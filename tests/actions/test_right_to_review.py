from __future__ import annotations

from datetime import date

import pytest

from actions import content, right_to_review
from actions.right_to_review import (
    ActionExplainReviewDeadline,
    ActionExplainRightToReview,
    ValidateRightToReviewForm,
)
from tests.factories import domain, run, tracker

TODAY = date(2026, 11, 26)


@pytest.fixture(autouse=True)
def fixed_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(right_to_review, "london_today", lambda: TODAY)


def test_overview_first_then_more() -> None:
    messages, events = run(
        ActionExplainRightToReview(), tracker("ask_right_to_review", "they said NFA")
    )
    assert messages[0]["text"] == content.with_more_prompt(content.item("rtr.overview").parts[0])
    assert events[0]["value"] == "rtr.overview"


def _validate(slot: str, value: str, text: str) -> tuple[list[dict], dict]:
    from rasa_sdk.executor import CollectingDispatcher

    action = ValidateRightToReviewForm()
    dispatcher = CollectingDispatcher()
    method = getattr(action, f"validate_{slot}")
    result = method(
        value, dispatcher, tracker("inform", text, active_loop="right_to_review_form"), domain()
    )
    return dispatcher.messages, result


def test_told_date_is_stored_as_iso() -> None:
    messages, result = _validate("review_told_date", "2 weeks ago", "2 weeks ago")
    assert result == {"review_told_date": "2026-11-12"}
    assert messages == []


def test_unreadable_date_is_asked_again_kindly() -> None:
    messages, result = _validate("review_told_date", "no idea mate", "no idea mate")
    assert result == {"review_told_date": None}
    assert [m["response"] for m in messages] == ["utter_review_date_not_understood"]


def test_future_date_is_questioned() -> None:
    messages, result = _validate("review_told_date", "3 march 2027", "3 march 2027")
    assert result == {"review_told_date": None}
    assert [m["response"] for m in messages] == ["utter_review_date_in_future"]


@pytest.mark.parametrize("value", ["police", "cps", "not_sure"])
def test_decision_maker_values(value: str) -> None:
    assert _validate("review_decision_maker", value, value)[1] == {"review_decision_maker": value}


def test_unknown_decision_maker_is_rejected() -> None:
    assert _validate("review_decision_maker", "judge", "the judge")[1] == {
        "review_decision_maker": None
    }


def test_deadline_is_three_months_from_being_told_then_the_scheme() -> None:
    t = tracker(
        "inform",
        "2 weeks ago",
        slots={"review_decision_maker": "police", "review_told_date": "2026-11-12"},
    )
    messages, events = run(ActionExplainReviewDeadline(), t)
    assert messages[0]["text"] == (
        "You were told about the decision on Thursday 12 November 2026. Ask for a review by "
        "Friday 12 February 2027 at the latest. It is best to ask as soon as you can."
    )
    assert messages[1]["text"] == content.with_more_prompt(content.item("rtr.police").parts[0])
    assert events[0]["value"] == "rtr.police"


def test_a_passed_deadline_says_so_and_that_late_requests_may_be_considered() -> None:
    t = tracker(
        "inform", "in may", slots={"review_decision_maker": "cps", "review_told_date": "2026-05-01"}
    )
    messages, _ = run(ActionExplainReviewDeadline(), t)
    assert "ended on Saturday 1 August 2026" in messages[0]["text"]
    assert messages[1]["text"].startswith(content.item("rtr.cps").parts[0])


def test_skipped_date_still_explains_the_scheme() -> None:
    t = tracker("deny", "skip", slots={"review_decision_maker": "not_sure"})
    messages, _ = run(ActionExplainReviewDeadline(), t)
    assert messages[0]["text"].startswith(content.item("rtr.not_sure").parts[0])


def test_stopped_before_any_answer_says_ok() -> None:
    messages, events = run(ActionExplainReviewDeadline(), tracker("deny", "not now"))
    assert [m["response"] for m in messages] == ["utter_form_stopped"]
    assert events == []
