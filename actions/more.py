"""MORE: the next part of the last answer, or the next services after a services search."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import content
from actions.support import MORE_KEY as SERVICES
from actions.support import more_services


class ActionMore(Action):
    def name(self) -> str:
        return "action_more"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        key = tracker.get_slot("more_key")
        index = tracker.get_slot("more_index")
        if key == SERVICES:
            return more_services(dispatcher, tracker)
        if not key or index is None or key not in content.catalogue():
            dispatcher.utter_message(response="utter_more_none")
            return []
        return content.send(dispatcher, key, start=int(index))
