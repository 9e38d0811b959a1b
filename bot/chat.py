"""A terminal chat with the assistant, through the gateway's web chat API.

It goes the same way as the web page: the gateway stores the message, runs the
safety check and asks Rasa. Buttons are shown as numbered choices, as on SMS:
reply with the number to choose one (the gateway maps it back). Like the page, it
also listens to the session's event stream, so messages that come between turns (a
coordinator's reply) are shown too.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import httpx

from actions import content


class GatewayChat:
    def __init__(self, gateway_url: str, *, timeout: float = 60) -> None:
        self.client = httpx.Client(base_url=gateway_url, timeout=timeout)
        self.session_id: str | None = None

    def send(self, text: str) -> list[dict[str, Any]]:
        """Send what the person typed; returns the replies."""
        if self.session_id is None:
            created = self.client.post("/api/web/sessions")
            created.raise_for_status()
            self.session_id = created.json()["session_id"]
        response = self.client.post(
            f"/api/web/sessions/{self.session_id}/messages", json={"text": text}
        )
        if response.status_code == 422:
            return [{"text": response.json()["detail"], "buttons": []}]
        response.raise_for_status()
        return list(response.json()["messages"])

    def listen(self, show: Callable[[dict[str, Any]], None]) -> threading.Thread:
        """Call `show` for every message the session's event stream brings, in a
        background thread, until the session ends. Start it after the first `send`."""
        assert self.session_id is not None
        url = f"{self.client.base_url}/api/web/sessions/{self.session_id}/events"

        def run() -> None:
            try:
                with (
                    httpx.Client(timeout=httpx.Timeout(10, read=None)) as client,
                    client.stream("GET", url) as stream,
                ):
                    event = ""
                    for line in stream.iter_lines():
                        if line.startswith("event:"):
                            event = line.removeprefix("event:").strip()
                        elif line.startswith("data:") and event == "message":
                            show(json.loads(line.removeprefix("data:")))
                        elif event == "end":
                            return
            except httpx.HTTPError:
                return  # the session ended, or the gateway stopped

        thread = threading.Thread(target=run, name="chat-events", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        """End the session on the server, like the web page's Exit."""
        if self.session_id is not None:
            self.client.delete(f"/api/web/sessions/{self.session_id}")
        self.client.close()


def render(messages: list[dict[str, Any]]) -> list[str]:
    """The lines to show for a batch of bot messages."""
    lines: list[str] = []
    for message in messages:
        if message.get("text"):
            lines.append(message["text"])
        for number, button in enumerate(message.get("buttons") or [], start=1):
            lines.append(f"  Reply {number} for {button['title']}")
    return lines


def repl(chat: GatewayChat, read: Callable[[str], str] = input) -> None:
    # The greeting is sourced content: who we are, not the police, and 999 in danger.
    print(content.item("assistant.greet").parts[0])
    print("Type a message, or /quit to leave.\n")
    shown: set[int] = set()
    lock = threading.Lock()

    def show(messages: list[dict[str, Any]]) -> None:
        # A message can come both in a reply and on the event stream: show it once.
        with lock:
            fresh = [m for m in messages if m.get("id") not in shown]
            shown.update(m.get("id") for m in fresh)
            for line in render(fresh):
                print(f"waymark> {line}", flush=True)

    listening = False
    try:
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
            try:
                replies = chat.send(text)
            except httpx.HTTPError as error:
                print(f"waymark> (could not reach the gateway: {type(error).__name__})")
                continue
            show(replies)
            if not listening and chat.session_id is not None:
                chat.listen(lambda message: show([message]))
                listening = True
    finally:
        chat.close()
