"""The gateway's client for Rasa, through the token-protected Waymark channel.

Rasa gets a pseudonymous sender id, the text, the gateway's message id and a little
metadata. It never sees a phone number or chat id.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import httpx

logger = logging.getLogger(__name__)

WEBHOOK = "/webhooks/waymark/webhook"


class RasaUnavailable(Exception):
    """Rasa could not be reached or failed: try again later."""

    def __init__(self, reason: str, *, server_error: bool = False) -> None:
        super().__init__(reason)
        self.server_error = server_error  # Rasa answered, with a 5xx


class RasaRejected(Exception):
    """Rasa refused the message (a 4xx): trying again would not help."""


class RasaClient:
    def __init__(self, base_url: str, token: str, *, timeout: float = 120.0) -> None:
        self._token = token
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            headers={"Authorization": f"Bearer {token}"},
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    async def send(
        self, sender: str, text: str, *, message_id: str, metadata: dict[str, Any]
    ) -> list[dict[str, Any]]:
        body = {"sender": sender, "message": text, "message_id": message_id, "metadata": metadata}
        try:
            response = await self._http.post(WEBHOOK, json=body)
        except httpx.HTTPError as error:
            raise RasaUnavailable(type(error).__name__) from error
        if response.status_code >= 500:
            raise RasaUnavailable(
                f"HTTP {response.status_code}", server_error=response.status_code == 500
            )
        if response.status_code >= 400:
            raise RasaRejected(f"HTTP {response.status_code}")
        try:
            messages = response.json()
        except ValueError as error:
            raise RasaUnavailable("not JSON") from error
        if not isinstance(messages, list):
            raise RasaUnavailable("unexpected reply")
        return [m for m in messages if isinstance(m, dict)]

    async def add_event(self, sender: str, event: dict[str, Any]) -> None:
        """Append an event to a conversation's tracker (pause, resume) through Rasa's
        HTTP API. Raises RasaUnavailable when that fails."""
        try:
            response = await self._http.post(
                f"/conversations/{quote(sender, safe='')}/tracker/events",
                params={"token": self._token, "include_events": "NONE"},
                json=event,
                timeout=10,
            )
        except httpx.HTTPError as error:
            raise RasaUnavailable(type(error).__name__) from error
        if response.status_code >= 400:
            raise RasaUnavailable(f"HTTP {response.status_code}", server_error=True)

    async def intents(self, sender: str) -> list[str]:
        """The intents of a conversation's user messages, oldest first (for a coordinator's
        summary). Empty when Rasa can't say."""
        try:
            response = await self._http.get(
                f"/conversations/{quote(sender, safe='')}/tracker",
                params={"token": self._token, "include_events": "ALL"},
                timeout=5,
            )
            events = response.json().get("events") or [] if response.status_code == 200 else []
        except (httpx.HTTPError, ValueError):
            return []
        return [
            str((e.get("parse_data") or {}).get("intent", {}).get("name") or "")
            for e in events
            if isinstance(e, dict) and e.get("event") == "user"
        ]

    async def ready(self) -> bool:
        """Rasa is up with a model loaded."""
        try:
            response = await self._http.get("/status", params={"token": self._token}, timeout=3)
        except httpx.HTTPError:
            return False
        return response.status_code == 200 and bool(response.json().get("model_file"))

    async def aclose(self) -> None:
        await self._http.aclose()
