"""The Victims' Right to Review: explain it, ask who decided and when, give the date to ask by."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import content
from actions.dates import add_months, long_date, parse_past_date

REVIEW_WINDOW_MONTHS = (
    3  # both schemes: "within 3 months of being told" (content/right_to_review.yml)
)
SCHEME_BY_DECISION_MAKER = {"police": "rtr.police", "cps": "rtr.cps", "not_sure": "rtr.not_sure"}


def london_today() -> date:
    return datetime.now(ZoneInfo("Europe/London")).date()


class ActionExplainRightToReview(Action):
    def name(self) -> str:
        return "action_explain_right_to_review"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return content.send(dispatcher, "rtr.overview")


class ValidateRightToReviewForm(FormValidationAction):
    def name(self) -> str:
        return "validate_right_to_review_form"

    def validate_review_decision_maker(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value in SCHEME_BY_DECISION_MAKER:
            return {"review_decision_maker": value}
        return {"review_decision_maker": None}

    def validate_review_told_date(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        today = london_today()
        told = parse_past_date(str(value or ""), today)
        if told is None:
            dispatcher.utter_message(response="utter_review_date_not_understood")
            return {"review_told_date": None}
        if told > today:
            dispatcher.utter_message(response="utter_review_date_in_future")
            return {"review_told_date": None}
        return {"review_told_date": told.isoformat()}


class ActionExplainReviewDeadline(Action):
    """After the form (or when the person stops it): the deadline, then the right scheme."""

    def name(self) -> str:
        return "action_explain_review_deadline"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        decided_by = tracker.get_slot("review_decision_maker")
        told_iso = tracker.get_slot("review_told_date")
        if decided_by is None and told_iso is None:
            dispatcher.utter_message(response="utter_form_stopped")
            return []
        if told_iso:
            told = date.fromisoformat(told_iso)
            deadline = add_months(told, REVIEW_WINDOW_MONTHS)
            key = "rtr.deadline" if deadline >= london_today() else "rtr.deadline_passed"
            fields = {"told_date": long_date(told), "deadline": long_date(deadline)}
            dispatcher.utter_message(text=content.item(key).part(0, **fields))
        scheme = SCHEME_BY_DECISION_MAKER.get(decided_by or "", "rtr.not_sure")
        return content.send(dispatcher, scheme)
