"""Tests for the rule-based safety layer (safety/).

Corpus-level checks use tests/data/safety_corpus.yml; the unit tests pin the
modifier and strong-signal rules from docs/reference/safety-signals.md section 4.
"""

from __future__ import annotations

import ast
import dataclasses
import random
import re
import sys
import time
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from safety import Assessment, Tier, assess, detector, normalise  # noqa: E402

CORPUS_PATH = ROOT / "tests" / "data" / "safety_corpus.yml"
TIERS = {"none": Tier.NONE, "urgent": Tier.URGENT, "emergency": Tier.EMERGENCY}

with open(CORPUS_PATH, encoding="utf-8") as _fh:
    CORPUS = yaml.safe_load(_fh)
POSITIVES = CORPUS["positives"]
NEGATIVES = CORPUS["negatives"]


def _id(item: dict) -> str:
    return item["text"][:60]


# --------------------------------------------------------------------------- API


def test_public_api_shape() -> None:
    assert issubclass(Tier, int)
    assert [t.name for t in Tier] == ["NONE", "URGENT", "EMERGENCY"]
    assert [int(t) for t in Tier] == [0, 1, 2]
    assert dataclasses.is_dataclass(Assessment)
    assert [f.name for f in dataclasses.fields(Assessment)] == [
        "tier",
        "kind",
        "signals",
        "lowered_by",
    ]
    a = assess("he's outside now")
    assert isinstance(a, Assessment)
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.tier = Tier.NONE  # type: ignore[misc]
    assert isinstance(a.signals, tuple) and isinstance(a.lowered_by, tuple)


@pytest.mark.parametrize("text", ["", "   ", "\n"])
def test_empty_message_is_none(text: str) -> None:
    assert assess(text) == Assessment(Tier.NONE, None, (), ())


def test_tier_none_has_no_kind() -> None:
    a = assess("when is the trial")
    assert a.tier == Tier.NONE and a.kind is None and a.signals == ()


# ------------------------------------------------------------------------ corpus


def test_corpus_size() -> None:
    assert len(POSITIVES) >= 150
    assert len(NEGATIVES) >= 120


def test_corpus_covers_every_category() -> None:
    pos = {p["category"] for p in POSITIVES}
    for cat in (
        "sh_direct", "sh_indirect", "sh_method", "sh_self_harm", "sh_acute",
        "danger_present", "danger_following", "danger_threat", "danger_weapon",
        "danger_strangle", "danger_children", "danger_locked", "danger_hiding", "buried",
    ):  # fmt: skip
        assert cat in pos, cat
    neg = {n["category"] for n in NEGATIVES}
    for cat in (
        "case_update", "court", "reporting", "past_history", "hypothetical", "distress",
        "figure_of_speech", "media", "third_party",
    ):  # fmt: skip
        assert cat in neg, cat


def test_recall_on_positives() -> None:
    flagged = sum(assess(p["text"]).tier >= Tier.URGENT for p in POSITIVES)
    assert flagged / len(POSITIVES) >= 0.98


@pytest.mark.parametrize("item", POSITIVES, ids=_id)
def test_positive_at_or_above_expected_tier_and_kind(item: dict) -> None:
    a = assess(item["text"])
    assert a.tier >= TIERS[item["tier"]], a
    assert a.kind == item["kind"], a


def test_false_positive_rate_on_negatives() -> None:
    # The brief's measure: negatives flagged EMERGENCY when NONE was expected.
    fp = sum(
        assess(n["text"]).tier == Tier.EMERGENCY and TIERS[n["tier"]] == Tier.NONE
        for n in NEGATIVES
    )
    assert fp / len(NEGATIVES) <= 0.05
    # Stricter: anything above its expected tier, URGENT included.
    over = sum(assess(n["text"]).tier > TIERS[n["tier"]] for n in NEGATIVES)
    assert over / len(NEGATIVES) <= 0.05


@pytest.mark.parametrize("item", [n for n in NEGATIVES if n["tier"] == "urgent"], ids=_id)
def test_negatives_expected_urgent_get_a_safety_check_not_999(item: dict) -> None:
    # Past strangulation / self-harm etc.: a risk marker (URGENT), not present danger.
    assert assess(item["text"]).tier == Tier.URGENT


