"""SMS text: GSM-7 normalisation, segment counting, splitting and numbered buttons."""

from __future__ import annotations

import itertools
import random
import re

import pytest

from bot.channels.sms_text import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    is_gsm7,
    render_buttons,
    segments,
    split,
    to_gsm7,
)

EMOJI = "\U0001f600"  # outside the BMP: a surrogate pair, two UTF-16 code units


def assert_reassembles(text: str, parts: list[str]) -> None:
    """The parts are the text in order, with only whitespace between and around them."""
    position = 0
    for part in parts:
        while position < len(text) and text[position].isspace():
            position += 1
        assert text.startswith(part, position), (part, text[position : position + len(part)])
        position += len(part)
    assert not text[position:].strip()
    assert re.sub(r"\s", "", "".join(parts)) == re.sub(r"\s", "", text)


def assert_valid_split(text: str, parts: list[str], max_segments: int) -> None:
    for part in parts:
        assert part, "empty part"
        assert part == part.strip()
        assert 1 <= segments(part) <= max_segments, (segments(part), part)
    assert_reassembles(text, parts)


# to_gsm7


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\u2018quoted\u2019", "'quoted'"),
        ("don\u2019t", "don't"),
        ("\u201cquoted\u201d \u201elow\u201f", '"quoted" "low"'),
        ("5\u2032 10\u2033", "5' 10\""),
        ("a \u2013 b \u2014 c", "a - b - c"),
        ("\u22121 and 2\u20113", "-1 and 2-3"),
        ("wait\u2026", "wait..."),
        ("\u2022 one\n\u2022 two", "- one\n- two"),
        ("no\u00a0break", "no break"),
        ("thin\u2009space", "thin space"),
        ("narrow\u202fnbsp", "narrow nbsp"),
        ("zero\u200bwidth", "zerowidth"),
        ("soft\u00adhyphen", "softhyphen"),
        ("cafe\u0301", "caf\u00e9"),  # NFC: e + combining acute is GSM-7's é
    ],
)
def test_to_gsm7_replacements(text: str, expected: str) -> None:
    assert to_gsm7(text) == expected
    assert is_gsm7(to_gsm7(text))


def test_to_gsm7_makes_typographic_text_gsm7() -> None:
    text = "\u201cYou\u2019re not alone\u201d \u2013 call us\u2026\u00a0any time \u2022 free"
    assert not is_gsm7(text)
    assert to_gsm7(text) == '"You\'re not alone" - call us... any time - free'
    assert is_gsm7(to_gsm7(text))
    assert segments(to_gsm7(text) * 3) < segments(text * 3)


@pytest.mark.parametrize(
    "text", [f"Thanks {EMOJI}", "\u041f\u0440\u0438\u0432\u0435\u0442", "\u4f60\u597d"]
)
def test_to_gsm7_leaves_characters_without_an_equivalent(text: str) -> None:
    assert to_gsm7(text) == text
    assert not is_gsm7(to_gsm7(text))


def test_to_gsm7_keeps_gsm_text_and_emoji_joiners() -> None:
    plain = "Hello @ £5 {ok} [x] ~ | \\ ^ \u20ac\nNew line"
    assert to_gsm7(plain) == plain
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"  # the ZWJ is part of the emoji
    assert to_gsm7(family) == family
    assert to_gsm7(to_gsm7("\u2018a\u2019\u2026")) == to_gsm7("\u2018a\u2019\u2026")


# is_gsm7


def test_is_gsm7_basic_and_extension_sets() -> None:
    assert is_gsm7("".join(sorted(GSM7_BASIC)))
    assert is_gsm7("".join(sorted(GSM7_EXTENSION)))
    assert set("^{}\\[~]|\u20ac") == GSM7_EXTENSION
    assert is_gsm7("")


@pytest.mark.parametrize(
    "char", [EMOJI, "\u2019", "\u201c", "\u2013", "\u2026", "\u00a0", "\t", "\u00e7", "`"]
)
def test_is_gsm7_rejects(char: str) -> None:
    assert not is_gsm7(f"abc{char}def")


# segments


def test_segments_empty_is_zero() -> None:
    assert segments("") == 0


@pytest.mark.parametrize(
    ("length", "expected"),
    [(1, 1), (160, 1), (161, 2), (153 * 2, 2), (153 * 2 + 1, 3), (153 * 3, 3), (153 * 3 + 1, 4)],
)
def test_segments_gsm7_boundaries(length: int, expected: int) -> None:
    assert segments("a" * length) == expected


