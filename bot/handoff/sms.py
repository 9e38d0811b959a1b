"""Coordinators by SMS: one-text alerts, and short commands from an active coordinator's phone.

A text from an active coordinator's number is theirs, never a victim's: the inbound webhook
hands it here before the victim path, so no contact or conversation is made for it.
Commands are whole messages (CLAIM 12, END, BACK, QUEUE, NOTE ..., DUTY ON); anything
else goes to the person in the coordinator's current handoff, once per MessageSid.
Nothing here logs message text or phone numbers.

Twilio treats a text of just STOP, END, QUIT, CANCEL... as an opt-out of the sending
number. END is kept as a command (it is also one for Twilio), but the hints say DONE.
"""

from __future__ import annotations

import contextlib
import logging
import re
import traceback
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select

from bot.cases.phones import normalise_phone
from bot.channels import sms_text
from bot.channels.sms_keywords import OPT_IN, OPT_OUT
from bot.handoff.errors import HandoffError
from bot.handoff.models import OUTCOMES, Coordinator, HandoffState
from bot.handoff.packets import Packet, QueueItem
from bot.handoff.telegram import switch

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.gateway import Gateway

logger = logging.getLogger(__name__)

MAX_SEGMENTS = 10  # a relayed message may be long; Twilio takes up to 1600 characters
QUEUE_SHOWN = 5
QUOTE = 100  # characters of each of the person's messages in the short packet

_CLAIM = re.compile(r"^claim\s*#?(\d{1,18})$", re.IGNORECASE)
_CLOSE = re.compile(r"^(?:end|done|close)(?:\s+(\S+))?$", re.IGNORECASE)
_NOTE = re.compile(r"^note(?:[\s:]+(.*))?$", re.IGNORECASE | re.DOTALL)
_DUTY = re.compile(r"^duty\s+(on|off)$", re.IGNORECASE)
_SWITCH = re.compile(r"^switch\s*#?(\d{1,18})$", re.IGNORECASE)
_TRANSFER = re.compile(r"^transfer\s+@?(\S+)$", re.IGNORECASE)
# Twilio's own opt-out words, except END (a command here): never meant for the person.
_OPT_OUT = OPT_OUT - {"end"}
_OPT_IN = OPT_IN - {"yes"}  # "yes" is an ordinary reply to the person

HELP = (
    "Waymark: CLAIM N, QUEUE, NOTE text, DONE (or DONE outcome), BACK, SWITCH N, "
    "TRANSFER username, DUTY ON/OFF. Anything else is texted to your current person."
)


class LinkError(Exception):
    """A coordinator SMS that could not be sent (no number or content in the message)."""


class SmsLink:
    """Texts to coordinators' own phones, through the gateway's Twilio client."""

    channel = "sms"

    def __init__(self, settings: Settings, client: Any) -> None:
        self.settings = settings
        self.client = client

    def reaches(self, coordinator: Coordinator) -> bool:
        return bool(coordinator.phone) and coordinator.active

    async def send(self, coordinator: Coordinator, text: str, *, claim: int | None = None) -> None:
        """Raises LinkError on failure (logged without content) so the desk tries the
        next link. An alert is one SMS; a long relay is a few."""
        assert coordinator.phone is not None
        body = text + (f" Reply CLAIM {claim} to take it." if claim is not None else "")
        sender: dict[str, str]
        if self.settings.twilio_messaging_service_sid:
            sender = {"messaging_service_sid": self.settings.twilio_messaging_service_sid}
        elif self.settings.twilio_from_number:
            sender = {"from_": self.settings.twilio_from_number}
        else:
            raise LinkError("no sending number configured")
        for part in sms_text.split(sms_text.to_gsm7(body), MAX_SEGMENTS):
            try:
                await self.client.messages.create_async(to=coordinator.phone, body=part, **sender)
            except Exception as error:
                code = getattr(error, "code", None)
                logger.warning(
                    "SMS to coordinator %s failed (%s%s)",
                    coordinator.id,
                    type(error).__name__,
                    f" {code}" if code else "",
                )
                # Twilio's message quotes the number: raise one that doesn't.
                raise LinkError(f"{type(error).__name__} {code or ''}".strip()) from None


