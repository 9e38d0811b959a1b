"""The handoff desk: who owns a conversation, and everything coordinators do with it.

The gateway's `Conversation.owner` is the source of truth for who answers: `bot`,
`queued` (waiting for a person) or `human`. Rasa's tracker is paused too, as a second
guard, but a Rasa session expiry un-pauses it, so the gateway never asks Rasa while
the owner is not the bot. Every change here is one transaction with its audit entry;
messages to the person and alerts to coordinators go out after it commits.

Coordinators reach the desk from the console (`bot/handoff/console.py`), Telegram
(`bot/handoff/telegram.py`) and SMS (`bot/handoff/sms.py`); each is a thin adapter over
the methods below, which raise `HandoffError` with a sentence to show them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from actions import content
from bot.cases.models import Case, Task, TaskState, Victim
from bot.cases.notify import quiet_until
from bot.handoff import audit, availability, feedback
from bot.handoff.availability import LONDON
from bot.handoff.models import (
    Coordinator,
    Handoff,
    HandoffEvent,
    HandoffState,
    Priority,
    Role,
)
from bot.models import Contact, Conversation, Inbound, Outbound, Owner
from bot.rasa_client import RasaUnavailable

if TYPE_CHECKING:
    from bot.gateway import Gateway, Notified, _Out

logger = logging.getLogger(__name__)

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
WAITING_EVERY = timedelta(minutes=10)
# A reply within this time of the person's own message is part of a live chat.
LIVE_CHAT = timedelta(minutes=30)  # "your message is with the team", at most this often
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


class HandoffError(Exception):
    """Something a coordinator asked for that can't be done; the message says why."""


class CoordinatorLink(Protocol):
    """A way to message coordinators outside the console (Telegram, SMS)."""

    channel: str

    def reaches(self, coordinator: Coordinator) -> bool: ...

    async def send(self, coordinator: Coordinator, text: str, *, claim: int | None = None) -> None:
        """Send `text`; with `claim`, offer a one-tap way to claim that handoff."""
        ...


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


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _minutes(value: float) -> str:
    whole = round(value)
    if whole < 60:
        return f"{whole} minute" + ("" if whole == 1 else "s")
    hours = round(value / 60)
    return f"{hours} hour" + ("" if hours == 1 else "s")


