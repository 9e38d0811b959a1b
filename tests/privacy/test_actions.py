"""The privacy actions only steer the gateway, and the gateway reads a typed yes or no
to "delete it now?" strictly: anything unclear deletes nothing."""

from __future__ import annotations

import pytest

from actions import content
from actions.privacy import (
    NOTICE_KEY,
    ActionForgetMe,
    ActionPrivacyNotice,
    ActionUpdatePreferences,
)
from bot.privacy.desk import typed_answer
from tests.factories import domain, run, tracker


@pytest.mark.parametrize(
    ("action", "what"),
    [
        (ActionPrivacyNotice(), "notice"),
        (ActionForgetMe(), "forget"),
        (ActionUpdatePreferences(), "preferences"),
    ],
)
def test_each_action_sends_only_its_marker(action, what: str) -> None:
    messages, _ = run(action, tracker("ask_privacy", "what do you keep about me"))
    assert [m.get("custom") for m in messages] == [{"waymark": {"privacy": what}}]
    assert not any(m.get("text") for m in messages)
    assert action.name() in domain()["actions"]


def test_the_notice_leaves_the_rest_for_more() -> None:
    _, events = run(ActionPrivacyNotice(), tracker("ask_privacy", "who can see my messages"))
    assert events == [
        {"event": "slot", "timestamp": None, "name": "more_key", "value": NOTICE_KEY},
        {"event": "slot", "timestamp": None, "name": "more_index", "value": 1.0},
    ]
    # MORE sends the later parts from the actions, without the gateway's fields.
    assert not any("{" in part for part in content.item(NOTICE_KEY).parts[1:])


def test_the_notice_says_what_the_issue_asks() -> None:
    first = content.item(NOTICE_KEY).part(0, anonymous_days="30", identified_days="365")
    assert "30 days" in first and "365 days" in first
    assert "delete my data" in first
    rest = " ".join(content.item(NOTICE_KEY).parts[1:])
    assert "police do not see your messages" in rest
    assert "referral" in rest


@pytest.mark.parametrize(
    "text",
    ["yes", "Yes, delete", "YES DELETE IT PLEASE", "yep", "ok", "delete", "delete everything"],
)
def test_a_plain_yes(text: str) -> None:
    assert typed_answer(text) == "yes"


@pytest.mark.parametrize(
    "text", ["no", "No, keep it", "nope", "keep it", "not now", "don't delete it", "no thanks"]
)
def test_a_plain_no(text: str) -> None:
    assert typed_answer(text) == "no"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "1",
        "what will you delete?",
        "yes but not my case",
        "no, delete it",
        "yes he is outside",
        "delete my case too",
        "maybe",
    ],
)
def test_anything_else_is_neither(text: str) -> None:
    assert typed_answer(text) is None
