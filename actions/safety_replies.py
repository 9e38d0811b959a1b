"""The emergency and self-harm replies: 999 in the first line, whole, at once."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import content
from actions.messages import latest_intent

REPLIES = {"emergency": "safety.emergency", "self_harm_risk": "safety.self_harm"}


class ActionSafetyReply(Action):
    def name(self) -> str:
        return "action_safety_reply"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        # Anything else that reaches here (a rule or story gone wrong) still gets
        # the emergency route: it is the safe default.
        key = REPLIES.get(latest_intent(tracker) or "", "safety.emergency")
        return content.send(dispatcher, key, all_parts=True)
