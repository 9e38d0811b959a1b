"""Personal details that have a shape: phone, card and account numbers, emails, National
Insurance numbers, postcodes, dates of birth, street addresses and crime references.

Regexes and checks over the plain text; bot/privacy/redact.py runs them inside its spaCy
component, beside the rules for names. The numbers and emails Waymark itself gives out
(content/*.yml: 999, 101, helplines) are public, so never found.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from spacy.lang.en.stop_words import STOP_WORDS

from bot.privacy.names import NOT_STREET_WORDS

CONTENT = Path(__file__).resolve().parents[2] / "content"
Find = tuple[int, int, str]  # start, end, kind

# Numbers ---------------------------------------------------------------------------------
# A run of digit groups joined by spaces, dashes, dots or brackets, as people type
# phone, card and account numbers. A run is then cut into numbers (two numbers may sit
# side by side) and each is checked: a phone number by its UK or international length,
# a card by the Luhn check, an account or sort code only near a cue.
_RUN = re.compile(
    r"(?<![\w£$€])(?:\+[ \t]?|[oO](?=7\d{3}))?\(?\d+"
    r"(?:(?:[ \t]*[-.][ \t]*|[ \t]{1,2}|[ \t]*\([ \t]*|[ \t]*\)[ \t]*)\d+)*"
)
_DIGITS = re.compile(r"\d+")
_URL = re.compile(r"\b(?:https?://|www\.)\S+", re.I)
_CARD_CUE = re.compile(r"card|visa|master ?card|amex|debit|credit")
_ACCOUNT_CUE = re.compile(r"\b(?:acc(?:ount|t|no)?s?|a/c|sort|bank(?:ing)?|iban|payee)\b")
_SORT_CUE = re.compile(r"\bsort")
_PHONE_CUE = re.compile(
    r"\b(?:call|ring|text|txt|phone|mob(?:ile)?|tel|number|no|num|contact|whatsapp|landline|reach)\b"
)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _national(digits: str, plus: bool) -> str:
    """One spelling per number, so "+44 7700 900123" and "07700900123" compare equal."""
    if digits.startswith("00"):
        digits, plus = digits[2:], True
    if not plus and digits.startswith("44") and len(digits) == 12:
        plus = True
    if plus and digits.startswith("44"):
        rest = digits[2:]
        return rest if rest.startswith("0") else "0" + rest
    return "+" + digits if plus else digits


def _is_phone(digits: str, plus: bool) -> bool:
    """Shaped like a UK number (0 and 9-10 digits) or an international one (E.164)."""
    national = _national(digits, plus)
    if national.startswith("+"):
        return 8 <= len(national) - 1 <= 15 and national[1] != "0"
    if national.startswith("0"):
        return len(national) in (10, 11) and national[1] in "1235789"
    return False


def _ends(parts: list[str], i: int) -> list[int]:
    """Where a number that starts at group i may end, longest first: no longer than the
    longest card (19 digits), in at most 8 groups. Keeps a long run of digits linear."""
    ends, digits = [], 0
    for j in range(i, min(len(parts), i + 8)):
        digits += len(parts[j])
        if digits > 19 and j > i:
            break
        ends.append(j)
    return ends[::-1]


def _is_date(parts: list[str]) -> bool:
    """12.03.2024, 12-03-26 or 2024-03-12: a date, not a sort code or an account."""
    if len(parts) != 3:
        return False
    if len(parts[0]) == 4:
        parts = parts[::-1]
    day, month, year = parts
    return (
        len(day) <= 2
        and len(month) <= 2
        and len(year) in (2, 4)
        and 1 <= int(day) <= 31
        and 1 <= int(month) <= 12
    )


@cache
def _public() -> tuple[frozenset[str], frozenset[str]]:
    """The phone numbers and emails that Waymark's own content gives out."""
    texts = [p.read_text(encoding="utf-8") for p in sorted(CONTENT.glob("*.yml"))]
    texts.append((CONTENT / "services" / "directory.yml").read_text(encoding="utf-8"))
    phones: set[str] = set()
    emails: set[str] = set()
    for text in texts:
        for run in _RUN.finditer(text):
            parts = _DIGITS.findall(run.group())
            plus = run.group().lstrip("(").startswith("+")
            for i in range(len(parts)):
                for j in _ends(parts, i):
                    digits = "".join(parts[i : j + 1])
                    if _is_phone(digits, plus and i == 0):
                        phones.add(_national(digits, plus and i == 0))
        emails.update(m.group().lower() for m in _EMAIL.finditer(text))
    return frozenset(phones), frozenset(emails)


