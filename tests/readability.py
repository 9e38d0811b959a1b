"""Reading grade of content: the Flesch-Kincaid grade, syllables counted with Pyphen.

(textstat computes the same figure but fetches a dictionary over the network at run time.)
"""

from __future__ import annotations

import re
from functools import lru_cache

import pyphen


@lru_cache(maxsize=1)
def _dictionary() -> pyphen.Pyphen:
    return pyphen.Pyphen(lang="en_GB")


def syllables(word: str) -> int:
    return len(_dictionary().positions(word)) + 1


def grade(text: str) -> float:
    """Flesch-Kincaid grade level (US school grade; add 5 for a reading age)."""
    words = re.findall(r"[A-Za-z']+", text)
    sentences = max(1, len(re.findall(r"[.!?]+(?:\s|$)", text)))
    if not words:
        return 0.0
    syllable_count = sum(syllables(w.lower()) for w in words)
    return 0.39 * len(words) / sentences + 11.8 * syllable_count / len(words) - 15.59
