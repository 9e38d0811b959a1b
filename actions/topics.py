"""Plain questions answered straight from content: rights, court, compensation, and so on.

Each intent has a default content item; a few keywords in the message pick a
more specific item (for example "expenses" under court support). Withdrawing and
complaining (and "am I talking to a person?") also offer a person; goodbye lets the gateway ask for a rating.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import content
from actions.handoff import HUMAN_BUTTON, feedback_marker
from actions.messages import latest_intent, latest_text

# intent -> (default key, [(keyword pattern, key), ...]); first matching pattern wins.
TOPICS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "greet": ("assistant.greet", []),
    "goodbye": ("assistant.goodbye", []),
    "help": ("assistant.help", []),
    "affirm": ("assistant.help", []),
    "bot_challenge": ("assistant.bot_challenge", []),
    "out_of_scope": ("assistant.out_of_scope", []),
    "withdraw_from_case": ("assistant.withdraw", []),
    "express_distress": ("safety.distress", []),
    "complain": ("complaints.overview", []),
    "ask_victims_rights": (
        "rights.overview",
        [
            (r"enhanced|vulnerable|intimidated|serious crime", "rights.enhanced"),
            (r"personal statement|\bvps\b|impact statement", "rights.vps"),
            (
                r"contact scheme|\bvcs\b|liaison officer|released from prison|parole",
                "rights.victim_contact_scheme",
            ),
            (r"updat|how often|hear from|told when|keep me informed", "rights.updates"),
        ],
    ),
    "ask_court_support": (
        "court.overview",
        [
            (r"expense|travel|cost|pay|wage|earning|time off|childcare|money", "court.expenses"),
            (
                r"special measure|screen|live link|video|see (him|her|them)|same room|pre.?record|intermediar",
                "court.special_measures",
            ),
            (r"witness care", "court.witness_care_unit"),
            (
                r"witness service|visit|look round|look around|someone with me",
                "court.witness_service",
            ),
        ],
    ),
    "ask_compensation": (
        "compensation.overview",
        [
            (
                r"compensation order|court order|order (him|her|them) to pay|pay me back",
                "compensation.court_order",
            ),
            (r"cica|criminal injur|injur", "compensation.cica"),
        ],
    ),
}


# Answers that offer a person as well (a button; the person chooses).
OFFER_A_PERSON = frozenset({"withdraw_from_case", "complain", "bot_challenge"})
# Answers after which the gateway may ask for a rating (at most once a day).
OFFER_A_RATING = frozenset({"goodbye"})


def topic_key(intent: str | None, text: str) -> str | None:
    if intent not in TOPICS:
        return None
    default, refinements = TOPICS[intent]
    for pattern, key in refinements:
        if re.search(pattern, text):
            return key
    return default


class ActionAnswerTopic(Action):
    def name(self) -> str:
        return "action_answer_topic"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        intent = latest_intent(tracker)
        key = topic_key(intent, latest_text(tracker))
        if key is None:
            dispatcher.utter_message(response="utter_more_none")
            return []
        buttons = [HUMAN_BUTTON] if intent in OFFER_A_PERSON else None
        events = content.send(dispatcher, key, buttons=buttons)
        if intent in OFFER_A_RATING:
            dispatcher.utter_message(json_message=feedback_marker("offer"))
        return events
