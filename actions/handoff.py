"""Talking to a person, and feedback: the assistant only tells the gateway.

The gateway owns the handoff (bot/handoff/desk.py `HandoffDesk.on_marker`). Rasa sends a
marker and no text of its own: the gateway tells the person what happens next (who
replies and roughly when, or when the team is back, and the 24/7 routes), because only
it knows who is on duty. While a person owns the conversation the gateway does not
send messages to Rasa at all.

- `{"waymark": {"handoff": {"reason": R}}}` starts a handoff. R is one of the gateway's
  REASONS: request_human, fallback, withdraw, complain or verification_locked.
- `{"waymark": {"feedback": "offer"}}` offers a 1 to 5 rating (the gateway limits this to
  once a day); `{"waymark": {"feedback": "store"}}` keeps the person's current message as
  a feedback comment.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher

from actions import content
from actions.messages import case_flags, latest_text, marker

# Offered, never forced: after a second misunderstanding, withdrawing, complaining and a
# case look-up lock-out. The same button as the case answer's (bot/cases/status.py).
HUMAN_BUTTON = {"title": "Talk to a person", "payload": "/request_human"}

# What the person was doing just before asking, as the coordinator's reason.
REASON_AFTER = {"withdraw_from_case": "withdraw", "complain": "complain"}
FALLBACK_ACTION = "action_fallback"
MISUNDERSTANDINGS_BEFORE_OFFER = 2

# "can I give feedback?": a question about feedback, not feedback itself.
ASKS_HOW = re.compile(
    r"\b(how|can|could|may|where|want to|like to)\b.{0,25}\b(give|leave|send|write)\b"
    r".{0,15}\b(feedback|review|comment)s?\b"
    r"|\bhow (do|can) i rate\b"
    r"|^\W*(feedback|give feedback|leave feedback)\W*$"
)


def asks_how_to_give_feedback(text: str) -> bool:
    """True for "can I leave feedback?", not for "I want to give feedback: too slow"."""
    found = ASKS_HOW.search(text.lower())
    return found is not None and len(re.findall(r"[a-z']+", text.lower()[found.end() :])) < 3


def handoff_marker(reason: str) -> dict[str, Any]:
    return marker(handoff={"reason": reason})


def feedback_marker(kind: str) -> dict[str, Any]:
    """`offer` a rating, or `store` the current message as a comment."""
    return marker(feedback=kind)


def _turns(events: list[dict[str, Any]]) -> list[tuple[str | None, list[str]]]:
    """Each user message's intent, with the actions that answered it, oldest first."""
    turns: list[tuple[str | None, list[str]]] = []
    for event in events:
        if event.get("event") == "user":
            intent = ((event.get("parse_data") or {}).get("intent") or {}).get("name")
            turns.append((intent, []))
        elif event.get("event") == "action" and turns and event.get("name"):
            turns[-1][1].append(event["name"])
    return turns


def handoff_reason(tracker: Tracker) -> str:
    """Why the person asked for a person, for the coordinator.

    Locked out of case look-ups first (they need someone to check who they are); then
    what the turn before was about: the assistant misunderstanding them twice in a
    row (the offer they may have tapped), withdrawing or complaining.
    """
    if tracker.get_slot("case_access") == "locked" or case_flags(tracker).get("locked"):
        return "verification_locked"
    earlier = _turns(tracker.events)[:-1]  # the last turn is this request
    if not earlier:
        return "request_human"
    misunderstood = 0
    for _, actions in reversed(earlier):
        if FALLBACK_ACTION not in actions:
            break
        misunderstood += 1
    if misunderstood >= MISUNDERSTANDINGS_BEFORE_OFFER:
        return "fallback"
    return REASON_AFTER.get(earlier[-1][0] or "", "request_human")


class ActionRequestHuman(Action):
    """Start a handoff. The gateway says what happens next, so this sends no text."""

    def name(self) -> str:
        return "action_request_human"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        dispatcher.utter_message(json_message=handoff_marker(handoff_reason(tracker)))
        return []


class ActionStoreFeedback(Action):
    """Thank the person and ask the gateway to keep what they said.

    A question about how to give feedback gets the answer instead, and nothing is kept.
    """

    def name(self) -> str:
        return "action_store_feedback"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if asks_how_to_give_feedback(latest_text(tracker)):
            return content.send(dispatcher, "assistant.feedback_how")
        events = content.send(dispatcher, "feedback.thanks")
        dispatcher.utter_message(json_message=feedback_marker("store"))
        return events
