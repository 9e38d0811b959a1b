"""Synthetic case data for bench/cases.py, as rows for PostgreSQL's COPY (text format).

Each case follows a plausible journey to its stage (reported, investigated, arrested,
charged, heard in court...), so its stage, officer, next key date and closing date agree
with its events, and every event's details are what `validate_details` would store. The
event total is exact: a first pass picks each case's stage, then spreads the surplus
(officer changes, interviews, remands, closings) or trims the oldest events.
The victim hears about most events; each time is a `victim_updates` row, as
`add_event` and the notification worker write them, so that table has a realistic
history too. Rows are generated a chunk at a time, so memory stays small.
"""

from __future__ import annotations

import itertools
import json
import random
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bot.cases.vocabulary import EVENT_TYPES, STAGES, validate_details
from bot.privacy import crypto

AGENCY = "met"
SECRET = "bluebell"  # every victim's memorable word (one precomputed hash for all)
SPAN = 730 * 86_400  # cases were created over the last 2 years (seconds)
NULL = "\\N"

# Roughly how cases are spread: most never get past investigation or end in no
# further action; a minority reach court.
STAGE_WEIGHTS = {
    "report": 8,
    "investigation": 24,
    "arrest": 6,
    "bail": 5,
    "released_under_investigation": 6,
    "charge": 4,
    "no_further_action": 20,
    "out_of_court_disposal": 5,
    "first_hearing": 4,
    "plea": 3,
    "trial": 4,
    "verdict": 2,
    "sentencing": 5,
    "appeal": 1,
    "parole": 1,
}
assert set(STAGE_WEIGHTS) == set(STAGES)
STAGE_NAMES = tuple(STAGE_WEIGHTS)
# Stages a case can be closed at (it then gets a final case_closed event).
ENDED = frozenset({"no_further_action", "out_of_court_disposal", "sentencing", "verdict"})

CRIME_WEIGHTS = {
    "theft": 22,
    "assault": 18,
    "fraud": 10,
    "domestic_abuse": 10,
    "criminal_damage": 9,
    "burglary": 8,
    "harassment": 5,
    "sexual_violence": 4,
    "stalking": 3,
    "robbery": 3,
    "hate_crime": 3,
    "cyber_crime": 3,
    "other": 2,
    "homicide": 0.1,
}
# Victims of these are entitled to enhanced rights under the Victims' Code.
ENHANCED = frozenset({"domestic_abuse", "sexual_violence", "hate_crime", "stalking", "homicide"})
OFFENCES = {
    "theft": ["Theft"],
    "assault": ["Assault occasioning actual bodily harm", "Common assault"],
    "fraud": ["Fraud by false representation"],
    "domestic_abuse": ["Controlling or coercive behaviour", "Common assault"],
    "criminal_damage": ["Criminal damage"],
    "burglary": ["Burglary of a home"],
    "harassment": ["Harassment"],
    "sexual_violence": ["Sexual assault"],
    "stalking": ["Stalking involving fear of violence"],
    "robbery": ["Robbery"],
    "hate_crime": ["Racially aggravated harassment"],
    "cyber_crime": ["Unauthorised access to computer material"],
    "other": ["Possession of an offensive weapon"],
    "homicide": ["Murder"],
}
MAGISTRATES = (
    "Highbury Corner Magistrates' Court",
    "Westminster Magistrates' Court",
    "Croydon Magistrates' Court",
    "Bromley Magistrates' Court",
    "Thames Magistrates' Court",
)
CROWN = (
    "Snaresbrook Crown Court",
    "Southwark Crown Court",
    "Wood Green Crown Court",
    "Inner London Crown Court",
    "Isleworth Crown Court",
)
OFFICERS = (
    "DC Priya Shah",
    "PC Tom Reid",
    "DS Aisha Bello",
    "DC Mark Evans",
    "PC Sarah O'Neill",
    "DC James Okafor",
    "DS Helen Wright",
    "PC Daniel Kowalski",
)
TEAMS = (
    "The Safeguarding Team, through 101",
    "The Burglary Team, through 101",
    "The Criminal Investigation Department, through 101",
)
WCU = ("The Witness Care Unit, through 101", "Witness Care: wcu.north@met.police.example")
BAIL_CONDITIONS = (
    "Not to contact you directly or indirectly",
    "Not to go to your street",
    "To live and sleep at his home address",
    "A curfew from 9pm to 6am",
    "Not to enter the London Borough of Hackney",
    "To report to Stoke Newington police station every Monday",
)
SENTENCES = (
    "2 years in prison",
    "18 months in prison, suspended for 2 years",
    "A community order with 120 hours of unpaid work",
    "A fine of £300 and compensation of £150",
    "A restraining order for 5 years",
)
# How victims heard: Waymark's own messages, the agency, or their own look-up.
ROUTES = ("proactive",) * 6 + ("agency",) * 3 + ("lookup",)
DISPOSALS = ("caution", "conditional_caution", "community_resolution", "penalty_notice")

