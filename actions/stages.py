"""Explaining each stage of the criminal justice process."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import content
from actions.messages import latest_entity


class ActionExplainStage(Action):
    def name(self) -> str:
        return "action_explain_stage"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        stage = latest_entity(tracker, "cjs_stage")
        if stage is None or f"stage.{stage}" not in content.catalogue():
            dispatcher.utter_message(response="utter_ask_which_stage")
            return []
        return content.send(dispatcher, f"stage.{stage}")
