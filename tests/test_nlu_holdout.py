"""The trained model on the held-out set: messages written separately, never trained on."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import RasaStack
from tests.factories import ROOT

pytestmark = pytest.mark.rasa

HOLDOUT = ROOT / "tests" / "nlu_holdout.yml"
SAFETY_INTENTS = {"emergency", "self_harm_risk"}
ENTITY = re.compile(r"\[([^\]]+)\](?:\((\w+)\)|\{([^}]+)\})")


def plain(text: str) -> str:
    return ENTITY.sub(lambda m: m.group(1), text)


def examples(path: Path) -> list[tuple[str, str]]:
    out = []
    for block in yaml.safe_load(path.read_text())["nlu"]:
        if "intent" in block:
            for line in block["examples"].splitlines():
                if line.strip().startswith("- "):
                    out.append((block["intent"], line.strip()[2:]))
    return out


def normalised(text: str) -> str:
    return re.sub(r"\s+", " ", plain(text).lower().strip().rstrip("?.!"))


def test_holdout_is_separate_from_training_and_big_enough() -> None:
    held = examples(HOLDOUT)
    trained = {normalised(t) for p in (ROOT / "data" / "nlu").glob("*.yml") for _, t in examples(p)}
    assert not [t for _, t in held if normalised(t) in trained]
    counts = Counter(intent for intent, _ in held)
    domain = yaml.safe_load((ROOT / "domain.yml").read_text())
    assert {i: counts[i] for i in domain["intents"] if counts[i] < 10} == {}


@pytest.fixture(scope="module")
def predictions(rasa_stack: RasaStack) -> list[tuple[str, str, dict]]:
    return [(intent, text, rasa_stack.parse(plain(text))) for intent, text in examples(HOLDOUT)]


def test_intent_accuracy_is_at_least_90_percent(predictions: list[tuple[str, str, dict]]) -> None:
    wrong = [(i, t, p["intent"]["name"]) for i, t, p in predictions if p["intent"]["name"] != i]
    accuracy = 1 - len(wrong) / len(predictions)
    print(
        f"\nheld-out intent accuracy: {accuracy:.3f} ({len(predictions) - len(wrong)}/{len(predictions)})"
    )
    for expected, text, got in wrong:
        print(f"  {expected:>22} -> {got:<22} {plain(text)}")
    assert accuracy >= 0.90


def test_no_emergency_or_self_harm_message_is_missed(
    predictions: list[tuple[str, str, dict]],
) -> None:
    missed = [
        (i, plain(t), p["intent"]["name"])
        for i, t, p in predictions
        if i in SAFETY_INTENTS and p["intent"]["name"] not in SAFETY_INTENTS
    ]
    assert missed == []


def test_every_parse_carries_the_safety_verdict(predictions: list[tuple[str, str, dict]]) -> None:
    assert all(p["safety"]["tier"] in {"none", "urgent", "emergency"} for _, _, p in predictions)


def test_crime_references_are_normalised(rasa_stack: RasaStack) -> None:
    for text in [
        "4301234/25",
        "ref 4301234 25",
        "CRIS 4301234-25",
        "my crime number is 4301234/25.",
    ]:
        entities = rasa_stack.parse(text)["entities"]
        assert [e["value"] for e in entities if e["entity"] == "crime_reference"] == [
            "4301234/25"
        ], text


@pytest.mark.parametrize(
    ("text", "entity", "value"),
    [
        ("i live in tower hamlets", "location", "Tower Hamlets"),
        ("K&C", "location", "Kensington and Chelsea"),
        ("what does NFA mean", "cjs_stage", "no_further_action"),
        ("he was released under investigation", "cjs_stage", "released_under_investigation"),
        ("i was scammed online", "crime_type", "fraud"),
        ("it was domestic violence", "crime_type", "domestic_abuse"),
    ],
)
def test_entities_get_canonical_values(
    rasa_stack: RasaStack, text: str, entity: str, value: str
) -> None:
    found = {(e["entity"], e["value"]) for e in rasa_stack.parse(text)["entities"]}
    assert (entity, value) in found
