"""The web chat's JSON API and live stream, over real HTTP, with the real Rasa model."""

from __future__ import annotations

import json
import threading

import httpx
import pytest

from bot.chat import GatewayChat, render
from tests.harness import LiveGateway

pytestmark = pytest.mark.rasa


def test_a_session_answers_a_question(live_gateway: LiveGateway) -> None:
    session = live_gateway.web_session()
    replies = live_gateway.web_say(session, "what does released under investigation mean")
    assert replies and "investigat" in replies[0]["text"].lower()
    assert all(set(r) == {"id", "text", "buttons"} for r in replies)


def test_the_page_is_served_without_caching_or_cookies(live_gateway: LiveGateway) -> None:
    response = live_gateway.client.get(live_gateway.url + "/")
    assert response.status_code == 200
    assert "Exit this page" in response.text
    assert response.headers["cache-control"] == "no-store"
    assert "set-cookie" not in response.headers


def test_buttons_come_back_and_a_payload_is_sent_as_the_choice(live_gateway: LiveGateway) -> None:
    session = live_gateway.web_session()
    replies = live_gateway.web_say(session, "they said no further action, can I challenge it")
    buttons = [b for r in replies for b in r["buttons"]]
    cps = next(b for b in buttons if b["title"] == "The CPS (prosecutors)")
    after = live_gateway.web_say(session, cps["title"], payload=cps["payload"])
    assert "when" in " ".join(r["text"] for r in after).lower()


def test_live_events_carry_every_reply(live_gateway: LiveGateway) -> None:
    session = live_gateway.web_session()
    seen: list[dict] = []
    connected = threading.Event()

    def listen() -> None:
        url = f"{live_gateway.url}/api/web/sessions/{session}/events"
        with httpx.stream("GET", url, timeout=30) as stream:
            connected.set()
            for line in stream.iter_lines():
                if line.startswith("data:") and line[5:].strip() not in ("", "{}"):
                    seen.append(json.loads(line[5:]))
                if line.startswith("event: end"):
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert connected.wait(10)
    replies = live_gateway.web_say(session, "what does charged mean")
    live_gateway.client.delete(f"{live_gateway.url}/api/web/sessions/{session}")
    listener.join(15)
    assert [m["id"] for m in seen] == [r["id"] for r in replies]


def test_exit_ends_the_session_for_good(live_gateway: LiveGateway) -> None:
    session = live_gateway.web_session()
    live_gateway.web_say(session, "hello")
    url = f"{live_gateway.url}/api/web/sessions/{session}"
    assert live_gateway.client.delete(url).status_code == 204
    assert live_gateway.client.delete(url).status_code == 204  # idempotent
    after = live_gateway.client.post(url + "/messages", json={"text": "hello again"})
    assert after.status_code == 404
    assert live_gateway.client.get(url + "/events").status_code == 404


def test_a_retry_with_the_same_client_id_is_answered_once(live_gateway: LiveGateway) -> None:
    session = live_gateway.web_session()
    first = live_gateway.web_say(session, "what does bail mean", client_message_id="m-1")
    again = live_gateway.web_say(session, "what does bail mean", client_message_id="m-1")
    assert [m["id"] for m in again] == [m["id"] for m in first]


def test_the_safety_reply_comes_first_and_only_once(live_gateway: LiveGateway) -> None:
    session = live_gateway.web_session()
    replies = live_gateway.web_say(session, "I want to end my life tonight")
    assert "999" in replies[0]["text"]
    texts = [r["text"] for r in replies]
    assert len(texts) == len(set(texts))


@pytest.mark.parametrize(
    ("body", "why"),
    [
        ({"text": ""}, "empty"),
        ({"text": "   \n\t "}, "only spaces"),
        ({"text": "\x00\x07\x1b"}, "only control characters"),
        ({"text": "x" * 10_240}, "10 KB"),
        ({}, "missing text"),
        ({"text": 42}, "not a string"),
        ({"text": "hi", "payload": "x" * 1000}, "payload too long"),
    ],
)
def test_bad_messages_get_a_clear_422(live_gateway: LiveGateway, body: dict, why: str) -> None:
    session = live_gateway.web_session()
    response = live_gateway.client.post(
        f"{live_gateway.url}/api/web/sessions/{session}/messages", json=body
    )
    assert response.status_code == 422, why
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]", b"\xff\xfe", b'{"text": "unterminated'])
def test_malformed_json_gets_a_4xx(live_gateway: LiveGateway, raw: bytes) -> None:
    session = live_gateway.web_session()
    response = live_gateway.client.post(
        f"{live_gateway.url}/api/web/sessions/{session}/messages",
        content=raw,
        headers={"Content-Type": "application/json"},
    )
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize("session", ["unknown", "x" * 500, "%00", "../../etc"])
def test_unknown_sessions_get_404(live_gateway: LiveGateway, session: str) -> None:
    response = live_gateway.client.post(
        f"{live_gateway.url}/api/web/sessions/{session}/messages", json={"text": "hi"}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    "text",
    ["🙂 what does charged mean 🙂", "ما معنى التهمة", "что значит обвинение", "a\x00b\u202ec"],
)
def test_emoji_and_other_scripts_are_answered(live_gateway: LiveGateway, text: str) -> None:
    session = live_gateway.web_session()
    replies = live_gateway.web_say(session, text)
    assert replies and all(r["text"] for r in replies)


def test_health_reports_rasa_and_the_database(live_gateway: LiveGateway) -> None:
    health = live_gateway.client.get(live_gateway.url + "/health")
    assert health.status_code == 200
    assert health.json() | {"channels": None} == {
        "status": "ok",
        "database": "ok",
        "rasa": "ok",
        "channels": None,
    }
    assert set(health.json()["channels"]) == {"sms", "telegram", "web"}
    assert live_gateway.client.get(live_gateway.url + "/ready").status_code == 200


def test_the_terminal_client_talks_through_the_gateway(live_gateway: LiveGateway) -> None:
    chat = GatewayChat(live_gateway.url)
    lines = render(chat.send("they said no further action, can I challenge it"))
    assert any(line.strip().startswith("Reply 2 for") for line in lines)
    answer = render(chat.send("2"))  # a number picks that choice
    assert "when" in " ".join(answer).lower()
    chat.close()
