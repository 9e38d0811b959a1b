"""The handoff desk: who owns a conversation, and everything coordinators do with it.

The gateway's `Conversation.owner` is the source of truth for who answers: `bot`,
`queued` (waiting for a person) or `human`. Rasa's tracker is paused too, as a second
guard, but a Rasa session expiry un-pauses it, so the gateway never asks Rasa while
the owner is not the bot. Every change here is one transaction with its audit entry;
messages to the person and alerts to coordinators go out after it commits.

Coordinators reach the desk from the console (`bot/handoff/console.py`), Telegram
(`bot/handoff/telegram.py`) and SMS (`bot/handoff/sms.py`); each is a thin adapter over
the methods below, which raise `HandoffError` with a sentence to show them. What they
read (queue, packet, figures) is in `packets.py`; the response-target timers in
`timers.py`; both are mixed into `HandoffDesk`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from actions import content
from bot.cases.models import Victim
from bot.cases.notify import quiet_until
from bot.handoff import audit, availability, feedback
from bot.handoff.availability import LONDON
from bot.handoff.errors import HandoffError
from bot.handoff.models import (
    OUTCOMES,
    REASONS,
    URGENT_REASONS,
    Coordinator,
    Handoff,
    HandoffEvent,
    HandoffState,
    Priority,
    Role,
)
from bot.handoff.packets import Views, aware
from bot.handoff.timers import Timers
from bot.models import Contact, Conversation, Inbound, Owner
from bot.rasa_client import RasaUnavailable

if TYPE_CHECKING:
    from bot.gateway import Gateway, Notified, _Out

logger = logging.getLogger(__name__)

WAITING_EVERY = timedelta(minutes=10)  # "your message is with the team", at most this often
# A reply within this time of the person's own message is part of a live chat.
LIVE_CHAT = timedelta(minutes=30)


class CoordinatorLink(Protocol):
    """A way to message coordinators outside the console (Telegram, SMS)."""

    channel: str

    def reaches(self, coordinator: Coordinator) -> bool: ...

    async def send(self, coordinator: Coordinator, text: str, *, claim: int | None = None) -> None:
        """Send `text`; with `claim`, offer a one-tap way to claim that handoff."""
        ...


def _minutes(value: float) -> str:
    whole = round(value)
    if whole < 60:
        return f"{whole} minute" + ("" if whole == 1 else "s")
    hours = round(value / 60)
    return f"{hours} hour" + ("" if hours == 1 else "s")


class HandoffDesk(Views, Timers):
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
        if created:
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
            told = aware(conversation.waiting_told_at)
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
        if victim is None or (last is not None and now - (aware(last) or now) < LIVE_CHAT):
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
            (datetime.now(UTC) - (aware(handoff.created_at) or datetime.now(UTC))).total_seconds()
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
