"""The privacy desk: the gateway's side of "what do you keep?", "delete my data" and STOP.

The assistant sends a marker (actions/privacy.py; docs/conversation-contract.md) and the
gateway answers, because only it knows the retention settings and what it holds:

- `{"privacy": "notice"}`: what is kept, for how long, who sees it (`privacy.notice`);
- `{"privacy": "forget"}`: what would be deleted, tailored to the person, and a yes/no
  question. The question is remembered here, in memory, for 10 minutes (a restart only
  means asking again). While it is open the next message is this desk's: a yes deletes
  everything (bot/privacy/erase.py); anything else deletes nothing and says so. A
  safety message is never a yes;
- `{"privacy": "preferences"}`: handed to the preferences desk (bot/privacy/preferences.py).

STOP (SMS) and /stop (Telegram) may mean someone else has the phone: when the address is
a victim's with an open case, that victim's messages are paused on every channel and a
coordinator gets an urgent task to check through the officer or advocate.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from actions import content
from bot.cases.models import Case, TaskState, Victim, VictimContact
from bot.cases.tasks import add_task_once
from bot.models import Channel, Contact, Conversation
from bot.privacy.erase import REACHED_SERVICE, forget_conversation
from bot.services.models import Referral

if TYPE_CHECKING:
    from bot.gateway import Gateway, _Out

logger = logging.getLogger(__name__)

CONFIRM_MINUTES = 10
YES, NO = "/affirm", "/deny"
BUTTONS = ({"title": "Yes, delete", "payload": YES}, {"title": "No, keep it", "payload": NO})
# What "this ..." is called in the question, by channel.
ROUTES = {Channel.SMS: "phone number", Channel.TELEGRAM: "Telegram chat", Channel.WEB: "chat"}
STOP_TASK = (
    "A victim with an open case sent STOP. It may not be safe to contact them. "
    "Check through their officer or advocate before any message."
)

# Typed answers: every word must come from the list, so "yes but not my case" is no yes.
_YES_FIRST = frozenset({"yes", "yeah", "yep", "yup", "y", "ok", "okay", "sure", "delete"})
_YES_WORDS = _YES_FIRST | frozenset(
    {"please", "pls", "plz", "it", "them", "everything", "all", "my", "data", "do", "go"}
)
_NO_FIRST = frozenset({"no", "nope", "nah", "n", "not", "keep", "don't", "dont"})
_NO_WORDS = _NO_FIRST | frozenset({"thanks", "thank", "you", "it", "them", "please", "not", "now"})


def typed_answer(text: str) -> str | None:
    """The typed answer to "delete it now?": "yes", "no", or None for anything else."""
    words = re.findall(r"[a-z']+", text.lower())
    if not words:
        return None
    if words[0] in _YES_FIRST and set(words) <= _YES_WORDS:
        return "yes"
    if words[0] in _NO_FIRST and set(words) - {"delete"} <= _NO_WORDS:
        # "no, delete it" is unclear: only "don't delete" may say delete.
        return "no" if "delete" not in words or words[0] in {"don't", "dont"} else None
    return None


class PrivacyDesk:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.sessions = gateway.sessions
        self.confirm_for = timedelta(minutes=CONFIRM_MINUTES)
        # conversation id -> when the "delete it now?" question lapses.
        self._asked: dict[int, datetime] = {}

    # -- markers ----------------------------------------------------------------------

    async def on_marker(
        self, out: _Out, conversation: Conversation, marker: dict[str, Any]
    ) -> None:
        what = marker.get("privacy")
        if what == "notice":
            await self.notice(out)
        elif what == "forget":
            await self.ask(out, conversation)
        elif what == "preferences":
            await self.gateway.preferences.start(out, conversation)
        else:
            logger.info("Unknown privacy marker %r", what)

    async def notice(self, out: _Out) -> None:
        item = content.item("privacy.notice")
        text = item.part(
            0,
            anonymous_days=str(self.settings.retention_anonymous_days),
            identified_days=str(self.settings.retention_identified_days),
        )
        # The rest follows on MORE (the action set `more_key`).
        await out.send(_reply(content.with_more_prompt(text)), source="bot")

    async def ask(self, out: _Out, conversation: Conversation) -> None:
        """Say what would be deleted (and what stays), then ask to confirm."""
        case_open, referral_sent = await self._what_stays(conversation)
        route = ROUTES.get(out.contact.channel, "chat")
        texts = [content.item("privacy.forget_ask").part(0, route=route)]
        if case_open:
            texts.append(content.item("privacy.forget_case").part(0))
        if referral_sent:
            texts.append(content.item("privacy.forget_referral").part(0))
        question = content.item("privacy.forget_question").part(0)
        for text in texts[:-1]:
            await out.send(_reply(text), source="bot")
        await out.send(_reply(f"{texts[-1]} {question}", BUTTONS), source="bot")
        now = datetime.now(UTC)
        if len(self._asked) > 1000:  # questions nobody answered: forget the lapsed ones
            self._asked = {k: v for k, v in self._asked.items() if v > now}
        self._asked[conversation.id] = now + self.confirm_for

    # -- a message while a question is open ----------------------------------------------

    async def handle(
        self, out: _Out, conversation: Conversation, text: str, *, safety: bool
    ) -> str | None:
        """Answer a message that belongs to an open question here (the preferences
        questions, or "delete it now?"): returns the inbound note, or None to carry on."""
        note = await self.gateway.preferences.handle(out, conversation, text, safety=safety)
        if note is not None:
            return note
        lapses = self._asked.pop(conversation.id, None)
        if lapses is None or lapses < datetime.now(UTC):
            return None  # a late "yes" reaches Rasa, which asks again
        answer = self._answer(out, conversation, text)
        if answer == "yes" and not safety:
            return await self.forget(out, conversation)
        await out.send_content("privacy.forget_kept", source="system")
        if answer == "no" and not safety:
            await self._clear_choices(conversation.id)  # a later "1" is no yes
            return "forget_kept"
        return None  # anything else (and any cry for help) carries on as usual

    def _answer(self, out: _Out, conversation: Conversation, text: str) -> str | None:
        from bot.gateway import _choice, _offered

        payload = out.inbound.payload
        if payload and out.inbound.channel == Channel.WEB and not _offered(payload, conversation):
            payload = None  # as the gateway does: a web page may only send what it was offered
        payload = payload or _choice(text, conversation.choices)
        if payload:
            return {YES: "yes", NO: "no"}.get(payload)
        return typed_answer(text)

    async def forget(self, out: _Out, conversation: Conversation) -> str:
        """Say it is done, then delete: the reply is deleted with everything else."""
        contact = out.contact
        await out.send_content("privacy.forget_done", source="system")
        try:
            removed = await forget_conversation(self.sessions, self.settings, conversation.id)
        except Exception:
            logger.exception("Deleting conversation %s failed", conversation.id)
            await out.send_content("privacy.forget_failed", source="system")
            return "forget_failed"
        self.gateway.forget(contact.channel, contact.address, conversation.id)
        # A web chat's session was its contact: the page is told the chat has ended.
        self.gateway.publish(conversation.id, {"type": "end"})
        logger.info("Conversation %s deleted at the person's request: %s", conversation.id, removed)
        return "forgotten"

    async def _clear_choices(self, conversation_id: int) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Conversation).where(Conversation.id == conversation_id).values(choices=None)
            )

    async def _what_stays(self, conversation: Conversation) -> tuple[bool, bool]:
        """(a verified victim whose case is open, a referral already sent to a service).
        Only a person verified now is told about a case: holding the phone is not enough."""
        now = datetime.now(UTC)
        until = conversation.verified_until
        if until is not None and until.tzinfo is None:
            until = until.replace(tzinfo=UTC)  # SQLite hands back naive UTC
        verified = conversation.verified_victim_id is not None and until is not None and until > now
        async with self.sessions() as session:
            case_open = verified and (
                await session.scalar(
                    select(Case.id)
                    .join(Victim, Victim.case_id == Case.id)
                    .where(Victim.id == conversation.verified_victim_id, Case.closed_at.is_(None))
                )
                is not None
            )
            sent = await session.scalar(
                select(Referral.id)
                .where(
                    Referral.conversation_id == conversation.id,
                    Referral.status.in_(REACHED_SERVICE),
                )
                .limit(1)
            )
        return case_open, sent is not None

    # -- STOP -------------------------------------------------------------------------

    async def on_stop(self, contact: Contact) -> None:
        """After an opt-out: pause every victim with an open case at this address, and
        ask a coordinator to check it is safe (one task per victim per day)."""
        now = datetime.now(UTC)
        made = 0
        async with self.sessions() as session, session.begin():
            victims = await session.scalars(
                select(Victim)
                .join(VictimContact, VictimContact.victim_id == Victim.id)
                .join(Case, Case.id == Victim.case_id)
                .where(
                    VictimContact.channel == contact.channel,
                    VictimContact.address == contact.address,
                    Case.closed_at.is_(None),
                )
            )
            for victim in victims.unique().all():
                victim.paused = True
                made += await add_task_once(
                    session,
                    key=f"stop_signal:victim{victim.id}:{now.date().isoformat()}",
                    kind="stop_signal",
                    detail=STOP_TASK,
                    now=now,
                    priority=0,
                    state=TaskState.OPEN,
                    case_id=victim.case_id,
                )
        if made:
            logger.warning("STOP from a victim's address: messages paused, %d urgent task(s)", made)
            self.gateway.handoffs.broadcast({"type": "tasks"})


def _reply(text: str, buttons: tuple[dict[str, str], ...] = ()) -> Any:
    from bot.gateway import Reply

    return Reply(text, tuple(dict(b) for b in buttons))
