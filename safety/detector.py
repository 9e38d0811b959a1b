"""Rule-based detection of danger and self-harm signals in one message.

Pure Python (stdlib + PyYAML), Python 3.10+. The patterns are data in
``signals.yml`` next to this file; they are compiled once, when the module is
imported. See ``safety/README.md``.

Steps for one message:

1. normalise the text (lower case, straight quotes, texting forms, contractions);
2. mask figures of speech ("the wait is killing me") so they never match;
3. find every match of every signal;
4. for each match, apply the modifiers found in its clause (past, hypothetical,
   someone else's past, media) or overlapping it (negation), then the floors
   (a strong signal never goes below URGENT; a past history marker stays URGENT);
5. the message's tier is the highest tier left.
"""

from __future__ import annotations

import bisect
import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from re import Pattern
from typing import Any, Optional

import yaml

from safety._gate import Gate

__all__ = ["RULES_PATH", "Assessment", "Tier", "assess", "normalise"]

RULES_PATH = Path(__file__).with_name("signals.yml")

KINDS = ("danger", "self_harm")


class Tier(enum.IntEnum):
    NONE = 0
    URGENT = 1
    EMERGENCY = 2


@dataclass(frozen=True)
class Assessment:
    tier: Tier
    kind: Optional[str]  # noqa: UP045 - "danger", "self_harm" or None (API as specified)
    signals: tuple[str, ...]  # ids of the signal patterns that matched
    lowered_by: tuple[str, ...]  # ids of modifiers that lowered the tier


_TIERS = {"none": Tier.NONE, "urgent": Tier.URGENT, "emergency": Tier.EMERGENCY}
_APOSTROPHES = dict.fromkeys(map(ord, "\u2018\u2019\u201b\u02bc\u02b9\u00b4\u0060\u2032"), "'")
_QUOTES = dict.fromkeys(map(ord, "\u201c\u201d\u201e\u201f\u2033"), '"')
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\ufe0f\u00ad"), None)
_DASHES = dict.fromkeys(map(ord, "\u2010\u2011\u2012"), "-")
_TRANSLATE = {**_APOSTROPHES, **_QUOTES, **_INVISIBLE, **_DASHES}
_LEET = {"1": "i", "!": "i", "3": "e", "0": "o", "@": "a", "$": "s", "|": "l"}
_LEET_RE = re.compile(r"(?<=[a-z])[1!30@$|](?=[a-z])")
_REPEAT_RE = re.compile(r"([a-z])\1{2,}")
_SPACE_RE = re.compile(r"[ \t\r\f\v]+")
_MACRO_RE = re.compile(r"%([A-Z_]+)%")


# Word-bounded, except that a pattern may start or end on a non-word, non-space
# character (an apostrophe as in "'ll kill me", or an emoji).
_LEAD = r"(?:(?<!\w)|(?=[^\w\s]))"
_TRAIL = r"(?:(?!\w)|(?<=[^\w\s]))"


def _wrap(pattern: str) -> str:
    return _LEAD + "(?:" + pattern + ")" + _TRAIL


@dataclass(frozen=True, slots=True, kw_only=True)
class _Signal:
    id: str
    kind: str
    tier: Tier
    strong: bool
    history: bool
    needs_company: bool
    with_company_tier: Tier | None
    present_tier: Tier | None
    regex: Pattern[str]


@dataclass(frozen=True, slots=True, kw_only=True)
class _Modifier:
    id: str
    scope: str
    lower_by: int
    history_floor: bool
    floor: Tier
    cancelled_by_present: bool
    applies_to: frozenset[str]
    requires: str | None
    regex: Pattern[str]


