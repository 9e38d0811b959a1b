"""Rasa on PostgreSQL (tracker store) and Redis (lock store): conversations survive a restart.

Needs PostgreSQL and Redis on loopback with trust auth (CI runs both). Locally the test
is skipped when they are not running.
"""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from actions import content
from bot.config import Settings
from bot.stack import action_server, rasa_server
from tests.conftest import RasaStack, free_port

pytestmark = pytest.mark.rasa

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
REDIS = "redis://127.0.0.1:6379/1"


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def settings() -> Settings:
    if not (_listening(5432) and _listening(6379)) and not os.environ.get("CI"):
        pytest.skip("PostgreSQL (5432) and Redis (6379) are not running on 127.0.0.1")
    return Settings(
        rasa_port=free_port(),
        actions_port=free_port(),
        rasa_tracker_store_url=POSTGRES,
        rasa_lock_store_url=REDIS,
        rasa_rest_channel=False,
    )


def test_conversation_survives_a_restart(settings: Settings) -> None:
    sender = f"stores-{uuid.uuid4().hex}"
    token = settings.rasa_token.get_secret_value()
    charge = content.item("stage.charge")
    with action_server(settings):
        with rasa_server(settings) as url:
            stack = RasaStack(url=url, token=token)
            reply = stack.say(sender, "what happens when someone is charged", message_id="m-1")
            assert reply[0]["text"] == content.with_more_prompt(charge.parts[0])
            before = stack.tracker(sender)
            stack.client.close()
        assert before["slots"]["more_key"] == "stage.charge"

        with rasa_server(settings) as url:
            stack = RasaStack(url=url, token=token)
            after = stack.tracker(sender)
            assert after["slots"]["more_key"] == "stage.charge"
            assert after["slots"]["more_index"] == 1.0
            assert after["events"] == before["events"]
            assert [e.get("message_id") for e in after["events"] if e["event"] == "user"] == ["m-1"]

            # MORE carries on from where the conversation was before the restart.
            assert stack.say(sender, "MORE")[0]["text"].startswith(charge.parts[1])
            assert stack.tracker(sender)["slots"]["more_index"] == 2.0
            stack.client.close()