def test_segments_gsm7_extension_characters_count_two() -> None:
    assert segments("{" * 80) == 1  # 160 septets
    assert segments("{" * 81) == 2  # 162 septets
    assert segments("a" * 159 + "\u20ac") == 2  # 161 septets in 160 characters
    assert segments("a" * 158 + "]") == 1
    assert segments("|" * 153) == 2  # 306 septets
    assert segments("|" * 153 + "a") == 3


@pytest.mark.parametrize(
    ("length", "expected"),
    [(1, 1), (70, 1), (71, 2), (67 * 2, 2), (67 * 2 + 1, 3), (67 * 3, 3), (67 * 3 + 1, 4)],
)
def test_segments_ucs2_boundaries(length: int, expected: int) -> None:
    assert segments("\u0436" * length) == expected  # Cyrillic zhe


def test_segments_ucs2_counts_surrogate_pairs_twice() -> None:
    assert segments(EMOJI) == 1
    assert segments(EMOJI * 35) == 1  # 70 code units
    assert segments(EMOJI * 36) == 2  # 72 code units
    assert segments("a" * 68 + EMOJI) == 1  # 70
    assert segments("a" * 69 + EMOJI) == 2  # 71
    assert segments(EMOJI * 67) == 2  # 134
    assert segments(EMOJI * 67 + "a") == 3  # 135


def test_one_non_gsm_character_makes_the_whole_message_ucs2() -> None:
    text = "a" * 100
    assert segments(text) == 1
    assert segments(text + "\u2019") == 2  # 101 UCS-2 units
    assert segments(to_gsm7(text + "\u2019")) == 1
    assert segments("\u20ac" * 70) == 1  # GSM-7 extension: 140 septets, not UCS-2


# split


@pytest.mark.parametrize("text", ["", " ", "\n\t  \n"])
def test_split_empty(text: str) -> None:
    assert split(text) == []


def test_split_short_text_is_one_stripped_part() -> None:
    assert split("  Hello there.  \n") == ["Hello there."]
    text = "a" * 153 * 3
    assert split(text) == [text]


def test_split_rejects_zero_segments() -> None:
    with pytest.raises(ValueError, match="max_segments"):
        split("hello", max_segments=0)


def test_split_packs_whole_sentences() -> None:
    sentences = [f"Sentence number {i} has a few words in it." for i in range(1, 40)]
    text = " ".join(sentences)
    for max_segments in (1, 2, 3):
        parts = split(text, max_segments)
        assert len(parts) > 1
        assert_valid_split(text, parts, max_segments)
        for part, following in itertools.pairwise(parts):
            assert part.endswith(".")
            # Greedy: the next sentence would not have fitted.
            next_sentence = following.split(". ")[0]
            assert segments(f"{part} {next_sentence}") > max_segments
        assert all(part.startswith("Sentence") for part in parts)


@pytest.mark.parametrize("end", ["?", "!", '."', ".)"])
def test_split_other_sentence_ends(end: str) -> None:
    text = " ".join(f"Is this sentence {i} done{end}" for i in range(20))
    parts = split(text, 1)
    assert_valid_split(text, parts, 1)
    assert all(part.endswith(end) for part in parts)


def test_split_at_newlines() -> None:
    lines = [f"Line {i} without a full stop" for i in range(30)]
    text = "\n".join(lines)
    parts = split(text, 1)
    assert_valid_split(text, parts, 1)
    for part in parts:
        assert set(part.split("\n")) <= set(lines)  # only whole lines


def test_split_prefers_a_sentence_end_over_a_later_space() -> None:
    first = "Short first sentence."
    second = " ".join(["word"] * 60)  # 299 characters, no sentence end
    parts = split(f"{first} {second}", 1)
    assert parts[0] == first
    assert_valid_split(f"{first} {second}", parts, 1)


def test_split_long_sentence_at_word_boundaries() -> None:
    words = [f"word{i}" for i in range(200)]
    text = " ".join(words)
    parts = split(text, 1)
    assert_valid_split(text, parts, 1)
    assert [word for part in parts for word in part.split(" ")] == words
    assert all(len(part) > 150 for part in parts[:-1])


def test_split_hard_splits_a_long_word() -> None:
    text = "x" * 500
    assert split(text, 1) == ["x" * 160, "x" * 160, "x" * 160, "x" * 20]
    assert split(text, 2) == ["x" * 306, "x" * 194]
    parts = split(f"Look: {'y' * 400} end.", 1)
    assert parts[0] == "Look:"
    assert_valid_split(f"Look: {'y' * 400} end.", parts, 1)


def test_split_extension_characters_count_two() -> None:
    text = "{" * 200  # 400 septets
    parts = split(text, 1)
    assert parts == ["{" * 80, "{" * 80, "{" * 40]


