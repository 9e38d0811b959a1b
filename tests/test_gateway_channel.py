"""The gateway's Rasa channel (connectors/gateway_channel.py) on the real Rasa server.

Only a caller with the shared token gets in; bad requests get a 400 with a JSON error,
never a 500; the message id and metadata the gateway sends are kept in the tracker.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from actions import content
from bot.config import ROOT
from tests.conftest import RasaStack

pytestmark = pytest.mark.rasa


def new_sender() -> str:
    return f"gateway-{uuid.uuid4().hex}"


def post(
    stack: RasaStack, *, token: str | None, body: Any = None, content_bytes: bytes | None = None
) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    if content_bytes is not None:
        headers["Content-Type"] = "application/json"
        return stack.client.post(
            f"{stack.url}/webhooks/waymark/webhook", content=content_bytes, headers=headers
        )
    return stack.client.post(f"{stack.url}/webhooks/waymark/webhook", json=body, headers=headers)


def test_health_needs_no_token(rasa_stack: RasaStack) -> None:
    r = rasa_stack.client.get(f"{rasa_stack.url}/webhooks/waymark/")
    assert r.status_code == 200
    assert r.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-the-token"},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
    ],
    ids=["missing", "wrong", "empty", "basic"],
)
def test_without_the_right_token_is_401(rasa_stack: RasaStack, headers: dict[str, str]) -> None:
    sender = new_sender()
    r = rasa_stack.client.post(
        f"{rasa_stack.url}/webhooks/waymark/webhook",
        json={"sender": sender, "message": "hello"},
        headers=headers,
    )
    assert r.status_code == 401
    assert "error" in r.json()
    events = rasa_stack.tracker(sender)["events"]  # a new tracker has only session start
    assert not [e for e in events if e["event"] in {"user", "bot"}]


def test_the_api_token_as_a_query_parameter_does_not_open_the_channel(
    rasa_stack: RasaStack,
) -> None:
    r = rasa_stack.client.post(
        f"{rasa_stack.url}/webhooks/waymark/webhook",
        params={"token": rasa_stack.token},
        json={"sender": new_sender(), "message": "hello"},
    )
    assert r.status_code == 401


def test_the_right_token_gets_the_bots_messages(rasa_stack: RasaStack) -> None:
    r = post(
        rasa_stack,
        token=rasa_stack.token,
        body={"sender": new_sender(), "message": "what does charged mean"},
    )
    assert r.status_code == 200
    reply = r.json()
    assert reply[0]["text"] == content.with_more_prompt(content.item("stage.charge").parts[0])


def test_buttons_come_back_whole(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    reply = rasa_stack.say(sender, "what are the stages of the justice process")
    buttons = [b for m in reply for b in m.get("buttons") or []]
    assert {"title": "Charge", "payload": '/ask_cjs_stage{"cjs_stage": "charge"}'} in buttons
    assert all(m["recipient_id"] == sender for m in reply)


def test_message_id_and_metadata_reach_the_tracker(rasa_stack: RasaStack) -> None:
    sender = new_sender()
    message_id = uuid.uuid4().hex
    metadata = {"channel": "sms", "received_at": "2025-01-01T10:00:00Z"}
    rasa_stack.say(sender, "what does charged mean", message_id=message_id, metadata=metadata)
    user = [e for e in rasa_stack.tracker(sender)["events"] if e["event"] == "user"]
    assert len(user) == 1
    assert user[0]["message_id"] == message_id
    assert user[0]["input_channel"] == "waymark"
    assert user[0]["metadata"].items() >= metadata.items()


@pytest.mark.parametrize(
    ("body", "raw"),
    [
        (None, b"{not json"),
        (None, b"\xff\xfe"),
        (None, b""),
        (["a", "list"], None),
        ({"message": "hello"}, None),
        ({"sender": "", "message": "hello"}, None),
        ({"sender": 42, "message": "hello"}, None),
        ({"sender": "x" * 129, "message": "hello"}, None),
        ({"sender": "s"}, None),
        ({"sender": "s", "message": ""}, None),
        ({"sender": "s", "message": "  \n "}, None),
        ({"sender": "s", "message": 42}, None),
        ({"sender": "s", "message": None}, None),
        ({"sender": "s", "message": ["hello"]}, None),
        ({"sender": "s", "message": "hello", "metadata": "sms"}, None),
        ({"sender": "s", "message": "hello", "metadata": ["sms"]}, None),
        ({"sender": "s", "message": "hello", "message_id": 7}, None),
        ({"sender": "s", "message": "hello", "message_id": "x" * 129}, None),
    ],
    ids=[
        "malformed-json",
        "not-utf8",
        "empty-body",
        "array",
        "no-sender",
        "empty-sender",
        "number-sender",
        "long-sender",
        "no-message",
        "empty-message",
        "blank-message",
        "number-message",
        "null-message",
        "list-message",
        "string-metadata",
        "list-metadata",
        "number-message-id",
        "long-message-id",
    ],
)
def test_bad_requests_are_400_with_a_json_error(
    rasa_stack: RasaStack, body: Any, raw: bytes | None
) -> None:
    r = post(rasa_stack, token=rasa_stack.token, body=body, content_bytes=raw)
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str)


def test_the_rest_channel_is_off_by_default(rasa_stack: RasaStack) -> None:
    r = rasa_stack.client.post(
        f"{rasa_stack.url}/webhooks/rest/webhook", json={"sender": new_sender(), "message": "hi"}
    )
    assert r.status_code == 404


def test_the_token_is_not_written_to_disk(rasa_stack: RasaStack) -> None:
    port = httpx.URL(rasa_stack.url).port
    for name in (f"credentials-{port}.yml", f"endpoints-{port}.yml"):
        text = (ROOT / "var" / name).read_text()
        assert rasa_stack.token not in text
    assert "${WAYMARK_RASA_TOKEN}" in (ROOT / "var" / f"credentials-{port}.yml").read_text()
