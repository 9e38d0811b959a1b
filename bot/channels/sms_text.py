"""SMS text: keep messages in GSM-7, count segments, split long replies, render buttons.

A message whose characters are all in the GSM 03.38 7-bit alphabet is sent as GSM-7:
160 septets in one segment, 153 per segment once concatenated. One character outside it
(an emoji, a curly quote) makes the whole message UCS-2: 70 UTF-16 code units in one
segment, 67 per segment once concatenated. See Twilio's
https://www.twilio.com/docs/glossary/what-sms-character-limit
"""

from __future__ import annotations

import math
import re
import unicodedata

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Sent as ESC + character, so each costs two septets.
GSM7_EXTENSION = frozenset("^{}\\[~]|€")

GSM7_SINGLE, GSM7_MULTI = 160, 153
UCS2_SINGLE, UCS2_MULTI = 70, 67

_REPLACEMENTS: dict[str, str] = {
    # Curly single quotes, primes and the modifier-letter apostrophe.
    **dict.fromkeys("\u2018\u2019\u201a\u201b\u2032\u2035\u02bc", "'"),
    # Curly double quotes and double primes.
    **dict.fromkeys("\u201c\u201d\u201e\u201f\u2033\u2036", '"'),
    # Hyphen, non-breaking hyphen, figure/en/em dashes, horizontal bar, minus sign.
    **dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"),
    # Bullets.
    **dict.fromkeys("\u2022\u2023\u2043\u2219\u25e6", "-"),
    "\u2026": "...",
    # Tab, no-break space, U+2000-U+200A (en quad to hair space, incl. thin space),
    # narrow no-break space, medium mathematical space and ideographic space.
    **dict.fromkeys("\t\u00a0" + "".join(map(chr, range(0x2000, 0x200B))), " "),
    **dict.fromkeys("\u202f\u205f\u3000", " "),
    # Invisible: soft hyphen, zero-width space, word joiner, zero-width no-break space (BOM).
    **dict.fromkeys("\u00ad\u200b\u2060\ufeff", ""),
}
_TABLE = str.maketrans(_REPLACEMENTS)

# Where a sentence ends: after . ? ! (and any closing quotes or brackets) before whitespace,
# or just before a line break.
_SENTENCE_END = re.compile(r"[.?!][\"')\]]*(?=\s)|(?=\n)")


def to_gsm7(text: str) -> str:
    """Replace typographic characters with GSM-7 equivalents (curly quotes, dashes, ...).

    The text is NFC-normalised first, so "e" + combining acute becomes "é". Characters with
    no sensible GSM-7 equivalent (emoji, other scripts) are left alone: the message is then
    sent as UCS-2.
    """
    return unicodedata.normalize("NFC", text).translate(_TABLE)


def is_gsm7(text: str) -> bool:
    """Whether every character is in the GSM-7 basic set or its extension table."""
    return all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text)


def _septets(text: str) -> int:
    return sum(2 if char in GSM7_EXTENSION else 1 for char in text)


def _utf16_units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def segments(text: str) -> int:
    """How many SMS segments the text takes; 0 for "" (nothing is sent).

    GSM-7 counts septets (extension-table characters cost two): one segment up to 160,
    else ceil(septets / 153). Anything else is UCS-2 and counts UTF-16 code units (a
    character outside the BMP, such as most emoji, costs two): one segment up to 70, else
    ceil(units / 67).
    """
    if not text:
        return 0
    if is_gsm7(text):
        size, single, multi = _septets(text), GSM7_SINGLE, GSM7_MULTI
    else:
        size, single, multi = _utf16_units(text), UCS2_SINGLE, UCS2_MULTI
    return 1 if size <= single else math.ceil(size / multi)


def _joins_previous(char: str) -> bool:
    """Whether a hard cut before this character would break up a visible character."""
    return bool(unicodedata.combining(char)) or char in "\u200d\ufe0e\ufe0f"


def split(text: str, max_segments: int = 3) -> list[str]:
    """Split text into stripped messages of at most max_segments segments each.

    Whole sentences (ending ". ", "? ", "! " or at a line break) are packed into each
    message while they fit; a sentence too long for one message is split between words,
    and a word too long for one message is cut. Only whitespace at the cut points is
    dropped. Empty or whitespace-only text gives []. Apply to_gsm7 first if wanted; it is
    not applied here. Each part is measured on its own, so a GSM-7 part of a UCS-2 text
    gets the GSM-7 allowance.
    """
    if max_segments < 1:
        raise ValueError("max_segments must be at least 1")

    def fits(start: int, end: int) -> bool:
        return segments(text[start:end].rstrip()) <= max_segments

    parts: list[str] = []
    start, n = len(text) - len(text.lstrip()), len(text)
    while start < n:
        if fits(start, n):
            parts.append(text[start:n].rstrip())
            break
        # The longest prefix that fits. Fitting is monotonic in the prefix length: a prefix
        # of a GSM-7 text is GSM-7 and shorter, and a GSM-7 prefix of a UCS-2 text costs at
        # most two septets a character, which is within the GSM-7 allowance.
        low, high = start + 1, n  # text[start:low] fits (one character always does)
        while low < high:
            mid = (low + high + 1) // 2
            if fits(start, mid):
                low = mid
            else:
                high = mid - 1
        limit = low
        cut = _last_sentence_end(text, start, limit)
        if cut is None:
            cut = _last_space(text, start, limit)
        if cut is None:
            cut = limit
            while cut - 1 > start and (_joins_previous(text[cut]) or text[cut - 1] == "\u200d"):
                cut -= 1
        parts.append(text[start:cut].rstrip())
        start = cut
        while start < n and text[start].isspace():
            start += 1
    return parts


def _last_sentence_end(text: str, start: int, limit: int) -> int | None:
    """The last sentence end in text[start:limit] after start, if any."""
    # Search one character past the limit so the lookaheads can see the whitespace there.
    ends = [m.end() for m in _SENTENCE_END.finditer(text, start, limit + 1)]
    return max((end for end in ends if start < end <= limit), default=None)


def _last_space(text: str, start: int, limit: int) -> int | None:
    """The index of the last whitespace in text[start + 1:limit + 1], if any."""
    for index in range(min(limit, len(text) - 1), start, -1):
        if text[index].isspace():
            return index
    return None


def render_buttons(text: str, buttons: list[dict]) -> str:
    """Text followed by one "Reply N for <title>" line per button.

    With no buttons the text is returned unchanged; with no text, just the choices.
    """
    if not buttons:
        return text
    choices = [
        f"Reply {number} for {button['title'].strip()}" for number, button in enumerate(buttons, 1)
    ]
    return "\n".join([text, *choices] if text else choices)
