"""The PII corpus format and its scoring, shared by test_redact.py and bench/privacy.py.

A file has `positives` (text and its expected spans `{kind, text}`, in order) and
`negatives` (text that must come through unchanged, maybe with `keep`). An expected span
is found when spans of its kind cover all of it; a found span is right when it overlaps
an expected span of its kind. Every span found in a negative is a false positive.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from bot.privacy.redact import Found, Redactor


@dataclass(frozen=True)
class Item:
    text: str
    spans: tuple[Found, ...] = ()
    keep: tuple[str, ...] = ()


@dataclass
class Score:
    expected: int = 0
    recalled: int = 0
    found: int = 0
    correct: int = 0
    misses: list[tuple[str, str]] = field(default_factory=list)  # (what, message)

    @property
    def recall(self) -> float:
        return self.recalled / self.expected if self.expected else 1.0

    @property
    def precision(self) -> float:
        return self.correct / self.found if self.found else 1.0


def load(path: Path) -> tuple[list[Item], list[Item]]:
    """Positives and negatives, with each expected span located in its message."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    positives = []
    for entry in data["positives"]:
        text, spans, at = entry["text"], [], 0
        for span in entry["spans"]:
            start = text.index(span["text"], at)
            spans.append(Found(start, start + len(span["text"]), span["kind"]))
            at = start + len(span["text"])
        positives.append(Item(text, tuple(spans)))
    negatives = [Item(e["text"], keep=tuple(e.get("keep", ()))) for e in data["negatives"]]
    return positives, negatives


def score(redactor: Redactor, positives: list[Item], negatives: list[Item]) -> dict[str, Score]:
    """Recall and precision per kind over a corpus."""
    scores: dict[str, Score] = defaultdict(Score)
    for item in positives + negatives:
        found = [f for f in redactor.find(item.text) if f.kind not in item.keep]
        for want in item.spans:
            s = scores[want.kind]
            s.expected += 1
            covered = {i for f in found if f.kind == want.kind for i in range(f.start, f.end)}
            needed = {i for i in range(want.start, want.end) if not item.text[i].isspace()}
            if needed <= covered:
                s.recalled += 1
            else:
                s.misses.append(
                    ("missed", f"{item.text[want.start : want.end]!r} in {item.text!r}")
                )
        for got in found:
            s = scores[got.kind]
            s.found += 1
            if any(
                w.kind == got.kind and w.start < got.end and got.start < w.end for w in item.spans
            ):
                s.correct += 1
            else:
                s.misses.append(("extra", f"{item.text[got.start : got.end]!r} in {item.text!r}"))
    return dict(scores)