# Emails, NI numbers, postcodes, dates of birth, addresses ------------------------------
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+[ \t]?@[ \t]?[\w-]+(?:\.[\w-]+)+")
_PROVIDERS = (
    r"(?:gmail|googlemail|hotmail|outlook|live|yahoo|ymail|icloud|aol|btinternet|sky"
    r"|virginmedia|talktalk|proton(?:mail)?|msn|mail|example)"
)
_PROVIDER = re.compile(_PROVIDERS, re.I)
_EMAIL_SPELLED = re.compile(
    r"(?<![\w.+-])[\w.+-]+(?:[ \t]+dot[ \t]+[\w+-]+)*[ \t]*(?:\(at\)|\[at\]|\bat\b)[ \t]*"
    rf"{_PROVIDERS}(?:[ \t]*(?:\.|\(dot\)|\[dot\]|\bdot\b)[ \t]*[a-z]{{2,6}}\b){{1,2}}",
    re.I,
)
# National Insurance: two letters, six digits, a letter A-D. Without the letter, only
# when the message talks about NI. Common two-letter words are not prefixes.
_NI_BODY = (
    r"\b(?!(?:is|on|at|in|to|of|no|or|so|it|if|by|as)\b)[a-z]{2}[ .-]?\d{2}[ .-]?\d{2}[ .-]?\d{2}"
)
_NI = re.compile(_NI_BODY + r"[ .-]?[a-d]\b", re.I)
_NI_BARE = re.compile(_NI_BODY + r"\b", re.I)
_NI_CUE = re.compile(r"\b(?:ni|nino|n\.i\.?|national insurance)\b", re.I)
# A full postcode; the inward code's letters never include C, I, K, M, O or V (so "b4 9pm"
# is not one).
_POSTCODE = re.compile(r"\b([a-z]{1,2}\d[a-z\d]?)[ \t]{0,2}\d[abd-hjlnp-uw-z]{2}\b", re.I)
_IBAN = re.compile(r"\b[a-z]{2}\d{2}(?:[ \t]?[a-z0-9]{4}){3,7}(?:[ \t]?[a-z0-9]{1,3})?\b", re.I)

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?"
    r"|sep(?:t(?:ember)?)?|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_DATE = (
    r"(?:\d{1,2}[ \t]*[/.\-][ \t]*\d{1,2}[ \t]*[/.\-][ \t]*\d{2,4}"
    r"|\d{4}-\d{1,2}-\d{1,2}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?(?:[ \t]+of)?[ \t]+{_MONTH}(?:,?[ \t]+\d{{2,4}})?"
    rf"|{_MONTH}[ \t]+(?:the[ \t]+)?\d{{1,2}}(?:st|nd|rd|th)?(?:,?[ \t]+\d{{2,4}})?"
    rf"|{_MONTH}[ \t]+\d{{4}}"
    r"|\d{1,2}[ \t]+\d{1,2}[ \t]+\d{4}|\d{1,2}[/.]\d{1,2})(?!\d)"
)
_DOB_CUE = (
    r"(?:\bborn|\bd\.?o\.?b\b\.?|\bdate[ \t]+of[ \t]+birth|\bbirth[ \t]*date|\bbirthday|\bb'?-?day)"
)
_DOB_CUE_RE = re.compile(_DOB_CUE, re.I)
_DOB = re.compile(
    rf"{_DOB_CUE}(?:[ \t:=,\-\u2013]|'s|\u2019s|\bis\b|\bwas\b|\bon\b|\bthe\b|\bin\b)*(?P<date>{_DATE})",
    re.I,
)
_DOB_AFTER = re.compile(
    rf"(?P<date>{_DATE})[ \t,]*(?:is|=|-)?[ \t]*(?:my|his|her|their)[ \t]+"
    r"(?:dob|d\.o\.b|date of birth|birthday|bday)",
    re.I,
)

