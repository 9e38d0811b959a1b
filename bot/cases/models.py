"""The case store: cases, victims and their linked contacts, case events, the
notification outbox, verification attempts, one-time codes, agency keys and tasks.

Secrets are stored only as slow hashes (argon2); one-time codes and API keys as keyed
or plain SHA-256 digests (they are long and random, or short-lived and rate-limited).
"""

from __future__ import annotations

import enum
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    Time,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from bot.models import Base, utcnow
from bot.privacy.crypto import SealedLookup, SealedText

BigId = BigInteger().with_variant(Integer, "sqlite")


class NotificationState(enum.StrEnum):
    PENDING = "pending"  # waiting to be sent (maybe not before `not_before`)
    SENDING = "sending"  # claimed by a worker; never picked up again automatically
    SENT = "sent"
    FAILED = "failed"  # the provider refused it for good
    CANCELLED = "cancelled"  # nothing to send it through, or the victim paused messages


class TaskState(enum.StrEnum):
    OPEN = "open"
    DONE = "done"


class Case(Base):
    __tablename__ = "cases"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    reference: Mapped[str] = mapped_column(String(32), unique=True)
    agency: Mapped[str] = mapped_column(String(64))  # the agency that created it
    crime_type: Mapped[str] = mapped_column(String(32))
    stage: Mapped[str] = mapped_column(String(32))  # a cjs_stage value
    enhanced_rights: Mapped[bool] = mapped_column(Boolean, default=False)
    # Waymark's local service standard is 28 days unless the victim agreed another.
    update_every_days: Mapped[int] = mapped_column(Integer, default=28)
    officer_name: Mapped[str | None] = mapped_column(String(120))
    # A route, never a personal number: "101, quoting 4301234/26" or a team mailbox.
    officer_contact: Mapped[str | None] = mapped_column(String(200))
    witness_care_contact: Mapped[str | None] = mapped_column(String(200))
    next_key_date: Mapped[date | None] = mapped_column(Date)
    next_key_date_kind: Mapped[str | None] = mapped_column(String(32))  # hearing, trial...
    next_key_place: Mapped[str | None] = mapped_column(String(120))
    # When the victim last heard anything about the case (from anyone, by any route).
    last_victim_update_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    victims: Mapped[list[Victim]] = relationship(back_populates="case")


