"""Coordinators by SMS (being written)."""

from __future__ import annotations

from typing import Any


class SmsLink:
    channel = "sms"

    def __init__(self, settings: Any, client: Any) -> None:
        self.settings = settings
        self.client = client

    def reaches(self, coordinator: Any) -> bool:
        return False

    async def send(self, coordinator: Any, text: str, *, claim: int | None = None) -> None:
        return None


async def handle_coordinator_sms(
    gateway: Any, sender: str, body: str, message_sid: str | None
) -> bool:
    return False
