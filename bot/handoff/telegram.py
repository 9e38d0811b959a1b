"""Coordinators on Telegram (being written)."""

from __future__ import annotations

from typing import Any


class TelegramLink:
    channel = "telegram"

    def __init__(self, application: Any) -> None:
        self.application = application

    def reaches(self, coordinator: Any) -> bool:
        return False

    async def send(self, coordinator: Any, text: str, *, claim: int | None = None) -> None:
        return None


async def handle_coordinator_update(update: Any, gateway: Any) -> bool:
    return False
