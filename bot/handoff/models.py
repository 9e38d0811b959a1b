"""Human handoff tables: coordinators, handoffs and their timeline, canned replies,
console sessions, the audit log and feedback.

The gateway's `Conversation.owner` says who answers (bot, queued, human); a `Handoff`
is one stretch of a person's conversation spent with (or waiting for) a coordinator.
At most one handoff per conversation is open at a time (a partial unique index).
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.models import Base, utcnow
from bot.privacy.crypto import SealedText

BigId = BigInteger().with_variant(Integer, "sqlite")


class Role(enum.StrEnum):
    COORDINATOR = "coordinator"
    SUPERVISOR = "supervisor"  # also sees the audit log and gets escalations
    ADMIN = "admin"  # a supervisor who also manages accounts


class HandoffState(enum.StrEnum):
    QUEUED = "queued"  # waiting for a coordinator to claim it
    CLAIMED = "claimed"  # a named coordinator owns the conversation
    CLOSED = "closed"  # ended; the conversation is back with the bot


class Priority(enum.IntEnum):
    URGENT = 0  # danger or risk of self-harm
    NORMAL = 1


# Why a handoff started (the reason a coordinator sees), and how one can end.
REASONS = {
    "request_human": "Asked for a person",
    "emergency": "Said they are in danger",
    "self_harm": "At risk of suicide or self-harm",
    "fallback": "The assistant kept misunderstanding",
    "withdraw": "Wants to withdraw from their case",
    "complain": "Wants to complain",
    "verification_locked": "Locked out of case look-ups",
    "console": "A coordinator took over",
}
URGENT_REASONS = frozenset({"emergency", "self_harm"})
OUTCOMES = (
    "resolved",
    "referred",
    "callback_arranged",
    "no_reply",
    "withdrawn",
    "complaint_logged",
    "handed_back",
    "other",
)


class Coordinator(Base):
    """A person who takes over conversations: a victim care coordinator, an ISVA/IDVA."""

    __tablename__ = "coordinators"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    # What victims are told: "Sam from the Waymark team will reply".
    display_name: Mapped[str] = mapped_column(String(80))
    role: Mapped[str] = mapped_column(String(16), default=Role.COORDINATOR)
    password_hash: Mapped[str | None] = mapped_column(String(200))  # argon2; None: no console
    # Where alerts go, and the allow-list for coordinator messages on each channel.
    telegram_chat_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    phone: Mapped[str | None] = mapped_column(String(32), unique=True)
    on_duty: Mapped[bool] = mapped_column(Boolean, default=False)
    # [{"days": "mon-fri", "start": "09:00", "end": "17:00"}], London time; [] = any time.
    working_hours: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    # The handoff a coordinator's plain Telegram or SMS messages go to.
    # (A plain id, not a foreign key: the two tables would refer to each other.)
    current_handoff_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Handoff(Base):
    __tablename__ = "handoffs"
    __table_args__ = (
        # One open handoff per conversation: a second start finds the first.
        Index(
            "uq_handoffs_open_conversation",
            "conversation_id",
            unique=True,
            sqlite_where=text("state != 'closed'"),
            postgresql_where=text("state != 'closed'"),
        ),
        Index("ix_handoffs_queue", "state", "priority", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=HandoffState.QUEUED)
    # request_human, emergency, self_harm, fallback, withdraw, complain,
    # verification_locked, console (a coordinator took over)
    reason: Mapped[str] = mapped_column(String(32))
    priority: Mapped[int] = mapped_column(Integer, default=Priority.NORMAL)
    coordinator_id: Mapped[int | None] = mapped_column(ForeignKey("coordinators.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    claimed_at: Mapped[datetime | None]
    first_reply_at: Mapped[datetime | None]  # the first message a person sent the victim
    last_alert_at: Mapped[datetime | None]
    escalated_at: Mapped[datetime | None]  # a supervisor was alerted (response target missed)
    # Nobody on duty: when the conversation goes back to the bot (with a call-back task).
    return_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    outcome: Mapped[str | None] = mapped_column(String(32))


class HandoffEvent(Base):
    """A handoff's timeline: queued, alerted, claimed, transferred, note, reply, closed.

    Only notes keep text (a coordinator's private note). A coordinator's own message on
    Telegram or SMS is stored with its provider id, so a redelivery is not relayed twice.
    """

    __tablename__ = "handoff_events"
    __table_args__ = (UniqueConstraint("channel", "provider_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    handoff_id: Mapped[int] = mapped_column(ForeignKey("handoffs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    coordinator_id: Mapped[int | None] = mapped_column(ForeignKey("coordinators.id"))
    text: Mapped[str | None] = mapped_column(SealedText)  # notes only; sealed
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    channel: Mapped[str | None] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class CannedReply(Base):
    """A reply coordinators can send with one tap; editable in the console."""

    __tablename__ = "canned_replies"

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(80), unique=True)
    text: Mapped[str] = mapped_column(Text)
    updated_by: Mapped[int | None] = mapped_column(ForeignKey("coordinators.id"))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ConsoleSession(Base):
    """A signed-in console session. The cookie holds a random token; this its digest."""

    __tablename__ = "console_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    coordinator_id: Mapped[int] = mapped_column(ForeignKey("coordinators.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Append-only: who did what, when, to which conversation or case. No content."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    coordinator_id: Mapped[int | None] = mapped_column(ForeignKey("coordinators.id"))
    actor: Mapped[str] = mapped_column(String(80))  # a username, "agency:<name>" or "system"
    # sign_in, sign_in_failed, sign_out, view_conversation, view_case, view_queue,
    # view_audit, claim, reply, note, transfer, close, hand_back, take_over,
    # secret_reset, canned_reply_saved, duty_on, duty_off
    action: Mapped[str] = mapped_column(String(32))
    conversation_id: Mapped[int | None] = mapped_column(ForeignKey("conversations.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("cases.id"))
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoffs.id"))
    detail: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # ids and outcomes only


class Feedback(Base):
    """A rating (1-5) and/or a comment, per conversation, for the service's figures."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    handoff_id: Mapped[int | None] = mapped_column(ForeignKey("handoffs.id"))
    rating: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(SealedText)
    source: Mapped[str] = mapped_column(String(16))  # handoff, bot, message
    at: Mapped[datetime] = mapped_column(default=utcnow)