# ------------------------------------------------------------- strong signals


def test_negation_never_clears_means_at_hand() -> None:
    a = assess("not suicidal but i've got the pills in my hand")
    assert a.tier >= Tier.URGENT and a.kind == "self_harm"


def test_present_danger_is_emergency() -> None:
    a = assess("he's outside now")
    assert (a.tier, a.kind) == (Tier.EMERGENCY, "danger")
    assert "danger.present_at_door" in a.signals
    assert a.lowered_by == ()


def test_past_presence_is_lowered_but_outside_is_strong() -> None:
    a = assess("he was outside my house last year")
    assert (a.tier, a.kind) == (Tier.URGENT, "danger")  # not EMERGENCY, not cleared
    a = assess("he's been outside my house every night, last year too")
    assert a.tier == Tier.EMERGENCY
    a = assess("he used to wait outside my house years ago")
    assert a.tier == Tier.URGENT and a.lowered_by == ("past",)


def test_negated_strong_signal_stays_urgent() -> None:
    a = assess("he's not outside anymore")
    assert a.tier == Tier.URGENT
    assert "negation" in a.lowered_by


def test_strong_signal_in_media_stays_urgent() -> None:
    a = assess("in the film he's got a knife and it really triggered me")
    assert a.tier == Tier.URGENT and "media" in a.lowered_by


def test_dose_and_pill_emoji() -> None:
    assert assess("💊💊 800mg").tier >= Tier.URGENT
    assert assess("💊").tier == Tier.URGENT
    # next to another self-harm signal a dose means the means are at hand
    assert assess("i want to die. 💊💊 800mg").tier == Tier.EMERGENCY


def test_time_set_next_to_intent_is_emergency() -> None:
    assert assess("i want to die. doing it tonight").tier == Tier.EMERGENCY
    # "doing it tonight" alone says nothing about self-harm
    assert assess("i'll do it tonight").tier == Tier.NONE


# ----------------------------------------------------------------- modifiers


def test_negation_lowers_non_strong() -> None:
    a = assess("not suicidal, just knackered")
    assert a.tier == Tier.NONE
    assert a.signals == ("self_harm.suicidal",)
    assert a.lowered_by == ("negation",)
    assert assess("i'm not going to hurt myself, i just need to talk").tier == Tier.NONE


def test_negation_only_covers_what_it_denies() -> None:
    a = assess("not suicidal but wouldn't mind not waking up")
    assert (a.tier, a.kind) == (Tier.URGENT, "self_harm")
    assert assess("i'm not suicidal i just want to die").tier == Tier.URGENT


@pytest.mark.parametrize(
    "text",
    [
        "i want to die lol",
        "jk kms",
        "joking but i want to kill myself",
        "haha i want to unalive myself",
        "i want to die 😂",
    ],
)
def test_joking_never_clears(text: str) -> None:
    assert assess(text).tier >= Tier.URGENT


def test_past_self_harm_and_strangulation_stay_urgent() -> None:
    # Past self-harm is a risk marker: it keeps its own tier (URGENT), nothing lowered.
    a = assess("i used to cut at uni")
    assert (a.tier, a.kind, a.lowered_by) == (Tier.URGENT, "self_harm", ())
    # Past strangulation: EMERGENCY lowered to URGENT, never to NONE.
    a = assess("he strangled me 2 years ago, can I still report it")
    assert (a.tier, a.kind, a.lowered_by) == (Tier.URGENT, "danger", ("past",))
    assert assess("he strangled me").tier == Tier.EMERGENCY
    assert assess("he strangled me last night").tier == Tier.EMERGENCY


def test_tense_clash_means_present() -> None:
    a = assess("i used to cut at uni but last night i did it again")
    assert a.tier == Tier.URGENT and a.lowered_by == ()
    a = assess("he used to follow me but he's outside again right now")
    assert a.tier == Tier.EMERGENCY


def test_past_modifier_is_scoped_to_the_clause() -> None:
    a = assess("he hit me years ago. he's outside now")
    assert a.tier == Tier.EMERGENCY
    a = assess("he was outside last year, he's outside again now")
    assert a.tier == Tier.EMERGENCY


