"""The gateway's tables: contacts, conversations and messages.

Rasa only ever sees `Conversation.rasa_sender`, a keyed pseudonym: the raw phone
number or chat id stays here.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from bot.privacy.crypto import SealedJSON, SealedLookup, SealedText


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: DateTime(timezone=True),
        dict[str, Any]: JSON,
    }


class Channel(enum.StrEnum):
    SMS = "sms"
    TELEGRAM = "telegram"
    WEB = "web"


class Owner(enum.StrEnum):
    """Who answers a conversation. The gateway checks it on every inbound message."""

    BOT = "bot"
    QUEUED = "queued"  # waiting for a person (the handoff feature)
    HUMAN = "human"


class InboundState(enum.StrEnum):
    PENDING = "pending"  # stored, not yet answered
    DONE = "done"  # answered (or deliberately not: see `note`)


class Contact(Base):
    """One address on one channel: a phone number, a Telegram chat, a web session."""

    __tablename__ = "contacts"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    # Phone number (E.164), Telegram chat id, or a keyed hash of a web session token.
    # Sealed (docs/privacy.md): deterministic, so look-ups and the unique key still work.
    address: Mapped[str] = mapped_column(SealedLookup)
    opted_out: Mapped[bool] = mapped_column(Boolean, default=False)
    opted_out_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]  # a web session that was exited
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)

    conversation: Mapped[Conversation] = relationship(back_populates="contact")


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), unique=True)
    # The pseudonymous sender id Rasa sees: HMAC(secret, channel + address).
    rasa_sender: Mapped[str] = mapped_column(String(64), unique=True)
    owner: Mapped[str] = mapped_column(String(16), default=Owner.BOT)
    # The buttons last offered, so "2" can be read as the second choice.
    choices: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    # What the gateway itself takes from the next message instead of Rasa (a secret,
    # a one-time code): {"kind": ..., "until": ISO time, ...}. See bot.cases.verification.
    awaiting: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A verified look-up lasts for a while, then the person proves it again.
    verified_victim_id: Mapped[int | None] = mapped_column(ForeignKey("victims.id"))
    verified_until: Mapped[datetime | None]
    # Rasa's tracker was paused for a handoff and not yet resumed: resumed before the
    # next message goes to Rasa (the gateway's `owner` is what decides who answers).
    rasa_paused: Mapped[bool] = mapped_column(Boolean, default=False)
    # When a rating was last offered (at most once a day after a bot conversation).
    feedback_offered_at: Mapped[datetime | None]
    # When the person was last told their message waits for a coordinator.
    waiting_told_at: Mapped[datetime | None]
    # Signposting: the service ids last shown (what "REFER" chooses from), and the
    # referral the person was just asked to agree to, with what it would share.
    services_shown: Mapped[list[str] | None] = mapped_column(JSON)
    referral_offer: Mapped[dict[str, Any] | None] = mapped_column(SealedJSON)  # has the address
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="conversation")


class Inbound(Base):
    """A message from a person. Committed before the provider is acknowledged."""

    __tablename__ = "inbound_messages"
    # A provider's redelivery carries the same id: stored once, answered once.
    __table_args__ = (UniqueConstraint("channel", "provider_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    # text, non_text (a photo, a location), or a keyword: stop, start, help
    kind: Mapped[str] = mapped_column(String(16), default="text")
    text: Mapped[str | None] = mapped_column(SealedText)  # sealed: compare in Python
    payload: Mapped[str | None] = mapped_column(Text)  # a button's payload
    # Channel extras Rasa may need, e.g. a Telegram /start deep-link parameter.
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=InboundState.PENDING, index=True)
    note: Mapped[str | None] = mapped_column(String(64))  # why it ended as it did
    safety_tier: Mapped[int] = mapped_column(Integer, default=0)
    safety_kind: Mapped[str | None] = mapped_column(String(16))
    holding_sent: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]


class Outbound(Base):
    """A message to a person, with the provider's id and delivery status."""

    __tablename__ = "outbound_messages"
    __table_args__ = (UniqueConstraint("channel", "provider_id"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    provider_id: Mapped[str | None] = mapped_column(String(64))
    # bot, safety (the gateway's own emergency reply), holding, system, human,
    # notification (case news), enrolment and code (one-time codes, stored masked)
    source: Mapped[str] = mapped_column(String(16), default="bot")
    text: Mapped[str] = mapped_column(SealedText)  # sealed: compare in Python
    buttons: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    status_rank: Mapped[int] = mapped_column(Integer, default=0)
    error_code: Mapped[str | None] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
