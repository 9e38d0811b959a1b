"""When the assistant doesn't understand: rephrase once, then offer a person.

The offer is a button ("Talk to a person", `/request_human`), never a handoff by
itself: the person chooses.
"""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import FollowupAction
from rasa_sdk.executor import CollectingDispatcher

from actions import content
from actions.handoff import HUMAN_BUTTON, MISUNDERSTANDINGS_BEFORE_OFFER


def misunderstandings_in_a_row(events: list[dict[str, Any]]) -> int:
    """How many user messages in a row, up to and including this one, the fallback answered."""
    answered_by_fallback: list[bool] = []
    for event in events:
        if event.get("event") == "user":
            answered_by_fallback.append(False)
        elif (
            event.get("event") == "action"
            and event.get("name") == "action_fallback"
            and answered_by_fallback
        ):
            answered_by_fallback[-1] = True
    if answered_by_fallback:
        answered_by_fallback[-1] = True  # this action is answering the latest message
    count = 0
    for answered in reversed(answered_by_fallback):
        if not answered:
            break
        count += 1
    return count


class ActionFallback(Action):
    def name(self) -> str:
        return "action_fallback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        if misunderstandings_in_a_row(tracker.events) >= MISUNDERSTANDINGS_BEFORE_OFFER:
            sent = content.send(
                dispatcher, "assistant.fallback_offer_person", buttons=[HUMAN_BUTTON]
            )
        else:
            sent = content.send(dispatcher, "assistant.fallback")
        # As the core fallback (no policy is confident), nothing else would be more
        # confident next either: wait for the person instead of saying it again.
        return [*sent, FollowupAction("action_listen")]