class _Seen:
    """MessageSids handled lately, so a redelivered command is not run twice (a text to
    the person is also guarded in the database by its MessageSid)."""

    def __init__(self, size: int = 2000) -> None:
        self._ids: dict[str, None] = {}
        self._size = size

    def first_time(self, message_sid: str) -> bool:
        if message_sid in self._ids:
            return False
        if len(self._ids) >= self._size:
            del self._ids[next(iter(self._ids))]
        self._ids[message_sid] = None
        return True


_seen = _Seen()


async def coordinator_for_phone(gateway: Gateway, sender: str) -> Coordinator | None:
    numbers = {sender}
    with contextlib.suppress(ValueError):  # Twilio sends E.164; accounts store it so
        numbers.add(normalise_phone(sender))
    async with gateway.sessions() as session:
        return await session.scalar(
            select(Coordinator).where(
                or_(*(Coordinator.phone == n for n in numbers)), Coordinator.active.is_(True)
            )
        )


def _link(gateway: Gateway) -> SmsLink | None:
    return next((link for link in gateway.handoffs.links if isinstance(link, SmsLink)), None)


async def handle_coordinator_sms(
    gateway: Gateway, sender: str, body: str, message_sid: str | None
) -> bool:
    """Handle a text from an active coordinator's phone; False if it isn't one."""
    coordinator = await coordinator_for_phone(gateway, sender)
    if coordinator is None:
        return False
    command = body.strip().rstrip(".!?").strip()
    relay = _command(command) is None
    if message_sid and not _seen.first_time(message_sid) and not relay:
        return True
    try:
        answer = await _handle(gateway, coordinator, body, command, message_sid)
    except Exception as error:
        # The type and the stack, not the message: database errors can quote the text.
        logger.error(
            "Coordinator SMS failed: %s\n%s",
            type(error).__name__,
            "".join(traceback.format_tb(error.__traceback__)),
        )
        answer = "Something went wrong. Please try again."
    link = _link(gateway)
    if answer and link is not None:
        with contextlib.suppress(LinkError):  # already logged
            await link.send(coordinator, answer)
    return True


def _command(command: str) -> str | None:
    """Which command a (whole) message is, or None: then it is for the person."""
    word = command.casefold()
    if _CLAIM.match(command):
        return "claim"
    if _CLOSE.match(command):
        return "close"
    if word == "back":
        return "back"
    if word == "queue":
        return "queue"
    if _NOTE.match(command):
        return "note"
    if _DUTY.match(command):
        return "duty"
    if _SWITCH.match(command):
        return "switch"
    if _TRANSFER.match(command):
        return "transfer"
    if word in {"help", "info", "?"}:
        return "help"
    if word in {"claim", "switch", "transfer", "duty", "close", "note"}:
        return "usage"  # a command without what it needs: never for the person
    if word in _OPT_OUT:
        return "opt_out"
    if word in _OPT_IN:
        return "opt_in"
    if not command:
        return "empty"
    return None


