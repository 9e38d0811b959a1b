"""SMS keywords: only a whole-message STOP/START/HELP word (Twilio's defaults) is a keyword."""

from __future__ import annotations

import pytest

from bot.channels.sms_keywords import (
    AMBIGUOUS_OPT_IN,
    HELP,
    OPT_IN,
    OPT_OUT,
    is_ambiguous_opt_in,
    keyword,
)


def test_twilio_default_lists() -> None:
    assert {
        "stop",
        "stopall",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
    } == OPT_OUT
    assert {"start", "yes", "unstop"} == OPT_IN
    assert {"help", "info"} == HELP
    assert not OPT_OUT & OPT_IN and not OPT_OUT & HELP and not OPT_IN & HELP


@pytest.mark.parametrize("word", sorted(OPT_OUT))
def test_opt_out_words(word: str) -> None:
    assert keyword(word) == "stop"
    assert keyword(word.upper()) == "stop"


@pytest.mark.parametrize("word", sorted(OPT_IN))
def test_opt_in_words(word: str) -> None:
    assert keyword(word) == "start"
    assert keyword(word.upper()) == "start"


@pytest.mark.parametrize("word", sorted(HELP))
def test_help_words(word: str) -> None:
    assert keyword(word) == "help"
    assert keyword(word.title()) == "help"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOP", "stop"),
        ("Stop", "stop"),
        ("sToP", "stop"),
        ("  stop  ", "stop"),
        ("\nSTOP\n", "stop"),
        ("\u00a0stop\t", "stop"),
        ("Stop.", "stop"),
        ("STOP!", "stop"),
        ("stop!!!", "stop"),
        ("stop .", "stop"),
        ("Unsubscribe.", "stop"),
        ("Start!", "start"),
        ("Help?", "help"),
        ("INFO.", "help"),
    ],
)
def test_case_whitespace_and_trailing_punctuation(body: str, expected: str) -> None:
    assert keyword(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "",
        "   ",
        ".",
        "stop it",
        "stop texting me about court",
        "please stop",
        "STOP PLEASE",
        "stop all",
        "opt out",
        "help me please",
        "I need help",
        "yes please",
        "start again",
        "stopped",
        "stops",
        "hello",
        "st op",
        "!stop",
        "stop\nnow",
    ],
)
def test_non_keywords(body: str) -> None:
    assert keyword(body) is None


def test_yes_is_opt_in_but_ambiguous() -> None:
    assert keyword("yes") == "start"
    assert keyword("Yes!") == "start"
    assert {"yes"} == AMBIGUOUS_OPT_IN
    assert AMBIGUOUS_OPT_IN <= OPT_IN
    # The unambiguous opt-in words are not in it.
    assert "start" not in AMBIGUOUS_OPT_IN and "unstop" not in AMBIGUOUS_OPT_IN


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("yes", True),
        (" Yes. ", True),
        ("YES!", True),
        ("start", False),
        ("yes please", False),
        ("", False),
    ],
)
def test_is_ambiguous_opt_in(body: str, expected: bool) -> None:
    assert is_ambiguous_opt_in(body) is expected


def test_no_prompt_asks_for_a_word_that_would_opt_the_person_out_by_sms() -> None:
    """ "Reply CANCEL" by SMS opts the number out (Twilio blocks it): prompts must ask for
    words that reach the assistant, like NOT NOW or NO MORE QUESTIONS."""
    import re
    from pathlib import Path

    import yaml

    from actions import content
    from bot.channels.sms_keywords import keyword

    domain = yaml.safe_load(Path("domain.yml").read_text(encoding="utf-8"))
    texts = [v["text"] for r in domain["responses"].values() for v in r if "text" in v]
    texts += [p for item in content.catalogue().values() for p in item.parts]
    asked = {m.group(1) for t in texts for m in re.finditer(r"\b[Rr]eply ((?:[A-Z]{2,}\b ?)+)", t)}
    assert asked, "the pattern should find the words prompts ask for"
    # STOP is asked for only where opting out is what is meant.
    opt_outs = {a.strip() for a in asked if keyword(a.strip()) == "stop"}
    assert opt_outs <= {"STOP"}
