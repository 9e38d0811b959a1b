"""What coordinators read: the queue, the handoff packet, the transcript, the figures.

`Views` is mixed into `HandoffDesk` (bot/handoff/desk.py), which provides the database
sessions, the settings and the gateway (for Rasa's intents in a summary).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cases.models import Case, Victim
from bot.handoff.errors import HandoffError
from bot.handoff.models import (
    REASONS,
    Coordinator,
    Feedback,
    Handoff,
    HandoffEvent,
    HandoffState,
    Priority,
)
from bot.models import Contact, Conversation, Inbound, Outbound

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.gateway import Gateway

# Intents as topics in a coordinator's summary.
TOPICS = {
    "request_case_update": "case update",
    "ask_cjs_stage": "justice process",
    "ask_right_to_review": "right to review",
    "ask_reporting_options": "reporting",
    "ask_support_services": "support services",
    "ask_victims_rights": "victims' rights",
    "ask_court_support": "court",
    "ask_compensation": "compensation",
    "withdraw_from_case": "withdrawing",
    "complain": "complaint",
    "express_distress": "distress",
    "emergency": "danger",
    "self_harm_risk": "self-harm",
}


@dataclass(frozen=True)
class QueueItem:
    handoff_id: int
    conversation_id: int
    state: str
    reason: str
    reason_text: str
    urgent: bool
    channel: str
    created_at: datetime
    waiting_seconds: int
    coordinator: str | None
    escalated: bool


@dataclass(frozen=True)
class Line:
    """One transcript line. `who`: person, assistant, coordinator, system."""

    at: datetime
    who: str
    text: str
    urgent: bool = False


@dataclass(frozen=True)
class Packet:
    handoff_id: int
    conversation_id: int
    state: str
    reason: str
    reason_text: str
    risk: str  # high (danger or self-harm) or standard
    channel: str
    created_at: datetime
    coordinator: str | None
    case_reference: str | None
    case_stage: str | None
    preferences: dict[str, Any] | None
    summary: str
    transcript: list[Line]
    notes: list[Line]


def aware(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class Views:
    gateway: Gateway
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]

    # -- reading ------------------------------------------------------------------

    async def queue(self, *, limit: int = 200, include_claimed: bool = True) -> list[QueueItem]:
        """Open handoffs: urgent first, then the longest waiting."""
        now = datetime.now(UTC)
        states = (
            [HandoffState.QUEUED, HandoffState.CLAIMED]
            if include_claimed
            else [HandoffState.QUEUED]
        )
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Handoff, Contact.channel, Coordinator.username)
                    .join(Conversation, Conversation.id == Handoff.conversation_id)
                    .join(Contact, Contact.id == Conversation.contact_id)
                    .outerjoin(Coordinator, Coordinator.id == Handoff.coordinator_id)
                    .where(Handoff.state.in_(states))
                    .order_by(Handoff.priority, Handoff.created_at, Handoff.id)
                    .limit(limit)
                )
            ).all()
        items = []
        for handoff, channel, username in rows:
            created = aware(handoff.created_at) or now
            items.append(
                QueueItem(
                    handoff_id=handoff.id,
                    conversation_id=handoff.conversation_id,
                    state=handoff.state,
                    reason=handoff.reason,
                    reason_text=REASONS.get(handoff.reason, handoff.reason),
                    urgent=handoff.priority == Priority.URGENT,
                    channel=channel,
                    created_at=created,
                    waiting_seconds=int((now - created).total_seconds()),
                    coordinator=username,
                    escalated=handoff.escalated_at is not None,
                )
            )
        return items

    async def counts(self) -> dict[str, int]:
        """How many handoffs are open: waiting (of which urgent), and claimed. The queue
        itself shows only the first `limit`."""
        async with self.sessions() as session:
            rows = (
                await session.execute(
                    select(Handoff.state, Handoff.priority, func.count())
                    .where(Handoff.state != HandoffState.CLOSED)
                    .group_by(Handoff.state, Handoff.priority)
                )
            ).all()
        waiting = [(priority, n) for state, priority, n in rows if state == HandoffState.QUEUED]
        return {
            "waiting": sum(n for _, n in waiting),
            "urgent": sum(n for priority, n in waiting if priority == Priority.URGENT),
            "claimed": sum(n for state, _, n in rows if state == HandoffState.CLAIMED),
        }

    async def packet(self, handoff_id: int) -> Packet:
        """What a coordinator needs: why, how urgent, the verified case (if any), safe
        contact preferences, a short summary and the transcript."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Handoff, Conversation, Contact)
                    .join(Conversation, Conversation.id == Handoff.conversation_id)
                    .join(Contact, Contact.id == Conversation.contact_id)
                    .where(Handoff.id == handoff_id)
                )
            ).first()
            if row is None:
                raise HandoffError(f"There is no handoff #{handoff_id}.")
            handoff, conversation, contact = row
            coordinator = (
                await session.get(Coordinator, handoff.coordinator_id)
                if handoff.coordinator_id
                else None
            )
            case, victim = None, None
            if conversation.verified_victim_id is not None:
                victim = await session.get(Victim, conversation.verified_victim_id)
                case = await session.get(Case, victim.case_id) if victim else None
            transcript = await self.transcript(session, conversation.id)
            notes = [
                Line(aware(e.at) or e.at, name or "coordinator", e.text or "")
                for e, name in (
                    await session.execute(
                        select(HandoffEvent, Coordinator.display_name)
                        .outerjoin(Coordinator, Coordinator.id == HandoffEvent.coordinator_id)
                        .where(HandoffEvent.handoff_id == handoff_id, HandoffEvent.kind == "note")
                        .order_by(HandoffEvent.id)
                    )
                ).all()
            ]
        urgent = handoff.priority == Priority.URGENT
        return Packet(
            handoff_id=handoff.id,
            conversation_id=conversation.id,
            state=handoff.state,
            reason=handoff.reason,
            reason_text=REASONS.get(handoff.reason, handoff.reason),
            risk="high" if urgent else "standard",
            channel=contact.channel,
            created_at=aware(handoff.created_at) or handoff.created_at,
            coordinator=coordinator.display_name if coordinator else None,
            case_reference=case.reference if case else None,
            case_stage=case.stage if case else None,
            preferences=_preferences(victim) if victim else None,
            summary=await self._summary(handoff, conversation, transcript),
            transcript=transcript,
            notes=notes,
        )

    async def _summary(
        self, handoff: Handoff, conversation: Conversation, transcript: list[Line]
    ) -> str:
        """One or two plain sentences: why, what they asked about, how many messages."""
        intents = await self.gateway.rasa.intents(conversation.rasa_sender)
        topics = list(dict.fromkeys(TOPICS[i] for i in intents if i in TOPICS))
        said = [line for line in transcript if line.who == "person"]
        parts = [REASONS.get(handoff.reason, handoff.reason) + "."]
        if topics:
            parts.append("Asked about: " + ", ".join(topics) + ".")
        parts.append(f"{len(said)} recent message{'s' if len(said) != 1 else ''} from them.")
        if any(line.urgent for line in said):
            parts.append("A safety message was flagged: the 999 reply went out.")
        return " ".join(parts)

    async def transcript(
        self, session: AsyncSession, conversation_id: int, limit: int | None = None
    ) -> list[Line]:
        """The latest messages both ways, oldest first. Held secrets show as hidden."""
        limit = limit or self.settings.handoff_transcript_messages
        inbound = (
            await session.execute(
                select(Inbound.received_at, Inbound.text, Inbound.kind, Inbound.safety_tier)
                .where(Inbound.conversation_id == conversation_id)
                .order_by(Inbound.id.desc())
                .limit(limit)
            )
        ).all()
        outbound = (
            await session.execute(
                select(Outbound.created_at, Outbound.text, Outbound.source)
                .where(Outbound.conversation_id == conversation_id)
                .order_by(Outbound.id.desc())
                .limit(limit)
            )
        ).all()
        lines = [
            Line(
                aware(r.received_at) or r.received_at,
                "person",
                r.text if r.text is not None else f"({'hidden' if r.kind == 'text' else r.kind})",
                urgent=r.safety_tier > 0,
            )
            for r in inbound
        ]
        lines += [
            Line(
                aware(r.created_at) or r.created_at,
                "coordinator" if r.source == "human" else "assistant",
                r.text,
            )
            for r in outbound
        ]
        lines.sort(key=lambda line: line.at)
        return lines[-limit:]

    async def figures(self, since: datetime) -> dict[str, Any]:
        """Response times since a date: medians of minutes to claim and to first reply,
        how many missed their target (escalated), and ratings."""
        async with self.sessions() as session:
            handoffs = (
                await session.scalars(select(Handoff).where(Handoff.created_at >= since))
            ).all()
            ratings = (
                await session.scalars(
                    select(Feedback.rating).where(
                        Feedback.at >= since, Feedback.rating.is_not(None)
                    )
                )
            ).all()

        def median_minutes(pairs: list[tuple[datetime | None, datetime | None]]) -> float | None:
            spans = [
                ((aware(b) or b) - (aware(a) or a)).total_seconds() / 60
                for a, b in pairs
                if a is not None and b is not None
            ]
            return round(statistics.median(spans), 1) if spans else None

        return {
            "handoffs": len(handoffs),
            "urgent": sum(h.priority == Priority.URGENT for h in handoffs),
            "median_minutes_to_claim": median_minutes(
                [(h.created_at, h.claimed_at) for h in handoffs]
            ),
            "median_minutes_to_first_reply": median_minutes(
                [(h.created_at, h.first_reply_at) for h in handoffs]
            ),
            "escalated": sum(h.escalated_at is not None for h in handoffs),
            "returned_to_bot": sum(h.outcome == "returned_to_bot" for h in handoffs),
            "ratings": len(ratings),
            "average_rating": round(statistics.fmean(ratings), 2) if ratings else None,
        }


def _preferences(victim: Victim) -> dict[str, Any]:
    """Safe-contact preferences, as a coordinator should see them."""
    return {
        "safe_to_text": victim.safe_to_text,
        "discreet": victim.discreet,
        "quiet_hours": (
            f"{victim.quiet_start:%H:%M}-{victim.quiet_end:%H:%M}"
            if victim.quiet_start and victim.quiet_end
            else None
        ),
        "via_advocate": victim.via_advocate,
        "paused": victim.paused,
    }
