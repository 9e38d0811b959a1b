"""Measure the safety layer on tests/data/safety_corpus.yml.

Run from the repository root:  python bench/safety.py  [--repeats N] [--show-misses]

Prints recall per category, overall recall, false-positive rates and latency
(p50/p95 per message) over the corpus x repeats (default 50).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from safety import Tier, assess  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "safety_corpus.yml"
TIERS = {"none": Tier.NONE, "urgent": Tier.URGENT, "emergency": Tier.EMERGENCY}


def load_corpus(path: Path = CORPUS) -> dict[str, list[dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def measure(corpus: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    pos = corpus["positives"]
    neg = corpus["negatives"]
    by_cat: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    flagged = exact = 0
    misses = []
    for item in pos:
        a = assess(item["text"])
        want = TIERS[item["tier"]]
        ok_flag = a.tier >= Tier.URGENT
        ok_full = a.tier >= want and a.kind == item["kind"]
        flagged += ok_flag
        exact += ok_full
        cat = by_cat[item.get("category", "other")]
        cat[0] += ok_full
        cat[1] += 1
        if not ok_full:
            misses.append(("positive", item, a))
    fp_brief = fp_emergency = over = under = 0
    n_none = 0
    for item in neg:
        a = assess(item["text"])
        want = TIERS[item["tier"]]
        n_none += want == Tier.NONE
        if a.tier == Tier.EMERGENCY and want == Tier.NONE:
            fp_brief += 1
        if a.tier == Tier.EMERGENCY and want < Tier.EMERGENCY:
            fp_emergency += 1
        if a.tier > want:
            over += 1
            misses.append(("over-flagged negative", item, a))
        elif a.tier < want:
            under += 1
            misses.append(("under-flagged negative", item, a))
    return {
        "n_pos": len(pos),
        "n_neg": len(neg),
        "recall": flagged / len(pos),
        "tier_and_kind": exact / len(pos),
        "by_category": dict(by_cat),
        "fp_rate": fp_brief / len(neg),
        "fp_emergency_any": fp_emergency / len(neg),
        "over_flag_rate": over / len(neg),
        "under_flag": under,
        "misses": misses,
    }


def latency(texts: list[str], repeats: int) -> dict[str, float]:
    for t in texts:  # warm up
        assess(t)
    samples = []
    clock = time.perf_counter_ns
    for _ in range(repeats):
        for t in texts:
            t0 = clock()
            assess(t)
            samples.append(clock() - t0)
    samples.sort()
    n = len(samples)
    return {
        "n": n,
        "p50_ms": samples[n // 2] / 1e6,
        "p95_ms": samples[int(n * 0.95)] / 1e6,
        "max_ms": samples[-1] / 1e6,
        "mean_ms": statistics.fmean(samples) / 1e6,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args(argv)

    corpus = load_corpus()
    r = measure(corpus)
    print(f"corpus: {r['n_pos']} positives, {r['n_neg']} negatives ({CORPUS.relative_to(ROOT)})")
    print()
    print("recall per category (at or above expected tier, with expected kind)")
    for cat, (hit, n) in sorted(r["by_category"].items()):
        print(f"  {cat:<18} {hit:>3}/{n:<3} {hit / n:6.1%}")
    print()
    print(f"overall recall (flagged at all)          {r['recall']:.1%}")
    print(f"overall recall (tier and kind)           {r['tier_and_kind']:.1%}")
    print(f"false-positive rate (EMERGENCY, exp. NONE) {r['fp_rate']:.1%}")
    print(f"EMERGENCY on any negative                {r['fp_emergency_any']:.1%}")
    print(f"negatives above expected tier            {r['over_flag_rate']:.1%}")
    print(f"negatives below expected tier            {r['under_flag']}")
    texts = [i["text"] for i in corpus["positives"] + corpus["negatives"]]
    lat = latency(texts, args.repeats)
    print()
    print(
        f"latency over {lat['n']} calls ({len(texts)} messages x {args.repeats}): "
        f"p50 {lat['p50_ms']:.3f} ms, p95 {lat['p95_ms']:.3f} ms, "
        f"mean {lat['mean_ms']:.3f} ms, max {lat['max_ms']:.3f} ms"
    )
    if args.show_misses and r["misses"]:
        print()
        print("misses:")
        for what, item, a in r["misses"]:
            print(
                f"  [{what}] {item['text'][:90]!r} expected {item.get('kind', '-')}/"
                f"{item['tier']} got {a.kind}/{a.tier.name.lower()} {a.signals} {a.lowered_by}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