class Victim(Base):
    """A person a case is about, with how they want to be contacted."""

    __tablename__ = "victims"
    __table_args__ = (UniqueConstraint("case_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    external_id: Mapped[str] = mapped_column(String(64))  # the agency's id for the person
    consent_at: Mapped[datetime]  # when they agreed to hear from Waymark
    secret_hash: Mapped[str | None] = mapped_column(String(200))
    secret_set_at: Mapped[datetime | None]
    # Safe-contact preferences.
    preferred_channel: Mapped[str | None] = mapped_column(String(16))
    safe_to_text: Mapped[bool] = mapped_column(Boolean, default=True)
    quiet_start: Mapped[time | None] = mapped_column(Time)  # London time
    quiet_end: Mapped[time | None] = mapped_column(Time)
    discreet: Mapped[bool] = mapped_column(Boolean, default=True)
    urgent_in_quiet_hours: Mapped[bool] = mapped_column(Boolean, default=True)
    via_advocate: Mapped[bool] = mapped_column(Boolean, default=False)
    advocate_name: Mapped[str | None] = mapped_column(String(120))
    advocate_phone: Mapped[str | None] = mapped_column(SealedText)  # E.164, sealed
    paused: Mapped[bool] = mapped_column(Boolean, default=False)  # no messages at all
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    case: Mapped[Case] = relationship(back_populates="victims")
    contacts: Mapped[list[VictimContact]] = relationship(back_populates="victim")


class VictimContact(Base):
    """A channel address registered for a victim. Linked once the person proved it."""

    __tablename__ = "victim_contacts"
    __table_args__ = (
        UniqueConstraint("victim_id", "channel", "address"),
        Index("ix_victim_contacts_address", "channel", "address"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    victim_id: Mapped[int] = mapped_column(ForeignKey("victims.id"))
    channel: Mapped[str] = mapped_column(String(16))  # sms, telegram
    # E.164 number or Telegram chat id; sealed deterministically (look-ups still work).
    address: Mapped[str] = mapped_column(SealedLookup)
    verified_at: Mapped[datetime | None]  # None: registered, not yet confirmed
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    victim: Mapped[Victim] = relationship(back_populates="contacts")


class CaseEvent(Base):
    __tablename__ = "case_events"
    # An agency's own event id makes a repeated post idempotent.
    __table_args__ = (
        UniqueConstraint("agency", "external_id"),
        Index("ix_case_events_case_time", "case_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    type: Mapped[str] = mapped_column(String(40))  # see bot.cases.vocabulary
    occurred_at: Mapped[datetime]
    agency: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    note: Mapped[str | None] = mapped_column(Text)
    # When the victim was told (by Waymark or, as the agency reports, by someone else).
    victim_informed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Notification(Base):
    """The transactional outbox: written with the event, sent by a delivery worker."""

    __tablename__ = "notifications"
    __table_args__ = (
        Index("ix_notifications_due", "state", "not_before"),
        UniqueConstraint("event_id", "victim_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    victim_id: Mapped[int] = mapped_column(ForeignKey("victims.id"), index=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("case_events.id"))
    kind: Mapped[str] = mapped_column(String(40))  # the event type, or e.g. "enrolment"
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[str] = mapped_column(String(16), default=NotificationState.PENDING)
    not_before: Mapped[datetime | None]  # deferred past quiet hours
    # Where it went: a victim's contact, or their advocate.
    channel: Mapped[str | None] = mapped_column(String(16))
    recipient: Mapped[str | None] = mapped_column(String(16))  # victim, advocate
    outbound_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_messages.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class OneTimeCode(Base):
    """A 6-digit code: to enrol a contact, or to finish verifying on the web."""

    __tablename__ = "one_time_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    victim_id: Mapped[int] = mapped_column(ForeignKey("victims.id"), index=True)
    purpose: Mapped[str] = mapped_column(String(16))  # enrol, verify, telegram
    # HMAC-SHA256 of the code (or the deep-link token) with the server secret.
    digest: Mapped[str] = mapped_column(String(64), index=True)
    # enrol: the contact it was sent to; verify: the conversation waiting for it.
    victim_contact_id: Mapped[int | None] = mapped_column(ForeignKey("victim_contacts.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VerificationAttempt(Base):
    __tablename__ = "verification_attempts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    succeeded: Mapped[bool] = mapped_column(Boolean)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AgencyKey(Base):
    """An agency's API key. Only a SHA-256 digest is kept: the key itself is shown once."""

    __tablename__ = "agency_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    agency: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(120))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(JSON)  # cases:write, events:write, cases:read
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]


class Task(Base):
    """Work for a coordinator: an overdue update, a lock-out, an urgent event."""

    __tablename__ = "tasks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    # One open task per thing: "overdue:<case id>:<due date>", "locked:<case id>:<day>"...
    dedupe_key: Mapped[str] = mapped_column(String(120), unique=True)
    priority: Mapped[int] = mapped_column(Integer, default=1)  # 0 urgent, 1 normal
    state: Mapped[str] = mapped_column(String(16), default=TaskState.OPEN, index=True)
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("case_events.id"))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    detail: Mapped[str] = mapped_column(String(300))  # no personal data
    due_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_at: Mapped[datetime | None]


class VictimUpdate(Base):
    """Each time a victim was brought up to date: by a notification Waymark sent, by
    their own verified look-up, or (as an agency reports) by someone else."""

    __tablename__ = "victim_updates"
    # "When did this victim last hear?" (the notification worker asks it for each nudge).
    __table_args__ = (Index("ix_victim_updates_victim_at", "victim_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("cases.id"), index=True)
    victim_id: Mapped[int] = mapped_column(ForeignKey("victims.id"))
    route: Mapped[str] = mapped_column(String(16))  # proactive, lookup, agency
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
