"""Phone numbers in the assistant's own messages, so channels can make them tappable.

Only the shapes the content uses: UK numbers written with spaces ("0808 2000 247"),
short codes (999, 101, 111, 116 123), Shout's 85258 and Relay UK's 18001 prefix. The web
chat has the same pattern in bot/web/static/chat.js.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

PHONE = re.compile(
    r"(?<![\w+/:£.,-])"
    r"(?:18001 0\d{2,4}(?: \d{2,4}){1,3}|0\d{2,4}(?: \d{2,4}){1,3}|0\d{9,10}"
    r"|116 \d{3}|999|101|111|85258)"
    r"(?![\w/:£-])"
)


def phone_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """(offset, length, digits) of each number, offsets in UTF-16 code units as
    Telegram counts them."""
    for match in PHONE.finditer(text):
        before = text[: match.start()]
        offset = len(before.encode("utf-16-le")) // 2
        length = len(match.group().encode("utf-16-le")) // 2
        yield offset, length, match.group().replace(" ", "")
