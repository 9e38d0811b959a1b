"""Routes whose full behaviour comes in later issues.

Until then each tells the truth about what the person can do instead: the
assistant never pretends to change contact settings or delete data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import content


class _HonestAnswer(Action, ABC):
    """Sends one content item. Abstract, so the action server does not register it."""

    action_name: str

    @property
    @abstractmethod
    def content_key(self) -> str: ...

    def name(self) -> str:
        return self.action_name

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return content.send(dispatcher, self.content_key)


class ActionUpdatePreferences(_HonestAnswer):
    action_name = "action_update_preferences"
    content_key = "assistant.preferences_unavailable"


class ActionForgetMe(_HonestAnswer):
    action_name = "action_forget_me"
    content_key = "assistant.forget_me_unavailable"
