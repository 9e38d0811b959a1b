"""Builders for rasa-sdk trackers and dispatchers, shared by the action tests."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

ROOT = Path(__file__).resolve().parent.parent


@lru_cache(maxsize=1)
def domain() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "domain.yml").read_text())


def user_event(
    intent: str, text: str = "", entities: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    return {
        "event": "user",
        "text": text,
        "parse_data": {
            "intent": {"name": intent, "confidence": 1.0},
            "entities": entities or [],
            "text": text,
        },
    }


def tracker(
    intent: str,
    text: str = "",
    *,
    entities: dict[str, str] | None = None,
    slots: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    active_loop: str | None = None,
) -> Tracker:
    """A tracker whose latest message has this intent, text and entities."""
    ents = [{"entity": k, "value": v} for k, v in (entities or {}).items()]
    latest = user_event(intent, text, ents)
    history = [*(events or []), latest]
    return Tracker(
        sender_id="test",
        slots={**{name: None for name in domain()["slots"]}, **(slots or {})},
        latest_message=latest["parse_data"],
        events=history,
        paused=False,
        followup_action=None,
        active_loop={"name": active_loop} if active_loop else {},
        latest_action_name="action_listen",
    )


def run(action: Any, t: Tracker) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run an action; returns (messages sent, events returned)."""
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, t, domain()))
    return dispatcher.messages, events
