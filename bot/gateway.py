"""The gateway's core: every channel's messages come through here.

1. `receive` stores the message (and its contact and conversation) and commits, so a
   provider is only acknowledged once nothing can be lost. A provider id seen before
   is a redelivery: acknowledged, never answered twice.
2. One worker per conversation answers its pending messages in order. The safety
   check runs first, so the emergency route goes out even when Rasa is down or a
   person owns the conversation. Then keywords, ownership, and Rasa.
3. When Rasa is down or slow, the person gets a holding reply at once; the message
   stays pending and is answered when Rasa is back. Pending messages are picked up
   again when the gateway restarts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from actions import content
from bot.channels.sms_keywords import is_ambiguous_opt_in
from bot.config import Settings
from bot.handoff import feedback
from bot.identity import pseudonym
from bot.models import Channel, Contact, Conversation, Inbound, InboundState, Outbound, Owner
from bot.privacy import redact
from bot.rasa_client import RasaClient, RasaRejected, RasaUnavailable
from safety import Assessment, assess, forced_intent

logger = logging.getLogger(__name__)

MAX_TEXT = 2000  # characters; longer input is refused at the edge
SAFETY_CONTENT = {"emergency": "safety.emergency", "self_harm_risk": "safety.self_harm"}
SIGNPOST_MARKERS = frozenset({"services", "needs", "referral"})  # see bot/services/desk.py
PRIVACY_MARKERS = frozenset({"privacy"})  # see bot/privacy/desk.py
FOR_RASA = frozenset({"reference"})  # what redaction keeps in what Rasa sees: the look-up
SAFETY_HANDOFF = {"emergency": "emergency", "self_harm_risk": "self_harm"}  # the reasons
DELIVERY_ATTEMPTS = 3
STORE_EVERY = 0.05  # seconds: how often `notify_many` stores the messages back so far
RASA_ERROR_ATTEMPTS = 3  # tries when Rasa answers with an error (not when it's down)

# Messages that carry a one-time code: the stored copy has it masked.
CODE_SOURCES = frozenset({"enrolment", "code"})
_CODE = re.compile(r"\b\d{6}\b")

# Delivery statuses only move forward: callbacks repeat and arrive out of order.
STATUS_RANK = {
    "pending": 0,
    "accepted": 1,
    "scheduled": 1,
    "queued": 2,
    "sending": 3,
    "sent": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "canceled": 5,
    "read": 6,
}


def clean_text(text: str) -> str:
    """Drop control characters (keeping line breaks) and trim; NFC for stable matching."""
    text = unicodedata.normalize("NFC", text)
    kept = (c for c in text if c in "\n\t" or unicodedata.category(c) not in {"Cc", "Cf", "Cs"})
    return "".join(kept).strip()


@dataclass(frozen=True)
class Reply:
    """A channel-neutral message to send."""

    text: str
    buttons: tuple[dict[str, str], ...] = ()


@dataclass(frozen=True)
class Rendered:
    """One provider message, as a channel formats a reply."""

    text: str
    buttons: list[dict[str, str]] | None = None


class DeliveryError(Exception):
    def __init__(
        self, reason: str, *, code: str | None = None, retryable: bool, opted_out: bool = False
    ) -> None:
        super().__init__(reason)
        self.code = code
        self.retryable = retryable
        self.opted_out = opted_out


class Sender(Protocol):
    """A channel's way out: format a reply, then hand one message to the provider."""

    channel: str

    def render(self, reply: Reply) -> list[Rendered]: ...

    async def deliver(
        self, *, conversation_id: int, address: str, outbound_id: int, message: Rendered
    ) -> tuple[str | None, str]:
        """Send; return the provider's message id and status. Raise DeliveryError."""
        ...


@dataclass(frozen=True)
class IncomingMessage:
    """A message as a channel hands it over, with the provider's id when there is one."""

    channel: Channel
    address: str
    text: str | None = None
    payload: str | None = None
    provider_id: str | None = None
    kind: str = "text"  # text, non_text, stop, start, help
    meta: dict[str, Any] | None = None


@dataclass(frozen=True)
class Received:
    inbound_id: int
    conversation_id: int
    duplicate: bool


@dataclass(frozen=True)
class Notified:
    """What happened to a notification: sent (to the provider), or why not."""

    outbound_id: int | None
    status: str  # sent, failed, opted_out, no_channel, demo


@dataclass(frozen=True)
class Notice:
    """One message nobody asked for, for `Gateway.notify_many`."""

    channel: str
    address: str
    reply: Reply
    source: str


@dataclass(frozen=True)
class _Delivery:
    """How one outbound message went, to be written to its row."""

    outbound_id: int
    provider_id: str | None
    status: str
    rank: int
    error_code: str | None
    attempts: int


# How `_Out.attempt_all` went: each message sent, the ids of those never sent (after an
# opt-out or an error), and the error that stopped it.
_Attempted = tuple[list[_Delivery], list[int], Exception | None]


@dataclass
class _Waiters:
    events: dict[int, asyncio.Event] = field(default_factory=dict)

    def get(self, inbound_id: int) -> asyncio.Event:
        return self.events.setdefault(inbound_id, asyncio.Event())

    def release(self, inbound_id: int) -> None:
        event = self.events.pop(inbound_id, None)
        if event:
            event.set()


