"""Content is data with its source: every item is sourced, dated, SMS-sized and plain."""

from __future__ import annotations

import re
from datetime import date
from typing import ClassVar

import pytest
import yaml

from actions import content
from tests.factories import ROOT
from tests.readability import grade

REFERENCE = (ROOT / "docs" / "reference" / "victim-journey-facts.md").read_text() + (
    ROOT / "docs" / "reference" / "safety-signals.md"
).read_text()
ITEMS = sorted(content.catalogue().values(), key=lambda i: i.key)

# GSM 03.38 basic character set (one septet each) and its extension table (two).
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = set("^{}\\[~]|€")

# Numbers the fact sheet marks UNCONFIRMED (victim-journey-facts.md §4.7, §6.1, §1.5, §7).
UNCONFIRMED_NUMBERS = {"08085002222", "03450154033", "03000033601", "02032996900", "08088025565"}


def sms_segments(text: str) -> int:
    """Segments a message takes: GSM-7 when it can, otherwise UCS-2."""
    if all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text):
        units = sum(2 if c in GSM7_EXTENDED else 1 for c in text)
        return 1 if units <= 160 else -(-units // 153)
    return 1 if len(text) <= 70 else -(-len(text) // 67)


def test_there_is_content() -> None:
    assert len(ITEMS) > 60


@pytest.mark.parametrize("entry", ITEMS, ids=lambda i: i.key)
def test_every_item_has_a_source_and_a_last_checked_date(entry: content.Item) -> None:
    assert entry.sources, f"{entry.key} has no source"
    for url in entry.sources:
        assert re.match(r"https?://\S+$", url), url
        assert url in REFERENCE, f"{entry.key}: {url} is not in docs/reference/"
    assert date.fromisoformat(entry.last_checked) <= date.today()
    assert 0 < len(entry.title) <= 30


class _Example(dict[str, str]):
    """Realistic, long-ish values for the fields a template fills in."""

    KNOWN: ClassVar[dict[str, str]] = {
        "code": "123456",
        "minutes": "15",
        "reference": "4301234/26",
    }

    def __missing__(self, key: str) -> str:
        if "date" in key or "deadline" in key:
            return "Wednesday 30 September 2026"
        return self.KNOWN.get(key, "x" * 24)


@pytest.mark.parametrize("entry", ITEMS, ids=lambda i: i.key)
def test_every_part_fits_two_sms_segments_with_the_more_prompt(entry: content.Item) -> None:
    for text in entry.parts:
        text = text.format_map(_Example()) if "{" in text else text
        assert sms_segments(content.with_more_prompt(text)) <= 2, f"{entry.key}: {text}"
        odd = {c for c in text if not (" " <= c <= "~" or c == "£")}
        assert not odd, f"{entry.key}: not plain ASCII or £: {odd}"


def test_sms_segment_counting() -> None:
    assert sms_segments("a" * 160) == 1
    assert sms_segments("a" * 161) == 2
    assert sms_segments("a" * 306) == 2
    assert sms_segments("a" * 307) == 3
    assert sms_segments("it\u2019s") == 1  # UCS-2, still short
    assert sms_segments("it\u2019s " + "a" * 70) == 2


def test_no_unconfirmed_phone_numbers_and_every_number_is_in_the_fact_sheet() -> None:
    reference_digits = re.sub(r"\D", "", REFERENCE)
    for entry in ITEMS:
        for text in entry.parts:
            for number in re.findall(r"\b0\d{2,4}(?: ?\d{3,4}){1,3}\b", text):
                digits = re.sub(r"\D", "", number)
                assert digits not in UNCONFIRMED_NUMBERS, f"{entry.key}: {number} is UNCONFIRMED"
                assert digits in reference_digits, f"{entry.key}: {number} not in the fact sheet"


def test_emergency_replies_put_999_first() -> None:
    for key in ("safety.emergency", "safety.self_harm", "safety.check"):
        assert content.item(key).parts[0].startswith("If you are in danger now, call 999.")
    assert "55" in content.item("safety.emergency").parts[0]


def test_no_words_the_voice_guide_rules_out() -> None:
    banned = r"\b(alleged|complainant|committed suicide|successful suicide|don't do anything stupid|NFA|RUI|VRR)\b"
    for entry in ITEMS:
        for text in entry.parts:
            assert not re.search(banned, text), f"{entry.key}: {text}"


def test_domain_responses_state_no_facts() -> None:
    """Facts live in content/ with their sources; domain responses are only prompts.

    Example dates in a question ("a date like 3 March") are fine; numbers and limits are not.
    """
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    for name, variants in domain["responses"].items():
        for variant in variants:
            text = variant.get("text", "")
            assert not re.search(r"\d{3}", text), f"{name} states a phone number"
            assert not re.search(r"\d+ (working )?(days?|weeks?|months?|years?)\b(?! ago)", text), (
                f"{name} states a time limit"
            )


def test_reading_grade_is_plain_english() -> None:
    """The writing guide asks for a reading age of 9; grades are reported in var/reports/."""
    grades = {entry.key: grade(" ".join(entry.parts)) for entry in ITEMS}
    report = ROOT / "var" / "reports" / "readability.tsv"
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(
        "key\tflesch_kincaid_grade\n"
        + "".join(f"{k}\t{g:.1f}\n" for k, g in sorted(grades.items()))
    )
    average = sum(grades.values()) / len(grades)
    assert average <= 6.0, f"average reading grade {average:.1f}"
    worst = max(grades.items(), key=lambda kv: kv[1])
    assert worst[1] <= 8.0, worst
