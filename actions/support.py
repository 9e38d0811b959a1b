"""Support services by crime type (the full directory and matching come later)."""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import content
from actions.messages import latest_text

BY_CRIME_TYPE = {
    "domestic_abuse": "support.domestic_abuse",
    "sexual_violence": "support.sexual_violence",
    "stalking": "support.stalking",
    "harassment": "support.stalking",
    "hate_crime": "support.hate_crime",
    "fraud": "support.fraud",
    "cyber_crime": "support.fraud",
    "homicide": "support.homicide",
}
CHILD = re.compile(r"\b(child|kid|son|daughter|teen|under 18|school|young person|i'?m 1[0-7])\b")


def support_key(text: str, crime_type: str | None) -> str:
    if CHILD.search(text):
        return "support.children"
    return BY_CRIME_TYPE.get(crime_type or "", "support.general")


class ActionSupportServices(Action):
    def name(self) -> str:
        return "action_support_services"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        key = support_key(latest_text(tracker), tracker.get_slot("crime_type"))
        return content.send(dispatcher, key)
