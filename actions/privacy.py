"""Privacy: what Waymark keeps, deleting it, and contact preferences.

The gateway owns all three (bot/privacy/): only it knows the retention settings, what
is stored for this person, and whether they are a verified victim. The actions only
steer, with a marker and no text of their own (docs/conversation-contract.md):

- `{"privacy": "notice"}`: the gateway sends what is kept, for how long, who can see it
  and how to delete it (content `privacy.notice`, its first part). MORE then sends the
  rest from here, so the action sets `more_key` like any other answer;
- `{"privacy": "forget"}`: the gateway says what would be deleted and asks to confirm;
  the answer never reaches Rasa while the question is open (it deletes the tracker);
- `{"privacy": "preferences"}`: the gateway's preferences questions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.messages import marker

NOTICE_KEY = "privacy.notice"  # the gateway sends part 0; MORE continues from part 1


def privacy_marker(what: str) -> dict[str, Any]:
    return marker(privacy=what)


class _PrivacyMarker(Action, ABC):
    """Sends one privacy marker. Abstract, so the action server does not register it."""

    action_name: str

    @property
    @abstractmethod
    def what(self) -> str: ...

    def name(self) -> str:
        return self.action_name

    def events(self) -> list[EventType]:
        return []

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        dispatcher.utter_message(json_message=privacy_marker(self.what))
        return self.events()


class ActionPrivacyNotice(_PrivacyMarker):
    action_name = "action_privacy_notice"
    what = "notice"

    def events(self) -> list[EventType]:
        return [SlotSet("more_key", NOTICE_KEY), SlotSet("more_index", 1.0)]


class ActionForgetMe(_PrivacyMarker):
    action_name = "action_forget_me"
    what = "forget"


class ActionUpdatePreferences(_PrivacyMarker):
    action_name = "action_update_preferences"
    what = "preferences"
