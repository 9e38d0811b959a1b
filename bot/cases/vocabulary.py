"""The fixed vocabulary of case events: what each means for the case and the victim.

Agencies may only post these types. Each maps to the stage the case moves to (if it
moves), says whether the victim must hear at once (urgent: even in quiet hours), and
whether it is a "key decision" the Victims' Code says victims must be told about
within 5 working days, or 1 for victims entitled to enhanced rights: arrest, charge,
release without charge, under investigation or on bail, bail conditions, out-of-court
disposals, decisions not to prosecute, first-hearing details
(docs/reference/victim-journey-facts.md §1.4). Plain-English wording lives in
content/cases.yml under `case.event.<type>`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from bot.cases.phones import PERSONAL_NUMBER, looks_personal

STAGES = (
    "report",
    "investigation",
    "arrest",
    "bail",
    "released_under_investigation",
    "charge",
    "no_further_action",
    "out_of_court_disposal",
    "first_hearing",
    "plea",
    "trial",
    "verdict",
    "sentencing",
    "appeal",
    "parole",
)
CRIME_TYPES = (
    "domestic_abuse",
    "sexual_violence",
    "hate_crime",
    "fraud",
    "burglary",
    "robbery",
    "theft",
    "assault",
    "stalking",
    "harassment",
    "criminal_damage",
    "cyber_crime",
    "homicide",
    "other",
)


class _Details(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class NoDetails(_Details):
    pass


class BailDetails(_Details):
    conditions: list[str] = Field(default_factory=list, max_length=20)
    until: date | None = None  # the date to answer bail, if set


class BailChangedDetails(_Details):
    conditions: list[str] = Field(default_factory=list, max_length=20)
    removed: bool = False  # all conditions removed


class ChargedDetails(_Details):
    offences: list[str] = Field(min_length=1, max_length=20)


class NoFurtherActionDetails(_Details):
    decided_by: Literal["police", "cps"]
    victim_told_on: date | None = None  # when the victim was told, if they were


class DisposalDetails(_Details):
    disposal_type: Literal[
        "caution", "conditional_caution", "community_resolution", "penalty_notice", "other"
    ]


class HearingDetails(_Details):
    date: date
    court: str = Field(min_length=2, max_length=120)


class PleaDetails(_Details):
    plea: Literal["guilty", "not_guilty", "mixed"]


class AdjournedDetails(_Details):
    new_date: date | None = None
    court: str | None = Field(default=None, max_length=120)


class VerdictDetails(_Details):
    outcome: Literal["guilty", "not_guilty", "mixed"]


class SentenceDetails(_Details):
    sentence: str | None = Field(default=None, max_length=200)


class OfficerDetails(_Details):
    officer_name: str = Field(min_length=2, max_length=120)
    # A route (101 with the reference, a team mailbox), never someone's own number.
    officer_contact: str = Field(min_length=3, max_length=200)

    @field_validator("officer_contact")
    @classmethod
    def _route(cls, value: str) -> str:
        if looks_personal(value):
            raise ValueError(PERSONAL_NUMBER)
        return value


@dataclass(frozen=True)
class EventType:
    name: str
    details: type[_Details]
    stage: str | None = None  # the stage the case moves to
    urgent: bool = False  # the victim hears even in quiet hours; a coordinator is told too
    key_decision: bool = False  # Victims' Code time limit applies (5 or 1 working days)
    # Sets the case's next key date from details["date"] (or "new_date").
    sets_key_date: str | None = None
    # Shown first in the answer to "any news?" while recent.
    headline: bool = False
    notify: bool = True  # tell the victim proactively


EVENT_TYPES: dict[str, EventType] = {
    e.name: e
    for e in (
        EventType("reported", NoDetails, stage="report", notify=False),
        EventType("investigation_started", NoDetails, stage="investigation"),
        EventType("suspect_arrested", NoDetails, stage="arrest", key_decision=True),
        EventType("suspect_interviewed", NoDetails),
        EventType(
            "bailed_with_conditions", BailDetails, stage="bail", key_decision=True, headline=True
        ),
        EventType(
            "bail_conditions_changed",
            BailChangedDetails,
            urgent=True,
            key_decision=True,
            headline=True,
        ),
        EventType(
            "released_under_investigation",
            NoDetails,
            stage="released_under_investigation",
            key_decision=True,
            headline=True,
        ),
        EventType("remanded_in_custody", NoDetails),
        EventType("released_from_custody", NoDetails, urgent=True, headline=True),
        EventType("charged", ChargedDetails, stage="charge", key_decision=True),
        EventType(
            "no_further_action",
            NoFurtherActionDetails,
            stage="no_further_action",
            urgent=True,
            key_decision=True,
            headline=True,
        ),
        EventType(
            "out_of_court_disposal",
            DisposalDetails,
            stage="out_of_court_disposal",
            key_decision=True,
        ),
        EventType(
            "first_hearing_scheduled",
            HearingDetails,
            stage="first_hearing",
            key_decision=True,  # first-hearing details: the same 5 / 1 working days
            sets_key_date="date",
        ),
        EventType("plea_entered", PleaDetails, stage="plea"),
        EventType("trial_scheduled", HearingDetails, stage="trial", sets_key_date="date"),
        EventType("trial_adjourned", AdjournedDetails, stage="trial", sets_key_date="new_date"),
        EventType("verdict", VerdictDetails, stage="verdict", key_decision=True),
        EventType("sentenced", SentenceDetails, stage="sentencing"),
        EventType("appeal_lodged", NoDetails, stage="appeal"),
        EventType("officer_changed", OfficerDetails),
        EventType("case_closed", NoDetails),
    )
}

# Key decisions the Code gives 1 working day for whoever the victim is: the Witness
# Care Unit or officer tells the victim the trial outcome within 1 working day.
ONE_DAY_FOR_ALL = frozenset({"verdict"})


def event_type(name: str) -> EventType:
    try:
        return EVENT_TYPES[name]
    except KeyError:
        known = ", ".join(EVENT_TYPES)
        raise ValueError(f"Unknown event type {name!r}. Known types: {known}.") from None


def validate_details(name: str, details: dict[str, Any] | None) -> dict[str, Any]:
    """The details for an event type, checked and normalised (dates as ISO strings).

    Raises ValueError (unknown type) or pydantic.ValidationError (bad fields).
    """
    kind = event_type(name)
    return kind.details.model_validate(details or {}).model_dump(mode="json", exclude_none=True)


def decision_limit_days(name: str, enhanced_rights: bool) -> int | None:
    """Working days the Victims' Code allows to tell the victim, or None."""
    if not EVENT_TYPES[name].key_decision:
        return None
    return 1 if enhanced_rights or name in ONE_DAY_FOR_ALL else 5
