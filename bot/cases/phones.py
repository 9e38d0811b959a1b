"""Phone numbers: the ones victims can be texted on, and personal ones that must not be
given out as an officer's contact route."""

from __future__ import annotations

import re

PERSONAL_NUMBER = "Give a route such as 101 or a team mailbox, not a personal number"

_PHONE_NOISE = re.compile(r"[\s\-.()]")
_E164 = re.compile(r"\+[1-9]\d{7,14}")
_UK_MOBILE_E164 = re.compile(r"\+447\d{9}")
# A UK mobile anywhere in free text: 07700 900123, +44 (0)7700-900-123, 0044 7700 900123.
_UK_MOBILE_IN_TEXT = re.compile(
    r"(?<![\d+])(?:(?:\+|00)\s*44[\s\-.()]*(?:0[\s\-.()]*)?|\(?0)7(?:[\s\-.()]*\d){9}(?!\d)"
)


def normalise_phone(text: str) -> str:
    """A number we can text, as E.164: UK numbers as people write them (07700 900123)
    or any number with its country code (+33 6 12 34 56 78, 0033...). Raises ValueError."""
    raw = text.strip()
    if raw.startswith(("+", "00")):
        raw = raw.replace("(0)", "")  # "+44 (0)7700 900123"
    compact = _PHONE_NOISE.sub("", raw)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    elif compact.startswith("0"):
        compact = "+44" + compact[1:]
    if not _E164.fullmatch(compact):
        raise ValueError(
            "Give a mobile number: a UK one (07700 900123) or one with its country code "
            "(+33 6 12 34 56 78)."
        )
    if compact.startswith("+44") and not _UK_MOBILE_E164.fullmatch(compact):
        raise ValueError("UK numbers must be mobiles (07..., 11 digits) so they can get texts.")
    return compact


def looks_personal(text: str | None) -> bool:
    """Whether a contact route contains what looks like someone's own (mobile) number."""
    return bool(text) and _UK_MOBILE_IN_TEXT.search(text or "") is not None
