"""Which services fit a person, best first.

Filtering (a service that fails any of these is never shown):
- crime type: the service serves `any` crime or one of the person's crime types (when
  none was said, every service);
- coverage: national and London-wide services, plus the person's borough's own; someone
  outside London gets national services only; an unknown borough gets national and
  London-wide;
- age: a service whose age range does not overlap the person's age group (under_16 is 0
  to 15, 16_17 is 16 to 17, adult is 18 and over; `any` or not asked excludes nothing);
- gender: a service for women only or men only, when the person's gender is known and
  different;
- `emergency` services are never ranked (999 comes from the safety route).

Ranking: the sum of these weights, then the name (A to Z) and the id, so that the same
question always gets the same answer.

    +100  the service lists one of the person's crime types (specific beats general);
          when no crime type was said, general (`any`) services get it instead
    +150  the service is meant for the person: not specialist only for groups the person
          is not known to be in, not only for women or only for men while the person's
          gender is not known, and not only a side route (reporting, a crisis line, court
          support, forced marriage) that the person has not asked about
     +10  for each further crime type of the person's that it also lists
     +40  specialist_for matches the person: men (a man), women (a woman), lgbt,
          children or young_people (under 16, 16 or 17). A service's types name groups
          too: male_victims is for men, lgbt for lgbt, children_young_people for
          children and young people, black_minoritised_women for that group
     -30  the person's age group is only partly inside the service's age range
     +30  at night (20:00 to 07:59 London time) or when urgent: it can be used 24/7
          (any contact with hours `always`, a website included)
     +20  a phone, text or chat route is open now (hours.service_open)
     +25  the person's language (not English) is listed; +20 instead if it has interpreters
    -100  it needs a police report: many people have not reported and Waymark does not
          ask, so these come after the services anyone can use
      +8  the person's own borough's service; +4 London-wide; national 0

So a service for what happened and for this person comes first (250), then general
services for anyone (150), then services meant for someone else (100 or less: an LGBT+
helpline for a person who has not said they are LGBT+, a men's line when gender is not
known): still listed, lower. The smaller weights order services within those bands and
cross one only in unusual combinations (a general service for the person's group that
is also open 24/7, say). Coverage is the smallest weight, so it decides between services
that are otherwise equal.

Services reached the same way (the same first contact, like the National Stalking
Helpline and its London service on the same number) are shown once: the better ranked.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from bot.services import hours
from bot.services.schema import Contact, Service

CRIME_SPECIFIC: Final = 100.0
FOR_THE_PERSON: Final = 150.0
EXTRA_CRIME: Final = 10.0
SPECIALIST_MATCH: Final = 40.0
AGE_PARTLY: Final = -30.0
ALWAYS_AT_NIGHT: Final = 30.0
OPEN_NOW: Final = 20.0
LANGUAGE_LISTED: Final = 25.0
INTERPRETERS: Final = 20.0
POLICE_REPORT: Final = -100.0
LOCAL: Final = {"boroughs": 8.0, "london": 4.0, "national": 0.0}
TYPE_GROUPS: Final = {
    "male_victims": ("men",),
    "lgbt": ("lgbt",),
    "children_young_people": ("children", "young_people"),
    "black_minoritised_women": ("black_minoritised_women",),
}
# A service whose every type is one of these is a side route, not support for the crime.
SIDE_TYPES: Final = frozenset(
    {"reporting", "mental_health_crisis", "court_witness", "forced_marriage_honour"}
)

AGE_GROUPS: Final = {"under_16": (0, 15), "16_17": (16, 17), "adult": (18, 120)}
_EXCLUDED_GENDER: Final = {"woman": "men", "man": "women"}


@dataclass(frozen=True)
class Query:
    crime_types: tuple[str, ...] = ()  # empty = not said
    borough: str | None = None  # canonical
    outside_london: bool = False  # they said a place that is not in London
    age_group: str | None = None  # under_16 | 16_17 | adult | any (asked, no answer) | None
    gender: str | None = None  # woman | man | None
    lgbt: bool = False
    language: str | None = None  # "Polish"
    urgent: bool = False
    at: datetime | None = None  # aware; None = now


@dataclass(frozen=True)
class Match:
    service: Service
    score: float
    open_now: bool | None
    reason: str


def person_groups(query: Query) -> frozenset[str]:
    """The specialist_for groups the person is known to be in."""
    groups = set()
    if query.gender == "man":
        groups.add("men")
    elif query.gender == "woman":
        groups.add("women")
    if query.lgbt:
        groups.add("lgbt")
    if query.age_group in ("under_16", "16_17"):
        groups.update(("children", "young_people"))
    return frozenset(groups)


def reason(service: Service, query: Query, at: datetime) -> str:
    """One line from the data: "Free, 24/7, for anyone affected by domestic abuse."

    "Free" only when free is true; "24/7", "open now" or "closed now" for the contact
    shown (only when its hours are known); "London only" or "in <borough>" when the
    service is not national and "for ..." does not say so already."""
    parts: list[str] = []
    if service.free is True:
        parts.append("Free")
    contact, state = hours.best_contact(service, at)
    if contact.hours == "always":
        parts.append("24/7")
    elif state is not None:
        parts.append("open now" if state else "closed now")
    area, boroughs = service.coverage.area, service.coverage.boroughs
    # Unless "for ..." already says where ("anyone in London affected by stalking").
    if area == "london" and "London" not in service.for_whom:
        parts.append("London only")
    elif area == "boroughs":
        borough = query.borough if query.borough in boroughs else boroughs[0]
        if borough not in service.for_whom:
            parts.append(f"in {borough}")
    parts.append(f"for {service.for_whom}")
    text = ", ".join(parts)
    return f"{text[0].upper()}{text[1:]}."


class _Entry:
    """What ranking needs of one service, worked out once when the directory is built."""

    __slots__ = (
        "age_partly",
        "always",
        "base",
        "crimes",
        "dup",
        "general",
        "interpreters",
        "languages",
        "live",
        "restricted",
        "service",
        "side",
        "sort_key",
        "specialist",
    )

    def __init__(self, service: Service, live: int, dup: int) -> None:
        self.service = service
        self.general = "any" in service.crime_types
        self.crimes = frozenset() if self.general else frozenset(service.crime_types)
        # The weights that never depend on the person.
        self.base = LOCAL[service.coverage.area] + (
            POLICE_REPORT if service.police_report_needed else 0.0
        )
        self.specialist = frozenset(service.eligibility.specialist_for).union(
            *(TYPE_GROUPS.get(t, ()) for t in service.types)
        )
        self.restricted = service.eligibility.genders != "any"
        self.side = set(service.types) <= SIDE_TYPES
        self.languages = frozenset(name.lower() for name in service.languages)
        self.interpreters = service.interpreters
        self.always = any(c.hours == "always" for c in service.contacts)
        self.live = live  # index of its phone/text/chat hours in Directory._live
        self.dup = dup  # index of the group sharing its first contact, or -1
        self.sort_key = (service.name.casefold(), service.id)
        low = service.eligibility.age_min
        high = service.eligibility.age_max
        self.age_partly = frozenset(
            group
            for group, (start, end) in AGE_GROUPS.items()
            if (low is not None and start < low) or (high is not None and end > high)
        )


def _overlaps(service: Service, group: str) -> bool:
    start, end = AGE_GROUPS[group]
    low, high = service.eligibility.age_min, service.eligibility.age_max
    return (low is None or end >= low) and (high is None or start <= high)


def _route(service: Service) -> tuple[str, str]:
    first = service.contacts[0]
    return first.kind, first.value.replace(" ", "").lower()


class Directory:
    """The services, indexed once so that each match touches only the candidates.

    Sets of services are bitmasks (Python ints, bit i = service i): the filters are a
    few ANDs and ORs, and the total is a popcount."""

    def __init__(self, services: Iterable[Service]) -> None:
        everything = list(services)
        self._by_id = {s.id: s for s in reversed(everything)}  # the first of an id wins
        ranked = [s for s in everything if "emergency" not in s.types]
        routes: dict[tuple[str, str], list[int]] = {}
        for i, service in enumerate(ranked):
            routes.setdefault(_route(service), []).append(i)
        shared = [members for members in routes.values() if len(members) > 1]
        self._dups = [sum(1 << i for i in members) for members in shared]
        dup_of = {i: n for n, members in enumerate(shared) for i in members}

        # Services with the same phone/text/chat hours share one "open now?" per query.
        live_index: dict[tuple[tuple[object, str | None], ...], int] = {}
        self._live: list[tuple[Contact, ...]] = []
        self._entries: list[_Entry] = []
        for i, service in enumerate(ranked):
            live = tuple(c for c in service.contacts if c.kind in hours.LIVE_KINDS)
            key = tuple((c.hours, c.bank_holidays) for c in live)
            if key not in live_index:
                live_index[key] = len(self._live)
                self._live.append(live)
            self._entries.append(_Entry(service, live_index[key], dup_of.get(i, -1)))

        self._all = (1 << len(ranked)) - 1
        self._general = 0
        self._by_crime: dict[str, int] = {}
        self._national = self._london = 0
        self._by_borough: dict[str, int] = {}
        self._age_excluded = dict.fromkeys(AGE_GROUPS, 0)
        self._gender_excluded = dict.fromkeys(_EXCLUDED_GENDER, 0)
        for i, service in enumerate(ranked):
            bit = 1 << i
            if "any" in service.crime_types:
                self._general |= bit
            else:
                for crime in service.crime_types:
                    self._by_crime[crime] = self._by_crime.get(crime, 0) | bit
            area = service.coverage.area
            if area == "national":
                self._national |= bit
            elif area == "london":
                self._london |= bit
            for borough in service.coverage.boroughs:
                self._by_borough[borough] = self._by_borough.get(borough, 0) | bit
            for group in AGE_GROUPS:
                if not _overlaps(service, group):
                    self._age_excluded[group] |= bit
            for gender, only in _EXCLUDED_GENDER.items():
                if service.eligibility.genders == only:
                    self._gender_excluded[gender] |= bit

    def __len__(self) -> int:
        """How many services can be ranked (emergency ones are not)."""
        return len(self._entries)

    def get(self, service_id: str) -> Service | None:
        return self._by_id.get(service_id)

    def _candidates(self, query: Query) -> int:
        if query.crime_types:
            mask = self._general
            for crime in query.crime_types:
                mask |= self._by_crime.get(crime, 0)
        else:
            mask = self._all
        if query.outside_london:
            mask &= self._national
        else:
            mask &= (
                self._national
                | self._london
                | (self._by_borough.get(query.borough, 0) if query.borough else 0)
            )
        if query.age_group in self._age_excluded:
            mask &= ~self._age_excluded[query.age_group]
        if query.gender in self._gender_excluded:
            mask &= ~self._gender_excluded[query.gender]
        return mask

    def _repeats(self, mask: int) -> int:
        """Candidates hidden because a better one shares their first contact."""
        return sum(max(0, (mask & group).bit_count() - 1) for group in self._dups)

    def total(self, query: Query) -> int:
        """How many services fit (all pages)."""
        mask = self._candidates(query)
        return mask.bit_count() - self._repeats(mask)

    def match(self, query: Query, *, limit: int = 3, offset: int = 0) -> list[Match]:
        """The services that fit, best first: `limit` of them after the first `offset`."""
        at = query.at or datetime.now(UTC)
        if at.tzinfo is None:
            raise ValueError("Query.at must include a time zone.")
        mask = self._candidates(query)
        if not mask or limit <= 0:
            return []
        repeats = self._repeats(mask) if self._dups else 0
        asked = frozenset(query.crime_types)
        groups = person_groups(query)
        night = query.urgent or hours.is_night(at)
        gender_unknown = query.gender is None
        age_group = query.age_group
        language = (query.language or "").strip().lower()
        if language == "english":
            language = ""
        live_open: dict[int, bool | None] = {}
        entries = self._entries
        scored: list[tuple[float, tuple[str, str], int, bool | None]] = []
        while mask:
            low = mask & -mask
            i = low.bit_length() - 1
            mask ^= low
            entry = entries[i]
            score = entry.base
            if asked:
                if entry.crimes:
                    score += CRIME_SPECIFIC + EXTRA_CRIME * (len(entry.crimes & asked) - 1)
            elif entry.general:
                score += CRIME_SPECIFIC
            matched = bool(entry.specialist & groups)
            if matched:
                score += SPECIALIST_MATCH
            if not (
                entry.side
                or (entry.specialist and not matched)
                or (entry.restricted and gender_unknown)
            ):
                score += FOR_THE_PERSON
            if age_group in entry.age_partly:
                score += AGE_PARTLY
            if night and entry.always:
                score += ALWAYS_AT_NIGHT
            if entry.live in live_open:
                state = live_open[entry.live]
            else:
                state = hours.combine([hours.open_now(c, at) for c in self._live[entry.live]])
                live_open[entry.live] = state
            if state:
                score += OPEN_NOW
            if language:
                if language in entry.languages:
                    score += LANGUAGE_LISTED
                elif entry.interpreters:
                    score += INTERPRETERS
            scored.append((-score, entry.sort_key, i, state))
        best = heapq.nsmallest(offset + limit + repeats, scored)
        if repeats:
            shown: set[int] = set()
            kept = []
            for row in best:
                dup = entries[row[2]].dup
                if dup < 0 or dup not in shown:
                    shown.add(dup)
                    kept.append(row)
            best = kept
        return [
            Match(entries[i].service, -neg, state, reason(entries[i].service, query, at))
            for neg, _, i, state in best[offset : offset + limit]
        ]

    def question(self, query: Query) -> str | None:
        """Returns "age_group" when age was not asked and a top-3 service's eligibility depends on
        age, so the answer would change the list; otherwise None."""
        if query.age_group is not None:
            return None
        for found in self.match(query, limit=3):
            eligibility = found.service.eligibility
            if eligibility.age_min is not None or eligibility.age_max is not None:
                return "age_group"
        return None
