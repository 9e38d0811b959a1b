"""Small helpers: reading the latest user message, and instructions for the gateway."""

from __future__ import annotations

from typing import Any

from rasa_sdk import Tracker


def latest_intent(tracker: Tracker) -> str | None:
    return (tracker.latest_message.get("intent") or {}).get("name")


def latest_entity(tracker: Tracker, entity: str) -> str | None:
    """The entity's value in the latest message only, so old answers never leak in."""
    return next(tracker.get_latest_entity_values(entity), None)


def latest_text(tracker: Tracker) -> str:
    return (tracker.latest_message.get("text") or "").lower()


def marker(**fields: Any) -> dict[str, Any]:
    """An instruction for the gateway (a custom payload); never shown to the person.

    Send it as a message of its own: the gateway drops any text sent with a marker.
    See docs/conversation-contract.md for the markers it knows.
    """
    return {"waymark": fields}


def case_flags(tracker: Tracker) -> dict[str, Any]:
    """What the gateway says about case look-ups now: {"verified": bool, "locked": bool}."""
    metadata = tracker.latest_message.get("metadata") or {}
    flags = metadata.get("case")
    return flags if isinstance(flags, dict) else {}
