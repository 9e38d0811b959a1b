"""London postcode districts ("E8", "SE13", "CR0", "EC1A", "SW1A"): one pattern for the
NLU extractor (components/postcode.py) and the actions.

Only the district, the part before the space, is ever kept. A full postcode ("E8 1AB")
points at a few streets; the district is enough to find services nearby. Pure `re`, so
the Rasa environment (Python 3.10) imports it too.

The areas are the Greater London ones: E, EC, N, NW, SE, SW, W, WC and the outer areas
(BR, CR, DA, EN, HA, IG, KT, RM, SM, TW, UB), some of which run past the boundary; the
gateway's table (content/services/postcodes.yml) says which districts are in London.
"""

from __future__ import annotations

import re

PATTERN = re.compile(
    r"(?<![A-Za-z0-9])"
    r"(?P<district>"
    r"(?:EC|WC)[1-4][A-Z]?"  # EC1A, WC2N
    r"|(?:NW|SE|SW|E|N|W)(?:1[A-Z](?![0-9])|[0-9]{1,2})"  # E8, SE13, SW1A, W1W, N1C
    r"|(?:BR|CR|DA|EN|HA|IG|KT|RM|SM|TW|UB)[0-9]{1,2}"  # CR0, BR1, HA9
    r")"
    r"(?P<inward>\s*[0-9][A-Z]{2})?"  # the rest of a full postcode, never kept
    r"(?![A-Za-z0-9])",
    re.IGNORECASE,
)
# Text-speak that looks like a district: "w8" (wait), when written alone in lower case.
SLANG = frozenset({"w8"})


def districts(text: str) -> list[tuple[int, int, str]]:
    """Each district in `text`: (start, end, district in capitals). A full postcode's
    span covers the whole postcode, but only its district is returned."""
    found = []
    for match in PATTERN.finditer(text or ""):
        district = match.group("district")
        if district in SLANG and not match.group("inward"):
            continue
        found.append((match.start(), match.end(), district.upper()))
    return found


def district_of(text: str) -> str | None:
    """The first district in `text` ("e8 1ab" -> "E8"), or None."""
    found = districts(text)
    return found[0][2] if found else None