class _Rules:
    """Everything in signals.yml, validated and compiled."""

    def __init__(self, data: dict[str, Any]) -> None:
        problems: list[str] = []
        self.sources: dict[int, str] = {int(k): str(v) for k, v in data["sources"].items()}
        self.macros: dict[str, str] = {}
        for name, body in data.get("macros", {}).items():
            self.macros[name] = body
        # Expand macros inside macros (one level deep is enough, twice to be safe).
        for _ in range(2):
            for name, body in list(self.macros.items()):
                self.macros[name] = self._expand(body, problems, where=f"macro {name}")

        # Normalisation data.
        texting: dict[str, str] = {str(k): str(v) for k, v in data.get("texting", {}).items()}
        self.texting = texting
        self.texting_re = re.compile(
            r"(?<![\w'])("
            + "|".join(sorted(map(re.escape, texting), key=len, reverse=True))
            + r")(?![\w'])"
        )
        two_to = data.get("two_means_to_after") or []
        self.two_to_re = (
            re.compile(r"(?<![\w'])(" + "|".join(map(re.escape, two_to)) + r") 2(?= [a-z])")
            if two_to
            else None
        )
        contractions: dict[str, str] = dict(data.get("contractions", {}))
        self.contractions = contractions
        self.contractions_re = re.compile(
            r"(?<![\w'])("
            + "|".join(sorted(map(re.escape, contractions), key=len, reverse=True))
            + r")(?![\w'])"
        )

        # Signals.
        self.signals: list[_Signal] = []
        seen = set()
        for raw in data["signals"]:
            sid = raw.get("id", "?")
            where = f"signal {sid}"
            if sid in seen:
                problems.append(f"{where}: duplicate id")
            seen.add(sid)
            kind = raw.get("kind")
            if kind not in KINDS:
                problems.append(f"{where}: kind must be one of {KINDS}")
            if not str(sid).startswith(f"{kind}."):
                problems.append(f"{where}: id must start with '{kind}.'")
            tier = _TIERS.get(str(raw.get("tier")))
            if tier not in (Tier.URGENT, Tier.EMERGENCY):
                problems.append(f"{where}: tier must be urgent or emergency")
                tier = Tier.URGENT
            company = raw.get("with_company_tier")
            company_tier = _TIERS.get(str(company)) if company is not None else None
            if company is not None and company_tier is None:
                problems.append(f"{where}: bad with_company_tier")
            present = raw.get("present_tier")
            present_tier = _TIERS.get(str(present)) if present is not None else None
            if present is not None and present_tier is None:
                problems.append(f"{where}: bad present_tier")
            for key in ("strong", "history"):
                if not isinstance(raw.get(key), bool):
                    problems.append(f"{where}: '{key}' must be true or false")
            sources = raw.get("source") or []
            if not sources:
                problems.append(f"{where}: no source")
            for n in sources:
                if n not in self.sources:
                    problems.append(f"{where}: source {n} is not in `sources`")
            patterns = raw.get("patterns") or []
            if not patterns:
                problems.append(f"{where}: no patterns")
            regex = self._compile(patterns, problems, where)
            self.signals.append(
                _Signal(
                    id=sid,
                    kind=kind,
                    tier=tier,
                    strong=bool(raw.get("strong")),
                    history=bool(raw.get("history")),
                    needs_company=bool(raw.get("needs_company", False)),
                    with_company_tier=company_tier,
                    present_tier=present_tier,
                    regex=regex,
                )
            )

        # Modifiers.
        self.modifiers: list[_Modifier] = []
        ids = [m.get("id") for m in data["modifiers"]]
        for raw in data["modifiers"]:
            mid = raw.get("id", "?")
            where = f"modifier {mid}"
            scope = raw.get("scope")
            if scope not in ("clause", "overlap"):
                problems.append(f"{where}: scope must be clause or overlap")
            lower_by = raw.get("lower_by")
            if lower_by not in (1, 2):
                problems.append(f"{where}: lower_by must be 1 or 2")
                lower_by = 1
            requires = raw.get("requires")
            if requires is not None and requires not in ids:
                problems.append(f"{where}: requires unknown modifier {requires}")
            floor = _TIERS.get(str(raw.get("floor", "none")))
            if floor is None:
                problems.append(f"{where}: floor must be none, urgent or emergency")
                floor = Tier.NONE
            applies_to = frozenset(raw.get("applies_to") or KINDS)
            if not applies_to <= set(KINDS):
                problems.append(f"{where}: applies_to must list kinds from {KINDS}")
            self.modifiers.append(
                _Modifier(
                    id=mid,
                    scope=scope,
                    lower_by=lower_by,
                    history_floor=bool(raw.get("history_floor", False)),
                    floor=floor,
                    cancelled_by_present=bool(raw.get("cancelled_by_present", False)),
                    applies_to=applies_to,
                    requires=requires,
                    regex=self._compile(raw.get("patterns") or [], problems, where),
                )
            )
        self.modifier_by_id = {m.id: m for m in self.modifiers}

        self.present = self._compile(data.get("present_markers") or [], problems, "present")

        clauses = data.get("clauses") or {}
        conj = clauses.get("conjunctions") or []
        self.contrastive = frozenset(clauses.get("contrastive") or [])
        self.clause_re = re.compile(
            "("
            + clauses.get("punctuation", r"[.!?;\n]+")
            + ")"
            + "|"
            + r"(?<=\s)("
            + "|".join(sorted(map(re.escape, conj), key=len, reverse=True))
            + r")(?!\w)"
        )

        self.figures: list[tuple[str, Pattern[str]]] = []
        # A figure may name a signal to report instead (a gentle check rather than
        # silence), e.g. "my dad will kill me": usually an idiom, sometimes not.
        self.figure_flags: list[_Signal | None] = []
        by_id = {sig.id: sig for sig in self.signals}
        for raw in data.get("figures_of_speech") or []:
            fid = raw.get("id", "?")
            self.figures.append(
                (fid, self._compile(raw.get("patterns") or [], problems, f"figure {fid}"))
            )
            flag = raw.get("flag_as")
            if flag is not None and flag not in by_id:
                problems.append(f"figure {fid}: flag_as names unknown signal {flag}")
            self.figure_flags.append(by_id.get(flag) if flag else None)

        # One gate for every pattern: signals, then figures, then modifiers, then the
        # present-tense markers. Its start offsets are computed once per message.
        self.figure_regexes = [rx for _, rx in self.figures]
        self.context_regexes = [m.regex for m in self.modifiers] + [self.present]
        everything = (
            [sig.regex for sig in self.signals] + self.figure_regexes + self.context_regexes
        )
        self.gate = Gate([rx.pattern for rx in everything])
        self.n_signals = len(self.signals)
        self.figure_offset = self.n_signals
        self.context_offset = self.n_signals + len(self.figure_regexes)

        if problems:
            raise ValueError("safety/signals.yml is invalid:\n  " + "\n  ".join(problems))

    def _expand(self, pattern: str, problems: list[str], where: str) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.macros:
                problems.append(f"{where}: unknown macro %{name}%")
                return ""
            return self.macros[name]

        return _MACRO_RE.sub(sub, pattern)

    def _compile(self, patterns: Sequence[str], problems: list[str], where: str) -> Pattern[str]:
        parts = []
        for p in patterns:
            if not isinstance(p, str) or not p:
                problems.append(f"{where}: empty or non-string pattern")
                continue
            if "(?>" in p or re.search(r"[*+?}]\+", p):
                problems.append(f"{where}: atomic/possessive syntax needs Python 3.11: {p!r}")
            if re.search(r"[A-Z]", re.sub(r"\\.|%[A-Z_]+%|\(\?P?<?[=!]?", "", p)):
                # Text is lower-cased before matching, so an upper-case letter never matches.
                problems.append(f"{where}: pattern must be lower case: {p!r}")
            expanded = self._expand(p, problems, where)
            try:
                re.compile(expanded)
            except re.error as exc:
                problems.append(f"{where}: bad regex {p!r}: {exc}")
                continue
            parts.append(expanded)
        if not parts:
            return re.compile(r"(?!x)x")  # never matches
        # One boundary check around the whole alternation: about 3x faster than one
        # per alternative. The text is already lower case, so no IGNORECASE.
        return re.compile(_wrap("|".join(parts)))


