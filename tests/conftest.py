"""Shared fixtures. The `rasa_stack` fixture runs the real trained model and action server."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from bot.config import Settings
from bot.stack import running_stack


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class RasaStack:
    url: str
    token: str
    tracker_store_path: str = ""  # the SQLite file Rasa keeps conversations in
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    def parse(self, text: str) -> dict[str, Any]:
        r = self.client.post(
            f"{self.url}/model/parse", params={"token": self.token}, json={"text": text}
        )
        r.raise_for_status()
        return r.json()

    def say(
        self,
        sender: str,
        text: str,
        *,
        message_id: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        """Send a message as the gateway does; returns the bot's messages."""
        body: dict[str, Any] = {"sender": sender, "message": text}
        if message_id is not None:
            body["message_id"] = message_id
        if metadata is not None:
            body["metadata"] = metadata
        r = self.client.post(
            f"{self.url}/webhooks/waymark/webhook",
            json=body,
            headers={"Authorization": f"Bearer {self.token}"},
        )
        r.raise_for_status()
        return r.json()

    def tracker(self, sender: str) -> dict[str, Any]:
        r = self.client.get(
            f"{self.url}/conversations/{sender}/tracker", params={"token": self.token}
        )
        r.raise_for_status()
        return r.json()


@pytest.fixture(scope="session")
def rasa_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RasaStack]:
    tracker_db = tmp_path_factory.mktemp("rasa") / "tracker.db"
    settings = Settings(
        rasa_port=free_port(),
        actions_port=free_port(),
        rasa_tracker_store_url=f"sqlite:///{tracker_db}",
        rasa_lock_store_url=None,
    )
    with running_stack(settings) as url:
        stack = RasaStack(
            url=url,
            token=settings.rasa_token.get_secret_value(),
            tracker_store_path=str(tracker_db),
        )
        yield stack
        stack.client.close()


# The live gateway fixtures (live_gateway, gateway_on).
pytest_plugins = ["tests.harness"]