class HandoffDesk:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.sessions = gateway.sessions
        self.links: list[CoordinatorLink] = []
        self._watchers: set[asyncio.Queue[dict[str, Any]]] = set()

    # -- live updates for the console -------------------------------------------------

    def add_link(self, link: CoordinatorLink) -> None:
        self.links.append(link)

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=200)
        self._watchers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._watchers.discard(queue)

    def broadcast(self, event: dict[str, Any]) -> None:
        """Tell every open console something changed (ids only; they fetch the rest)."""
        for queue in list(self._watchers):
            if not queue.full():
                queue.put_nowait(event)

    # -- starting a handoff -------------------------------------------------------------

    async def start(
        self,
        conversation_id: int,
        reason: str,
        *,
        urgent: bool = False,
        out: _Out | None = None,
        by: Coordinator | None = None,
    ) -> int:
        """Queue a conversation for a person (or give it to `by`, a coordinator taking
        over). Starting again while one is open returns it (raised to urgent if asked).
        The person is told what happens next; coordinators are alerted."""
        if reason not in REASONS:
            raise ValueError(f"unknown handoff reason {reason!r}")
        urgent = urgent or reason in URGENT_REASONS
        now = datetime.now(UTC)
        for attempt in range(2):
            try:
                handoff, created, raised, free, sender = await self._open(
                    conversation_id, reason, urgent, by, now
                )
                break
            except IntegrityError:  # another start won the race: use that one
                if attempt:
                    raise
        await self._pause_rasa(conversation_id, sender)
        # A person already talking to them sees the urgent message relayed instead.
        if created or (raised and handoff.state == HandoffState.QUEUED):
            await self._tell_started(handoff, out, by, free, urgent, now)
            if by is None:
                targets = free or (await self._supervisors() if urgent else [])
                await self._alert(handoff, targets, first=created)
        self.broadcast({"type": "queue"})
        return handoff.id

    async def _open(
        self,
        conversation_id: int,
        reason: str,
        urgent: bool,
        by: Coordinator | None,
        now: datetime,
    ) -> tuple[Handoff, bool, bool, list[Coordinator], str]:
        async with self.sessions() as session, session.begin():
            conversation = await session.get(Conversation, conversation_id)
            if conversation is None:
                raise HandoffError("That conversation does not exist.")
            handoff = await self._open_for(session, conversation_id)
            free = await self._free(session, now)
            created = raised = False
            if handoff is None:
                handoff = Handoff(
                    conversation_id=conversation_id,
                    reason=reason,
                    priority=Priority.URGENT if urgent else Priority.NORMAL,
                    state=HandoffState.CLAIMED if by else HandoffState.QUEUED,
                    coordinator_id=by.id if by else None,
                    claimed_at=now if by else None,
                    created_at=now,
                )
                if by is None and not free and self.settings.handoff_return_minutes > 0:
                    handoff.return_at = now + timedelta(
                        minutes=self.settings.handoff_return_minutes
                    )
                session.add(handoff)
                await session.flush()
                created = True
                conversation.owner = Owner.HUMAN if by else Owner.QUEUED
                conversation.waiting_told_at = now
                conversation.choices = None
                session.add(
                    HandoffEvent(
                        handoff_id=handoff.id,
                        kind="taken_over" if by else "queued",
                        coordinator_id=by.id if by else None,
                        detail={"reason": reason, "urgent": urgent},
                    )
                )
                if by is not None:
                    await self._make_current(session, by.id, handoff.id)
                    session.add(
                        audit.entry(
                            by,
                            "take_over",
                            conversation_id=conversation_id,
                            handoff_id=handoff.id,
                        )
                    )
            elif urgent and handoff.priority != Priority.URGENT:
                handoff.priority = Priority.URGENT
                raised = True
                session.add(
                    HandoffEvent(handoff_id=handoff.id, kind="urgent", detail={"reason": reason})
                )
            sender = conversation.rasa_sender
        return handoff, created, raised, free, sender

    async def _tell_started(
        self,
        handoff: Handoff,
        out: _Out | None,
        by: Coordinator | None,
        free: list[Coordinator],
        urgent: bool,
        now: datetime,
    ) -> None:
        if by is not None:
            texts = [content.item("handoff.claimed").part(0, name=by.display_name)]
        elif free:
            if urgent:
                texts = list(content.item("handoff.queued_urgent").parts)
            else:
                wait = _minutes(self.settings.handoff_normal_minutes)
                item = content.item("handoff.queued")
                texts = [item.part(0, wait=wait), *item.parts[1:]]
        else:
            texts = await self._closed_texts(now)
        await self._tell(handoff.conversation_id, texts, out=out)

    async def _closed_texts(self, now: datetime) -> list[str]:
        async with self.sessions() as session:
            everyone = (await session.scalars(select(Coordinator))).all()
        reopens = availability.reopens_at(everyone, now)
        if reopens is None:
            return list(content.item("handoff.nobody_free").parts)
        item = content.item("handoff.nobody_on_duty")
        return [item.part(0, when=availability.say_when(reopens, now)), *item.parts[1:]]

    # -- the person's messages while a person owns the conversation ---------------------

    async def relay(
        self, out: _Out, conversation: Conversation, text: str, *, urgent: bool
    ) -> bool:
        """A message from the person while the conversation is not the bot's: it is
        for the coordinator (already stored as an inbound message). False if there is
        no open handoff after all (then the conversation is the bot's again)."""
        now = datetime.now(UTC)
        raised = False
        async with self.sessions() as session, session.begin():
            handoff = await self._open_for(session, conversation.id)
            if handoff is None:
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == conversation.id)
                    .values(owner=Owner.BOT)
                )
                logger.warning(
                    "Conversation %s had no open handoff: back to the bot", conversation.id
                )
                return False
            if urgent and handoff.priority != Priority.URGENT:
                handoff.priority = Priority.URGENT
                raised = True
                session.add(HandoffEvent(handoff_id=handoff.id, kind="urgent"))
            coordinator = (
                await session.get(Coordinator, handoff.coordinator_id)
                if handoff.coordinator_id
                else None
            )
            told = _aware(conversation.waiting_told_at)
            remind = (
                handoff.state == HandoffState.QUEUED
                and not urgent
                and (told is None or now - told >= WAITING_EVERY)
            )
            if remind:
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == conversation.id)
                    .values(waiting_told_at=now)
                )
        if coordinator is not None:
            flag = "URGENT " if urgent else ""
            shown = text or "(a message that was not kept)"
            await self._send_to(coordinator, f"#{handoff.id} {flag}Person: {shown}")
        elif raised:
            free = await self._available_now()
            await self._alert(handoff, free or await self._supervisors(), first=False)
        if remind:
            await self._tell(conversation.id, list(content.item("handoff.waiting").parts), out=out)
        self.broadcast({"type": "message", "conversation_id": conversation.id, "urgent": urgent})
        if raised:
            self.broadcast({"type": "queue"})
        return True

    # -- what coordinators do --------------------------------------------------------

    async def claim(self, handoff_id: int, coordinator: Coordinator) -> bool:
        """Claim a queued handoff. Exactly one of several coordinators racing wins
        (a conditional UPDATE); False for the others."""
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            won = (
                await session.execute(
                    update(Handoff)
                    .where(Handoff.id == handoff_id, Handoff.state == HandoffState.QUEUED)
                    .values(
                        state=HandoffState.CLAIMED,
                        coordinator_id=coordinator.id,
                        claimed_at=now,
                        return_at=None,
                    )
                    .returning(Handoff.conversation_id)
                )
            ).first()
            if won is None:
                existing = await session.get(Handoff, handoff_id)
                if existing is None:
                    raise HandoffError(f"There is no handoff #{handoff_id}.")
                return False
            conversation_id = won.conversation_id
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(owner=Owner.HUMAN)
            )
            await self._make_current(session, coordinator.id, handoff_id)
            session.add(
                HandoffEvent(handoff_id=handoff_id, kind="claimed", coordinator_id=coordinator.id)
            )
            session.add(
                audit.entry(
                    coordinator, "claim", conversation_id=conversation_id, handoff_id=handoff_id
                )
            )
        await self._tell(
            conversation_id,
            [content.item("handoff.claimed").part(0, name=coordinator.display_name)],
        )
        self.broadcast({"type": "queue"})
        return True

    async def not_claimed(self, handoff_id: int, coordinator: Coordinator) -> str:
        """Why a claim did not win, for the coordinator: who has it, or it is closed."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Handoff.state, Handoff.coordinator_id, Coordinator.display_name)
                    .outerjoin(Coordinator, Coordinator.id == Handoff.coordinator_id)
                    .where(Handoff.id == handoff_id)
                )
            ).first()
        if row is None:
            return f"There is no handoff #{handoff_id}."
        if row.state == HandoffState.CLOSED:
            return f"#{handoff_id} is already closed."
        if row.coordinator_id == coordinator.id:
            return f"#{handoff_id} is already yours."
        return f"{row.display_name or 'Another coordinator'} already has #{handoff_id}."

    async def take_over(self, conversation_id: int, coordinator: Coordinator) -> int:
        """A coordinator takes a conversation from the bot (or from the queue)."""
        async with self.sessions() as session:
            handoff = await self._open_for(session, conversation_id)
        if handoff is not None:
            if handoff.state == HandoffState.QUEUED and await self.claim(handoff.id, coordinator):
                return handoff.id
            if handoff.coordinator_id == coordinator.id:
                return handoff.id
            raise HandoffError("Another coordinator already has this conversation.")
        return await self.start(conversation_id, "console", by=coordinator)

    async def transfer(
        self, handoff_id: int, coordinator: Coordinator, to_username: str
    ) -> Coordinator:
        async with self.sessions() as session, session.begin():
            handoff = await self._owned(session, handoff_id, coordinator)
            target = await session.scalar(
                select(Coordinator).where(
                    Coordinator.username == to_username.strip().lstrip("@"),
                    Coordinator.active.is_(True),
                )
            )
            if target is None:
                raise HandoffError(f"There is no coordinator called {to_username!r}.")
            if target.id == handoff.coordinator_id:
                raise HandoffError(f"{target.display_name} already has this conversation.")
            handoff.coordinator_id = target.id
            handoff.state = HandoffState.CLAIMED
            handoff.claimed_at = handoff.claimed_at or datetime.now(UTC)
            await session.execute(
                update(Conversation)
                .where(Conversation.id == handoff.conversation_id)
                .values(owner=Owner.HUMAN)
            )
            await self._clear_current(session, handoff_id)
            await self._make_current(session, target.id, handoff_id)
            session.add(
                HandoffEvent(
                    handoff_id=handoff_id,
                    kind="transferred",
                    coordinator_id=coordinator.id,
                    detail={"to": target.id},
                )
            )
            session.add(
                audit.entry(
                    coordinator,
                    "transfer",
                    conversation_id=handoff.conversation_id,
                    handoff_id=handoff_id,
                    detail={"to": target.id},
                )
            )
        await self._send_to(
            target,
            f"#{handoff_id} was transferred to you by {coordinator.display_name}. "
            "Your messages here now go to that person.",
        )
        await self._tell(
            handoff.conversation_id,
            [content.item("handoff.claimed").part(0, name=target.display_name)],
        )
        self.broadcast({"type": "queue"})
        return target

    async def note(self, handoff_id: int, coordinator: Coordinator, text: str) -> None:
        text = text.strip()
        if not text:
            raise HandoffError("The note is empty.")
        async with self.sessions() as session, session.begin():
            handoff = await session.get(Handoff, handoff_id)
            if handoff is None:
                raise HandoffError(f"There is no handoff #{handoff_id}.")
            session.add(
                HandoffEvent(
                    handoff_id=handoff_id,
                    kind="note",
                    coordinator_id=coordinator.id,
                    text=text[:4000],
                )
            )
            session.add(
                audit.entry(
                    coordinator,
                    "note",
                    conversation_id=handoff.conversation_id,
                    handoff_id=handoff_id,
                )
            )
        self.broadcast({"type": "message", "conversation_id": handoff.conversation_id})

    async def reply(
        self,
        handoff_id: int,
        coordinator: Coordinator,
        text: str,
        *,
        channel: str | None = None,
        provider_id: str | None = None,
    ) -> Notified | None:
        """Send a coordinator's message to the person, on the person's own channel.
        None when (`channel`, `provider_id`) was seen before: a redelivery."""
        from bot.gateway import MAX_TEXT, Reply

        text = text.strip()
        if not text:
            raise HandoffError("The message is empty.")
        if len(text) > MAX_TEXT:
            raise HandoffError(f"The message is too long (at most {MAX_TEXT} characters).")
        now = datetime.now(UTC)
        try:
            async with self.sessions() as session, session.begin():
                handoff = await self._owned(session, handoff_id, coordinator, claimed=True)
                contact = await self._contact(session, handoff.conversation_id)
                if contact.opted_out:
                    raise HandoffError(
                        "The person has stopped messages from Waymark (STOP). Nothing was sent."
                    )
                if contact.ended_at is not None:
                    raise HandoffError("The person has left the web chat. Nothing was sent.")
                unsafe = await self._unsafe_now(session, handoff.conversation_id, contact, now)
                if unsafe:
                    raise HandoffError(unsafe)
                session.add(
                    HandoffEvent(
                        handoff_id=handoff_id,
                        kind="reply",
                        coordinator_id=coordinator.id,
                        channel=channel,
                        provider_id=provider_id,
                    )
                )
                if handoff.first_reply_at is None:
                    handoff.first_reply_at = now
                session.add(
                    audit.entry(
                        coordinator,
                        "reply",
                        conversation_id=handoff.conversation_id,
                        handoff_id=handoff_id,
                    )
                )
                address = (contact.channel, contact.address)
        except IntegrityError:
            if provider_id is None:
                raise
            return None
        notified = await self.gateway.notify(*address, Reply(text), source="human")
        if notified.status == "opted_out":
            raise HandoffError("The person has stopped messages from Waymark. Nothing was sent.")
        if notified.status in {"no_channel", "failed"}:
            raise HandoffError(
                "The message could not be delivered. Try again, or close with a note."
            )
        self.broadcast({"type": "message", "conversation_id": handoff.conversation_id})
        return notified

    async def _unsafe_now(
        self, session: AsyncSession, conversation_id: int, contact: Contact, now: datetime
    ) -> str | None:
        """Why a reply must wait, from a verified victim's safe-contact preferences.
        A reply soon after their own message is part of the chat they started; later,
        their quiet hours, a pause, or "texts are not safe" hold it back."""
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None or conversation.verified_victim_id is None:
            return None
        victim = await session.get(Victim, conversation.verified_victim_id)
        last = await session.scalar(
            select(func.max(Inbound.received_at)).where(Inbound.conversation_id == conversation_id)
        )
        if victim is None or (last is not None and now - (_aware(last) or now) < LIVE_CHAT):
            return None
        quiet = quiet_until(now, victim.quiet_start, victim.quiet_end)
        if victim.paused:
            reason = "They have paused messages from Waymark"
        elif quiet is not None:
            reason = f"It is their quiet time until {quiet.astimezone(LONDON):%H:%M}"
        elif contact.channel == "sms" and not victim.safe_to_text:
            reason = "They said texts are not safe for them"
        else:
            return None
        return (
            f"{reason}, and they have not written for {_minutes(LIVE_CHAT.total_seconds() / 60)}. "
            "Nothing was sent. Add a note, and reply when it is safe."
        )

    async def close(
        self,
        handoff_id: int,
        coordinator: Coordinator | None,
        outcome: str,
        *,
        action: str = "close",
    ) -> None:
        """End a handoff: the conversation goes back to the bot (Rasa resumes), the
        person is told, and offered a rating. The backlog is never answered by the bot."""
        if outcome not in OUTCOMES and not (coordinator is None and outcome == "returned_to_bot"):
            raise HandoffError(f"Choose an outcome: {', '.join(OUTCOMES)}.")
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            if coordinator is None:
                handoff = await session.get(Handoff, handoff_id)
                if handoff is None or handoff.state == HandoffState.CLOSED:
                    return
            else:
                handoff = await self._owned(session, handoff_id, coordinator, queued_ok=True)
            handoff.state = HandoffState.CLOSED
            handoff.closed_at = now
            handoff.outcome = outcome
            await session.execute(
                update(Conversation)
                .where(Conversation.id == handoff.conversation_id)
                .values(owner=Owner.BOT, choices=None)
            )
            await self._clear_current(session, handoff_id)
            session.add(
                HandoffEvent(
                    handoff_id=handoff_id,
                    kind="handed_back" if action == "hand_back" else "closed",
                    coordinator_id=coordinator.id if coordinator else None,
                    detail={"outcome": outcome},
                )
            )
            if coordinator is not None:
                session.add(
                    audit.entry(
                        coordinator,
                        action,
                        conversation_id=handoff.conversation_id,
                        handoff_id=handoff_id,
                        detail={"outcome": outcome},
                    )
                )
            conversation_id, sender = (
                handoff.conversation_id,
                await session.scalar(
                    select(Conversation.rasa_sender).where(
                        Conversation.id == handoff.conversation_id
                    )
                ),
            )
        await self.resume_rasa(conversation_id, sender or "")
        if outcome != "returned_to_bot":
            await self._tell(conversation_id, list(content.item("handoff.back").parts))
            await feedback.offer(self.gateway, conversation_id, handoff_id=handoff_id)
        self.broadcast({"type": "queue"})

    async def hand_back(self, handoff_id: int, coordinator: Coordinator) -> None:
        await self.close(handoff_id, coordinator, "handed_back", action="hand_back")

    async def set_duty(self, coordinator: Coordinator, on_duty: bool) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Coordinator).where(Coordinator.id == coordinator.id).values(on_duty=on_duty)
            )
            session.add(audit.entry(coordinator, "duty_on" if on_duty else "duty_off"))
        coordinator.on_duty = on_duty
        if on_duty:
            waiting = [q for q in await self.queue() if q.state == HandoffState.QUEUED]
            if waiting:
                await self._send_to(
                    coordinator,
                    f"{len(waiting)} waiting. Oldest: #{waiting[0].handoff_id} "
                    f"({waiting[0].reason_text}).",
                    claim=waiting[0].handoff_id,
                )
        self.broadcast({"type": "queue"})

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
            created = _aware(handoff.created_at) or now
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
                Line(_aware(e.at) or e.at, name or "coordinator", e.text or "")
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
            created_at=_aware(handoff.created_at) or handoff.created_at,
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
                _aware(r.received_at) or r.received_at,
                "person",
                r.text if r.text is not None else f"({'hidden' if r.kind == 'text' else r.kind})",
                urgent=r.safety_tier > 0,
            )
            for r in inbound
        ]
        lines += [
            Line(
                _aware(r.created_at) or r.created_at,
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
                    select(feedback.Feedback.rating).where(
                        feedback.Feedback.at >= since, feedback.Feedback.rating.is_not(None)
                    )
                )
            ).all()

        def median_minutes(pairs: list[tuple[datetime | None, datetime | None]]) -> float | None:
            spans = [
                ((_aware(b) or b) - (_aware(a) or a)).total_seconds() / 60
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

    # -- timers: response targets, nobody on duty -----------------------------------------

    async def check_timers(self, now: datetime | None = None) -> None:
        """Alert again (and escalate to supervisors) when a handoff waits past its
        target; hand a conversation back to the bot, with a call-back task, when nobody
        came on duty in time."""
        now = now or datetime.now(UTC)
        async with self.sessions() as session:
            waiting = (
                await session.scalars(
                    select(Handoff).where(Handoff.state == HandoffState.QUEUED).order_by(Handoff.id)
                )
            ).all()
        for handoff in waiting:
            return_at = _aware(handoff.return_at)
            if return_at is not None and return_at <= now:
                await self._return_to_bot(handoff, now)
                continue
            minutes = (
                self.settings.handoff_urgent_minutes
                if handoff.priority == Priority.URGENT
                else self.settings.handoff_normal_minutes
            )
            last = _aware(handoff.last_alert_at) or _aware(handoff.created_at) or now
            if now - last < timedelta(minutes=minutes):
                continue
            async with self.sessions() as session, session.begin():
                # Conditional, so two gateways checking at once alert once.
                done = await session.execute(
                    update(Handoff)
                    .where(
                        Handoff.id == handoff.id,
                        Handoff.state == HandoffState.QUEUED,
                        or_(
                            Handoff.last_alert_at.is_(None),
                            Handoff.last_alert_at == handoff.last_alert_at,
                        ),
                    )
                    .values(
                        last_alert_at=now, escalated_at=func.coalesce(Handoff.escalated_at, now)
                    )
                )
                if done.rowcount != 1:
                    continue
                session.add(HandoffEvent(handoff_id=handoff.id, kind="escalated"))
            targets = {c.id: c for c in [*await self._available_now(), *await self._supervisors()]}
            await self._alert(handoff, list(targets.values()), first=False, overdue=True)
            self.broadcast({"type": "queue"})

    async def _return_to_bot(self, handoff: Handoff, now: datetime) -> None:
        async with self.sessions() as session, session.begin():
            done = await session.execute(
                update(Handoff)
                .where(Handoff.id == handoff.id, Handoff.state == HandoffState.QUEUED)
                .values(state=HandoffState.CLOSED, closed_at=now, outcome="returned_to_bot")
            )
            if done.rowcount != 1:
                return
            await session.execute(
                update(Conversation)
                .where(Conversation.id == handoff.conversation_id)
                .values(owner=Owner.BOT)
            )
            session.add(HandoffEvent(handoff_id=handoff.id, kind="returned_to_bot"))
            session.add(
                Task(
                    kind="callback_request",
                    dedupe_key=f"callback:{handoff.id}",
                    priority=handoff.priority,
                    state=TaskState.OPEN,
                    conversation_id=handoff.conversation_id,
                    detail=f"Call back: {REASONS.get(handoff.reason, handoff.reason)} "
                    f"(handoff #{handoff.id}); nobody was on duty.",
                    due_at=now,
                )
            )
            sender = await session.scalar(
                select(Conversation.rasa_sender).where(Conversation.id == handoff.conversation_id)
            )
            everyone = (await session.scalars(select(Coordinator))).all()
        await self.resume_rasa(handoff.conversation_id, sender or "")
        reopens = availability.reopens_at(everyone, now)
        when = availability.say_when(reopens, now) if reopens else "as soon as they can"
        await self._tell(
            handoff.conversation_id, [content.item("handoff.returned").part(0, when=when)]
        )
        self.broadcast({"type": "queue"})

    async def run_periodically(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.check_timers()
            except Exception:
                logger.exception("Handoff timers failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.settings.handoff_check_seconds)

    # -- Rasa -------------------------------------------------------------------------

    async def _pause_rasa(self, conversation_id: int, sender: str) -> None:
        try:
            await self.gateway.rasa.add_event(sender, {"event": "pause"})
        except RasaUnavailable as error:
            # The gateway's owner field is what keeps the bot quiet; this is the backup.
            logger.warning("Could not pause Rasa for conversation %s: %s", conversation_id, error)

    async def resume_rasa(self, conversation_id: int, sender: str) -> None:
        """Resume Rasa's tracker; if Rasa can't be reached the flag stays and the
        gateway resumes it before the next message goes to Rasa."""
        try:
            await self.gateway.rasa.add_event(sender, {"event": "resume"})
        except RasaUnavailable as error:
            logger.warning("Could not resume Rasa for conversation %s: %s", conversation_id, error)
            return
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id, Conversation.owner == Owner.BOT)
                .values(rasa_paused=False)
            )

    # -- markers from the assistant -----------------------------------------------------

    async def on_marker(
        self, out: _Out, conversation_id: int, marker: dict[str, Any], text: str
    ) -> None:
        """`{"handoff": {"reason": ...}}` starts a handoff; `{"feedback": "offer"}` offers
        a rating (at most once a day); `{"feedback": "store"}` keeps the message."""
        handoff = marker.get("handoff")
        if isinstance(handoff, dict):
            reason = str(handoff.get("reason") or "request_human")
            await self.start(
                conversation_id, reason if reason in REASONS else "request_human", out=out
            )
        kind = marker.get("feedback")
        if kind == "offer":
            await feedback.offer(self.gateway, conversation_id, out=out, daily=True)
        elif kind == "store" and text:
            await feedback.store(self.gateway, conversation_id, comment=text, source="message")

    # -- helpers ------------------------------------------------------------------------

    async def _open_for(self, session: AsyncSession, conversation_id: int) -> Handoff | None:
        return await session.scalar(
            select(Handoff).where(
                Handoff.conversation_id == conversation_id, Handoff.state != HandoffState.CLOSED
            )
        )

    async def _owned(
        self,
        session: AsyncSession,
        handoff_id: int,
        coordinator: Coordinator,
        *,
        claimed: bool = False,
        queued_ok: bool = False,
    ) -> Handoff:
        """An open handoff this coordinator may act on: theirs, or any for a supervisor."""
        handoff = await session.get(Handoff, handoff_id, with_for_update=True)
        if handoff is None:
            raise HandoffError(f"There is no handoff #{handoff_id}.")
        if handoff.state == HandoffState.CLOSED:
            raise HandoffError(f"Handoff #{handoff_id} is already closed.")
        supervisor = coordinator.role in {Role.SUPERVISOR, Role.ADMIN}
        if handoff.state == HandoffState.QUEUED:
            if claimed:
                raise HandoffError(f"Claim #{handoff_id} first.")
            if queued_ok or supervisor:
                return handoff
            raise HandoffError(f"Claim #{handoff_id} first.")
        if handoff.coordinator_id != coordinator.id and not supervisor:
            raise HandoffError(f"#{handoff_id} belongs to another coordinator.")
        if claimed and handoff.coordinator_id != coordinator.id:
            raise HandoffError(f"#{handoff_id} belongs to another coordinator.")
        return handoff

    async def _contact(self, session: AsyncSession, conversation_id: int) -> Contact:
        contact = await session.scalar(
            select(Contact)
            .join(Conversation, Conversation.contact_id == Contact.id)
            .where(Conversation.id == conversation_id)
        )
        assert contact is not None
        return contact

    @staticmethod
    async def _make_current(session: AsyncSession, coordinator_id: int, handoff_id: int) -> None:
        await session.execute(
            update(Coordinator)
            .where(Coordinator.id == coordinator_id)
            .values(current_handoff_id=handoff_id)
        )

    @staticmethod
    async def _clear_current(session: AsyncSession, handoff_id: int) -> None:
        await session.execute(
            update(Coordinator)
            .where(Coordinator.current_handoff_id == handoff_id)
            .values(current_handoff_id=None)
        )

    async def _free(self, session: AsyncSession, now: datetime) -> list[Coordinator]:
        everyone = (
            await session.scalars(select(Coordinator).where(Coordinator.active.is_(True)))
        ).all()
        return [c for c in everyone if availability.available(c, now)]

    async def _available_now(self) -> list[Coordinator]:
        async with self.sessions() as session:
            return await self._free(session, datetime.now(UTC))

    async def _supervisors(self) -> list[Coordinator]:
        async with self.sessions() as session:
            return list(
                (
                    await session.scalars(
                        select(Coordinator).where(
                            Coordinator.active.is_(True),
                            Coordinator.role.in_([Role.SUPERVISOR, Role.ADMIN]),
                        )
                    )
                ).all()
            )

    async def _alert(
        self,
        handoff: Handoff,
        coordinators: Sequence[Coordinator],
        *,
        first: bool,
        overdue: bool = False,
    ) -> None:
        """A short alert with a way to claim, to each coordinator's Telegram or phone.
        No message content: the packet is shown once claimed."""
        urgent = handoff.priority == Priority.URGENT
        waited = _minutes(
            (datetime.now(UTC) - (_aware(handoff.created_at) or datetime.now(UTC))).total_seconds()
            / 60
        )
        head = "URGENT handoff" if urgent else "Handoff"
        status = f"unclaimed for {waited}" if overdue else ("new" if first else "now urgent")
        text = f"{head} #{handoff.id} ({status}): {REASONS.get(handoff.reason, handoff.reason)}."
        sent = 0
        for coordinator in coordinators:
            sent += await self._send_to(coordinator, text, claim=handoff.id)
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Handoff)
                .where(Handoff.id == handoff.id)
                .values(last_alert_at=datetime.now(UTC))
            )
            session.add(
                HandoffEvent(
                    handoff_id=handoff.id,
                    kind="alerted",
                    detail={"to": [c.id for c in coordinators], "sent": sent, "overdue": overdue},
                )
            )

    async def _send_to(
        self, coordinator: Coordinator, text: str, *, claim: int | None = None
    ) -> int:
        """Message a coordinator on the first link that reaches them; 1 if sent."""
        for link in self.links:
            if link.reaches(coordinator):
                try:
                    await link.send(coordinator, text, claim=claim)
                    return 1
                except Exception:
                    logger.exception(
                        "Could not alert coordinator %s by %s", coordinator.id, link.channel
                    )
        return 0

    async def _tell(
        self, conversation_id: int, texts: list[str], *, out: _Out | None = None
    ) -> None:
        """Messages to the person: in the current turn if there is one, or as a notice."""
        from bot.gateway import Reply

        if out is not None:
            for text in texts:
                await out.send(Reply(text), source="system")
            return
        async with self.sessions() as session:
            contact = await self._contact(session, conversation_id)
        for text in texts:
            await self.gateway.notify(
                contact.channel, contact.address, Reply(text), source="system"
            )


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