_BASE = ("reported", "investigation_started")
_ARREST = (*_BASE, "suspect_arrested", "suspect_interviewed")
_CHARGED = (*_ARREST, "charged")
_HEARING = (*_CHARGED, "first_hearing_scheduled")
_PLEA = (*_HEARING, "plea_entered")
_TRIAL = (*_PLEA, "trial_scheduled")
_VERDICT = (*_TRIAL, "verdict")
_SENTENCED = (*_VERDICT, "sentenced")
JOURNEYS: dict[str, tuple[str, ...]] = {
    "report": ("reported",),
    "investigation": _BASE,
    "arrest": _ARREST,
    "bail": (*_ARREST, "bailed_with_conditions"),
    "released_under_investigation": (*_ARREST, "released_under_investigation"),
    "charge": _CHARGED,
    "no_further_action": (*_ARREST, "no_further_action"),
    "out_of_court_disposal": (*_ARREST, "out_of_court_disposal"),
    "first_hearing": _HEARING,
    "plea": _PLEA,
    "trial": _TRIAL,
    "verdict": _VERDICT,
    "sentencing": _SENTENCED,
    "appeal": (*_SENTENCED, "appeal_lodged"),
    "parole": _SENTENCED,  # no event moves a case to parole: the agency sets it
}
# Half of no-further-action decisions come without an arrest (by case id, so both
# passes agree).
_NFA_EARLY = (*_BASE, "no_further_action")
# Events that can happen once their prerequisite has: (type, prerequisite or None).
FILLERS = (
    ("officer_changed", None),
    ("suspect_interviewed", "suspect_arrested"),
    ("bail_conditions_changed", "bailed_with_conditions"),
    ("remanded_in_custody", "charged"),
    ("released_from_custody", "charged"),
)


def journey(stage: str, case_id: int) -> tuple[str, ...]:
    if stage == "no_further_action" and case_id % 2:
        return _NFA_EARLY
    return JOURNEYS[stage]


def reference(case_id: int, year: int) -> str:
    """A unique Met-style reference: NNNNNNN/YY. The number is a bijection of the id
    (7919 is coprime to 10^7), so references look random and never collide."""
    number = (case_id * 7919 + 4_301_234) % 10_000_000
    return f"{number:07d}/{year % 100:02d}"


def phone(case_id: int) -> str:
    return f"+4477{case_id:08d}"


@dataclass
class Plan:
    """Each case's stage (an index into STAGE_NAMES) and number of events."""

    stages: bytearray
    counts: array[int]


def plan(cases: int, events: int, rng: random.Random) -> Plan:
    if cases >= 10_000_000:
        raise ValueError("References have 7 digits: at most 9,999,999 cases.")
    if events < cases:
        raise ValueError("Every case has at least its report: events >= cases.")
    cumulative = list(itertools.accumulate(STAGE_WEIGHTS.values()))
    stages = bytearray(rng.choices(range(len(STAGE_NAMES)), cum_weights=cumulative, k=cases))
    counts = array("H", (len(journey(STAGE_NAMES[s], i + 1)) for i, s in enumerate(stages)))
    surplus = events - sum(counts)
    if surplus > 0:
        for index in rng.choices(range(cases), k=surplus):
            counts[index] += 1
    while surplus < 0:  # fewer events than the journeys need: drop the oldest ones
        index = rng.randrange(cases)
        if counts[index] > 1:
            counts[index] -= 1
            surplus += 1
    return Plan(stages, counts)


