"""Reporting options, tailored to the crime type and to what the person asked."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import content
from actions.messages import latest_text

# What the person asked about comes first; then the crime type; then the overview.
ASKED_ABOUT: list[tuple[str, str]] = [
    (
        r"deaf|can'?t (speak|talk|hear)|speech|sign language|\bbsl\b|textphone|relay",
        "report.deaf_access",
    ),
    (
        r"anonym|without (giving )?my name|no name|not give my name|don'?t want .{0,20}know it was me|crimestoppers|secret",
        "report.anonymous",
    ),
    (
        r"years ago|long time ago|historic|non.?recent|as a child|when i was (a kid|young|little|\d+)|ages ago",
        "report.years_ago",
    ),
    (
        r"for (a|my) (friend|mate|sister|brother|daughter|son|child|mum|dad)|on (their|her|his) behalf|someone else|third.?party|through (an? )?(isva|idva|charity|someone)",
        "report.through_someone",
    ),
]
BY_CRIME_TYPE = {
    "hate_crime": "report.hate_crime",
    "fraud": "report.fraud",
    "cyber_crime": "report.fraud",
    "sexual_violence": "report.sexual_violence",
    "domestic_abuse": "report.domestic_abuse",
}


def reporting_key(text: str, crime_type: str | None) -> str:
    for pattern, key in ASKED_ABOUT:
        if re.search(pattern, text):
            return key
    return BY_CRIME_TYPE.get(crime_type or "", "report.overview")


class ActionExplainReportingOptions(Action):
    def name(self) -> str:
        return "action_explain_reporting_options"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        key = reporting_key(latest_text(tracker), tracker.get_slot("crime_type"))
        return content.send(dispatcher, key)
