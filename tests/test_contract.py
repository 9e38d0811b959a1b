"""Contract: the real Rasa 3.6 server calls the real action server (rasa-sdk 3.21).

Rasa sends the tracker and domain to the action server's webhook; the action server
returns messages and events (slots, form validation) that Rasa applies.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from importlib.metadata import version

import pytest

from actions import content
from bot.config import ROOT
from tests.conftest import RasaStack

pytestmark = pytest.mark.rasa


def test_the_pinned_pair() -> None:
    assert version("rasa-sdk") == "3.21.1"
    rasa = subprocess.run(
        [str(ROOT / ".venv-rasa" / "bin" / "python"), "-c", "import rasa; print(rasa.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert rasa.stdout.strip() == "3.6.21"
    assert sys.version_info >= (3, 11)


def test_action_events_and_messages_reach_rasa(rasa_stack: RasaStack) -> None:
    sender = f"contract-{uuid.uuid4().hex}"
    reply = rasa_stack.say(sender, "what happens at a first hearing")
    assert reply[0]["text"] == content.with_more_prompt(
        content.item("stage.first_hearing").parts[0]
    )
    slots = rasa_stack.tracker(sender)["slots"]
    assert slots["more_key"] == "stage.first_hearing"
    assert slots["more_index"] == 1.0


def test_form_validation_runs_on_the_action_server(rasa_stack: RasaStack) -> None:
    sender = f"contract-{uuid.uuid4().hex}"
    rasa_stack.say(sender, "how do i challenge the decision to take no further action")
    rasa_stack.say(sender, '/inform{"decision_maker": "not_sure"}')
    rasa_stack.say(sender, "yesterday")
    tracker = rasa_stack.tracker(sender)
    assert tracker["slots"]["review_decision_maker"] == "not_sure"
    assert len(tracker["slots"]["review_told_date"]) == 10  # ISO date set by validation
    names = [e.get("name") for e in tracker["events"] if e["event"] == "action"]
    assert "validate_right_to_review_form" not in names  # called by the form, not as a step
    assert "action_explain_review_deadline" in names


def test_buttons_survive_the_round_trip(rasa_stack: RasaStack) -> None:
    reply = rasa_stack.say(f"contract-{uuid.uuid4().hex}", "/ask_cjs_stage")
    payloads = [b["payload"] for b in reply[0]["buttons"]]
    assert '/ask_cjs_stage{"cjs_stage": "charge"}' in payloads
