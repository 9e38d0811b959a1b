"""Case look-ups: "any news on my case?".

The actions only steer the conversation. The gateway holds the case store and checks
the secret itself, so no case detail and no secret passes through here:

- the gateway tells the assistant, in each message's metadata, whether the person is
  verified right now or locked out (`metadata["case"]`);
- the form asks for the crime reference, then the secret (or a code sent to a linked
  phone); each ask carries a marker so the gateway takes the next reply itself and
  sends back only the verdict, as the `case_check` entity;
- a verified person's answer is a marker the gateway replaces with the case status;
- being locked out by the questions starts a handoff (reason `verification_locked`);
  asking again while locked out offers a person instead (see actions/handoff.py).
"""

from __future__ import annotations

import os
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from actions import content
from actions.handoff import HUMAN_BUTTON, handoff_marker
from actions.messages import case_flags, marker
from actions.references import (
    DEFAULT_REFERENCE_FORMAT,
    DEFAULT_REFERENCE_PATTERN,
    normalise_reference,
)

# Verdicts that end the questions; the others ask again.
FINAL = {"verified", "locked", "no_route"}
RESET = [SlotSet("crime_reference", None), SlotSet("case_check", None), SlotSet("case_step", None)]


def reference(text: str) -> str | None:
    return normalise_reference(
        text,
        os.environ.get("WAYMARK_CRIME_REFERENCE_PATTERN", DEFAULT_REFERENCE_PATTERN),
        os.environ.get("WAYMARK_CRIME_REFERENCE_FORMAT", DEFAULT_REFERENCE_FORMAT),
    )


class ActionCaseUpdate(Action):
    def name(self) -> str:
        return "action_case_update"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        flags = case_flags(tracker)
        if flags.get("verified"):
            dispatcher.utter_message(json_message=marker(render="case_status"))
            return [SlotSet("case_access", "verified")]
        if flags.get("locked"):
            # Asked again while locked out: offer a person (asking now gives the
            # coordinator the reason verification_locked).
            sent = content.send(dispatcher, "case.locked", buttons=[HUMAN_BUTTON])
            return [*sent, SlotSet("case_access", "locked")]
        # The rules start the look-up questions (case_verification_form) next.
        return [*RESET, SlotSet("case_access", "ask")]


class ActionAskCaseCheck(Action):
    """Ask for the secret, or for the code sent to a linked phone."""

    def name(self) -> str:
        return "action_ask_case_check"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        if tracker.get_slot("case_step") == "code":
            dispatcher.utter_message(response="utter_ask_case_code")
            dispatcher.utter_message(json_message=marker(expect="code"))
        else:
            dispatcher.utter_message(response="utter_ask_case_secret")
            dispatcher.utter_message(
                json_message=marker(expect="secret", reference=tracker.get_slot("crime_reference"))
            )
        return []


class ValidateCaseVerificationForm(FormValidationAction):
    def name(self) -> str:
        return "validate_case_verification_form"

    def validate_crime_reference(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value is None:  # cleared when the questions start: nothing to check yet
            return {"crime_reference": None}
        found = reference(str(value))
        if found is None:
            dispatcher.utter_message(response="utter_crime_reference_not_understood")
            return {"crime_reference": None}
        return {"crime_reference": found, "case_step": "secret"}

    def validate_case_check(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> dict[str, Any]:
        if value in FINAL:
            return {"case_check": value}
        if value == "code_sent":
            return {"case_check": None, "case_step": "code"}
        if value == "wrong_code":
            dispatcher.utter_message(response="utter_case_wrong_code")
            return {"case_check": None, "case_step": "code"}
        if value == "no_match":
            dispatcher.utter_message(response="utter_case_no_match")
            return {"case_check": None, "crime_reference": None, "case_step": None}
        return {"case_check": None}


class ActionCaseResult(Action):
    """After the questions: the case (rendered by the gateway), or what to do instead."""

    def name(self) -> str:
        return "action_case_result"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        verdict = tracker.get_slot("case_check")
        if verdict == "verified":
            dispatcher.utter_message(json_message=marker(render="case_status"))
        elif verdict == "locked":
            # Just locked out: a person is asked to help. The gateway says what happens
            # next, so the lock-out message promises nothing about who replies or when.
            content.send(dispatcher, "case.locked")
            dispatcher.utter_message(json_message=handoff_marker("verification_locked"))
        elif verdict == "no_route":
            content.send(dispatcher, "case.no_route")
        else:
            dispatcher.utter_message(response="utter_form_stopped")
        return [*RESET, SlotSet("case_access", None)]