class Gateway:
    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], rasa: RasaClient
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.rasa = rasa
        self.senders: dict[str, Sender] = {}
        self._secret = settings.secret_key.get_secret_value()
        self._workers: dict[int, asyncio.Task[None]] = {}
        self._again: set[int] = set()
        self._waiters = _Waiters()
        self._subscribers: dict[int, set[asyncio.Queue[dict[str, Any]]]] = {}
        self._safety_tasks: dict[int, asyncio.Task[None]] = {}
        # (channel, address) -> conversation id, so a known sender's message is one
        # INSERT. Whatever deletes contacts (forget-me, the purge) must drop them here:
        # SQLite may give a deleted conversation's id to the next new one.
        self._known: dict[tuple[str, str], int] = {}
        # inbound id -> the text as typed, when redaction changed what was stored: kept
        # in memory only, for this turn (a coordinator sees it live; Rasa gets what a
        # flow needs). After a restart the stored, redacted copy is all there is.
        self._typed: dict[int, str] = {}
        self._stopping = False
        # The desks render Replies: import them late.
        from bot.cases.desk import CaseDesk
        from bot.handoff.desk import HandoffDesk
        from bot.privacy.desk import PrivacyDesk
        from bot.privacy.preferences import PreferencesDesk
        from bot.services.desk import SignpostDesk

        self.desk = CaseDesk(self)
        self.handoffs = HandoffDesk(self)
        self.signposts = SignpostDesk(self)
        # The notice, forget me, and STOP as a possible safety signal (issue 7).
        self.privacy = PrivacyDesk(self)
        self.preferences = PreferencesDesk(self)  # contact preferences (issue 7)

    # -- identity -----------------------------------------------------------------

    def pseudonym(self, channel: str, address: str) -> str:
        return pseudonym(self._secret, channel, address)

    def forget(self, channel: str, address: str, conversation_id: int | None = None) -> None:
        """Drop a cached contact (call when its rows are deleted), and what the desks
        hold in memory for its conversation: SQLite may give that id to someone else."""
        self._known.pop((channel, address), None)
        if conversation_id is not None:
            self.desk.drop(conversation_id)
            self.preferences.drop(conversation_id)

    def forget_all(self) -> None:
        """Drop every cached contact (after a purge deleted some)."""
        self._known.clear()

    @property
    def redactor(self) -> redact.Redactor:
        """Takes personal details out of what is stored and what Rasa gets (built once
        per configuration, and cached)."""
        return redact.redactor_for(self.settings.spacy_model, self.settings.crime_reference_pattern)

    def add_sender(self, sender: Sender) -> None:
        self.senders[sender.channel] = sender

    # -- receiving ----------------------------------------------------------------

    async def receive(self, message: IncomingMessage) -> Received:
        """Store a message and schedule its answer. Returns once it is committed."""
        for attempt in range(3):
            try:
                received = await self._store(message)
                break
            except IntegrityError:
                # A concurrent redelivery or a first message racing another: look again.
                if attempt == 2:
                    raise
        if received.duplicate:
            logger.info("Duplicate %s message %s ignored", message.channel, received.inbound_id)
            return received
        # Safety before anything else: the emergency route goes out now, ahead of any
        # message still waiting for Rasa, whoever owns the conversation.
        text = clean_text(message.text) if message.text else ""
        intent = forced_intent(assess(text)) if text else None
        if intent and not self._stopping:
            self._safety_tasks[received.inbound_id] = asyncio.create_task(
                self._safety_reply(received.inbound_id, intent)
            )
        self.kick(received.conversation_id)
        return received

    async def _store(self, message: IncomingMessage) -> Received:
        """One short transaction: the webhook's acknowledgement waits for it."""
        key = (str(message.channel), message.address)
        conversation_id = self._known.get(key)
        text = clean_text(message.text) if message.text else None
        async with self.sessions() as session:
            try:
                async with session.begin():
                    if conversation_id is None:
                        conversation = await self.conversation_for(session, *key)
                        conversation_id = conversation.id
                    elif message.channel == Channel.WEB:  # web sessions end after quiet time
                        await session.execute(
                            update(Contact)
                            .where(Contact.channel == key[0], Contact.address == key[1])
                            .values(last_seen_at=datetime.now(UTC))
                        )
                    # While an earlier message waits for Rasa, the person already has
                    # the holding reply: this one waits in line without another.
                    held = (
                        select(Inbound.id)
                        .where(
                            Inbound.conversation_id == conversation_id,
                            Inbound.state == InboundState.PENDING,
                            Inbound.holding_sent.is_(True),
                        )
                        .exists()
                    )
                    # A secret or a code is kept in memory only, never stored.
                    secret = self.desk.should_hold(conversation_id, text)
                    typed = text[:MAX_TEXT] if text and not secret else None
                    # Personal details are redacted before anything is stored.
                    stored = self.redactor.redact(typed) if typed else None
                    inserted = await session.execute(
                        insert(Inbound)
                        .values(
                            conversation_id=conversation_id,
                            channel=message.channel,
                            provider_id=message.provider_id,
                            kind=message.kind,
                            text=stored,
                            payload=message.payload,
                            meta={**(message.meta or {}), "held": True} if secret else message.meta,
                            holding_sent=held,
                        )
                        .returning(Inbound.id)
                    )
                    inbound_id = inserted.scalar_one()
            except IntegrityError:
                # The cached conversation may have been deleted meanwhile (retention, or
                # `python -m bot privacy forget` in another process): look it up again.
                self._known.pop(key, None)
                # The provider id is unique: this is a redelivery (or a race, retried).
                if message.provider_id is None:
                    raise
                existing = (
                    await session.execute(
                        select(Inbound.id, Inbound.conversation_id).where(
                            Inbound.channel == message.channel,
                            Inbound.provider_id == message.provider_id,
                        )
                    )
                ).first()
                if existing is None:
                    raise
                return Received(existing.id, existing.conversation_id, duplicate=True)
        if secret and text:
            self.desk.hold(inbound_id, text[:MAX_TEXT])
        elif typed and stored != typed:
            self._typed[inbound_id] = typed
        if len(self._known) > 100_000:
            self._known.clear()
        self._known[key] = conversation_id
        return Received(inbound_id, conversation_id, duplicate=False)

    async def conversation_for(
        self, session: AsyncSession, channel: str, address: str
    ) -> Conversation:
        contact = await session.scalar(
            select(Contact).where(Contact.channel == channel, Contact.address == address)
        )
        if contact is None:
            contact = Contact(channel=channel, address=address)
            session.add(contact)
            await session.flush()
            conversation = Conversation(
                contact_id=contact.id, rasa_sender=self.pseudonym(channel, address)
            )
            session.add(conversation)
            await session.flush()
            return conversation
        contact.last_seen_at = datetime.now(UTC)
        conversation = await session.scalar(
            select(Conversation).where(Conversation.contact_id == contact.id)
        )
        assert conversation is not None
        return conversation

    # -- the per-conversation workers ---------------------------------------------

    def kick(self, conversation_id: int) -> None:
        """Make sure a worker is answering this conversation's pending messages."""
        if self._stopping:
            return
        task = self._workers.get(conversation_id)
        if task is not None and not task.done():
            self._again.add(conversation_id)
            return
        self._workers[conversation_id] = asyncio.create_task(
            self._work(conversation_id), name=f"conversation-{conversation_id}"
        )

    async def _work(self, conversation_id: int) -> None:
        try:
            while True:
                self._again.discard(conversation_id)
                async with self.sessions() as session:
                    inbound_id = await session.scalar(
                        select(Inbound.id)
                        .where(
                            Inbound.conversation_id == conversation_id,
                            Inbound.state == InboundState.PENDING,
                        )
                        .order_by(Inbound.id)
                        .limit(1)
                    )
                if inbound_id is None:
                    if conversation_id in self._again:
                        continue
                    return
                try:
                    await self._process(inbound_id)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # Never let one bad message block the conversation: log without
                    # content, mark it, move on.
                    logger.exception("Failed to answer message %s", inbound_id)
                    await self._finish(inbound_id, "error")
        finally:
            if self._workers.get(conversation_id) is asyncio.current_task():
                del self._workers[conversation_id]

    async def start(self) -> None:
        """Pick up messages left pending by a previous run."""
        self._stopping = False
        # Build the redactor now (a second or two), not on someone's first message.
        await asyncio.to_thread(lambda: self.redactor)
        await self.desk.load()
        await self.signposts.load()
        async with self.sessions() as session:
            pending = await session.scalars(
                select(Inbound.conversation_id)
                .where(Inbound.state == InboundState.PENDING)
                .distinct()
            )
            for conversation_id in pending.all():
                self.kick(conversation_id)

    async def stop(self) -> None:
        self._stopping = True
        tasks = [*self._workers.values(), *self._safety_tasks.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._workers.clear()
        self._safety_tasks.clear()

    # -- answering one message ----------------------------------------------------

    async def _load(self, inbound_id: int) -> tuple[Inbound, Conversation, Contact]:
        """A message with its conversation and contact, in one round trip."""
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(Inbound, Conversation, Contact)
                    .join(Conversation, Conversation.id == Inbound.conversation_id)
                    .join(Contact, Contact.id == Conversation.contact_id)
                    .where(Inbound.id == inbound_id)
                )
            ).one()
        return row.Inbound, row.Conversation, row.Contact

    async def _process(self, inbound_id: int) -> None:
        started = time.perf_counter()
        inbound, conversation, contact = await self._load(inbound_id)
        sender = self.senders.get(inbound.channel)
        if sender is None:
            logger.warning("No sender for channel %s; message %s kept", inbound.channel, inbound_id)
            await self._finish(inbound_id, "channel_disabled")
            return
        out = _Out(self, sender, conversation.id, contact, inbound)
        meta = inbound.meta or {}
        held = self.desk.take(inbound_id) if meta.get("held") else None
        typed = self._typed.pop(inbound_id, None)
        # `text` is what the person typed; `stored` is what may be kept (redacted).
        stored = inbound.text or ""
        text = typed or stored or held or ""
        kind = inbound.kind
        if (
            kind == "text"
            and contact.opted_out
            and is_ambiguous_opt_in(text)
            and inbound.channel == Channel.SMS
        ):
            kind = "start"  # YES opts back in only when someone has opted out

        # After STOP nothing is sent: the provider would refuse it anyway.
        if contact.opted_out and kind != "start":
            await self._finish(inbound_id, "opted_out")
            return

        # The safety reply normally went out on receipt; after a restart, send it now.
        assessment = assess(text) if text else None
        intent = forced_intent(assessment) if assessment else None
        early = self._safety_tasks.pop(inbound_id, None)
        if early is not None:
            await asyncio.gather(early, return_exceptions=True)
        if intent and not await out.already_sent("safety"):
            assert assessment is not None
            await self._mark_safety(inbound_id, assessment)
            await out.send_content(SAFETY_CONTENT[intent], source="safety")

        if kind == "stop":
            if inbound.channel != Channel.SMS:  # carriers confirm STOP by SMS themselves
                await out.send_content("gateway.stopped", source="system")
            await self._set_opted_out(contact.id, True)
            # Maybe someone else has the phone: pause a victim with an open case.
            await self.privacy.on_stop(contact)
            await self._finish(inbound_id, "stop")
            return
        if kind == "start":
            await self._set_opted_out(contact.id, False)
            await out.send_content("gateway.start", source="system")
            await self._finish(inbound_id, "start")
            return
        if kind == "help":
            await out.send_content("gateway.help", source="system")
            await self._finish(inbound_id, "help")
            return
        if kind == "non_text":
            await out.send_content("gateway.non_text", source="system")
            await self._finish(inbound_id, "non_text")
            return

        # The answer to the gateway's own privacy question (delete it now? a preference).
        note = await self.privacy.handle(out, conversation, text, safety=intent is not None)
        if note is not None:
            await self._finish(inbound_id, note)
            return

        # Secrets, codes and account links are the case desk's, never Rasa's.
        outcome = await self.desk.handle(
            out,
            conversation,
            contact,
            held,
            lost=bool(meta.get("held")) and held is None,
            safety=intent is not None,
            start_param=meta.get("start_param"),
        )
        if outcome is not None and outcome.done:
            await self._finish(inbound_id, outcome.done)
            return

        # Danger or risk of self-harm: a person is asked to take over too (urgent). The
        # safety reply on receipt normally did this already; starting again is a no-op.
        owner = conversation.owner
        if intent and await self._ask_a_person(conversation.id, intent, out):
            owner = Owner.QUEUED if owner == Owner.BOT else owner

        # While a person owns it (or it waits for one), the bot stays silent: the
        # message is the coordinator's. The gateway decides this, not Rasa's pause.
        if owner != Owner.BOT and await self.handoffs.relay(
            out, conversation, text, urgent=intent is not None
        ):
            await self._finish(inbound_id, "for_human")
            return

        payload = inbound.payload
        if payload and inbound.channel == Channel.WEB and not _offered(payload, conversation):
            payload = None  # a web client may only send the payloads it was offered
        rated = payload or _choice(text, conversation.choices)
        if rated and await feedback.rate(self, out, conversation.id, rated):
            await self._finish(inbound_id, "feedback")
            return
        # A comment is stored: it gets the redacted text.
        if not payload and await feedback.comment(self, out, conversation.id, stored or text):
            await self._finish(inbound_id, "feedback")
            return
        if conversation.rasa_paused:  # handed back while Rasa was unreachable
            await self.handoffs.resume_rasa(conversation.id, conversation.rasa_sender)
        # Typed text never reaches Rasa as an "/intent{...}" command, and Rasa's
        # tracker gets it redacted, keeping only what a flow needs (a crime reference).
        for_rasa = self.redactor.redact(text, keep=FOR_RASA).lstrip("/").strip()
        message = (
            (outcome.forward if outcome else None)
            or payload
            or _choice(text, conversation.choices)
            or for_rasa
        )
        if not message:
            await self._finish(inbound_id, "empty")
            return
        metadata: dict[str, Any] = {"channel": inbound.channel}
        metadata.update({k: v for k, v in meta.items() if k not in {"held", "start_param"}})
        metadata["case"] = await self.desk.flags(conversation)
        metadata["needs"] = await self.signposts.flags(conversation.id)
        if intent:
            metadata["safety_reply_sent"] = True
        try:
            asked = time.perf_counter()
            replies = await self._ask_rasa(out, conversation.rasa_sender, message, metadata)
            answered = time.perf_counter()
        except RasaRejected as error:
            logger.warning("Rasa refused message %s: %s", inbound_id, error)
            await out.send_content("assistant.fallback", source="system")
            await self._finish(inbound_id, "rejected", attempts=out.attempts)
            return
        if not replies and not intent:
            # Rasa had nothing to say (an intent with no rule): never leave the person
            # with silence.
            await out.send_content("assistant.fallback", source="system")
            await self._finish(inbound_id, "no_reply", attempts=out.attempts)
            return
        # The gateway already sent the emergency reply; don't send it twice.
        skip = await out.sent_texts() if intent or out.held else set()
        buttons: list[dict[str, str]] = []
        batch: list[Reply] = []  # replies in a row are sent together (fewer transactions)
        for reply in replies:
            if isinstance(reply, dict):
                await out.send_all(batch, source="bot")
                batch = []
                if "handoff" in reply or "feedback" in reply:
                    await self.handoffs.on_marker(out, conversation.id, reply, stored or text)
                elif SIGNPOST_MARKERS.intersection(reply):
                    await self.signposts.on_marker(out, conversation.id, reply)
                elif PRIVACY_MARKERS.intersection(reply):
                    await self.privacy.on_marker(out, conversation, reply)
                else:
                    await self.desk.on_marker(out, conversation.id, reply)
                buttons = list(out.offered) or buttons
                continue
            if reply.text in skip and not reply.buttons:
                continue
            batch.append(reply)
            if reply.buttons:
                buttons = list(reply.buttons)
        await out.send_all(batch, source="bot")
        await self._finish(
            inbound_id,
            "answered",
            attempts=out.attempts,
            choices=(conversation.id, buttons or None),
        )
        logger.debug(
            "message %s: waited %.3fs, rasa %.3fs, sent %.3fs",
            inbound_id,
            asked - started,
            answered - asked,
            time.perf_counter() - answered,
        )

    async def _safety_reply(self, inbound_id: int, intent: str) -> None:
        try:
            inbound, conversation, contact = await self._load(inbound_id)
            sender = self.senders.get(inbound.channel)
            if sender is None or contact.opted_out:
                return
            typed = self._typed.get(inbound_id) or inbound.text or ""
            await self._mark_safety(inbound_id, assess(typed))
            out = _Out(self, sender, conversation.id, contact, inbound)
            await out.send_content(SAFETY_CONTENT[intent], source="safety")
            # Alert a person now, not once earlier messages are answered (Rasa may be
            # down or slow); `_process` finds the handoff open and says nothing more.
            await self._ask_a_person(conversation.id, intent, out)
        except Exception:
            logger.exception("Safety reply for message %s failed", inbound_id)

    async def _ask_a_person(self, conversation_id: int, intent: str, out: _Out) -> bool:
        """Start (or raise to urgent) a handoff after a safety message, if configured."""
        if not self.settings.handoff_on_safety:
            return False
        await self.handoffs.start(conversation_id, SAFETY_HANDOFF[intent], urgent=True, out=out)
        return True

    async def _ask_rasa(
        self, out: _Out, sender: str, text: str, metadata: dict[str, Any]
    ) -> list[Reply | dict[str, Any]]:
        """Rasa's replies. Holds the person (once) if Rasa is slow or down; waits for it
        to come back however long that takes."""
        while True:
            out.attempts += 1
            call = asyncio.ensure_future(
                self.rasa.send(sender, text, message_id=str(out.inbound.id), metadata=metadata)
            )
            try:
                try:
                    raw = await asyncio.wait_for(asyncio.shield(call), self.settings.rasa_timeout)
                except TimeoutError:
                    await self._hold(out)
                    raw = await call
                return [
                    _marker(m) or _reply(m)
                    for m in raw
                    if m.get("text") or m.get("buttons") or _marker(m)
                ]
            except RasaUnavailable as error:
                if error.server_error and out.attempts >= RASA_ERROR_ATTEMPTS:
                    # Rasa is up but fails on this message: don't block the person's
                    # conversation behind it for ever.
                    raise RasaRejected(str(error)) from error
                if out.attempts == 1:
                    logger.warning("Rasa unavailable (%s); message %s waits", error, out.inbound.id)
                await self._hold(out)
            finally:
                if not call.done():
                    call.cancel()
            await asyncio.sleep(self.settings.rasa_retry_interval)

    async def _hold(self, out: _Out) -> None:
        out.held = True
        if not await out.already_sent("holding"):
            await out.send_content("gateway.holding", source="holding", first_part_only=True)
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(Inbound).where(Inbound.id == out.inbound.id).values(holding_sent=True)
                )
        self._waiters.release(out.inbound.id)

    # -- messages nobody asked for: notifications, codes -------------------------------

    async def notify(self, channel: str, address: str, reply: Reply, *, source: str) -> Notified:
        """Send one message to an address, outside any conversation turn.

        Opted-out contacts get nothing. In demo mode, a channel with no provider set up
        writes the message to the log instead (demo codes must be readable somewhere).
        """
        (result,) = await self.notify_many([Notice(channel, address, reply, source)])
        if isinstance(result, Exception):
            raise result
        return result

    async def notify_many(self, notices: Sequence[Notice]) -> list[Notified | Exception]:
        """`notify` for several messages at once, in a few transactions rather than a few
        each: one finds (or makes) the contacts and stores every outbound row before
        anything is sent; then, every STORE_EVERY seconds, one records how those back so
        far went. All are sent at the same time, so the caller bounds how many. Each
        result is what `notify` would return, or the exception it raised (that message
        may have gone out)."""
        results: dict[int, Notified | Exception] = {}
        planned: list[tuple[int, _Out, list[Rendered]]] = []
        rows: list[dict[str, Any]] = []
        async with self.sessions() as session, session.begin():
            known = await self._contacts(session, {(n.channel, n.address) for n in notices})
            for index, notice in enumerate(notices):
                contact, conversation_id = known[(notice.channel, notice.address)]
                if contact.opted_out:
                    results[index] = Notified(None, "opted_out")
                    continue
                sender = self.senders.get(notice.channel)
                if sender is None:
                    if self.settings.demo:
                        logger.warning(
                            "Demo outbox, to %s %s: %s",
                            notice.channel,
                            notice.address,
                            notice.reply.text,
                        )
                        results[index] = Notified(None, "demo")
                    else:
                        results[index] = Notified(None, "no_channel")
                    continue
                parts = sender.render(notice.reply)
                out = _Out(self, sender, conversation_id, contact, None)
                planned.append((index, out, parts))
                rows += [out.row(part, notice.source) for part in parts]
            ids = await _insert_outbound(session, rows) if rows else []
        if len(self._known) > 100_000:
            self._known.clear()
        self._known.update({key: conversation_id for key, (_, conversation_id) in known.items()})
        stored = iter(ids)
        tasks = [
            asyncio.ensure_future(out.attempt_all([(next(stored), part) for part in parts]))
            for _, out, parts in planned
        ]
        waiting = set(tasks)
        try:
            while waiting:
                back, waiting = await asyncio.wait(waiting, timeout=STORE_EVERY)
                # A status callback finds a message by the provider's id: store those
                # back already, not only once the slowest (retrying) one is.
                await self._store_sent([task.result() for task in back])
        except BaseException:
            for task in waiting:
                task.cancel()
            raise
        for (index, out, _), task in zip(planned, tasks, strict=True):
            results[index] = task.result()[2] or out.notified()
        return [results[index] for index in range(len(notices))]

    async def _store_sent(self, sent: Sequence[_Attempted]) -> None:
        deliveries = [delivery for done, _, _ in sent for delivery in done]
        unsent = [outbound_id for _, never, _ in sent for outbound_id in never]
        if not (deliveries or unsent):
            return
        async with self.sessions() as session, session.begin():
            await _store(session, deliveries)
            if unsent:  # parts after an opt-out or an error: never sent, so not kept
                await session.execute(delete(Outbound).where(Outbound.id.in_(unsent)))

    async def _contacts(
        self, session: AsyncSession, keys: set[tuple[str, str]]
    ) -> dict[tuple[str, str], tuple[Contact, int]]:
        """Each (channel, address)'s contact, made when new, and its conversation's id, as
        `conversation_for` gives them for one. One upsert on the unique key (it touches
        `last_seen_at`, as that does) reads every contact's opt-out fresh, whatever the
        planner's statistics say; conversation ids come from `_known` when they can."""
        now = datetime.now(UTC)
        connection = await session.connection()
        dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
        upsert = dialect.insert(Contact)
        upsert = upsert.on_conflict_do_update(
            index_elements=["channel", "address"],
            set_={"last_seen_at": upsert.excluded.last_seen_at},
        ).returning(
            Contact.id, Contact.channel, Contact.address, Contact.opted_out, Contact.created_at
        )
        rows = await connection.execute(
            upsert,
            # Sorted: workers upserting the same contacts lock them in the same order.
            [
                {"channel": channel, "address": address, "created_at": now, "last_seen_at": now}
                for channel, address in sorted(keys)
            ],
        )
        contacts: dict[tuple[str, str], Contact] = {}
        made: list[Contact] = []
        for row in rows:
            contact = Contact(
                id=row.id, channel=row.channel, address=row.address, opted_out=row.opted_out
            )
            contacts[(row.channel, row.address)] = contact
            if _aware(row.created_at) == now:  # ours: it has no conversation yet
                made.append(contact)
        # Cached by the caller once this commits: a rolled-back id must not stay known.
        conversation_ids = {key: self._known[key] for key in keys if key in self._known}
        if made:
            conversations = await connection.execute(
                insert(Conversation).returning(Conversation.id, Conversation.contact_id),
                [
                    {"contact_id": c.id, "rasa_sender": self.pseudonym(c.channel, c.address)}
                    for c in made
                ],
            )
            by_contact = {row.contact_id: row.id for row in conversations}
            for contact in made:
                conversation_ids[(contact.channel, contact.address)] = by_contact[contact.id]
        unknown = {contacts[key].id: key for key in keys - conversation_ids.keys()}
        if unknown:
            for conversation_id, contact_id in await connection.execute(
                select(Conversation.id, Conversation.contact_id).where(
                    Conversation.contact_id.in_(unknown)
                )
            ):
                conversation_ids[unknown[contact_id]] = conversation_id
        return {key: (contacts[key], conversation_ids[key]) for key in keys}

    # -- small writes ---------------------------------------------------------------

    async def _finish(
        self,
        inbound_id: int,
        note: str,
        *,
        attempts: int | None = None,
        choices: tuple[int, list[dict[str, str]] | None] | None = None,
    ) -> None:
        """Mark a message answered (one transaction: the choices offered go with it)."""
        values: dict[str, Any] = {
            "state": InboundState.DONE,
            "note": note,
            "answered_at": datetime.now(UTC),
        }
        if attempts is not None:
            values["attempts"] = attempts
        async with self.sessions() as session, session.begin():
            await session.execute(update(Inbound).where(Inbound.id == inbound_id).values(**values))
            if choices is not None:
                conversation_id, offered = choices
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == conversation_id)
                    .values(choices=offered)
                )
        self._waiters.release(inbound_id)

    async def _mark_safety(self, inbound_id: int, assessment: Assessment) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Inbound)
                .where(Inbound.id == inbound_id)
                .values(safety_tier=int(assessment.tier), safety_kind=assessment.kind)
            )

    async def _set_opted_out(self, contact_id: int, opted_out: bool) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Contact)
                .where(Contact.id == contact_id)
                .values(opted_out=opted_out, opted_out_at=datetime.now(UTC) if opted_out else None)
            )

    # -- delivery status, waiting, live updates -----------------------------------

    async def record_status(
        self, channel: str, provider_id: str, status: str, error_code: str | None = None
    ) -> bool:
        """Store a provider's delivery status; only ever moves forward. False if unknown."""
        rank = STATUS_RANK.get(status)
        if rank is None:
            logger.info("Ignoring unknown delivery status %r", status)
            return True
        async with self.sessions() as session, session.begin():
            outbound = await session.scalar(
                select(Outbound).where(
                    Outbound.channel == channel, Outbound.provider_id == provider_id
                )
            )
            if outbound is None:
                return False
            if rank > outbound.status_rank:
                outbound.status = status
                outbound.status_rank = rank
                if error_code:
                    outbound.error_code = error_code
            if error_code == "21610":  # the person has opted out with their carrier
                await session.execute(
                    update(Contact)
                    .where(Contact.id == Conversation.contact_id)
                    .where(Conversation.id == outbound.conversation_id)
                    .values(opted_out=True, opted_out_at=datetime.now(UTC))
                )
        return True

    async def replies_for(self, inbound_id: int, timeout: float) -> list[Outbound]:
        """The replies to one message, once it is answered or held (or at the timeout)."""
        event = self._waiters.get(inbound_id)
        safety = self._safety_tasks.get(inbound_id)
        if safety is not None:  # the emergency reply is part of the answer: include it
            await asyncio.wait([safety], timeout=timeout)
        async with self.sessions() as session:
            inbound = await session.get(Inbound, inbound_id)
            settled = inbound is None or inbound.state == InboundState.DONE or inbound.holding_sent
        if not settled:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), timeout)
        self._waiters.events.pop(inbound_id, None)
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Outbound).where(Outbound.inbound_id == inbound_id).order_by(Outbound.id)
            )
            return list(rows.all())

    def subscribe(self, conversation_id: int) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=100)
        self._subscribers.setdefault(conversation_id, set()).add(queue)
        return queue

    def unsubscribe(self, conversation_id: int, queue: asyncio.Queue[dict[str, Any]]) -> None:
        queues = self._subscribers.get(conversation_id)
        if queues:
            queues.discard(queue)
            if not queues:
                del self._subscribers[conversation_id]

    def publish(self, conversation_id: int, event: dict[str, Any]) -> None:
        for queue in self._subscribers.get(conversation_id, ()):
            if not queue.full():
                queue.put_nowait(event)


