"""Redaction benchmark (issue 7): recall and precision per kind, and latency per message.

Scores bot/privacy/redact.py on the PII corpus the tests use (tests/data/pii_corpus.yml)
and on the blind set (bench/data/pii_blind.yml: written after the corpus, never used to
tune the rules). Recall: expected spans fully covered by spans of their kind. Precision:
found spans that overlap an expected span of their kind (anything found in a negative is
wrong). Latency: every message of both sets timed once per run after a warm-up;
p50/p95/p99 over the messages of each one's median time (and, to show scheduling
noise on a busy machine, over every single call). Targets: recall >= 0.99 for phone, email,
postcode, NI and card, >= 0.90 for names; p95 < 5 ms.

Run from the repository root:  .venv/bin/python bench/privacy.py  [--runs N] [--show-misses]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bot.privacy.redact import KINDS, Redactor  # noqa: E402
from tests.privacy.pii import Item, Score, load, score  # noqa: E402

SETS = {
    "corpus": ROOT / "tests" / "data" / "pii_corpus.yml",
    "blind": ROOT / "bench" / "data" / "pii_blind.yml",
}
TARGETS = {"phone": 0.99, "email": 0.99, "postcode": 0.99, "ni": 0.99, "card": 0.99, "name": 0.90}
TARGET_P95_MS = 5.0


def _cell(s: Score | None) -> str:
    if s is None:
        return f"{'-':>22}"
    return f"{s.recall:6.3f} ({s.recalled:>3}/{s.expected:<3}) {s.precision:6.3f}"


def _quantiles(samples: list[float]) -> dict[str, float]:
    samples = sorted(samples)
    n = len(samples)
    return {
        **{f"p{int(q * 100)}": samples[min(n - 1, int(n * q))] for q in (0.50, 0.95, 0.99)},
        "max": samples[-1],
    }


def latency(redact: Callable[[str], object], texts: list[str], runs: int) -> tuple[dict, dict]:
    """Quantiles over messages of each message's median time, and over every single call."""
    for text in texts:  # warm up
        redact(text)
    times: list[list[float]] = [[] for _ in texts]
    for _ in range(runs):
        for i, text in enumerate(texts):
            start = time.perf_counter_ns()
            redact(text)
            times[i].append((time.perf_counter_ns() - start) / 1e6)
    medians = [statistics.median(t) for t in times]
    return _quantiles(medians), _quantiles([x for t in times for x in t])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    redactor = Redactor()
    built_ms = (time.perf_counter() - start) * 1e3
    loaded: dict[str, tuple[list[Item], list[Item]]] = {k: load(p) for k, p in SETS.items()}
    scores = {name: score(redactor, *items) for name, items in loaded.items()}

    print("Redaction: recall (found/expected) and precision per kind")
    for name, (pos, neg) in loaded.items():
        print(
            f"  {name}: {SETS[name].relative_to(ROOT)}, {len(pos)} positives, {len(neg)} negatives"
        )
    print()
    print(f"{'kind':<10} {'target':>6}   {'corpus':^22}   {'blind':^22}")
    print(
        f"{'':<10} {'':>6}   {'recall':>6} {'':>9} {'prec.':>6}   {'recall':>6} {'':>9} {'prec.':>6}"
    )
    for kind in KINDS:
        target = f"{TARGETS[kind]:.2f}" if kind in TARGETS else "-"
        cells = "   ".join(_cell(scores[name].get(kind)) for name in SETS)
        print(f"{kind:<10} {target:>6}   {cells}")
    for name, (_, neg) in loaded.items():
        changed = sum(redactor.redact(i.text, i.keep) != i.text for i in neg)
        print(f"negatives changed ({name}): {changed}/{len(neg)}")

    texts = [i.text for pos, neg in loaded.values() for i in pos + neg]
    per_message, per_call = latency(redactor.redact, texts, args.runs)

    # The gateway redacts each message twice: what is stored, and what Rasa gets (crime
    # references kept). This is the latency it adds per message.
    def gateway(text: str) -> None:
        redactor.redact(text)
        redactor.redact(text, keep={"reference"})

    both, _ = latency(gateway, texts, args.runs)
    print()
    print(
        f"latency, ms ({len(texts)} messages x {args.runs} runs; target p95 < {TARGET_P95_MS:g} ms)"
    )
    rows = (
        ("per message (median of runs)", per_message),
        ("every call", per_call),
        ("gateway: stored + for Rasa", both),
    )
    for label, q in rows:
        print(
            f"  {label:<29} p50 {q['p50']:.3f}  p95 {q['p95']:.3f}  p99 {q['p99']:.3f}"
            f"  max {q['max']:.3f}"
        )
    print(f"building the redactor (once per process): {built_ms:.0f} ms")

    if args.show_misses:
        for name, by_kind in scores.items():
            for kind, s in by_kind.items():
                for what, text in s.misses:
                    print(f"  [{name}] {kind} {what}: {text}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