# Addresses: a house number (maybe a flat first), one to four words, a street word. Or a
# flat and a named building. Or a street after "I live on".
_UNIT = r"(?:flat|flt|apartment|apt|unit|room|rm)\.?[ \t]*(?:no\.?[ \t]*)?(?:\d{1,4}[a-z]?|[a-z]\b)"
_NUM = r"\d{1,4}[a-z]?(?:[ \t]?-[ \t]?\d{1,4}[a-z]?)?"
_WORDS = r"(?P<words>(?:[a-z][a-z'\u2019-]*[ \t]+){0,3}?[a-z][a-z'\u2019-]*)"
_STREET = (
    r"(?:road|rd|street|st|avenue|ave|lanes?|ln|close|cl|drive|dr|way|gardens|gdns|grove|place"
    r"|pl|crescent|cres|court|ct|terrace|tce|square|sq|hill|park|rise|mews|walk|row|parade"
    r"|green|view|vale|wharf|yard|estate|broadway|boulevard|embankment|quay|circus|gate)\b"
)
_STREET += rf"(?:[ \t]+{_STREET})?"  # "Primrose Hill Road", "Park Lane"
_BUILDING = r"(?:house|court|tower|towers|lodge|mansions|buildings|heights|point|block|apartments|hall|halls)\b"
_ADDRESSES = (
    re.compile(
        rf"\b(?:{_UNIT}[ \t]*,?[ \t]*)?(?:no\.?[ \t]*)?{_NUM},?[ \t]+{_WORDS}[ \t]+{_STREET}",
        re.I,
    ),
    re.compile(rf"\b(?:{_UNIT}|{_NUM}),?[ \t]+{_WORDS}[ \t]+{_BUILDING}", re.I),
    re.compile(
        rf"\b{_NUM},?[ \t]+the[ \t]+(?:avenue|crescent|grove|green|drive|parade|broadway|close"
        r"|square|mews|terrace|circus|paddock|ridgeway|causeway|pavement)\b",
        re.I,
    ),
)
_LIVES_ON = re.compile(  # no number needed: "i live on Fernhill Crescent"
    rf"\b(?:live|living|lives|lived|staying|stay|moved|address)[ \t]+(?:is[ \t]+)?"
    rf"(?:at|on|in|to)?[ \t]*(?P<addr>{_WORDS}[ \t]+{_STREET})",
    re.I,
)
_NOT_STREET_WORDS = STOP_WORDS | NOT_STREET_WORDS


