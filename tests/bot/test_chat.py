"""The terminal chat client: numbered choices for buttons, numbers mapped back to payloads."""

from __future__ import annotations

import json

import httpx
import pytest

from bot.chat import ChatSession, render, repl

REPLY = [
    {"recipient_id": "x", "text": "Which part?"},
    {
        "recipient_id": "x",
        "buttons": [
            {"title": "Charge", "payload": '/ask_cjs_stage{"cjs_stage": "charge"}'},
            {"title": "Trial", "payload": '/ask_cjs_stage{"cjs_stage": "trial"}'},
        ],
    },
]


def session(sent: list[str]) -> ChatSession:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        sent.append(body["message"])
        assert request.url.path == "/webhooks/rest/webhook"
        return httpx.Response(200, json=REPLY)

    return ChatSession(
        "http://rasa.test", client=httpx.Client(transport=httpx.MockTransport(handler))
    )


def test_buttons_render_as_numbered_choices() -> None:
    assert render(REPLY) == ["Which part?", "  Reply 1 for Charge", "  Reply 2 for Trial"]


def test_a_number_sends_the_button_payload() -> None:
    sent: list[str] = []
    chat = session(sent)
    chat.send("what are the stages")
    chat.send("2")
    chat.send("7")  # not a choice: sent as typed
    assert sent == ["what are the stages", '/ask_cjs_stage{"cjs_stage": "trial"}', "7"]


def test_sender_is_pseudonymous_and_stable() -> None:
    chat = session([])
    assert chat.sender.startswith("terminal-") and len(chat.sender) > 20


def test_repl_quits_on_quit(capsys: pytest.CaptureFixture[str]) -> None:
    sent: list[str] = []
    lines = iter(["hello", "", "/quit"])
    repl(session(sent), read=lambda _: next(lines))
    assert sent == ["hello"]
    out = capsys.readouterr().out
    assert "call 999" in out and "waymark> Which part?" in out
