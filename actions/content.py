"""User-facing content: every fact the assistant states, kept as data with its source.

Items live in `content/*.yml` (see docs/content.md). An item has a key, a title,
SMS-sized parts, source URLs and a last-checked date. The first part answers;
the rest follow when the person replies MORE.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import yaml
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

CONTENT_DIR = Path(__file__).resolve().parent.parent / "content"
MORE_PROMPT = "Reply MORE for more details."


@dataclass(frozen=True)
class Item:
    key: str
    title: str
    parts: tuple[str, ...]
    sources: tuple[str, ...]
    last_checked: str

    def part(self, index: int, **fields: str) -> str:
        text = self.parts[index]
        return text.format(**fields) if fields else text


@lru_cache(maxsize=1)
def catalogue() -> dict[str, Item]:
    """All content items by key, loaded once per process."""
    items: dict[str, Item] = {}
    for path in sorted(CONTENT_DIR.glob("*.yml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        for raw in data.get("items", []):
            key = raw["key"]
            if key in items:
                raise ValueError(f"duplicate content key {key!r} in {path.name}")
            items[key] = Item(
                key=key,
                title=str(raw.get("title", "")),
                parts=tuple(str(p) for p in raw["parts"]),
                sources=tuple(raw.get("sources") or ()),
                last_checked=str(raw.get("last_checked", "")),
            )
    return items


def item(key: str) -> Item:
    return catalogue()[key]


def with_more_prompt(text: str) -> str:
    return f"{text} {MORE_PROMPT}"


def send(
    dispatcher: CollectingDispatcher,
    key: str,
    *,
    start: int = 0,
    all_parts: bool = False,
    fields: dict[str, str] | None = None,
    buttons: list[dict[str, str]] | None = None,
) -> list[EventType]:
    """Send an item's part `start` (or every part) and remember where MORE continues.

    `buttons` go with the last message sent.
    """
    entry = item(key)
    fields = fields or {}
    end = len(entry.parts) if all_parts else start + 1
    for index in range(start, end):
        text = entry.part(index, **fields)
        if index == end - 1 and end < len(entry.parts):
            text = with_more_prompt(text)
        if index == end - 1 and buttons:
            dispatcher.utter_message(text=text, buttons=[dict(b) for b in buttons])
        else:
            dispatcher.utter_message(text=text)
    if end < len(entry.parts):
        return [SlotSet("more_key", key), SlotSet("more_index", float(end))]
    return [SlotSet("more_key", None), SlotSet("more_index", None)]
