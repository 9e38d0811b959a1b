"""Questions asked one at a time (support_form, needs_form): what they share.

Each form's validation action (`validate_<form>`) decides everything for its form:
which answer the person's message gives, and which question comes next (the form
asks it with `utter_ask_<slot>`). Rasa's form only runs it. The rules that keep
people safe and never trap them:

- Danger (`emergency`, `self_harm_risk`) always interrupts: the action rejects the
  message, so the safety rules answer it and end the questions, even when the
  message also names a crime type or a place.
- Asking for a person interrupts too, unless a short message simply answers the
  question ("call me" when asked how services should get in touch).
- Another question, said clearly ("what does charged mean"), is left to the rules:
  some end the questions (out of scope, the menu, distress), others answer and ask
  again. The person can always say skip.
- "Skip", "rather not say" or a plain no skips one question; "cancel" (or "stop
  asking") ends them all.
- A reply that can't be read is asked once more, kindly; a second one is skipped.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecutionRejected, EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.messages import latest_intent, latest_text

REQUESTED_SLOT = "requested_slot"
SAFETY_INTENTS = frozenset({"emergency", "self_harm_risk"})
# Intents a typed answer often comes with. Any other intent, predicted with at least
# this confidence, means the person has moved on to something else.
ANSWER_INTENTS = frozenset({"inform", "deny", "affirm", "nlu_fallback"})
NEW_TOPIC_CONFIDENCE = 0.6
# A short message that answers the question wins over "request_human" ("call me").
SHORT_ANSWER_WORDS = 4
# Rasa's own steps around a form; anything else after the person's message means the
# form is coming back after answering something else.
FORM_STEPS = frozenset({"action_listen", "action_extract_slots"})

SKIP = re.compile(
    r"^\W*(?:please\s+)?(?:skip(?:\s+(?:it|this|that|this one|that one|this question))?"
    r"|pass|next|no comment|none of your business"
    r"|(?:i'?d\s+|i\s+would\s+)?(?:rather|prefer)\s+not(?:\s+to)?(?:\s+say)?(?:\s+thanks)?"
    r"|(?:i\s+)?(?:don'?t|do not|dont)\s+(?:want|wanna)\s+to\s+(?:say|answer|tell you)"
    r"|not\s+(?:saying|telling)"
    r")\W*$"
)
CANCEL = re.compile(
    r"^\W*(?:please\s+)?(?:cancel|stop|quit|exit|end)"
    r"(?:\s+(?:it|this|that|now|please|asking|asking me|these questions|the questions|questions))*\W*$"
    r"|\b(?:i\s+(?:want|wanna|would like|'?d like)\s+to\s+stop|can we stop|no more questions"
    r"|enough questions|stop (?:asking|the questions|these questions)"
    r"|cancel (?:this|that|it|the questions|these questions))\b"
)
DONT_KNOW = re.compile(
    r"^\W*(?:i\s+)?(?:don'?t|dont|do not)\s+know\b|^\W*(?:not sure|no idea|idk|dunno|unsure)\b"
)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def wants_to_skip(text: str) -> bool:
    return bool(SKIP.search(text.lower()))


def wants_to_cancel(text: str) -> bool:
    return bool(CANCEL.search(text.lower()))


def doesnt_know(text: str) -> bool:
    return bool(DONT_KNOW.search(text.lower()))


def intent_confidence(tracker: Tracker) -> float:
    return float((tracker.latest_message.get("intent") or {}).get("confidence") or 0.0)


def _last_user_index(events: list[dict[str, Any]]) -> int:
    for index in range(len(events) - 1, -1, -1):
        if events[index].get("event") == "user":
            return index
    return -1


def activating(tracker: Tracker, form: str) -> bool:
    """True when the form is starting.

    Rasa marks the form active before it asks the validation action at the start, so
    starting shows as the form's `active_loop` event after the person's message.
    """
    if (tracker.active_loop or {}).get("name") != form:
        return True
    events = tracker.events
    return any(
        event.get("event") == "active_loop" and event.get("name") == form
        for event in events[_last_user_index(events) + 1 :]
    )


def fresh_turn(tracker: Tracker, form: str) -> bool:
    """True when the form runs straight after the person's message.

    False when it comes back after another action answered something else: then the
    message was not an answer, and must not be read as one.
    """
    events = tracker.events
    for event in events[_last_user_index(events) + 1 :]:
        name = event.get("name")
        if event.get("event") == "action" and name not in FORM_STEPS and name != form:
            return False
    return True


def times_asked(tracker: Tracker, slot: str) -> int:
    """How many times in a row the form has just asked for `slot` (before this message)."""
    events = tracker.events
    asked: list[Any] = []
    for event in events[: _last_user_index(events)]:
        if event.get("event") == "slot" and event.get("name") == REQUESTED_SLOT:
            asked.append(event.get("value"))
        elif event.get("event") == "active_loop":
            asked = []
    count = 0
    for value in reversed(asked):
        if value != slot:
            break
        count += 1
    return count


class FormSteps(Action, ABC):
    """The validation action of a form that asks one question at a time.

    Subclasses say which questions are still needed, how to read an answer, and what
    skipping, cancelling and starting mean for them.
    """

    form = ""
    # Intents, besides ANSWER_INTENTS, that an answer to this form often comes with.
    extra_answer_intents: frozenset[str] = frozenset()

    def name(self) -> str:
        return f"validate_{self.form}"

    # -- what subclasses provide -------------------------------------------------

    @abstractmethod
    def next_question(self, slots: dict[str, Any], tracker: Tracker) -> str | None: ...

    @abstractmethod
    def read_answer(self, slot: str, tracker: Tracker) -> dict[str, Any] | None:
        """The slots this message fills when `slot` was asked; None if it doesn't answer."""
        ...

    @abstractmethod
    def skipped(self, slot: str) -> dict[str, Any]: ...

    @abstractmethod
    def not_understood(self, slot: str, tracker: Tracker) -> str:
        """The response that says, kindly, that the reply couldn't be read."""
        ...

    def on_start(self, tracker: Tracker) -> dict[str, Any]:
        return {}

    def on_every_turn(self, tracker: Tracker, values: dict[str, Any]) -> dict[str, Any]:
        """Slots to set from any message during the questions (e.g. clear self-descriptions)."""
        return {}

    def on_cancel(self, tracker: Tracker) -> dict[str, Any]:
        return {}

    # -- the steering ------------------------------------------------------------

    def moved_on(self, tracker: Tracker, text: str, answered: bool) -> bool:
        """True when the message is about something else: leave it to the rules."""
        intent = latest_intent(tracker)
        if intent in SAFETY_INTENTS:
            return True
        if answered:
            # A short answer wins over "request_human" ("call me", when asked how
            # services should get in touch); a long message asking for a person doesn't.
            return intent == "request_human" and len(words(text)) > SHORT_ANSWER_WORDS
        if intent == "request_human":
            return True
        return (
            intent not in ANSWER_INTENTS | self.extra_answer_intents
            and intent_confidence(tracker) >= NEW_TOPIC_CONFIDENCE
        )

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        values: dict[str, Any] = {}
        asked = tracker.get_slot(REQUESTED_SLOT)
        text = latest_text(tracker)
        if activating(tracker, self.form):
            values.update(self.on_start(tracker))
        elif asked and fresh_turn(tracker, self.form):
            if latest_intent(tracker) in SAFETY_INTENTS:
                return [ActionExecutionRejected(self.form)]
            if wants_to_cancel(text):
                # The asked slot is set (to what it was) so Rasa sees an answer, not a
                # message for the rules, and ends the questions.
                values = {asked: tracker.get_slot(asked), **self.on_cancel(tracker)}
                return [*(SlotSet(k, v) for k, v in values.items()), SlotSet(REQUESTED_SLOT, None)]
            answer = self.read_answer(asked, tracker)
            if self.moved_on(tracker, text, answer is not None):
                return [ActionExecutionRejected(self.form)]
            if answer is None:
                if wants_to_skip(text) or latest_intent(tracker) == "deny":
                    answer = self.skipped(asked)
                elif times_asked(tracker, asked) >= 2:
                    answer = self.skipped(asked)  # asked twice already: never trap anyone
                else:
                    dispatcher.utter_message(response=self.not_understood(asked, tracker))
                    answer = {asked: None}
            values.update(answer)
        values.update(self.on_every_turn(tracker, values))
        slots = {**tracker.slots, **values}
        events: list[EventType] = [SlotSet(k, v) for k, v in values.items()]
        return [*events, SlotSet(REQUESTED_SLOT, self.next_question(slots, tracker))]