class _Out:
    """Sends replies to one inbound message's conversation, in order, recording each."""

    def __init__(
        self,
        gateway: Gateway,
        sender: Sender,
        conversation_id: int,
        contact: Contact,
        inbound: Inbound | None,
    ) -> None:
        self.gateway = gateway
        self.sender = sender
        self.conversation_id = conversation_id
        self.contact = contact
        self._inbound = inbound  # None for a message nobody asked for (a notification)
        self.stopped = False
        self.attempts = inbound.attempts if inbound else 0  # tries at Rasa so far
        self.held = inbound.holding_sent if inbound else False
        self.last_outbound: tuple[int, str] | None = None  # (id, status) of the last send
        self.offered: tuple[dict[str, str], ...] = ()  # buttons in the last reply with any

    @property
    def inbound(self) -> Inbound:
        assert self._inbound is not None
        return self._inbound

    async def already_sent(self, source: str) -> bool:
        async with self.gateway.sessions() as session:
            found = await session.scalar(
                select(Outbound.id)
                .where(Outbound.inbound_id == self.inbound.id, Outbound.source == source)
                .limit(1)
            )
            return found is not None

    async def sent_texts(self) -> set[str]:
        async with self.gateway.sessions() as session:
            rows = await session.scalars(
                select(Outbound.text).where(
                    Outbound.inbound_id == self.inbound.id, Outbound.source != "bot"
                )
            )
            return set(rows.all())

    async def send_content(self, key: str, *, source: str, first_part_only: bool = False) -> None:
        item = content.item(key)
        parts = item.parts[:1] if first_part_only else item.parts
        for part in parts:
            await self.send(Reply(part), source=source)

    async def send(self, reply: Reply, *, source: str) -> None:
        await self.send_all([reply], source=source)

    async def send_all(self, replies: Sequence[Reply], *, source: str) -> None:
        """Send replies in order, in two transactions however many parts they make: every
        part's row is stored before the first goes out, then how they went. Parts after
        an opt-out or an error were never sent, so their rows are dropped; the error is
        raised once that is stored."""
        if self.stopped or not replies:
            return
        for reply in replies:
            if reply.buttons:
                self.offered = reply.buttons
        parts = [rendered for reply in replies for rendered in self.sender.render(reply)]
        if not parts:  # an empty text on SMS renders to nothing: nothing to store or send
            return
        async with self.gateway.sessions() as session, session.begin():
            ids = await _insert_outbound(session, [self.row(part, source) for part in parts])
        sent = await self.attempt_all(list(zip(ids, parts, strict=True)))
        await self.gateway._store_sent([sent])
        if sent[2] is not None:
            raise sent[2]

    def row(self, rendered: Rendered, source: str) -> dict[str, Any]:
        """The outbound row's values for one message, before it is sent."""
        return {
            "conversation_id": self.conversation_id,
            "inbound_id": self._inbound.id if self._inbound else None,
            "channel": self.sender.channel,
            "source": source,
            # A one-time code is sent, never kept.
            "text": _CODE.sub("******", rendered.text) if source in CODE_SOURCES else rendered.text,
            "buttons": rendered.buttons,
        }

    async def attempt_all(self, parts: Sequence[tuple[int, Rendered]]) -> _Attempted:
        """Send stored messages in order, as `send` would, without writing their results:
        (how each went, the ids of those never sent, the error that stopped it if any)."""
        done: list[_Delivery] = []
        for index, (outbound_id, rendered) in enumerate(parts):
            try:
                done.append(await self._attempt(outbound_id, rendered))
            except Exception as error:  # its row stays as it was: it may have gone out
                return done, [i for i, _ in parts[index + 1 :]], error
            if self.stopped:
                return done, [i for i, _ in parts[index + 1 :]], None
        return done, [], None

    def notified(self) -> Notified:
        """What `Gateway.notify` reports once the message was handed to `send`."""
        if self.last_outbound is None:
            return Notified(None, "opted_out" if self.stopped else "failed")
        outbound_id, status = self.last_outbound
        return Notified(outbound_id, "failed" if status == "failed" else "sent")

    async def _attempt(self, outbound_id: int, rendered: Rendered) -> _Delivery:
        provider_id: str | None = None
        status, error_code = "failed", None
        for attempt in range(1, DELIVERY_ATTEMPTS + 1):
            try:
                provider_id, status = await self.sender.deliver(
                    conversation_id=self.conversation_id,
                    address=self.contact.address,
                    outbound_id=outbound_id,
                    message=rendered,
                )
                error_code = None
                break
            except DeliveryError as error:
                error_code = error.code
                logger.warning(
                    "Delivery of %s failed (%s, attempt %d)", outbound_id, error, attempt
                )
                if error.opted_out:
                    await self.gateway._set_opted_out(self.contact.id, True)
                    self.stopped = True
                    break
                if not error.retryable:
                    break
                await asyncio.sleep(0.5 * attempt)
        rank = 5 if status == "failed" else STATUS_RANK.get(status, 0)
        self.last_outbound = (outbound_id, status)
        return _Delivery(outbound_id, provider_id, status, rank, error_code, attempt)


