"""Helpers for the handoff tests: coordinator accounts in a live gateway's database,
and a sync session on it."""

from __future__ import annotations

import itertools
from typing import Any

from sqlalchemy import select

from bot.handoff.accounts import add_coordinator, ensure_canned_replies
from bot.handoff.models import Coordinator, Handoff
from bot.models import Contact, Conversation
from tests.harness import LiveGateway, fresh_number, wait_until

PASSWORD = "correct horse battery staple"
_names = itertools.count(1)
_chats = itertools.count(7_000_001)


def coordinator(
    live: LiveGateway,
    *,
    role: str = "coordinator",
    on_duty: bool = True,
    telegram: bool = False,
    phone: str | None = None,
    hours: str = "",
    name: str | None = None,
    **extra: Any,
) -> Coordinator:
    """A new coordinator account (unique username), with the console password PASSWORD."""
    number = next(_names)
    with live.db() as session, session.begin():
        made = add_coordinator(
            session,
            f"coord{number}",
            display_name=name or f"Sam{number}",
            role=role,
            password=PASSWORD,
            telegram_chat_id=str(next(_chats)) if telegram else None,
            phone=phone,
            hours=hours,
            on_duty=on_duty,
        )
        for key, value in extra.items():
            setattr(made, key, value)
        ensure_canned_replies(session)
    return made


def everyone_off_duty(live: LiveGateway) -> None:
    """Other tests' coordinators must not answer this test's handoffs."""
    with live.db() as session, session.begin():
        for c in session.scalars(select(Coordinator)):
            c.on_duty = False


def greeted(live: LiveGateway) -> tuple[str, Conversation]:
    """A new person who has said hello by SMS (and been answered): number, conversation."""
    number = fresh_number()
    live.sms(number, "hello")
    wait_until(lambda: live.twilio.to(number), 1, timeout=90)
    return number, conversation_of(live, "sms", number)


def conversation_of(live: LiveGateway, channel: str, address: str) -> Conversation:
    with live.db() as session:
        found = session.scalar(
            select(Conversation)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.channel == channel, Contact.address == address)
        )
        assert found is not None, (channel, address)
        return found


def open_handoff(live: LiveGateway, conversation_id: int) -> Handoff | None:
    with live.db() as session:
        return session.scalar(
            select(Handoff).where(
                Handoff.conversation_id == conversation_id, Handoff.state != "closed"
            )
        )