class ShapeFinder:
    """Finds the shaped details in a text; public numbers and emails are left out."""

    def __init__(self, reference_pattern: str) -> None:
        self.reference = re.compile(reference_pattern)
        self.public_phones, self.public_emails = _public()

    def __call__(self, text: str) -> list[Find]:
        finds = [*self._numbers(text), *self._shaped(text)]
        # Digits inside a link are part of the page's address, not anyone's number.
        links = [m.span() for m in _URL.finditer(text)]
        return [f for f in finds if f[2] == "email" or not any(a <= f[0] < b for a, b in links)]

    def _numbers(self, text: str) -> Iterator[Find]:
        for run in _RUN.finditer(text):
            groups = [
                (run.start() + m.start(), run.start() + m.end())
                for m in _DIGITS.finditer(run.group())
            ]
            parts = [text[a:b] for a, b in groups]
            plus = run.group().lstrip("(").startswith("+")
            if run.group()[0] in "oO":  # "o7700 900123": a letter O typed for the zero
                parts[0] = "0" + parts[0]
            # Public numbers first, so "18001 0808 168 9111" is not read as one long number.
            free = [True] * len(parts)
            for i in range(len(parts)):
                for j in _ends(parts, i):
                    if _national("".join(parts[i : j + 1]), plus and i == 0) in self.public_phones:
                        free[i : j + 1] = [False] * (j + 1 - i)
            i = 0
            while i < len(parts):
                # The longest number that starts here; otherwise try from the next group.
                for j in _ends(parts, i):
                    if not all(free[i : j + 1]):
                        continue
                    start = run.start() if i == 0 else groups[i][0]
                    kind = self._number_kind(
                        text, start, groups[j][1], parts[i : j + 1], plus and i == 0
                    )
                    if kind:
                        yield start, groups[j][1], kind
                        i = j
                        break
                i += 1

    @staticmethod
    def _number_kind(text: str, start: int, end: int, parts: list[str], plus: bool) -> str | None:
        digits = "".join(parts)
        if _is_phone(digits, plus):
            return "phone"
        if plus or not 6 <= len(digits) <= 19:
            return None
        near = f"{text[max(0, start - 40) : start]} {text[end : end + 30]}".lower()
        sort_code_first = len(parts) > 3 and all(len(p) == 2 for p in parts[:3])
        if (
            13 <= len(digits) <= 19
            and not sort_code_first
            and (_luhn(digits) or _CARD_CUE.search(near))
        ):
            return "card"
        if _is_date(parts) and not _SORT_CUE.search(near):
            return None
        if 6 <= len(digits) <= 10 and _ACCOUNT_CUE.search(near):
            return "account"
        if 9 <= len(digits) <= 13 and _PHONE_CUE.search(near):
            return "phone"
        return None

    # Emails, NI numbers, postcodes, dates of birth, addresses, references ---------------------
    def _shaped(self, text: str) -> Iterator[Find]:
        # Cheap checks first: most messages have no "@", no provider name, no digits.
        emails = [*_EMAIL.finditer(text)] if "@" in text else []
        if _PROVIDER.search(text):
            emails += _EMAIL_SPELLED.finditer(text)
        for m in emails:
            if m.group().lower() not in self.public_emails:
                yield m.start(), m.end(), "email"
        if not any(c.isdigit() for c in text):
            yield from self._addresses(text, (_LIVES_ON,))
            return
        ni_patterns = (_NI, _NI_BARE) if _NI_CUE.search(text) else (_NI,)
        for pattern in ni_patterns:
            yield from ((m.start(), m.end(), "ni") for m in pattern.finditer(text))
        yield from ((m.start(), m.end(), "postcode") for m in _POSTCODE.finditer(text))
        for m in _IBAN.finditer(text):
            if sum(c.isdigit() for c in m.group()) >= 10:
                yield m.start(), m.end(), "account"
        if _DOB_CUE_RE.search(text):
            for m in (*_DOB.finditer(text), *_DOB_AFTER.finditer(text)):
                yield m.start("date"), m.end("date"), "dob"
        yield from self._addresses(text, (*_ADDRESSES, _LIVES_ON))
        yield from ((m.start(), m.end(), "reference") for m in self.reference.finditer(text))

    @staticmethod
    def _addresses(text: str, patterns: tuple[re.Pattern[str], ...]) -> Iterator[Find]:
        for pattern in patterns:
            for m in pattern.finditer(text):
                words = m.groupdict().get("words") or ""
                if not any(w.lower() in _NOT_STREET_WORDS for w in words.split()):
                    start = m.start("addr") if "addr" in pattern.groupindex else m.start()
                    yield start, m.end(), "address"