def test_hypothetical_lowers_danger_one_tier() -> None:
    a = assess("what if he finds out where i live?")
    assert a.tier == Tier.URGENT and a.lowered_by == ("hypothetical",)
    a = assess("in case he's outside when i leave court, can someone walk me out")
    assert a.tier == Tier.URGENT
    assert assess("my ex found where i live").tier == Tier.EMERGENCY


def test_hypothetical_does_not_lower_self_harm() -> None:
    assert assess("what if i just took all my pills").tier >= Tier.URGENT
    assert assess("stockpiling my meds just in case").tier == Tier.EMERGENCY


def test_third_party_past_is_cleared() -> None:
    a = assess("my friend's brother took his life last year")
    assert a.tier == Tier.NONE and "third_party_past" in a.lowered_by
    assert assess("my sister used to self harm, how can i support her").tier == Tier.NONE


def test_someone_else_at_risk_now_is_flagged() -> None:
    a = assess("my son has taken an overdose what do i do")
    assert (a.tier, a.kind) == (Tier.EMERGENCY, "self_harm")
    assert assess("my friend sent a text saying she's going to kill herself").tier >= Tier.URGENT


def test_media_is_cleared() -> None:
    a = assess("watched a documentary about suicide")
    assert a.tier == Tier.NONE and a.lowered_by == ("media",)


@pytest.mark.parametrize(
    "text",
    [
        "the wait is killing me",
        "mum will kill me if i'm late",
        "dying to know what the jury decided",
        "this form is killing me",
        "i could kill for a coffee",
        "my barrister was killing it",
        "my back is killing me",
        "i'm dying for a cuppa",
        "my boss will kill me if i take another day off",
        "i want to die my hair before court",
    ],
)
def test_figures_of_speech_do_not_match(text: str) -> None:
    a = assess(text)
    assert a.tier == Tier.NONE and a.signals == (), a


def test_figure_of_speech_is_reported_when_it_stopped_a_signal() -> None:
    assert assess("mum will kill me if i'm late").lowered_by == ("figure_of_speech",)


def test_figure_filter_does_not_hide_a_partner_threat() -> None:
    for text in (
        "he'll kill me if he finds out i called you",
        "my husband will kill me if i'm late home again",
        "he's killing me",
    ):
        assert assess(text).tier >= Tier.URGENT, text


def test_kys_is_not_about_the_user() -> None:
    assert assess("someone on twitter told me to kys").tier == Tier.NONE
    assert assess("kms").tier == Tier.URGENT


def test_buried_in_a_long_message() -> None:
    text = (
        "Hi, I wanted to ask about the court date for my case, ref 4301234/25. "
        "The witness care officer hasn't called me back. "
        * 5
        + "Also he's outside my house right now."
    )
    a = assess(text)
    assert (a.tier, a.kind) == (Tier.EMERGENCY, "danger")


def test_kind_tie_breaks() -> None:
    # both at EMERGENCY: a person present comes first
    assert assess("he's outside and i've taken an overdose").kind == "danger"
    # danger URGENT and self-harm URGENT: the suicide question comes first
    a = assess("he keeps turning up at my work and i can't go on")
    assert (a.tier, a.kind) == (Tier.URGENT, "self_harm")


# ------------------------------------------------------------- normalisation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Im  SO done", "i'm so done"),
        ("u dont get it", "you don't get it"),
        ("hes here rn", "he's here right now"),
        ("he\u2019s outside", "he's outside"),
        ("wanna die", "want to die"),
        ("want 2 die", "want to die"),
        ("got 2 boxes", "got 2 boxes"),
        ("k1ll myself", "kill myself"),
        ("i am scared, he is here", "i'm scared, he's here"),
        ("pleeeease", "pleease"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    "text",
    ["I WANT TO DIE", "wana die", "suicidle", "gonna end it", "cant go on", "hes outside",
     "HES OUTSIDE!!!", "i want to dieeee", "kill my self", "unaliving myself"],
)  # fmt: skip
def test_slang_spelling_and_shouting(text: str) -> None:
    assert assess(text).tier >= Tier.URGENT