def test_split_ucs2_text() -> None:
    sentences = [
        f"\u041f\u0440\u0435\u0434\u043b\u043e\u0436\u0435\u043d\u0438\u0435 {i}."
        for i in range(40)
    ]
    text = " ".join(sentences)
    parts = split(text, 1)
    assert len(parts) > 1
    assert_valid_split(text, parts, 1)
    assert all(part.endswith(".") for part in parts)
    assert all(len(part) <= 70 for part in parts)


def test_split_emoji_word_stays_within_limit() -> None:
    text = EMOJI * 100  # 200 code units, no spaces
    parts = split(text, 1)
    assert parts == [EMOJI * 35, EMOJI * 35, EMOJI * 30]
    assert_valid_split(text, parts, 1)


def test_split_measures_each_part_on_its_own() -> None:
    # A GSM-7 sentence followed by an emoji one: the first part keeps the GSM-7 allowance.
    first = "a" * 150 + "."
    text = f"{first} Thanks {EMOJI}"
    assert split(text, 1) == [first, f"Thanks {EMOJI}"]


def test_split_hard_cut_keeps_combining_marks_with_their_letter() -> None:
    text = "x" + "e\u0301" * 100  # not NFC: UCS-2; a cut at 70 would fall before an accent
    parts = split(text, 1)
    assert_valid_split(text, parts, 1)
    assert parts[0] == text[:69]
    assert all(not part.startswith("\u0301") for part in parts)


WORDS = [
    "a",
    "to",
    "the",
    "court",
    "victim",
    "support",
    "hearing.",
    "why?",
    "now!",
    "end.\n",
    "\n",
    "\n\n",
    "  ",
    "{braces}",
    "\u20ac5",
    "[x]",
    "caf\u00e9",
    "\u0436\u0443\u0440",
    EMOJI,
    f"ok{EMOJI}.",
    "\U0001f468\u200d\U0001f469",
    "e\u0301",
]


def random_text(rng: random.Random) -> str:
    pieces: list[str] = []
    for _ in range(rng.randint(0, 250)):
        roll = rng.random()
        if roll < 0.03:
            pieces.append(rng.choice("xy{\u0436") * rng.randint(50, 400))  # an over-long word
        else:
            pieces.append(rng.choice(WORDS))
    return rng.choice([" ", " ", "  ", "\t"]).join(pieces) if pieces else rng.choice(["", "  "])


def test_split_invariants_on_random_texts() -> None:
    rng = random.Random(20240611)
    for _ in range(400):
        text = random_text(rng)
        max_segments = rng.randint(1, 4)
        parts = split(text, max_segments)
        assert_valid_split(text, parts, max_segments)
        if not text.strip():
            assert parts == []
        elif segments(text.strip()) <= max_segments:
            assert parts == [text.strip()]
        else:
            assert len(parts) > 1


def test_split_random_sentences_end_parts_at_full_stops() -> None:
    rng = random.Random(7)
    vocabulary = ["you", "can", "ask", "for", "a", "victim", "support", "worker", "today"]
    for _ in range(100):
        sentences = [
            " ".join(rng.choice(vocabulary) for _ in range(rng.randint(3, 15))).capitalize() + "."
            for _ in range(rng.randint(1, 40))
        ]
        text = " ".join(sentences)
        max_segments = rng.randint(1, 3)
        parts = split(text, max_segments)
        assert_valid_split(text, parts, max_segments)
        # Every sentence is shorter than a segment, so every part is whole sentences.
        assert all(part.endswith(".") for part in parts)


# render_buttons


BUTTONS = [
    {"title": "Yes", "payload": "/affirm"},
    {"title": "No", "payload": "/deny"},
]


def test_render_buttons() -> None:
    assert render_buttons("Is it safe to talk?", BUTTONS) == (
        "Is it safe to talk?\nReply 1 for Yes\nReply 2 for No"
    )


def test_render_buttons_without_buttons_returns_text() -> None:
    assert render_buttons("Just text.", []) == "Just text."
    assert render_buttons("", []) == ""


def test_render_buttons_without_text() -> None:
    assert render_buttons("", BUTTONS) == "Reply 1 for Yes\nReply 2 for No"


def test_render_buttons_many_and_gsm7() -> None:
    buttons = [{"title": f"Option {i}", "payload": f'/pick{{"n": {i}}}'} for i in range(1, 12)]
    rendered = render_buttons("Pick one", buttons)
    lines = rendered.split("\n")
    assert lines[0] == "Pick one"
    assert lines[1:] == [f"Reply {i} for Option {i}" for i in range(1, 12)]
    assert is_gsm7(rendered)
