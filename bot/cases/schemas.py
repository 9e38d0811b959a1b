"""The agency API's request and response bodies (see bot/cases/api.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.cases.events import check_time
from bot.cases.phones import PERSONAL_NUMBER, looks_personal, normalise_phone
from bot.cases.vocabulary import CRIME_TYPES, STAGES, event_type

MAX_EVENTS_SHOWN = 100
NEED_ZONE = "Times must include a time zone, for example 2026-11-26T09:30:00Z."


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ContactIn(_Body):
    channel: Literal["sms"] = Field(description="Only `sms` for now (Telegram: `telegram_link`)")
    address: str = Field(
        max_length=40,
        description="A mobile number: UK (07700 900123) or with its country code (+33...)",
        examples=["07700 900123"],
    )

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        return normalise_phone(value)


class PreferencesIn(_Body):
    """How the victim wants to hear. On update, fields left out keep their values."""

    preferred_channel: Literal["sms", "telegram"] | None = None
    safe_to_text: bool = Field(True, description="False: never text this person")
    quiet_start: time | None = Field(None, description="HH:MM, London time", examples=["21:00"])
    quiet_end: time | None = Field(None, description="HH:MM, London time", examples=["08:00"])
    discreet: bool = Field(True, description="Texts say only that there is news")
    urgent_in_quiet_hours: bool = Field(True, description="Urgent news even in quiet hours")
    via_advocate: bool = Field(False, description="Send news to the advocate instead")
    advocate_name: str | None = Field(None, max_length=120)
    advocate_phone: str | None = Field(None, max_length=40, description="Needed with via_advocate")
    paused: bool = Field(False, description="No messages at all until unpaused")

    @field_validator("advocate_phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        return None if value is None else normalise_phone(value)

    @model_validator(mode="after")
    def _consistent(self) -> PreferencesIn:
        if (self.quiet_start is None) != (self.quiet_end is None):
            raise ValueError(
                "Give both quiet_start and quiet_end (HH:MM, London time), or neither."
            )
        if self.quiet_start is not None and self.quiet_start == self.quiet_end:
            raise ValueError("quiet_start and quiet_end must differ.")
        if self.via_advocate and not self.advocate_phone:
            raise ValueError("Give advocate_phone when via_advocate is true.")
        return self


class VictimIn(_Body):
    external_id: str = Field(
        min_length=1, max_length=64, description="Your id for this person (no slashes)"
    )
    consent: bool = Field(description="The victim agreed to hear from Waymark (must be true)")
    contacts: list[ContactIn] = Field(default_factory=list, max_length=5)
    preferences: PreferencesIn | None = None
    telegram_link: bool = Field(
        False, description="Make a one-time Telegram link for the victim (returned once)"
    )

    @field_validator("external_id")
    @classmethod
    def _external_id(cls, value: str) -> str:
        if "/" in value or any(c.isspace() for c in value):
            raise ValueError("external_id can't contain slashes or spaces.")
        return value

    @field_validator("consent")
    @classmethod
    def _consent(cls, value: bool) -> bool:
        if not value:
            raise ValueError("We can only contact victims who agreed to it")
        return value


class CaseIn(_Body):
    """A case and its victims. On update, case fields left out keep their values."""

    crime_type: Literal[CRIME_TYPES]  # type: ignore[valid-type]
    stage: Literal[STAGES] = "report"  # type: ignore[valid-type]
    enhanced_rights: bool = Field(False, description="Entitled to enhanced rights (Victims' Code)")
    update_every_days: int | None = Field(
        None, ge=1, le=365, description="Agreed update frequency (default: the service's)"
    )
    officer_name: str | None = Field(None, max_length=120)
    officer_contact: str | None = Field(
        None,
        max_length=200,
        description="A route, never a personal number",
        examples=["101, quoting 4301234/26"],
    )
    witness_care_contact: str | None = Field(None, max_length=200)
    next_key_date: date | None = None
    next_key_date_kind: str | None = Field(None, max_length=32, examples=["hearing", "trial"])
    next_key_place: str | None = Field(None, max_length=120)
    victims: list[VictimIn] = Field(default_factory=list, max_length=20)

    @field_validator("officer_contact", "witness_care_contact")
    @classmethod
    def _route(cls, value: str | None) -> str | None:
        if value is not None and looks_personal(value):
            raise ValueError(PERSONAL_NUMBER)
        return value

    @field_validator("victims")
    @classmethod
    def _unique(cls, victims: list[VictimIn]) -> list[VictimIn]:
        ids = [v.external_id for v in victims]
        if len(ids) != len(set(ids)):
            raise ValueError("Each victim's external_id must be different.")
        return victims


class VictimWritten(BaseModel):
    external_id: str
    created: bool
    new_contacts: int = Field(description="SMS numbers added; each gets an enrolment code")
    enrolment_queued: bool = Field(
        description="A code is on its way (false when one was already waiting to go)"
    )
    telegram_link: str | None = Field(
        None, description="The one-time Telegram link, if asked for: shown only this once"
    )


class CaseWritten(BaseModel):
    reference: str
    created: bool
    stage: str
    victims: list[VictimWritten]
    notifications_queued: int


class EventIn(_Body):
    type: str = Field(description="An event type from the vocabulary", examples=["charged"])
    occurred_at: datetime = Field(description="With a time zone", examples=["2026-11-20T10:00Z"])
    external_id: str | None = Field(
        None, min_length=1, max_length=128, description="Your event id: makes retries safe"
    )
    details: dict[str, Any] = Field(default_factory=dict, examples=[{"offences": ["burglary"]}])
    note: str | None = Field(None, max_length=1000, description="Never shown to the victim")
    victim_informed_at: datetime | None = Field(
        None, description="When someone told the victim, if they already know"
    )

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        event_type(value)  # ValueError listing the known types
        return value

    @field_validator("occurred_at", "victim_informed_at")
    @classmethod
    def _when(cls, value: datetime | None, info: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(NEED_ZONE)
        return check_time(value, datetime.now(UTC), info.field_name)


class EventOut(BaseModel):
    id: int
    type: str
    occurred_at: datetime
    external_id: str | None
    stage: str = Field(description="The case's stage after the event")
    notifications_queued: int = Field(description="Victims who will be told (the outbox)")


class EventSummary(BaseModel):
    id: int
    type: str
    occurred_at: datetime
    details: dict[str, Any]
    victim_informed_at: datetime | None


class VictimSummary(BaseModel):
    external_id: str
    enrolled: bool = Field(description="The victim has chosen a secret")
    linked_contacts: int = Field(description="Contacts the victim has proved")
    unconfirmed_contacts: int


class CaseStatus(BaseModel):
    reference: str
    crime_type: str
    stage: str
    enhanced_rights: bool
    update_every_days: int
    last_victim_update_at: datetime | None
    next_update_due: datetime | None = Field(description="None once the case is closed")
    next_key_date: date | None
    next_key_date_kind: str | None
    next_key_place: str | None
    officer_name: str | None
    officer_contact: str | None
    witness_care_contact: str | None
    closed_at: datetime | None
    events: list[EventSummary] = Field(description=f"Newest first, at most {MAX_EVENTS_SHOWN}")
    victims: list[VictimSummary]
    pending_notifications: int


class SecretReset(BaseModel):
    reference: str
    external_id: str
    notification_queued: bool


class Problem(BaseModel):
    detail: str


class InvalidRequest(BaseModel):
    detail: str = Field(description="The first problem, in a sentence")
    errors: list[dict[str, Any]] = Field(description="Every problem: `loc` and `msg`")