def _load(path: Path = RULES_PATH) -> _Rules:
    with open(path, encoding="utf-8") as fh:
        return _Rules(yaml.safe_load(fh))


_RULES = _load()


def normalise(text: str) -> str:
    """Lower-case and regularise a message so the patterns can stay simple."""
    rules = _RULES
    t = text.lower().translate(_TRANSLATE)
    t = _LEET_RE.sub(lambda m: _LEET[m.group(0)], t)
    t = _REPEAT_RE.sub(r"\1\1", t)
    t = _SPACE_RE.sub(" ", t)
    t = re.sub(r" *\n[ \n]*", "\n", t).strip()
    t = rules.texting_re.sub(lambda m: rules.texting[m.group(1)], t)
    if rules.two_to_re is not None:
        t = rules.two_to_re.sub(r"\1 to", t)
    t = rules.contractions_re.sub(lambda m: rules.contractions[m.group(1)], t)
    return t


def _clauses(text: str) -> tuple[list[int], list[bool]]:
    """Clause start offsets, and whether each clause opens with a contrastive word."""
    starts = [0]
    contrastive = [False]
    for m in _RULES.clause_re.finditer(text):
        if m.group(1) is not None:  # punctuation: the clause starts after it
            starts.append(m.end())
            contrastive.append(False)
        else:  # a conjunction opens the new clause
            starts.append(m.start())
            contrastive.append(m.group(0) in _RULES.contrastive)
    return starts, contrastive


