"""Signposting tables: the services directory, needs assessments and warm referrals.

The directory is data versioned in the repo (`content/services/directory.yml`) and loaded
here, so the gateway matches from one place and agencies can correct entries through the
API. A referral keeps a copy of exactly what the person agreed to share, so later
changes to their answers never widen what a service was sent.
"""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from bot.models import Base, utcnow
from bot.privacy.crypto import SealedJSON, SealedText

BigId = BigInteger().with_variant(Integer, "sqlite")


class ReferralStatus(enum.StrEnum):
    PENDING = "pending"  # agreed by the person; a coordinator has not sent it yet
    SENT = "sent"  # sent to the service
    ACCEPTED = "accepted"
    DECLINED = "declined"  # the service can't take it
    CONTACTED = "contacted"  # the service has been in touch with the person
    WITHDRAWN = "withdrawn"  # the person took their consent back


# Where a referral can go next; the person can withdraw from any open state.
NEXT: dict[str, frozenset[str]] = {
    ReferralStatus.PENDING: frozenset({ReferralStatus.SENT}),
    ReferralStatus.SENT: frozenset({ReferralStatus.ACCEPTED, ReferralStatus.DECLINED}),
    ReferralStatus.ACCEPTED: frozenset({ReferralStatus.CONTACTED, ReferralStatus.DECLINED}),
    ReferralStatus.DECLINED: frozenset(),
    ReferralStatus.CONTACTED: frozenset(),
    ReferralStatus.WITHDRAWN: frozenset(),
}
OPEN = frozenset({ReferralStatus.PENDING, ReferralStatus.SENT, ReferralStatus.ACCEPTED})


class ServiceRow(Base):
    """One directory entry; `entry` is the validated entry exactly as imported."""

    __tablename__ = "services"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    entry: Mapped[dict[str, Any]] = mapped_column(JSON)
    last_verified: Mapped[date] = mapped_column(Date, index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # "file" (the repo's directory) or "api:<agency>" (corrected through the API).
    origin: Mapped[str] = mapped_column(String(80), default="file")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class DirectoryImport(Base):
    """Each import of the directory file, so start-up loads a changed file only once."""

    __tablename__ = "directory_imports"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), index=True)  # SHA-256 of the file
    services: Mapped[int] = mapped_column(Integer)
    by: Mapped[str] = mapped_column(String(80))  # "startup", "command", "api:<agency>"
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)


class NeedsAssessment(Base):
    """A person's answers to the optional needs questions: fixed choices, never free text."""

    __tablename__ = "needs_assessments"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), unique=True)
    answers: Mapped[dict[str, str]] = mapped_column(SealedJSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Referral(Base):
    """A warm referral the person agreed to, worked by a coordinator."""

    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_conversation_status", "conversation_id", "status"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"))
    service_id: Mapped[str] = mapped_column(ForeignKey("services.id"))
    status: Mapped[str] = mapped_column(String(16), default=ReferralStatus.PENDING)
    reason: Mapped[str | None] = mapped_column(String(32))  # a crime_type value
    # What the person agreed to share, copied at the moment they agreed (sealed).
    needs: Mapped[dict[str, str]] = mapped_column(SealedJSON)
    contact: Mapped[dict[str, Any]] = mapped_column(SealedJSON)
    task_id: Mapped[int | None] = mapped_column(ForeignKey("tasks.id"))
    consented_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]


class ReferralEvent(Base):
    """The history of a referral: who moved it to which status, and when."""

    __tablename__ = "referral_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referrals.id"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    by: Mapped[str] = mapped_column(String(80))  # "person" or "coordinator:<username>"
    note: Mapped[str | None] = mapped_column(SealedText)  # a coordinator's words
    at: Mapped[datetime] = mapped_column(default=utcnow)