_STORE_ATTEMPT = (
    update(Outbound)
    .where(Outbound.id == bindparam("d_id"))
    .values(
        attempts=bindparam("d_attempts"),
        error_code=bindparam("d_error_code"),
        provider_id=bindparam("d_provider_id"),
    )
)
# A status callback may already have moved it further: only ever forward.
_STORE_STATUS = (
    update(Outbound)
    .where(Outbound.id == bindparam("d_id"), Outbound.status_rank < bindparam("d_rank"))
    .values(status=bindparam("d_status"), status_rank=bindparam("d_rank"))
)


async def _insert_outbound(session: AsyncSession, rows: list[dict[str, Any]]) -> list[int]:
    """Store outbound rows (before they are sent) in one statement; their ids, in order."""
    inserted = await session.execute(
        insert(Outbound).returning(Outbound.id, sort_by_parameter_order=True), rows
    )
    return list(inserted.scalars())


async def _store(session: AsyncSession, deliveries: Sequence[_Delivery]) -> None:
    """Write how messages went: one statement for one, executemany for several."""
    if not deliveries:
        return
    params = [
        {
            "d_id": d.outbound_id,
            "d_attempts": d.attempts,
            "d_error_code": d.error_code,
            "d_provider_id": d.provider_id,
            "d_status": d.status,
            "d_rank": d.rank,
        }
        for d in deliveries
    ]
    # Core statements on the connection: plain UPDATEs, not the ORM's bulk-by-key form.
    connection = await session.connection()
    await connection.execute(_STORE_ATTEMPT, params)
    await connection.execute(_STORE_STATUS, params)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


def _reply(message: dict[str, Any]) -> Reply:
    buttons = tuple(
        {"title": str(b.get("title", "")), "payload": str(b.get("payload", ""))}
        for b in message.get("buttons") or ()
        if isinstance(b, dict)
    )
    return Reply(text=str(message.get("text") or ""), buttons=buttons)


def _marker(message: dict[str, Any]) -> dict[str, Any] | None:
    """An instruction from the assistant to the gateway (custom payload "waymark")."""
    custom = message.get("custom")
    if isinstance(custom, dict) and isinstance(custom.get("waymark"), dict):
        return custom["waymark"]
    return None


def _offered(payload: str, conversation: Conversation) -> bool:
    return any(c.get("payload") == payload for c in conversation.choices or ())


def _choice(text: str, choices: Sequence[dict[str, str]] | None) -> str | None:
    """A number reply picks one of the buttons last offered ("Reply 2 for ...")."""
    if not choices or not text.strip().isdigit():
        return None
    number = int(text.strip())
    if 1 <= number <= len(choices):
        return choices[number - 1].get("payload") or None
    return None
