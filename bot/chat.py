"""A terminal chat with the assistant, through Rasa's REST channel on loopback.

Buttons are shown as numbered choices, as they will be on SMS: reply with the
number to choose one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from actions import content


@dataclass
class ChatSession:
    rasa_url: str
    sender: str = field(default_factory=lambda: f"terminal-{uuid.uuid4().hex}")
    choices: list[str] = field(default_factory=list)
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    def send(self, text: str) -> list[dict[str, Any]]:
        """Send what the person typed; a number picks one of the last buttons."""
        text = text.strip()
        if text.isdigit() and 1 <= int(text) <= len(self.choices):
            text = self.choices[int(text) - 1]
        response = self.client.post(
            f"{self.rasa_url}/webhooks/rest/webhook", json={"sender": self.sender, "message": text}
        )
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()
        self.choices = [b["payload"] for m in messages for b in m.get("buttons") or []]
        return messages


def render(messages: list[dict[str, Any]]) -> list[str]:
    """The lines to show for a batch of bot messages."""
    lines: list[str] = []
    number = 0
    for message in messages:
        if message.get("text"):
            lines.append(message["text"])
        for button in message.get("buttons") or []:
            number += 1
            lines.append(f"  Reply {number} for {button['title']}")
    return lines


def repl(session: ChatSession, read: Callable[[str], str] = input) -> None:
    # The greeting is sourced content: who we are, not the police, and 999 in danger.
    print(content.item("assistant.greet").parts[0])
    print("Type a message, or /quit to leave.\n")
    while True:
        try:
            text = read("you> ")
        except (EOFError, KeyboardInterrupt):
            print()
            return
        if text.strip() in {"/quit", "/exit"}:
            return
        if not text.strip():
            continue
        for line in render(session.send(text)):
            print(f"waymark> {line}")
