"""Where someone is: a London borough from a borough name or a postcode district.

Borough names and their everyday variants come from the NLU's lookup
(data/nlu/lookups/boroughs.yml), so the assistant and the gateway agree. Postcode
districts come from content/services/postcodes.yml: a district that crosses borough
lines maps to its main borough (listed first). Only the district of a full postcode is
used ("E8 1AB" -> "E8"); nothing finer is needed, or kept.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path

import yaml

from bot.services.schema import BOROUGHS, ROOT, borough_names

POSTCODES_FILE = ROOT / "content" / "services" / "postcodes.yml"

# The outward code (district, maybe a sub-district like SW1A), then an optional inward code.
_POSTCODE = re.compile(r"([A-Z]{1,2}[0-9][A-Z0-9]?)(?: ?[0-9][A-Z]{2})?")
_PREFIXES = ("the london borough of ", "london borough of ", "royal borough of ", "borough of ")
_SUFFIXES = (" borough", " council")


def _plain(text: str) -> str:
    return " ".join(text.split()).strip(" .,;:!?")


def district_of(text: str) -> str | None:
    """The postcode district in `text` ("e8 1ab" -> "E8", "SW1A" -> "SW1A"); None when it
    is not shaped like a postcode or a district. Does not say whether it is in London."""
    match = _POSTCODE.fullmatch(_plain(text).upper())
    return match.group(1) if match else None


class Places:
    """Borough lookups over one table of postcode districts."""

    def __init__(self, districts: Mapping[str, Sequence[str]]) -> None:
        unknown = sorted({b for bs in districts.values() for b in bs if b not in BOROUGHS})
        if unknown:
            raise ValueError(f"not canonical borough names: {', '.join(unknown[:10])}")
        empty = sorted(d for d, bs in districts.items() if not bs)
        if empty:
            raise ValueError(f"districts with no borough: {', '.join(empty[:10])}")
        self.districts: dict[str, tuple[str, ...]] = {
            d.strip().upper(): tuple(bs) for d, bs in districts.items()
        }

    @classmethod
    def from_file(cls, path: Path) -> Places:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return cls(data.get("districts") or {})

    def boroughs_for_district(self, district: str) -> tuple[str, ...]:
        """Boroughs a district crosses, the main one first; () when not in London."""
        district = district.upper()
        if district in self.districts:
            return self.districts[district]
        # A sub-district (SW1A, EC1A, W1D) the table lists only as its district.
        if district[-1].isalpha() and district[:-1] in self.districts:
            return self.districts[district[:-1]]
        # A district (EC1) the table lists only as sub-districts: the commonest main borough.
        subs = [bs for d, bs in self.districts.items() if d[:-1] == district and d[-1].isalpha()]
        if subs:
            counts = Counter(bs[0] for bs in subs)
            main = min(counts, key=lambda b: (-counts[b], b))
            rest = sorted({b for bs in subs for b in bs} - {main})
            return (main, *rest)
        return ()

    def borough_for(self, text: str) -> str | None:
        """The canonical borough for a borough name (any case, with the NLU's synonyms) or
        a postcode district or full postcode; None if it is not a London place we know."""
        plain = _plain(text).lower()
        if not plain:
            return None
        names = borough_names()
        for candidate in _name_variants(plain):
            if candidate in names:
                return names[candidate]
        district = district_of(plain)
        if district is None:
            return None
        found = self.boroughs_for_district(district)
        return found[0] if found else None


def _name_variants(plain: str) -> list[str]:
    variants = [plain]
    for prefix in _PREFIXES:
        if plain.startswith(prefix):
            variants.append(plain.removeprefix(prefix))
    for variant in list(variants):
        variants.extend(variant.removesuffix(s) for s in _SUFFIXES if variant.endswith(s))
    return variants


@cache
def default() -> Places:
    """The repo's table (content/services/postcodes.yml), loaded once."""
    return Places.from_file(POSTCODES_FILE)


def borough_for(text: str) -> str | None:
    """A canonical borough for "Hackney", "hackney", "E8", "e8 1ab" or "EC1A"; else None."""
    return default().borough_for(text)