def _text(value: str) -> str:
    # COPY's text format: backslash, tab and newlines must be escaped.
    if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
        value = (
            value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "")
        )
    return value


def _at(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def details_for(
    type_: str, rng: random.Random, occurred: date, crime_type: str, ref: str
) -> dict[str, Any] | None:
    """Details for an event, exactly as `validate_details` would store them (None: none)."""
    if type_ == "bailed_with_conditions":
        found: dict[str, Any] = {"conditions": rng.sample(BAIL_CONDITIONS, rng.randint(1, 3))}
        if rng.random() < 0.5:
            found["until"] = (occurred + timedelta(days=rng.randint(28, 90))).isoformat()
        return found
    if type_ == "bail_conditions_changed":
        if rng.random() < 0.2:
            return {"conditions": [], "removed": True}
        return {"conditions": rng.sample(BAIL_CONDITIONS, rng.randint(1, 2)), "removed": False}
    if type_ == "charged":
        offences = OFFENCES.get(crime_type, OFFENCES["other"])
        return {"offences": offences[: rng.randint(1, len(offences))]}
    if type_ == "no_further_action":
        found = {"decided_by": "police" if rng.random() < 0.8 else "cps"}
        if rng.random() < 0.6:
            found["victim_told_on"] = (occurred + timedelta(days=rng.randint(0, 3))).isoformat()
        return found
    if type_ == "out_of_court_disposal":
        return {"disposal_type": rng.choice(DISPOSALS)}
    if type_ == "first_hearing_scheduled":
        when = occurred + timedelta(days=rng.randint(7, 42))
        return {"date": when.isoformat(), "court": rng.choice(MAGISTRATES)}
    if type_ == "trial_scheduled":
        when = occurred + timedelta(days=rng.randint(30, 180))
        return {"date": when.isoformat(), "court": rng.choice(CROWN + MAGISTRATES[:2])}
    if type_ == "trial_adjourned":
        when = occurred + timedelta(days=rng.randint(14, 90))
        return {"new_date": when.isoformat(), "court": rng.choice(CROWN)}
    if type_ == "plea_entered":
        return {"plea": rng.choice(("guilty", "not_guilty", "not_guilty", "mixed"))}
    if type_ == "verdict":
        return {"outcome": "guilty" if rng.random() < 0.75 else "not_guilty"}
    if type_ == "sentenced":
        return {"sentence": rng.choice(SENTENCES)} if rng.random() < 0.8 else None
    if type_ == "officer_changed":
        return {"officer_name": rng.choice(OFFICERS), "officer_contact": officer_route(rng, ref)}
    return None


def officer_route(rng: random.Random, ref: str) -> str:
    return f"101, quoting {ref}" if rng.random() < 0.7 else rng.choice(TEAMS)


class Generator:
    """COPY rows for cases, victims, victim_contacts and case_events, chunk by chunk."""

    CASE_COLUMNS = (
        "id, reference, agency, crime_type, stage, enhanced_rights, update_every_days,"
        " officer_name, officer_contact, witness_care_contact, next_key_date,"
        " next_key_date_kind, next_key_place, last_victim_update_at, closed_at,"
        " created_at, updated_at"
    )
    VICTIM_COLUMNS = (
        "id, case_id, external_id, consent_at, secret_hash, secret_set_at, preferred_channel,"
        " safe_to_text, quiet_start, quiet_end, discreet, urgent_in_quiet_hours, via_advocate,"
        " advocate_name, advocate_phone, paused, created_at"
    )
    CONTACT_COLUMNS = "id, victim_id, channel, address, verified_at, created_at"
    UPDATE_COLUMNS = "id, case_id, victim_id, route, at"
    EVENT_COLUMNS = (
        "id, case_id, type, occurred_at, agency, external_id, details, note,"
        " victim_informed_at, created_at"
    )

    def __init__(
        self, plan: Plan, now: datetime, secret_hash: str, rng: random.Random, check_every: int
    ) -> None:
        self.plan = plan
        self.now = int(now.timestamp())
        self.secret_hash = secret_hash
        self.rng = rng
        self.check_every = check_every  # validate one event's details in this many
        self.crimes = tuple(CRIME_WEIGHTS)
        self.crime_cumulative = list(itertools.accumulate(CRIME_WEIGHTS.values()))
        self.event_id = 0
        self.update_id = 0
        self.checked = 0

    def chunks(self, size: int = 2000) -> Iterator[tuple[str, ...]]:
        """(cases, victims, contacts, events, updates) as COPY text, `size` cases at a time."""
        total = len(self.plan.stages)
        for start in range(0, total, size):
            rows: tuple[list[str], ...] = ([], [], [], [], [])
            for index in range(start, min(start + size, total)):
                self._case(index + 1, *rows)
            yield tuple("".join(lines) for lines in rows)

    def _path(self, case_id: int, stage: str, count: int, created: int) -> list[str]:
        rng = self.rng
        path = list(journey(stage, case_id))
        extra = count - len(path)
        closed = False
        if extra > 0 and stage in ENDED and self.now - created > 180 * 86_400:
            closed = rng.random() < 0.7
            extra -= closed
        for _ in range(max(extra, 0)):
            type_, after = rng.choice(FILLERS)
            if after is not None and after not in path:
                type_, after = FILLERS[0]
            lowest = path.index(after) + 1 if after is not None else 1
            path.insert(rng.randint(lowest, len(path)), type_)
        if extra < 0:
            path = path[-count:]  # the agency joined later: its older events aren't here
        if closed:
            path.append("case_closed")
        return path

    def _case(
        self,
        case_id: int,
        cases: list[str],
        victims: list[str],
        contacts: list[str],
        events: list[str],
        updates: list[str],
    ) -> None:
        rng = self.rng
        now = self.now
        stage = STAGE_NAMES[self.plan.stages[case_id - 1]]
        crime = rng.choices(self.crimes, cum_weights=self.crime_cumulative)[0]
        created = now - rng.randrange(SPAN)
        ref = reference(case_id, datetime.fromtimestamp(created, UTC).year)
        path = self._path(case_id, stage, self.plan.counts[case_id - 1], created)

        # Events spread from the report over part of the time since.
        span = (now - created) * (0.3 + 0.7 * rng.random())
        times = sorted(created + int(rng.random() * span) for _ in path)
        officer = (rng.choice(OFFICERS), officer_route(rng, ref)) if rng.random() < 0.85 else None
        key: tuple[str, str, str] | None = None
        closed_at: str = NULL
        last_update = 0
        newest = len(path) - 1
        for position, (type_, ts) in enumerate(zip(path, times, strict=True)):
            self.event_id += 1
            occurred = datetime.fromtimestamp(ts, UTC)
            found = details_for(type_, rng, occurred.date(), crime, ref)
            if found is not None and self.event_id % self.check_every == 0:
                assert validate_details(type_, found) == found, (type_, found)
                self.checked += 1
            if type_ == "officer_changed" and found:
                officer = (found["officer_name"], found["officer_contact"])
            elif type_ in ("first_hearing_scheduled", "trial_scheduled") and found:
                kind = "trial" if type_ == "trial_scheduled" else "hearing"
                key = (found["date"], kind, found["court"])
            elif type_ == "case_closed":
                closed_at = occurred.isoformat()
            # The victim heard about most events; the newest may still be news.
            informed = NULL
            if position < newest - 1 or rng.random() < 0.5:
                told = ts + rng.randint(3600, 3 * 86_400)
                if told < now:
                    informed = _at(told)
                    last_update = max(last_update, told)
                    self.update_id += 1
                    route = rng.choice(ROUTES)
                    updates.append(f"{self.update_id}\t{case_id}\t{case_id}\t{route}\t{informed}\n")
            details = NULL if found is None else _text(json.dumps(found, ensure_ascii=False))
            stamp = occurred.isoformat()
            events.append(
                f"{self.event_id}\t{case_id}\t{type_}\t{stamp}\t{AGENCY}\t"
                f"MET-{self.event_id:010d}\t{details}\t\\N\t{informed}\t{stamp}\n"
            )

        enhanced = crime in ENHANCED or rng.random() < 0.1
        court = "charged" in path
        witness_care = rng.choice(WCU) if court else NULL
        officer_name, officer_contact = map(_text, officer) if officer else (NULL, NULL)
        key_date, key_kind, key_place = (key[0], key[1], _text(key[2])) if key else (NULL,) * 3
        created_at = _at(created)
        cases.append(
            f"{case_id}\t{ref}\t{AGENCY}\t{crime}\t{stage}\t{'t' if enhanced else 'f'}\t"
            f"{14 if rng.random() < 0.1 else 28}\t{officer_name}\t{officer_contact}\t"
            f"{witness_care}\t{key_date}\t{key_kind}\t{key_place}\t"
            f"{_at(last_update) if last_update else NULL}\t{closed_at}\t{created_at}\t"
            f"{_at(times[-1])}\n"
        )

        consent = _at(created + rng.randint(600, 7 * 86_400))
        quiet = ("22:00:00", "07:00:00") if rng.random() < 0.25 else (NULL, NULL)
        advocate = rng.random() < 0.03
        victims.append(
            f"{case_id}\t{case_id}\tP{case_id}\t{consent}\t{self.secret_hash}\t{consent}\tsms\t"
            f"{'t' if rng.random() < 0.92 else 'f'}\t{quiet[0]}\t{quiet[1]}\t"
            f"{'t' if rng.random() < 0.8 else 'f'}\tt\t{'t' if advocate else 'f'}\t"
            f"{'Jo Clarke (ISVA)' if advocate else NULL}\t"
            f"{crypto.keyring().seal(f'+4478{case_id:08d}') if advocate else NULL}\t"
            f"{'t' if rng.random() < 0.01 else 'f'}\t{created_at}\n"
        )
        # Sealed as the app stores it (bot/privacy/crypto.py): COPY bypasses the column type.
        address = crypto.keyring().seal_lookup(phone(case_id))
        contacts.append(f"{case_id}\t{case_id}\tsms\t{address}\t{consent}\t{consent}\n")


def next_event(stage: str, rng: random.Random) -> str:
    """A plausible next event for a case at `stage` (for imports and notifications)."""
    if rng.random() < 0.12:
        return "officer_changed"
    choices = {
        "report": ("investigation_started",),
        "investigation": ("suspect_arrested", "no_further_action"),
        "arrest": (
            "suspect_interviewed",
            "bailed_with_conditions",
            "released_under_investigation",
            "charged",
            "no_further_action",
        ),
        "bail": ("bail_conditions_changed", "charged"),
        "released_under_investigation": ("charged", "no_further_action"),
        "charge": ("first_hearing_scheduled", "remanded_in_custody"),
        "no_further_action": ("officer_changed",),
        "out_of_court_disposal": ("officer_changed",),
        "first_hearing": ("plea_entered",),
        "plea": ("trial_scheduled",),
        "trial": ("trial_adjourned", "verdict"),
        "verdict": ("sentenced",),
        "sentencing": ("appeal_lodged", "released_from_custody"),
        "appeal": ("officer_changed",),
        "parole": ("released_from_custody",),
    }
    return rng.choice(choices[stage])


assert all(t in EVENT_TYPES for j in JOURNEYS.values() for t in j)
assert all(t in EVENT_TYPES for t, _ in FILLERS)
