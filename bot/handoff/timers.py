"""The desk's timers: response targets (alert again, escalate to supervisors) and
nobody on duty (back to the bot with a call-back task). `Timers` is mixed into
`HandoffDesk`, which provides the sessions, settings, alerts and messages used here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, or_, select, update

from actions import content
from bot.cases.models import Task, TaskState
from bot.handoff import availability
from bot.handoff.models import REASONS, Coordinator, Handoff, HandoffEvent, HandoffState, Priority
from bot.handoff.packets import aware
from bot.models import Conversation, Owner

logger = logging.getLogger(__name__)


class Timers:
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
            return_at = aware(handoff.return_at)
            if return_at is not None and return_at <= now:
                await self._return_to_bot(handoff, now)
                continue
            minutes = (
                self.settings.handoff_urgent_minutes
                if handoff.priority == Priority.URGENT
                else self.settings.handoff_normal_minutes
            )
            last = aware(handoff.last_alert_at) or aware(handoff.created_at) or now
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