def _mask_figures(text: str, starts: dict[int, list[int]]) -> tuple[str, bool, list[_Match]]:
    """Blank out figures of speech; return the masked text, whether any matched, and
    the matches of signals that some figures report instead (see `flag_as`)."""
    spans = _spans(starts, _RULES.figure_offset, _RULES.figure_regexes, text)
    if not any(spans):
        return text, False, []
    chars = list(text)
    flagged: list[_Match] = []
    flags = _RULES.figure_flags
    plain = [sp for group, flag in zip(spans, flags, strict=True) if flag is None for sp in group]
    for group, flag in zip(spans, flags, strict=True):
        for start, end in group:
            chars[start:end] = "~" * (end - start)
            # A plain figure ("... if i'm late") wins over a flagging one on the same words.
            if flag is not None and not any(s < end and e > start for s, e in plain):
                flagged.append(_Match(flag, start, end))
    return "".join(chars), True, flagged


class _Match:
    __slots__ = ("end", "signal", "start")

    def __init__(self, signal: _Signal, start: int, end: int) -> None:
        self.signal = signal
        self.start = start
        self.end = end


def _find(text: str, starts: dict[int, list[int]]) -> list[_Match]:
    """Every match of every signal, tried only where the gate says one could start."""
    out = []
    signals = _RULES.signals
    n = _RULES.n_signals
    for i in sorted(k for k in starts if k < n):
        sig = signals[i]
        match = sig.regex.match
        for pos in starts[i]:
            m = match(text, pos)
            if m is not None:
                out.append(_Match(sig, m.start(), m.end()))
    return out


def _spans(
    starts: dict[int, list[int]], offset: int, regexes: Sequence[Pattern[str]], text: str
) -> list[list[tuple[int, int]]]:
    """Match spans of regexes[i] (gate index offset + i), tried at the gated offsets."""
    spans: list[list[tuple[int, int]]] = [[] for _ in regexes]
    for i, rx in enumerate(regexes):
        match = rx.match
        for pos in starts.get(offset + i, ()):
            m = match(text, pos)
            if m is not None:
                spans[i].append((m.start(), m.end()))
    return spans


def _lower(
    match: _Match,
    base: Tier,
    clause: tuple[int, int],
    next_clause: tuple[int, int] | None,
    modifier_spans: dict[str, list[tuple[int, int]]],
    present_spans: list[tuple[int, int]],
) -> tuple[Tier, tuple[str, ...]]:
    """The tier of one match after modifiers and floors, and the modifiers used."""
    sig = match.signal

    def in_span(spans: list[tuple[int, int]], lo: int, hi: int) -> bool:
        return any(s < hi and e > lo for s, e in spans)

    def found(mod: _Modifier) -> bool:
        spans = modifier_spans[mod.id]
        if not spans:
            return False
        if mod.scope == "overlap":
            return in_span(spans, match.start, match.end)
        if not in_span(spans, clause[0], clause[1]):
            return False
        if mod.cancelled_by_present:
            if in_span(present_spans, clause[0], clause[1]):
                return False
            if next_clause is not None and in_span(present_spans, *next_clause):
                return False
        if mod.requires is not None:
            return found(_RULES.modifier_by_id[mod.requires])
        return True

    best = base
    used: list[str] = []
    for mod in _RULES.modifiers:
        if sig.kind not in mod.applies_to or not found(mod):
            continue
        floor = mod.floor
        if sig.strong or (mod.history_floor and sig.history):
            floor = max(floor, Tier.URGENT)
        tier = Tier(max(int(base) - mod.lower_by, int(floor)))
        if tier < base:
            used.append(mod.id)
            best = min(best, tier)
    return best, tuple(used)


