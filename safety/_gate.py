"""A sound prefilter: which compiled patterns could possibly match this text?

Every pattern is wrapped so that a match starts at a word start (or on a non-word,
non-space character such as an apostrophe or an emoji). At load time we parse each
pattern with the standard library's regex parser and compute a set of "keys": short
strings (1..KEY_LEN characters) such that every possible match begins with one of
them. At run time a pattern is tried only if one of its keys occurs at a possible
start position in the text.

The analysis is conservative: anything it cannot bound (a negated class, "any
character", an unknown construct, too many combinations) makes the key shorter, and
an empty key means "always run". So the gate can only skip a pattern that could not
have matched; it never changes a result, only the time taken.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable

if sys.version_info >= (3, 11):  # pragma: no cover - depends on the interpreter
    from re import _parser as _sre_parse  # type: ignore[attr-defined]
else:  # pragma: no cover
    import sre_parse as _sre_parse

KEY_LEN = 5
_CAP = 4000  # at most this many partial prefixes per pattern before giving up a character
_FROZEN = "\x00"  # marks a prefix that cannot be extended (its continuation is unknown)
_DIGITS = frozenset("0123456789")
_SPACE = frozenset(" \t\n\r\f\v")

# Exactly the positions where detector._LEAD allows a match to start.
_START_RE = re.compile(r"(?<!\w)|(?=[^\w\s])")


def _name(op: object) -> str:
    return getattr(op, "name", str(op))


def _done(s: str) -> bool:
    return s.endswith(_FROZEN) or len(s) >= KEY_LEN


def _freeze(left: set[str]) -> set[str]:
    return {a if _done(a) else a + _FROZEN for a in left}


def _concat(left: set[str], right: set[str] | None) -> set[str]:
    """All prefixes of a string from `left` followed by one from `right`.

    When `right` is unknown, or the product would be too large, the open prefixes
    of `left` are frozen: still true prefixes of every match, only shorter.
    """
    if right is None:
        return _freeze(left)
    open_count = sum(1 for a in left if not _done(a))
    if open_count * max(len(right), 1) > _CAP:
        return _freeze(left)
    out: set[str] = set()
    for a in left:
        if _done(a):
            out.add(a)
            continue
        for b in right:
            s = a + b
            bare = s.rstrip(_FROZEN)
            if len(bare) >= KEY_LEN:
                s = bare[:KEY_LEN]
            out.add(s)
    return out


def _chars(items: Iterable[tuple]) -> set[str] | None:
    chars: set[str] = set()
    for op, av in items:
        n = _name(op)
        if n == "LITERAL":
            chars.add(chr(av))
        elif n == "RANGE":
            lo, hi = av
            if hi - lo > 200:
                return None
            chars.update(chr(c) for c in range(lo, hi + 1))
        elif n == "CATEGORY":
            cat = _name(av)
            if cat == "CATEGORY_DIGIT":
                chars |= _DIGITS
            elif cat == "CATEGORY_SPACE":
                chars |= _SPACE
            else:  # \w, \W, \S ...: unicode classes, cannot bound
                return None
        else:  # NEGATE and anything unknown
            return None
    return chars


def _language(seq: Iterable[tuple]) -> set[str] | None:
    """Prefixes (up to KEY_LEN) of the strings a parsed sequence can match.

    None means "unknown from here on".
    """
    acc: set[str] = {""}
    for op, av in seq:
        n = _name(op)
        if n == "LITERAL":
            part: set[str] | None = {chr(av)}
        elif n == "IN":
            chars = _chars(av)
            part = None if chars is None else set(chars)
        elif n == "SUBPATTERN":
            part = _language(av[-1])
        elif n == "BRANCH":
            part = set()
            for alt in av[1]:
                sub = _language(alt)
                if sub is None:
                    part = None
                    break
                part |= sub
        elif n in ("MAX_REPEAT", "MIN_REPEAT"):
            lo, hi, item = av
            sub = _language(item)
            if sub is None:
                part = None
            else:
                part = set() if lo > 0 else {""}
                cur: set[str] = {""}
                limit = min(hi, KEY_LEN) if hi is not None else KEY_LEN
                for k in range(1, max(limit, 1) + 1):
                    cur = _concat(cur, sub)
                    if k >= lo or all(_done(x) for x in cur):
                        part |= cur
                    if all(_done(x) for x in cur):
                        break
                if lo > limit:  # the minimum count is beyond the key length
                    part |= _freeze(cur)
        elif n in ("AT", "ASSERT", "ASSERT_NOT"):
            continue  # zero width: ignoring the condition only makes the keys looser
        else:
            part = None
        acc = _concat(acc, part)
        if all(_done(x) for x in acc):
            break
    return acc


def keys_for(pattern: str) -> frozenset[str]:
    """Start keys for one pattern; an empty set means the pattern cannot be gated."""
    try:
        lang = _language(_sre_parse.parse(pattern))
    except Exception:  # anything unexpected: no gate, the pattern always runs
        return frozenset()
    if lang is None:
        return frozenset()
    keys = frozenset(s.rstrip(_FROZEN) for s in lang)
    if "" in keys:
        return frozenset()
    return keys


class Gate:
    """Maps start keys to the indexes of the patterns that need them."""

    def __init__(self, patterns: list[str]) -> None:
        self.always: list[int] = []
        self.by_key: dict[str, list[int]] = {}
        for i, p in enumerate(patterns):
            keys = keys_for(p)
            if not keys:
                self.always.append(i)
                continue
            for k in keys:
                self.by_key.setdefault(k, []).append(i)
        self.size = len(patterns)

    def positions(self, text: str) -> dict[int, list[int]]:
        """For each pattern that could match, the offsets where a match could start.

        Ungated patterns get every possible start offset.
        """
        found: dict[int, list[int]] = {}
        get = self.by_key.get
        starts = [m.start() for m in _START_RE.finditer(text)]
        for i in starts:
            chunk = text[i : i + KEY_LEN]
            for n in range(1, len(chunk) + 1):
                idx = get(chunk[:n])
                if idx is None:
                    continue
                for j in idx:
                    pos = found.get(j)
                    if pos is None:
                        found[j] = [i]
                    elif pos[-1] != i:
                        pos.append(i)
        for j in self.always:
            found[j] = starts
        return found