async def _handle(
    gateway: Gateway,
    coordinator: Coordinator,
    body: str,
    command: str,
    message_sid: str | None,
) -> str | None:
    """Do what the text asks; returns what to text back (None: nothing)."""
    desk = gateway.handoffs
    kind = _command(command)
    try:
        if kind is None:
            # The person gets exactly what was written.
            await desk.reply(
                _current(coordinator), coordinator, body, channel="sms", provider_id=message_sid
            )
            return None
        if kind == "claim":
            match = _CLAIM.match(command)
            assert match
            return await _claim(gateway, coordinator, int(match[1]))
        if kind == "close":
            match = _CLOSE.match(command)
            assert match
            outcome = (match[1] or "resolved").lower()
            if outcome not in OUTCOMES:
                return f"Not closed. Outcomes: {', '.join(OUTCOMES)}."
            handoff_id = _current(coordinator)
            await desk.close(handoff_id, coordinator, outcome)
            return f"Closed #{handoff_id} ({outcome}). They are back with the assistant."
        if kind == "back":
            handoff_id = _current(coordinator)
            await desk.hand_back(handoff_id, coordinator)
            return f"#{handoff_id} is back with the assistant."
        if kind == "queue":
            return queue_text(await desk.queue(), coordinator)
        if kind == "note":
            match = _NOTE.match(command)
            assert match
            handoff_id = _current(coordinator)
            await desk.note(handoff_id, coordinator, match[1] or "")
            return f"Note saved on #{handoff_id}. The person does not see it."
        if kind == "duty":
            match = _DUTY.match(command)
            assert match
            on = match[1].lower() == "on"
            await desk.set_duty(coordinator, on)
            return "You are on duty." if on else "You are off duty."
        if kind == "switch":
            match = _SWITCH.match(command)
            assert match
            await switch(gateway, coordinator, int(match[1]))
            return f"Your texts now go to #{match[1]}."
        if kind == "transfer":
            match = _TRANSFER.match(command)
            assert match
            handoff_id = _current(coordinator)
            target = await desk.transfer(handoff_id, coordinator, match[1])
            return f"#{handoff_id} is now with {target.display_name}."
        if kind in {"help", "usage"}:
            return HELP
        if kind == "opt_out":
            # Twilio has blocked this number for us: nothing more can be sent to it.
            logger.warning("Coordinator %s opted out of SMS from Waymark", coordinator.id)
            return None
        if kind == "opt_in":
            return "Texts from Waymark are on again."
        return "Only text can be passed on. Nothing was sent."
    except HandoffError as error:
        return str(error)


def _current(coordinator: Coordinator) -> int:
    if coordinator.current_handoff_id is None:
        raise HandoffError("You have no open handoff. Reply QUEUE to see who is waiting.")
    return coordinator.current_handoff_id


async def _claim(gateway: Gateway, coordinator: Coordinator, handoff_id: int) -> str:
    desk = gateway.handoffs
    if await desk.claim(handoff_id, coordinator):
        return short_packet(await desk.packet(handoff_id))
    refused = await desk.not_claimed(handoff_id, coordinator)
    if refused.endswith("already yours."):
        return f"{refused} SWITCH {handoff_id} to text them."
    return refused


def _clip(text: str, limit: int = QUOTE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def short_packet(packet: Packet) -> str:
    """Why, how urgent, the verified case and their last message or two."""
    parts = [
        f"#{packet.handoff_id} is yours.",
        f"{'URGENT. ' if packet.risk == 'high' else ''}{packet.reason_text}. Risk: {packet.risk}.",
    ]
    if packet.case_reference:
        stage = f" ({packet.case_stage})" if packet.case_stage else ""
        parts.append(f"Case {packet.case_reference}{stage}.")
    said = [line for line in packet.transcript if line.who == "person"][-2:]
    if said:
        parts.append("They said: " + " / ".join(f'"{_clip(line.text)}"' for line in said))
    parts.append("Reply to text them. DONE to close, BACK to hand back.")
    return " ".join(parts)


def queue_text(items: list[QueueItem], coordinator: Coordinator) -> str:
    waiting = [q for q in items if q.state == HandoffState.QUEUED]
    mine = [
        q.handoff_id
        for q in items
        if q.state == HandoffState.CLAIMED and q.coordinator == coordinator.username
    ]
    text = f"{len(waiting)} waiting" if waiting else "Nobody waiting"
    if waiting:
        shown = [
            f"#{q.handoff_id}{' URGENT' if q.urgent else ''} {q.waiting_seconds // 60}m "
            f"{q.reason_text}"
            for q in waiting[:QUEUE_SHOWN]
        ]
        more = len(waiting) - QUEUE_SHOWN
        text += ": " + "; ".join(shown) + (f"; +{more} more" if more > 0 else "")
        text += ". Reply CLAIM N."
    else:
        text += "."
    if mine:
        text += " Yours: " + ", ".join(
            f"#{n}{' (current)' if n == coordinator.current_handoff_id else ''}" for n in mine
        )
        text += "."
    return text