def _evaluate(
    text: str, gate_starts: dict[int, list[int]], extra: Sequence[_Match] = ()
) -> tuple[Tier, str | None, tuple[str, ...], tuple[str, ...]]:
    matches = _find(text, gate_starts) + list(extra)
    if not matches:
        return Tier.NONE, None, (), ()

    starts, contrastive = _clauses(text)
    ends = [*starts[1:], len(text)]
    context = _spans(gate_starts, _RULES.context_offset, _RULES.context_regexes, text)
    modifier_spans = {m.id: context[i] for i, m in enumerate(_RULES.modifiers)}
    present_spans = context[-1]

    def effective(match: _Match, base: Tier) -> tuple[Tier, tuple[str, ...], Tier]:
        i = bisect.bisect_right(starts, match.start) - 1
        clause = (starts[i], ends[i])
        if match.signal.present_tier is not None and any(
            s < clause[1] and e > clause[0] for s, e in present_spans
        ):
            base = max(base, match.signal.present_tier)
        nxt = (starts[i + 1], ends[i + 1]) if i + 1 < len(starts) and contrastive[i + 1] else None
        tier, used = _lower(match, base, clause, nxt, modifier_spans, present_spans)
        return tier, used, base

    # First pass: signals that stand alone, to know which kinds have "company".
    company: dict[str, set] = {}
    for m in matches:
        if m.signal.needs_company:
            continue
        tier, _, _ = effective(m, m.signal.tier)
        if tier >= Tier.URGENT:
            company.setdefault(m.signal.kind, set()).add(m.signal.id)

    # Second pass: the best (highest) result per signal.
    per_signal: dict[str, tuple[Tier, Tier, tuple[str, ...], _Signal]] = {}
    for m in matches:
        sig = m.signal
        others = company.get(sig.kind, set()) - {sig.id}
        if sig.needs_company and not others:
            continue
        base = sig.tier
        if sig.with_company_tier is not None and others:
            base = max(base, sig.with_company_tier)
        tier, used, base = effective(m, base)
        prev = per_signal.get(sig.id)
        if prev is None or tier > prev[1]:
            per_signal[sig.id] = (base, tier, used, sig)

    if not per_signal:
        return Tier.NONE, None, (), ()

    final = max(t for _, t, _, _ in per_signal.values())
    raw = max(b for b, _, _, _ in per_signal.values())
    lowered: list[str] = []
    if final < raw:
        for base, _tier, used, _sig in per_signal.values():
            if base > final:
                lowered.extend(u for u in used if u not in lowered)
    kind: str | None = None
    if final > Tier.NONE:
        kinds = {sig.kind for _, t, _, sig in per_signal.values() if t == final}
        if len(kinds) == 1:
            kind = kinds.pop()
        else:
            # A tie: at EMERGENCY a person present comes first ("is it safe to talk?");
            # at URGENT the suicide question comes first.
            kind = "danger" if final == Tier.EMERGENCY else "self_harm"
    ids = tuple(s.id for s in _RULES.signals if s.id in per_signal)
    return final, kind, ids, tuple(lowered)


def assess(text: str) -> Assessment:
    """Assess one message. Never raises on odd input; an empty message is NONE."""
    if not isinstance(text, str) or not text.strip():
        return Assessment(Tier.NONE, None, (), ())
    norm = normalise(text)
    starts = _RULES.gate.positions(norm)
    masked, had_figure, flagged = _mask_figures(norm, starts)
    if not had_figure:
        tier, kind, signals, lowered = _evaluate(norm, starts)
    else:
        tier, kind, signals, lowered = _evaluate(masked, _RULES.gate.positions(masked), flagged)
        # Report the figure of speech only if it lowered the tier.
        unmasked_tier = _evaluate(norm, starts)[0]
        if unmasked_tier > tier:
            lowered = (*lowered, "figure_of_speech")
    return Assessment(tier, kind, signals, lowered)


EMERGENCY_INTENT = "emergency"
SELF_HARM_INTENT = "self_harm_risk"


def forced_intent(assessment: Assessment) -> str | None:
    """The intent a safety verdict forces (the emergency route), or None.

    The Rasa component and the gateway both use this, so they agree on when a
    message gets the emergency reply.
    """
    if assessment.kind == "danger" and assessment.tier == Tier.EMERGENCY:
        return EMERGENCY_INTENT
    if assessment.kind == "self_harm" and assessment.tier >= Tier.URGENT:
        return SELF_HARM_INTENT
    return None
