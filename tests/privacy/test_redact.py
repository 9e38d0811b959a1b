"""Redaction (bot/privacy/redact.py), measured on the PII corpus tests/data/pii_corpus.yml."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest
import spacy
import yaml

from bot.config import ROOT
from bot.privacy import redact as redaction
from bot.privacy.redact import KINDS, Found, Redactor
from tests.privacy.pii import Item, Score, load, score

CORPUS = ROOT / "tests" / "data" / "pii_corpus.yml"
POSITIVES, NEGATIVES = load(CORPUS)
# Issue 7's targets; the other kinds are held to the same bar as names.
RECALL = {"phone": 0.99, "email": 0.99, "postcode": 0.99, "ni": 0.99, "card": 0.99}
MIN_RECALL = 0.90
MIN_PRECISION = 0.95


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


@pytest.fixture(scope="module")
def scores(redactor: Redactor) -> dict[str, Score]:
    return score(redactor, POSITIVES, NEGATIVES)


def test_the_corpus_is_big_enough_and_covers_every_kind() -> None:
    assert len(POSITIVES) >= 300
    assert len(NEGATIVES) >= 100
    kinds = {span.kind for item in POSITIVES for span in item.spans}
    assert kinds == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_recall_and_precision_per_kind(kind: str, scores: dict[str, Score]) -> None:
    s = scores[kind]
    misses = "\n".join(f"{what}: {text}" for what, text in s.misses)
    assert s.recall >= RECALL.get(kind, MIN_RECALL), misses
    assert s.precision >= MIN_PRECISION, misses


@pytest.mark.parametrize("item", NEGATIVES, ids=lambda i: i.text[:40])
def test_negatives_come_through_unchanged(item: Item, redactor: Redactor) -> None:
    assert redactor.redact(item.text, keep=item.keep) == item.text


def test_placeholders(redactor: Redactor) -> None:
    text = (
        "im Priya, 07700 900123, priya@example.com, 12 Acacia Road SE13 5AB, "
        "NI AB 12 34 56 C, dob 14/03/1984, card 4111 1111 1111 1111, "
        "sort code 20-45-67, ref 4301234/26"
    )
    assert redactor.redact(text) == (
        "im [name], [phone], [email], [address] SE13, "
        "NI [NI number], dob [date of birth], card [card], "
        "sort code [account], ref [reference]"
    )


@pytest.mark.parametrize(
    ("text", "district"),
    [("SE13 5AB", "SE13"), ("se135ab", "se13"), ("SW1A 1AA", "SW1A"), ("e8  1ab", "e8")],
)
def test_a_postcode_keeps_only_its_district(text: str, district: str, redactor: Redactor) -> None:
    assert redactor.redact(f"i live in {text} now") == f"i live in {district} now"


def test_keep_leaves_crime_references_and_nothing_else(redactor: Redactor) -> None:
    text = "my ref is 4301234/26 and my number is 07700 900123"
    assert (
        redactor.redact(text, keep={"reference"}) == "my ref is 4301234/26 and my number is [phone]"
    )
    assert redactor.redact(text) == "my ref is [reference] and my number is [phone]"
    # Near an account cue, a reference is still a reference (and so kept).
    text = "the account ref 4301234/26"
    assert redactor.redact(text, keep={"reference"}) == text


def test_a_deployments_reference_pattern_is_used() -> None:
    custom = Redactor(reference_pattern=r"\b(?P<number>[A-Z]{2}-\d{6})/(?P<year>\d{2})\b")
    assert custom.redact("crime ref AB-123456/26") == "crime ref [reference]"


def _public_contacts() -> list[str]:
    data = yaml.safe_load((ROOT / "content" / "services" / "directory.yml").read_text())
    return [
        contact["value"]
        for service in data["services"]
        for contact in service["contacts"]
        if contact["kind"] in {"phone", "text", "email"}
    ]


@pytest.mark.parametrize("value", _public_contacts())
def test_public_numbers_and_emails_from_the_directory_are_never_redacted(
    value: str, redactor: Redactor
) -> None:
    text = f"I called {value} and they were kind"
    assert redactor.redact(text) == text


@pytest.mark.parametrize("text", ["999", "101", "111", "116 123", "0808 168 9111", "18001 101"])
def test_emergency_and_helpline_numbers_are_never_redacted(text: str, redactor: Redactor) -> None:
    assert redactor.redact(f"should i ring {text}?") == f"should i ring {text}?"


def test_a_public_number_beside_a_private_one(redactor: Redactor) -> None:
    text = "Victim Support said ring 0808 168 9111, or they will call me on 07700 900123"
    assert redactor.redact(text).endswith("or they will call me on [phone]")
    assert "0808 168 9111" in redactor.redact(text)


def test_cards_are_luhn_checked_unless_called_a_card(redactor: Redactor) -> None:
    assert redactor.redact("4111 1111 1111 1111") == "[card]"
    assert redactor.redact("the tracking id is 4111 1111 1111 1112") == (
        "the tracking id is 4111 1111 1111 1112"
    )
    assert redactor.redact("my card 4111 1111 1111 1112") == "my card [card]"


def test_digits_in_a_link_are_not_numbers(redactor: Redactor) -> None:
    text = "see https://example.org/news/emergency-contact-number/1400011553427/page"
    assert redactor.redact(text) == text


def test_find_is_sorted_without_overlaps_and_found_is_frozen(redactor: Redactor) -> None:
    for item in POSITIVES:
        found = redactor.find(item.text)
        assert found == sorted(found, key=lambda f: f.start)
        assert all(a.end <= b.start for a, b in itertools.pairwise(found))
        assert all(f.kind in KINDS for f in found)
    found = Found(0, 5, "phone")
    with pytest.raises(AttributeError):
        found.kind = "email"  # type: ignore[misc]
    assert redactor.find("") == []


def test_redacting_twice_changes_nothing_more(redactor: Redactor) -> None:
    for item in POSITIVES:
        once = redactor.redact(item.text)
        assert redactor.redact(once) == once, item.text


def test_module_functions_use_one_cached_redactor() -> None:
    assert redaction.default() is redaction.default()
    assert redaction.redact("call me on 07700 900123") == "call me on [phone]"
    assert redaction.find("call me on 07700 900123") == [Found(11, 23, "phone")]


def test_an_installed_model_adds_person_entities(tmp_path: Path) -> None:
    """settings.spacy_model: any installed pipeline; here one saved from an entity ruler."""
    nlp = spacy.blank("en")
    ruler = nlp.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "PERSON", "pattern": "Zorblax Quint"}])  # type: ignore[attr-defined]
    nlp.to_disk(tmp_path / "model")
    text = "Zorblax Quint hit me, call 07700 900123"
    assert Redactor(str(tmp_path / "model")).redact(text) == "[name] hit me, call [phone]"
    assert Redactor().redact(text) == "Zorblax Quint hit me, call [phone]"


def test_latency_is_under_five_ms_per_message(redactor: Redactor) -> None:
    """Issue 7's target for p95. Each message's best of three, so a busy machine's
    scheduling pauses do not count (bench/privacy.py reports the full figures)."""
    samples = []
    for item in POSITIVES + NEGATIVES:
        runs = []
        for _ in range(3):
            start = time.perf_counter()
            redactor.redact(item.text)
            runs.append(time.perf_counter() - start)
        samples.append(min(runs))
    samples.sort()
    assert samples[int(len(samples) * 0.95)] < 0.005
