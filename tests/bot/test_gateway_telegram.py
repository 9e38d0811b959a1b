"""Telegram through the gateway: the real python-telegram-bot Application and Bot, against a
fake Bot API that records every call, and the real Rasa model."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from actions import content
from bot.db import sync_url
from bot.models import Inbound
from tests.fakes.telegram_api import callback_update, text_update
from tests.harness import (
    PUBLIC_URL,
    TELEGRAM_SECRET,
    LiveGateway,
    gateway_settings,
    live_gateway_for,
    wait_until,
)

pytestmark = pytest.mark.rasa
_chats = itertools.count(5_000_000)
_updates = itertools.count(900_000)


def new_chat() -> int:
    return next(_chats)


def inbound(live: LiveGateway, **where: object) -> list[Inbound]:
    # Message text is sealed at rest (bot/privacy/crypto.py): compared here, not in SQL.
    text = where.pop("text", None)
    engine = create_engine(sync_url(live.settings.database_url))
    try:
        with Session(engine) as session:
            found = list(session.scalars(select(Inbound).filter_by(**where)).all())
    finally:
        engine.dispose()
    return [row for row in found if text is None or row.text == text]


def test_the_webhook_is_registered_with_its_secret(live_gateway: LiveGateway) -> None:
    (registered,) = live_gateway.telegram.called("setWebhook")
    assert registered["url"] == f"{PUBLIC_URL}/telegram/webhook"
    assert registered["secret_token"] == TELEGRAM_SECRET
    assert set(registered["allowed_updates"]) == {"message", "callback_query"}


def test_a_message_with_the_secret_gets_an_answer(live_gateway: LiveGateway) -> None:
    chat = new_chat()
    response = live_gateway.telegram_update(
        text_update(next(_updates), chat, "what does bail mean")
    )
    assert response.status_code == 200
    replies = live_gateway.telegram_replies(chat, 1)
    assert "bail" in replies[0]["text"].lower()


@pytest.mark.parametrize("secret", [None, "", "wrong-secret", TELEGRAM_SECRET + "x"])
def test_a_missing_or_wrong_secret_is_refused(
    live_gateway: LiveGateway, secret: str | None
) -> None:
    chat = new_chat()
    update_id = next(_updates)
    response = live_gateway.telegram_update(text_update(update_id, chat, "hello"), secret=secret)
    assert response.status_code == 403
    assert inbound(live_gateway, provider_id=str(update_id)) == []


def test_a_duplicate_update_is_answered_once(gateway_on: LiveGateway) -> None:
    live = gateway_on
    chat = new_chat()
    update = text_update(next(_updates), chat, "what does remanded in custody mean")
    assert live.telegram_update(update).status_code == 200
    assert live.telegram_update(update).status_code == 200
    (stored,) = wait_until(
        lambda: inbound(live, provider_id=str(update["update_id"]), state="done"), 1
    )
    answered = len(live.telegram.sent(chat))
    # A later message is answered; the duplicate never was.
    live.telegram_update(text_update(next(_updates), chat, "thanks"))
    wait_until(lambda: inbound(live, text="thanks", state="done"), 1)
    assert len(inbound(live, provider_id=str(update["update_id"]))) == 1
    assert answered >= 1
    assert stored.attempts == 1  # Rasa was asked once


def test_buttons_become_an_inline_keyboard_and_a_tap_is_answered(
    live_gateway: LiveGateway,
) -> None:
    chat = new_chat()
    live_gateway.telegram_update(
        text_update(next(_updates), chat, "they said no further action, can I challenge it")
    )
    with_keyboard = wait_until(
        lambda: [m for m in live_gateway.telegram.sent(chat) if m.get("reply_markup")], 1
    )
    markup = with_keyboard[0]["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    keyboard = markup["inline_keyboard"]
    titles = [row[0]["text"] for row in keyboard]
    assert "The CPS (prosecutors)" in titles
    data = keyboard[titles.index("The CPS (prosecutors)")][0]["callback_data"]
    assert len(data.encode()) <= 64  # Telegram's limit for callback data

    before = len(live_gateway.telegram.sent(chat))
    tap = callback_update(next(_updates), chat, data)
    assert live_gateway.telegram_update(tap).status_code == 200
    answered = live_gateway.telegram.called("answerCallbackQuery")
    assert any(a["callback_query_id"] == tap["callback_query"]["id"] for a in answered)
    after = live_gateway.telegram_replies(chat, before + 1)
    (stored,) = inbound(live_gateway, provider_id=str(tap["update_id"]))
    assert stored.payload == '/inform{"decision_maker": "cps"}'
    assert "when" in " ".join(m["text"] for m in after[before:]).lower()


def test_a_stale_or_forged_button_is_ignored_safely(live_gateway: LiveGateway) -> None:
    chat = new_chat()
    for data in ["b:999999999:0", "nonsense", "b:x:y"]:
        response = live_gateway.telegram_update(callback_update(next(_updates), chat, data))
        assert response.status_code == 200
    assert live_gateway.telegram.sent(chat) == []


def test_start_keeps_the_deep_link_parameter_and_greets(live_gateway: LiveGateway) -> None:
    chat = new_chat()
    update = text_update(next(_updates), chat, "/start link-abc123")
    live_gateway.telegram_update(update)
    replies = live_gateway.telegram_replies(chat, 1)
    assert replies[0]["text"].startswith(content.item("assistant.greet").parts[0])
    (stored,) = inbound(live_gateway, provider_id=str(update["update_id"]))
    assert stored.meta == {"start_param": "link-abc123"}


def test_help_and_stop(live_gateway: LiveGateway) -> None:
    chat = new_chat()
    live_gateway.telegram_update(text_update(next(_updates), chat, "/help"))
    assert (
        live_gateway.telegram_replies(chat, 1)[0]["text"] == content.item("gateway.help").parts[0]
    )
    live_gateway.telegram_update(text_update(next(_updates), chat, "/stop"))
    stopped = live_gateway.telegram_replies(chat, 2)
    assert stopped[1]["text"] == content.item("gateway.stopped").parts[0]
    live_gateway.telegram_update(text_update(next(_updates), chat, "what does bail mean"))
    wait_until(lambda: inbound(live_gateway, note="opted_out"), 1)
    assert len(live_gateway.telegram.sent(chat)) == 2


def test_a_photo_gets_the_text_only_reply(live_gateway: LiveGateway) -> None:
    chat = new_chat()
    update = text_update(next(_updates), chat, "")
    del update["message"]["text"]
    update["message"]["photo"] = [{"file_id": "f", "file_unique_id": "u", "width": 1, "height": 1}]
    live_gateway.telegram_update(update)
    replies = live_gateway.telegram_replies(chat, 1)
    assert replies[0]["text"] == content.item("gateway.non_text").parts[0]


def test_an_emergency_gets_999_first(live_gateway: LiveGateway) -> None:
    chat = new_chat()
    live_gateway.telegram_update(
        text_update(next(_updates), chat, "he's got a knife and he's coming")
    )
    first = live_gateway.telegram_replies(chat, 1)[0]["text"]
    assert "999" in first and "55" in first


def test_group_chats_are_ignored(live_gateway: LiveGateway) -> None:
    chat = new_chat()
    update = text_update(next(_updates), chat, "hello")
    update["message"]["chat"]["type"] = "group"
    assert live_gateway.telegram_update(update).status_code == 200
    assert inbound(live_gateway, provider_id=str(update["update_id"])) == []


@pytest.mark.parametrize(
    "body",
    [b"{not json", b"[]", b'{"no_update_id": 1}', b'{"update_id": "x", "message": 5}', b""],
)
def test_malformed_updates_get_a_4xx(live_gateway: LiveGateway, body: bytes) -> None:
    response = live_gateway.client.post(
        live_gateway.url + "/telegram/webhook",
        content=body,
        headers={"X-Telegram-Bot-Api-Secret-Token": TELEGRAM_SECRET},
    )
    assert response.status_code == 400


def test_polling_mode_answers_without_a_webhook(rasa_stack: object, tmp_path: Path) -> None:
    settings = gateway_settings(
        f"sqlite:///{tmp_path / 'gateway.db'}",
        rasa_stack.url,  # type: ignore[attr-defined]
        rasa_stack.token,  # type: ignore[attr-defined]
        public_base_url=None,
        telegram_mode="auto",  # no public URL: poll
    )
    with live_gateway_for(settings) as live:
        assert live.telegram.called("setWebhook") == []
        assert live.telegram.called("deleteWebhook")
        chat = new_chat()
        live.telegram.updates.append(text_update(next(_updates), chat, "what does bail mean"))
        replies = live.telegram_replies(chat, 1)
        assert "bail" in replies[0]["text"].lower()
