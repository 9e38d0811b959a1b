"""Redaction: personal details out of free text before it is stored, logged or sent to Rasa.

Victims give details nobody asked for ("my name is...", a number, an address). The things
that identify someone mostly have fixed shapes (phone, card and NI numbers, postcodes,
emails), which rules find more reliably than a general model, with no download and well
under a millisecond per message. So this is a blank spaCy pipeline (its tokenizer) plus
one rule-based component: regexes for the shaped details (bot/privacy/shapes.py) and a
PhraseMatcher for the cues that introduce a name ("my name is", "I'm", "this is",
sign-offs). A deployment that installs a spaCy model (settings.spacy_model) also gets
its PERSON entities.

Not personal, so never redacted: the public numbers and emails Waymark itself gives out
(content/*.yml: 999, 101, helplines), and a postcode's district ("SE13 5AB" -> "SE13"),
which signposting needs. Crime references can be kept (`keep={"reference"}`) where a flow
needs them, as the case look-up does.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from functools import cache

import spacy
from spacy.lang.en.stop_words import STOP_WORDS
from spacy.language import Language
from spacy.matcher import PhraseMatcher
from spacy.tokens import Doc, Span, Token

from actions.references import DEFAULT_REFERENCE_PATTERN
from bot.privacy.names import FIRST_NAMES, NOT_NAMES, RELATIONS
from bot.privacy.shapes import ShapeFinder

KINDS = (
    "phone",
    "email",
    "postcode",
    "address",
    "ni",
    "dob",
    "card",
    "account",
    "reference",
    "name",
)
PLACEHOLDERS = {
    "phone": "[phone]",
    "email": "[email]",
    "address": "[address]",
    "ni": "[NI number]",
    "dob": "[date of birth]",
    "card": "[card]",
    "account": "[account]",
    "reference": "[reference]",
    "name": "[name]",
}
# Where two finds overlap, the earlier kind here wins (an email holding digits is an email).
_ORDER = ("email", "ni", "card", "dob", "reference", "phone", "account", "postcode", "address")
PRIORITY = {kind: i for i, kind in enumerate((*_ORDER, "name"))}


@dataclass(frozen=True, slots=True)
class Found:
    start: int
    end: int
    kind: str


# --- Names ---------------------------------------------------------------------------------


def _cue(*words: str) -> list[tuple[str, ...]]:
    """Cue phrases, a word per token: "a|b" is either, a trailing "?" makes it optional."""
    options = [w.removesuffix("?").split("|") + ([""] if w.endswith("?") else []) for w in words]
    return [tuple(filter(None, combo)) for combo in itertools.product(*options)]


# Cues before a name. "strong" ones take any word that is not a common one ("my name is
# priya"); "weak" ones only a capitalised word or a known first name ("I'm Priya", "im
# priya", but not "I'm scared"); "checked" also want the name to end the clause ("this is
# Priya, ..." but not "this is Lewisham police").
_IS = "is|'s|\u2019s"
_RELATION = "|".join(sorted(RELATIONS))  # "my ex Jason", "my ex-partner Jason"
_CUES = {
    "strong": [
        _cue("name|surname|forename", f"{_IS}|:|="),  # "my name is", "his name's", "name:"
        _cue("my|his|her|their", "full|first|real|last", "name|names", f"{_IS}|:|=?"),
        _cue("my", "names"),
    ],
    "weak": [
        _cue("i", "'m|\u2019m|m|am"),
        _cue("name|surname"),  # "my name Priya", "ref 4301234/26 name Priya Sharma"
        _cue("call", "me"),
        _cue("ask", "for"),
        _cue("known|goes|go", "as|by"),
        _cue(f"{_IS}|am|was|m|'m|\u2019m", "called"),
        _cue("named"),
        _cue("my|his|her|their", _RELATION, "-?", "partner|boyfriend|girlfriend|husband|wife?"),
    ],
    "checked": [
        _cue("this", "is"),
        _cue("it", _IS, "me?"),
        _cue("its", "me?"),
        _cue("thanks|thank|thankyou|thanx|thx|cheers|ta", "you?", ",?"),
    ],
}
_CLAUSE_ENDS = {"speaking", "calling", "writing", "texting", "messaging", "x", "xx", "n", "&"}
_NOT_ENDINGS = ("ing", "ed", "ful", "less", "ous")
_TITLES = {"mr", "mrs", "ms", "miss", "mx", "dr"}
_GREETINGS = {"hi", "hello", "hiya", "hey", "morning", "evening", "afternoon", "yo"}
_NAME_TEXT = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")
# Sign-offs at the end: "thanks, Priya", "Love,\nAmy x", "- Jo", "thanks for your help. Nadia".
_CLOSING = re.compile(
    r"(?:\b(?:thanks|thank[ \t]+you|thankyou|thanx|thx|ty|cheers|ta|regards|wishes|signed"
    r"|sincerely|faithfully)|(?:^|\n)[ \t]*(?:love|from|best|yours))[\s,.:;!\-\u2013\u2014~]*$",
    re.I,
)
_THANKS = re.compile(r"\b(?:thanks|thank[ \t]+you|thankyou|thanx|thx|cheers|ta)\b", re.I)
_DASH = re.compile(r"(?:^|\s)[-\u2013\u2014~][ \t]*$")
_TAIL_NOISE = re.compile(r"(?:[\W_]|\bx+\b)+$", re.I)  # punctuation, emoji, kisses
_LAST_WORDS = re.compile(
    r"(?:(?P<first>[^\W\d_]+(?:['\u2019-][^\W\d_]+)*)[ \t]+)?"
    r"(?P<last>[^\W\d_]+(?:['\u2019-][^\W\d_]+)*)$"
)


def _plain(word: str) -> bool:
    """A word too common to be a name: "scared", "here", "mate"."""
    word = word.lower()
    return word in STOP_WORDS or word in NOT_NAMES or len(word) < 2


def _capital(token: Token) -> bool:
    text = token.text
    return text[0].isupper() and not text.isupper()


class PiiFinder:
    """The pipeline component: puts the personal details it finds in doc.user_data["pii"]."""

    def __init__(self, nlp: Language, reference_pattern: str) -> None:
        self.shapes = ShapeFinder(reference_pattern)
        self.ner = bool(nlp.pipe_names)  # a loaded model's components may find PERSONs
        self.matcher = PhraseMatcher(nlp.vocab, attr="LOWER")
        for strength, cues in _CUES.items():
            phrases = itertools.chain.from_iterable(cues)
            self.matcher.add(strength, [Doc(nlp.vocab, words=list(p)) for p in phrases])

    def __call__(self, doc: Doc) -> Doc:
        text = doc.user_data.get("text", doc.text)
        finds = [
            *self.shapes(text),
            *self._names(doc),
            *((e.start_char, e.end_char, "name") for e in self._people(doc)),
        ]
        taken: list[Found] = []
        for start, end, kind in sorted(finds, key=lambda f: (PRIORITY[f[2]], f[0] - f[1], f[0])):
            if all(end <= t.start or start >= t.end for t in taken):
                taken.append(Found(start, end, kind))
        doc.user_data["pii"] = sorted(taken, key=lambda f: f.start)
        return doc

    def _people(self, doc: Doc) -> list[Span]:
        return [e for e in doc.ents if e.label_ == "PERSON"] if self.ner else []

    # Names ------------------------------------------------------------------------------
    def _names(self, doc: Doc) -> Iterator[tuple[int, int, str]]:
        for match_id, _, end in self.matcher(doc):
            span = self._name_at(doc, end, doc.vocab.strings[match_id])
            if span:
                yield span
        # "names Connor", "surname: Kowalczyk" at the start
        if len(doc) > 1 and doc[0].lower_ in {"names", "surname"}:
            span = self._name_at(
                doc, 2 if doc[1].lower_ in {"is", "'s", "\u2019s"} else 1, "strong"
            )
            if span:
                yield span
        # "Priya here", "hi, Priya here"
        i = 0
        while i < len(doc) and (doc[i].lower_ in _GREETINGS or doc[i].is_punct):
            i += 1
        if i + 1 < len(doc) and doc[i + 1].lower_ == "here":
            span = self._name_at(doc, i, "weak")
            if span:
                yield span
        signoff = self._signoff(doc.text)
        if signoff:
            yield signoff

    @staticmethod
    def _signoff(text: str) -> tuple[int, int, str] | None:
        """The name a message ends with, after a closing ("thanks, Priya", "Love, Amy x")."""
        offset = max(0, len(text) - 120)  # a sign-off is short: keeps long messages fast
        body = _TAIL_NOISE.sub("", text[offset:])
        m = _LAST_WORDS.search(body)
        if not m:
            return None
        for words in (("first", "last"), ("last",)):
            if not all(m[w] and not _plain(m[w]) for w in words):
                continue
            start = m.start(words[0])
            if _CLOSING.search(body[:start]):
                return offset + start, offset + m.end(), "name"
            # "- Jo", or thanks a little earlier: then only a capitalised or known name.
            known = all(m[w][0].isupper() or m[w].lower() in FIRST_NAMES for w in words)
            near = body[max(0, start - 60) : start]
            if known and (_THANKS.search(near) or _DASH.search(near)):
                return offset + start, offset + m.end(), "name"
        return None

    def _name_at(self, doc: Doc, i: int, strength: str) -> tuple[int, int, str] | None:
        """The name that starts at token i (after a cue), if there is one."""
        while i < len(doc) and doc[i].text in {":", ",", "-", "="}:
            i += 1
        first = i
        if i < len(doc) and doc[i].lower_.rstrip(".") in _TITLES:
            i += 2 if i + 1 < len(doc) and doc[i + 1].text == "." else 1
        if i >= len(doc) or not self._namelike(doc[i], strength):
            return None
        lower_ok = strength == "strong" or doc[i].text.islower()
        end = i + 1
        words = 1
        while end < len(doc) and words < 3:
            tok = doc[end]
            if tok.text == "-" and not doc[end - 1].whitespace_ and not tok.whitespace_:
                if end + 1 < len(doc) and _NAME_TEXT.fullmatch(doc[end + 1].text):
                    end += 2
                    continue
                break
            if not _NAME_TEXT.fullmatch(tok.text) or _plain(tok.text):
                break
            if not (
                _capital(tok)
                or (lower_ok and tok.text.islower() and self._clause_ends(doc, end + 1))
            ):
                break
            end += 1
            words += 1
        if strength == "checked" and not self._clause_ends(doc, end):
            return None
        # "Clare's Law", "Sarah's Law": schemes, not people.
        if (
            end + 1 < len(doc)
            and doc[end].lower_ in {"'s", "\u2019s"}
            and doc[end + 1].lower_ == "law"
        ):
            return None
        return doc[first].idx, doc[end - 1].idx + len(doc[end - 1]), "name"

    @staticmethod
    def _namelike(token: Token, strength: str) -> bool:
        text = token.text
        if not _NAME_TEXT.fullmatch(text) or _plain(text):
            return False
        if strength == "strong" or text.lower() in FIRST_NAMES:
            return True
        # "I'm Shaking", "I'm Terrified": a capital alone does not make these names.
        return _capital(token) and not (len(text) >= 6 and text.lower().endswith(_NOT_ENDINGS))

    @staticmethod
    def _clause_ends(doc: Doc, i: int) -> bool:
        return (
            i >= len(doc)
            or doc[i].is_punct
            or doc[i].like_num
            or doc[i].lower_ in STOP_WORDS
            or doc[i].lower_ in _CLAUSE_ENDS
        )


@Language.factory("waymark_pii", default_config={"reference_pattern": DEFAULT_REFERENCE_PATTERN})
def _make_finder(nlp: Language, name: str, reference_pattern: str) -> PiiFinder:
    return PiiFinder(nlp, reference_pattern)


_LONG_RUN = re.compile(r"[^\w\s]{50,}")


class Redactor:
    """Finds personal details in a message and replaces them with placeholders."""

    def __init__(
        self, model: str | None = None, *, reference_pattern: str = DEFAULT_REFERENCE_PATTERN
    ) -> None:
        self.nlp = spacy.load(model) if model else spacy.blank("en")
        self.nlp.add_pipe("waymark_pii", config={"reference_pattern": reference_pattern})

    def find(self, text: str) -> list[Found]:
        """What is personal in `text`: sorted by position, never overlapping."""
        if not text:
            return []
        # spaCy's tokenizer takes quadratic time over a long run of punctuation or emoji
        # ("!!!!..."), so such runs are tokenized as spaces (no name is that long); the
        # rules for numbers, emails and the rest still read the text as it is.
        doc = self.nlp.make_doc(_LONG_RUN.sub(lambda m: " " * len(m[0]), text))
        doc.user_data["text"] = text
        return list(self.nlp(doc).user_data["pii"])

    def redact(self, text: str, keep: Collection[str] = ()) -> str:
        """`text` with each personal detail replaced ("[phone]"; a postcode by its district)."""
        out = []
        last = 0
        for found in self.find(text):
            if found.kind in keep:
                continue
            out.append(text[last : found.start])
            if found.kind == "postcode":
                out.append(text[found.start : found.end - 3].rstrip())  # the district
            else:
                out.append(PLACEHOLDERS[found.kind])
            last = found.end
        out.append(text[last:])
        return "".join(out)


@cache
def redactor_for(model: str | None, reference_pattern: str) -> Redactor:
    """One redactor per configuration: building one takes a few hundred milliseconds."""
    return Redactor(model, reference_pattern=reference_pattern)


def default() -> Redactor:
    """The app's redactor, with the configured spaCy model and crime reference pattern."""
    from bot.config import get_settings

    settings = get_settings()
    return redactor_for(settings.spacy_model, settings.crime_reference_pattern)


def redact(text: str, keep: Collection[str] = ()) -> str:
    return default().redact(text, keep)


def find(text: str) -> list[Found]:
    return default().find(text)
