"""Warm referrals: with the person's consent, a coordinator asks a service to contact them.

The gateway owns referrals (bot/services/): it knows which services it last showed,
says plainly what would be shared and with whom, keeps the consent and tracks the
referral. The actions only steer, with markers and no text of their own
(docs/conversation-contract.md):

- REFER, with no service chosen: `{"referral": {"choose": true}}`; the gateway asks
  which of the services it showed (buttons `/request_referral{"service_id": "<id>"}`),
  or says to ask for support first;
- a service chosen: if the gateway doesn't hold this person's needs yet
  (`metadata["needs"]["stored"]` is false), a short explanation and the needs
  questions first (actions/needs.py), then `{"referral": {"offer": "<id>"}}`: the
  gateway asks for consent with Yes (`/affirm`) and No (`/deny`) buttons;
- yes: `{"referral": {"consent": "<id>", "reason": <first crime type or null>}}`;
- no: `{"referral": {"refused": "<id>"}}`;
- "cancel my referral", at any time: `{"referral": {"withdraw": true}}`.
"""

from __future__ import annotations

import re
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions.messages import latest_entity, marker
from actions.support import crime_types

SERVICE_ID = re.compile(r"[a-z0-9-]{3,64}")  # the directory's id format


def needs_stored(tracker: Tracker) -> bool:
    """What the gateway says with every message: does it hold this person's needs?"""
    metadata = tracker.latest_message.get("metadata") or {}
    needs = metadata.get("needs")
    return bool(needs.get("stored")) if isinstance(needs, dict) else False


def referral_marker(**fields: Any) -> dict[str, Any]:
    return marker(referral=fields)


def referral_cleared() -> list[EventType]:
    return [SlotSet("referral_service", None), SlotSet("referral_step", None)]


def offer_events(
    dispatcher: CollectingDispatcher, tracker: Tracker, service: str
) -> list[EventType]:
    """Ask the gateway to ask for consent to refer to `service`; the reason goes with it,
    so the consent message says why in the person's own terms."""
    dispatcher.utter_message(
        json_message=referral_marker(offer=service, reason=referral_reason(tracker))
    )
    return [SlotSet("referral_service", service), SlotSet("referral_step", "offer")]


def chosen_service(tracker: Tracker) -> str | None:
    found = latest_entity(tracker, "service_id")
    return found if isinstance(found, str) and SERVICE_ID.fullmatch(found) else None


def referral_reason(tracker: Tracker) -> str | None:
    found = crime_types(tracker)
    return found[0] if found else None


class ActionRequestReferral(Action):
    def name(self) -> str:
        return "action_request_referral"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        service = chosen_service(tracker)
        pending = tracker.get_slot("referral_service")
        if service is None:
            if pending and tracker.get_slot("referral_step") == "offer":
                return offer_events(
                    dispatcher, tracker, pending
                )  # asked again: ask for consent again
            dispatcher.utter_message(json_message=referral_marker(choose=True))
            return [SlotSet("referral_service", None), SlotSet("referral_step", "choose")]
        if needs_stored(tracker):
            return offer_events(dispatcher, tracker, service)
        # The needs questions first (the rules start needs_form); the offer follows.
        dispatcher.utter_message(response="utter_needs_before_referral")
        return [SlotSet("referral_service", service), SlotSet("referral_step", "needs")]


class ActionMakeReferral(Action):
    """Yes to the offer: the gateway makes the referral (if the offer is pending) and confirms."""

    def name(self) -> str:
        return "action_make_referral"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        service = tracker.get_slot("referral_service")
        if not service:
            dispatcher.utter_message(json_message=referral_marker(choose=True))
            return [SlotSet("referral_step", "choose")]
        reason = referral_reason(tracker)
        dispatcher.utter_message(json_message=referral_marker(consent=service, reason=reason))
        return referral_cleared()


class ActionRefuseReferral(Action):
    """No to the offer: the gateway drops it and says nothing was shared."""

    def name(self) -> str:
        return "action_refuse_referral"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        service = tracker.get_slot("referral_service")
        if service:
            dispatcher.utter_message(json_message=referral_marker(refused=service))
        else:
            dispatcher.utter_message(response="utter_ok")
        return referral_cleared()


class ActionWithdrawReferral(Action):
    """Consent taken back, at any time: the gateway withdraws the open referrals."""

    def name(self) -> str:
        return "action_withdraw_referral"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[EventType]:
        dispatcher.utter_message(json_message=referral_marker(withdraw=True))
        needs = ("safe_now", "communication", "disability", "others", "contact", "safe_times")
        return [*referral_cleared(), *(SlotSet(f"needs_{n}", None) for n in needs)]
