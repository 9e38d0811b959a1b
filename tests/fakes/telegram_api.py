"""A fake Telegram Bot API: a python-telegram-bot `BaseRequest` that records each call.

The real `Application` and `Bot` build real requests; this answers them the way the
Bot API would, so the library parses real responses.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from typing import Any

from telegram.request import BaseRequest, RequestData

BOT_TOKEN = "123456:TEST-token-for-the-fake-bot-api"
BOT_USER = {"id": 123456, "is_bot": True, "first_name": "Waymark", "username": "waymark_test_bot"}


class RecordingRequest(BaseRequest):
    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        # Updates handed out by getUpdates (polling mode), oldest first.
        self.updates: list[dict[str, Any]] = []
        self._ids = itertools.count(1000)
        self._lock = threading.Lock()
        # Answer sendMessage calls that carry entities with a 400, as Telegram would if it
        # refused them.
        self.refuse_entities = False

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    @property
    def read_timeout(self) -> float | None:
        return 1.0

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = None,
        write_timeout: Any = None,
        connect_timeout: Any = None,
        pool_timeout: Any = None,
    ) -> tuple[int, bytes]:
        endpoint = url.rsplit("/", 1)[-1]
        params = dict(request_data.parameters) if request_data else {}
        if endpoint == "getUpdates":
            with self._lock:
                handed, self.updates = self.updates, []
            if not handed:
                await asyncio.sleep(0.05)  # a long poll that found nothing
            return 200, json.dumps({"ok": True, "result": handed}).encode()
        with self._lock:
            self.calls.append((endpoint, params))
        if endpoint == "sendMessage" and self.refuse_entities and "entities" in params:
            refused = {"ok": False, "error_code": 400, "description": "Bad Request: can't parse"}
            return 400, json.dumps(refused).encode()
        if endpoint == "getMe":
            result: Any = BOT_USER
        elif endpoint == "sendMessage":
            result = {
                "message_id": next(self._ids),
                "date": int(time.time()),
                "chat": {"id": int(params["chat_id"]), "type": "private"},
                "from": BOT_USER,
                "text": params.get("text", ""),
            }
        else:  # setWebhook, deleteWebhook, answerCallbackQuery, ...
            result = True
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def sent(self, chat_id: int | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [
                p
                for name, p in self.calls
                if name == "sendMessage" and (chat_id is None or int(p["chat_id"]) == chat_id)
            ]

    def called(self, endpoint: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for name, p in self.calls if name == endpoint]


def text_update(update_id: int, chat_id: int, text: str) -> dict[str, Any]:
    user = {"id": chat_id, "is_bot": False, "first_name": "Test"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": "private", "first_name": "Test"},
            "from": user,
            "text": text,
        },
    }


def callback_update(update_id: int, chat_id: int, data: str) -> dict[str, Any]:
    user = {"id": chat_id, "is_bot": False, "first_name": "Test"}
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cb{update_id}",
            "from": user,
            "chat_instance": "1",
            "data": data,
            "message": {
                "message_id": 1,
                "date": int(time.time()),
                "chat": {"id": chat_id, "type": "private", "first_name": "Test"},
                "from": BOT_USER,
                "text": "earlier message",
            },
        },
    }