# ------------------------------------------------------------------ the rules data


def test_rules_file_is_consistent() -> None:
    with open(detector.RULES_PATH, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    ids = [s["id"] for s in data["signals"]]
    assert len(ids) == len(set(ids))
    for sig in data["signals"]:
        assert sig["kind"] in ("danger", "self_harm")
        assert sig["tier"] in ("urgent", "emergency")
        assert isinstance(sig["strong"], bool)
        assert sig["source"] and all(n in data["sources"] for n in sig["source"])
        for p in sig["patterns"]:
            assert "(?>" not in p and not re.search(r"[*+?}]\+", p), p  # 3.11-only syntax
    assert all(str(u).startswith("http") for u in data["sources"].values())
    assert {m["id"] for m in data["modifiers"]} >= {
        "past", "hypothetical", "negation", "third_party_past", "media"
    }  # fmt: skip


def test_every_guidance_category_has_a_signal() -> None:
    ids = {s.id for s in detector._RULES.signals}
    for required in (
        # 2a-2e
        "self_harm.kill_self", "self_harm.wish_to_die", "self_harm.suicidal",
        "self_harm.burden", "self_harm.trapped", "self_harm.hopeless", "self_harm.not_waking",
        "self_harm.goodbye", "self_harm.affairs_in_order", "self_harm.giving_away",
        "self_harm.method_research", "self_harm.stockpiling", "self_harm.means_at_hand",
        "self_harm.time_set", "self_harm.dose", "self_harm.pill_emoji", "self_harm.cutting",
        "self_harm.burning", "self_harm.sh_slang", "self_harm.overdose_act",
        "self_harm.acute_bleeding", "self_harm.acute_location",
        # 3
        "danger.present_at_door", "danger.present_here", "danger.on_the_way",
        "danger.found_me", "danger.following", "danger.threat_to_kill", "danger.weapon_now",
        "danger.strangulation", "danger.children_at_risk", "danger.locked_in",
        "danger.phone_taken", "danger.cannot_talk", "danger.hiding",
    ):  # fmt: skip
        assert required in ids, required


def test_a_bad_rules_file_is_refused() -> None:
    with open(detector.RULES_PATH, encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    data["signals"][0]["source"] = [999]
    data["signals"][1]["patterns"] = ["(unclosed"]
    with pytest.raises(ValueError, match="source 999"):
        detector._Rules(data)


def test_code_is_python_310_syntax() -> None:
    for path in [*sorted((ROOT / "safety").glob("*.py")), ROOT / "bench" / "safety.py"]:
        ast.parse(path.read_text(encoding="utf-8"), filename=str(path), feature_version=(3, 10))


def test_no_rasa_import() -> None:
    for path in [*sorted((ROOT / "safety").glob("*.py")), ROOT / "bench" / "safety.py"]:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"^\s*(?:import|from)\s+rasa", text, re.MULTILINE), path


# ------------------------------------------------------------------------ speed


def test_prefilter_never_changes_a_result(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [i["text"] for i in POSITIVES + NEGATIVES]
    words = re.compile(r"[a-z']+|[0-9]+|💊|[.,!?]")
    vocab = sorted({w for t in texts for w in words.findall(normalise(t))})
    rng = random.Random(20240601)
    texts += [" ".join(rng.choice(vocab) for _ in range(rng.randint(1, 20))) for _ in range(800)]
    gated = [assess(t) for t in texts]
    gate = detector._RULES.gate
    monkeypatch.setattr(gate, "always", list(range(gate.size)))
    monkeypatch.setattr(gate, "by_key", {})
    assert [assess(t) for t in texts] == gated


def test_latency_per_message() -> None:
    texts = [i["text"] for i in POSITIVES + NEGATIVES]
    for t in texts:
        assess(t)
    t0 = time.perf_counter()
    for _ in range(3):
        for t in texts:
            assess(t)
    mean_ms = (time.perf_counter() - t0) / (3 * len(texts)) * 1000
    # The target is well under 1 ms (bench/safety.py reports p50/p95); this guard is
    # loose so a slow CI machine does not fail it.
    assert mean_ms < 2.0
