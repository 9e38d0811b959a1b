"""Feedback: a one-tap rating (1 to 5) after a handoff closes or a bot conversation ends
(at most once a day), and comments sent at any time. Stored per conversation, with
no personal data beyond what the person chose to write."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import update

from actions import content
from bot.handoff.models import Feedback
from bot.models import Contact, Conversation

if TYPE_CHECKING:
    from bot.gateway import Gateway, _Out

RATE_PREFIX = "waymark:rate:"
LABELS = ("Very poor", "Poor", "OK", "Good", "Very good")
DAILY = timedelta(days=1)
MAX_COMMENT = 1000
# "feedback: the officer never called back", "Feedback - great service"
_COMMENT = re.compile(
    r"^\s*feedback\b[\s:,.\-\u2013\u2014]*(?P<comment>.+)$", re.IGNORECASE | re.DOTALL
)


def buttons(handoff_id: int | None) -> tuple[dict[str, str], ...]:
    return tuple(
        {"title": label, "payload": f"{RATE_PREFIX}{handoff_id or 0}:{n}"}
        for n, label in enumerate(LABELS, start=1)
    )


def rating_in(payload: str | None) -> tuple[int | None, int] | None:
    """(handoff id or None, rating) from a rating button's payload."""
    if not payload or not payload.startswith(RATE_PREFIX):
        return None
    handoff, _, rating = payload.removeprefix(RATE_PREFIX).partition(":")
    if not (handoff.isdigit() and rating.isdigit() and 1 <= int(rating) <= 5):
        return None
    return (int(handoff) or None), int(rating)


def comment_in(text: str) -> str | None:
    """The comment in a message that starts with the word feedback."""
    match = _COMMENT.match(text or "")
    return match["comment"].strip()[:MAX_COMMENT] if match else None


async def offer(
    gateway: Gateway,
    conversation_id: int,
    *,
    out: _Out | None = None,
    handoff_id: int | None = None,
    daily: bool = False,
) -> bool:
    """Ask for a rating. With `daily`, not if one was offered in the last day."""
    from bot.gateway import Reply

    now = datetime.now(UTC)
    choices = list(buttons(handoff_id))
    async with gateway.sessions() as session, session.begin():
        conversation = await session.get(Conversation, conversation_id)
        if conversation is None:
            return False
        last = conversation.feedback_offered_at
        if last is not None and last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        if daily and last is not None and now - last < DAILY:
            return False
        conversation.feedback_offered_at = now
        if out is None:
            # Outside a turn: the numbers and buttons must still mean these choices.
            conversation.choices = choices
        contact = await session.get(Contact, conversation.contact_id)
        assert contact is not None
    reply = Reply(content.item("feedback.ask").parts[0], tuple(choices))
    if out is not None:
        await out.send(reply, source="system")
    else:
        await gateway.notify(contact.channel, contact.address, reply, source="system")
    return True


async def store(
    gateway: Gateway,
    conversation_id: int,
    *,
    rating: int | None = None,
    comment: str | None = None,
    source: str,
    handoff_id: int | None = None,
) -> None:
    async with gateway.sessions() as session, session.begin():
        session.add(
            Feedback(
                conversation_id=conversation_id,
                handoff_id=handoff_id,
                rating=rating,
                comment=comment[:MAX_COMMENT] if comment else None,
                source=source,
            )
        )


async def rate(gateway: Gateway, out: _Out, conversation_id: int, payload: str) -> bool:
    """Store a tapped (or numbered) rating and thank the person. False if not a rating."""
    parsed = rating_in(payload)
    if parsed is None:
        return False
    handoff_id, rating = parsed
    await store(
        gateway,
        conversation_id,
        rating=rating,
        source="handoff" if handoff_id else "bot",
        handoff_id=handoff_id,
    )
    async with gateway.sessions() as session, session.begin():
        await session.execute(
            update(Conversation).where(Conversation.id == conversation_id).values(choices=None)
        )
    from bot.gateway import Reply

    await out.send(Reply(content.item("feedback.rated").parts[0]), source="system")
    return True


async def comment(gateway: Gateway, out: _Out, conversation_id: int, text: str) -> bool:
    """Store "feedback ..." as a comment and thank the person. False if it isn't one."""
    said = comment_in(text)
    if not said:
        return False
    await store(gateway, conversation_id, comment=said, source="message")
    from bot.gateway import Reply

    await out.send(Reply(content.item("feedback.thanks").parts[0]), source="system")
    return True
