"""The terminal chat client: numbered choices for buttons, through the real gateway."""

from __future__ import annotations

import time
from typing import Any

import pytest

from bot.chat import GatewayChat, render, repl
from tests.handoff.conftest import conversation_of, coordinator
from tests.harness import LiveGateway, wait_until

REPLY = [
    {"id": 1, "text": "Which part?", "buttons": []},
    {
        "id": 2,
        "text": "",
        "buttons": [
            {"title": "Charge", "payload": '/ask_cjs_stage{"cjs_stage": "charge"}'},
            {"title": "Trial", "payload": '/ask_cjs_stage{"cjs_stage": "trial"}'},
        ],
    },
]


def test_buttons_render_as_numbered_choices() -> None:
    assert render(REPLY) == ["Which part?", "  Reply 1 for Charge", "  Reply 2 for Trial"]


@pytest.mark.rasa
def test_repl_chats_through_the_gateway_and_ends_the_session(
    live_gateway: LiveGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = iter(["what does charged mean", "", "/quit"])
    chat = GatewayChat(live_gateway.url)
    repl(chat, read=lambda _: next(lines))
    out = capsys.readouterr().out
    assert "call 999" in out and "waymark> " in out and "charge" in out.lower()
    # Leaving ends the session on the server, as Exit does on the web page.
    gone = live_gateway.client.post(
        f"{live_gateway.url}/api/web/sessions/{chat.session_id}/messages", json={"text": "hi"}
    )
    assert gone.status_code == 404


@pytest.mark.rasa
def test_messages_between_turns_reach_the_terminal(live_gateway: LiveGateway) -> None:
    live = live_gateway
    chat = GatewayChat(live.url)
    chat.send("hello")
    heard: list[dict[str, Any]] = []
    chat.listen(heard.append)
    conversation = conversation_of(
        live, "web", live.gateway.pseudonym("web-session", chat.session_id or "")
    )
    sam = coordinator(live, name="Sam")
    time.sleep(0.5)  # the stream is open
    handoff_id = live.run(live.gateway.handoffs.take_over(conversation.id, sam))
    live.run(live.gateway.handoffs.reply(handoff_id, sam, "Hello, it's Sam from the team."))
    texts = [m["text"] for m in wait_until(lambda: heard, 2)]
    assert texts[0].startswith("You are now talking to Sam")
    assert texts[1] == "Hello, it's Sam from the team."
    chat.close()
