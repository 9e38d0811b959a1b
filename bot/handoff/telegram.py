"""Coordinators on Telegram: alerts with a Claim button, and commands in a private chat.

A private chat whose id is an active coordinator's `telegram_chat_id` is a coordinator's,
never a victim's: `handle_coordinator_update` takes its updates before the victim path.
Plain text there is a reply to the person in the coordinator's current handoff, sent on
the person's own channel; the update id makes a redelivered update a no-op. Commands
are thin calls on the `HandoffDesk`, whose `HandoffError` sentences are shown as they are.
Nothing here logs message text.
"""

from __future__ import annotations

import logging
import re
import traceback
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.constants import ChatType, MessageLimit
from telegram.error import TelegramError
from telegram.ext import Application

from bot.handoff import audit
from bot.handoff.availability import LONDON
from bot.handoff.errors import HandoffError
from bot.handoff.models import OUTCOMES, Coordinator, Handoff, HandoffState
from bot.handoff.packets import Line, Packet, QueueItem

if TYPE_CHECKING:
    from bot.gateway import Gateway

logger = logging.getLogger(__name__)

CLAIM_DATA = re.compile(r"^claim:(\d{1,18})$")
TRANSCRIPT_LINES = 10  # the packet shows this many of the latest messages
QUEUE_SHOWN = 20  # items in /queue (and Claim buttons: Telegram allows ~100)
WHO = {"person": "Person", "assistant": "Assistant", "coordinator": "Coordinator"}

HELP = (
    "Waymark coordinator commands:\n"
    "/queue - who is waiting\n"
    "/claim N - take handoff #N\n"
    "/switch N - send your messages to #N (one of yours)\n"
    "/packet - show your current handoff again\n"
    "/note text - a private note on your current handoff\n"
    "/transfer username - give it to another coordinator\n"
    "/close [outcome] - finish it (default: resolved)\n"
    "/back - hand the person back to the assistant\n"
    "/duty on|off - get alerts, or not\n"
    "Anything else you write goes to the person in your current handoff."
)


class TelegramLink:
    """Messages to coordinators in their private chat with the bot."""

    channel = "telegram"

    def __init__(self, application: Application) -> None:
        self.application = application

    def reaches(self, coordinator: Coordinator) -> bool:
        return bool(coordinator.telegram_chat_id) and coordinator.active

    async def send(self, coordinator: Coordinator, text: str, *, claim: int | None = None) -> None:
        """Raises on failure (logged without content) so the desk tries the next link."""
        assert coordinator.telegram_chat_id is not None
        try:
            await _send(
                self.application.bot,
                int(coordinator.telegram_chat_id),
                text,
                _claim_buttons([claim]) if claim is not None else None,
            )
        except TelegramError as error:
            logger.warning(
                "Telegram message to coordinator %s failed (%s)",
                coordinator.id,
                type(error).__name__,
            )
            raise


def _claim_buttons(handoff_ids: Sequence[int]) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(f"Claim #{n}", callback_data=f"claim:{n}")] for n in handoff_ids]
    )


def _chunks(text: str, limit: int = MessageLimit.MAX_TEXT_LENGTH) -> list[str]:
    """Telegram-sized pieces, cut at line ends where possible."""
    pieces: list[str] = []
    current = ""
    for line in text.split("\n"):
        while len(line) > limit:  # one very long line: cut it hard
            if current:
                pieces.append(current)
                current = ""
            pieces.append(line[:limit])
            line = line[limit:]
        candidate = f"{current}\n{line}" if current else line
        if len(candidate) > limit:
            pieces.append(current)
            current = line
        else:
            current = candidate
    if current or not pieces:
        pieces.append(current)
    return [p for p in pieces if p.strip()] or ["(empty)"]


async def _send(
    bot: Bot, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    """Plain text (no parse mode: victims' words must not be read as markup), split to
    fit; the keyboard goes with the last piece."""
    pieces = _chunks(text)
    for index, piece in enumerate(pieces):
        await bot.send_message(
            chat_id=chat_id,
            text=piece,
            reply_markup=markup if index == len(pieces) - 1 else None,
        )


# -- coordinator updates ----------------------------------------------------------------


class _Seen:
    """(chat, update id) pairs handled lately, so a redelivered command is not run twice
    (replies to the person are also guarded in the database by their provider id)."""

    def __init__(self, size: int = 2000) -> None:
        self._order: deque[tuple[int, int]] = deque(maxlen=size)
        self._ids: set[tuple[int, int]] = set()

    def first_time(self, chat_id: int, update_id: int) -> bool:
        key = (chat_id, update_id)
        if key in self._ids:
            return False
        if len(self._order) == self._order.maxlen:
            self._ids.discard(self._order[0])
        self._order.append(key)
        self._ids.add(key)
        return True


_seen = _Seen()


async def coordinator_for_chat(gateway: Gateway, chat_id: str) -> Coordinator | None:
    async with gateway.sessions() as session:
        return await session.scalar(
            select(Coordinator).where(
                Coordinator.telegram_chat_id == chat_id, Coordinator.active.is_(True)
            )
        )


async def handle_coordinator_update(update: Update, gateway: Gateway) -> bool:
    """Handle an update from a coordinator's private chat; False if it isn't one (the
    victim path then handles it as before)."""
    chat = update.effective_chat
    if chat is None or chat.type != ChatType.PRIVATE:
        return False
    coordinator = await coordinator_for_chat(gateway, str(chat.id))
    if coordinator is None:
        return False
    bot = update.get_bot()
    query = update.callback_query
    answer: str | None = None
    try:
        if not _seen.first_time(chat.id, update.update_id) and (query or _is_command(update)):
            return True
        if query is not None:
            answer = await _on_button(bot, gateway, coordinator, chat.id, query.data or "")
        elif update.message is not None:
            await _on_message(bot, gateway, coordinator, chat.id, update)
        # Anything else from a coordinator's chat (an edit) is ignored, never a victim's.
    except Exception as error:
        _log_failure(f"Coordinator update {update.update_id}", error)
        await _reply(bot, chat.id, "Something went wrong. Please try again.")
    finally:
        if query is not None:
            try:
                await query.answer(text=answer)
            except TelegramError:
                logger.warning("Could not answer a coordinator's callback query")
    return True


def _is_command(update: Update) -> bool:
    text = update.message.text if update.message else None
    return bool(text and text.startswith("/"))


def _log_failure(what: str, error: BaseException) -> None:
    # The type and the stack, not the message: database errors can quote what was written.
    logger.error(
        "%s failed: %s\n%s",
        what,
        type(error).__name__,
        "".join(traceback.format_tb(error.__traceback__)),
    )


async def _reply(
    bot: Bot, chat_id: int, text: str, markup: InlineKeyboardMarkup | None = None
) -> None:
    try:
        await _send(bot, chat_id, text, markup)
    except TelegramError as error:
        logger.warning("Could not message a coordinator's chat (%s)", type(error).__name__)


async def _on_button(
    bot: Bot, gateway: Gateway, coordinator: Coordinator, chat_id: int, data: str
) -> str:
    """A tap on a Claim button; returns the short notice Telegram shows."""
    match = CLAIM_DATA.match(data)
    if match is None:
        return "That button no longer works."
    return await _claim(bot, gateway, coordinator, chat_id, int(match[1]))


async def _claim(
    bot: Bot, gateway: Gateway, coordinator: Coordinator, chat_id: int, handoff_id: int
) -> str:
    desk = gateway.handoffs
    try:
        won = await desk.claim(handoff_id, coordinator)
    except HandoffError as error:
        await _reply(bot, chat_id, str(error))
        return str(error)
    if won:
        await _show_packet(bot, gateway, coordinator, chat_id, handoff_id)
        return f"#{handoff_id} is yours."
    text = await _who_has(gateway, coordinator, handoff_id)
    await _reply(bot, chat_id, text)
    return text


async def _who_has(gateway: Gateway, coordinator: Coordinator, handoff_id: int) -> str:
    """Why a claim did not win: someone else has it, or it is closed."""
    refused = await gateway.handoffs.not_claimed(handoff_id, coordinator)
    if refused.endswith("already yours."):
        return f"{refused} /switch {handoff_id} to write to them."
    return refused


async def _show_packet(
    bot: Bot, gateway: Gateway, coordinator: Coordinator, chat_id: int, handoff_id: int
) -> None:
    packet = await gateway.handoffs.packet(handoff_id)
    async with gateway.sessions() as session, session.begin():
        session.add(
            audit.entry(
                coordinator,
                "view_conversation",
                conversation_id=packet.conversation_id,
                handoff_id=handoff_id,
            )
        )
    await _reply(bot, chat_id, packet_text(packet))


def _clock(moment: datetime) -> str:
    return f"{moment.astimezone(LONDON):%H:%M}"


def _line(line: Line, who: str | None = None) -> str:
    flag = " [URGENT]" if line.urgent else ""
    return f"{_clock(line.at)} {who or WHO.get(line.who, line.who.title())}{flag}: {line.text}"


def _preferences(preferences: dict[str, object]) -> str:
    shown = []
    for key, value in preferences.items():
        if value is None:
            continue
        label = key.replace("_", " ")
        shown.append(f"{label}: {'yes' if value is True else 'no' if value is False else value}")
    return ", ".join(shown)


def packet_text(packet: Packet) -> str:
    """The packet as plain text: why, risk, the verified case, preferences, summary,
    the latest messages and any notes. Never the person's number."""
    urgent = " URGENT" if packet.risk == "high" else ""
    lines = [
        f"#{packet.handoff_id}{urgent}: {packet.reason_text}",
        f"Risk: {packet.risk}. They use {packet.channel}.",
    ]
    if packet.case_reference:
        stage = f", stage: {packet.case_stage}" if packet.case_stage else ""
        lines.append(f"Verified case: {packet.case_reference}{stage}")
    if packet.preferences:
        lines.append(f"Contact preferences: {_preferences(packet.preferences)}")
    lines.append(f"Summary: {packet.summary}")
    recent = packet.transcript[-TRANSCRIPT_LINES:]
    if recent:
        lines += ["", "Latest messages:", *(_line(line) for line in recent)]
    if packet.notes:
        lines += ["", "Notes:", *(_line(note, note.who) for note in packet.notes)]
    lines += [
        "",
        "Write here to reply to them. /close when done, /back to hand back, /help for more.",
    ]
    return "\n".join(lines)


def _waited(seconds: int) -> str:
    minutes = seconds // 60
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h"


def queue_text(items: Sequence[QueueItem], coordinator: Coordinator) -> str:
    waiting = [q for q in items if q.state == HandoffState.QUEUED]
    claimed = [q for q in items if q.state == HandoffState.CLAIMED]
    if not items:
        return "Nobody is waiting, and no handoffs are open."
    lines: list[str] = []
    if waiting:
        lines.append(f"Waiting ({len(waiting)}):")
        lines += [
            f"#{q.handoff_id}{' URGENT' if q.urgent else ''}, {_waited(q.waiting_seconds)}: "
            f"{q.reason_text} ({q.channel})"
            for q in waiting
        ]
    else:
        lines.append("Nobody is waiting.")
    if claimed:
        lines.append(f"With a coordinator ({len(claimed)}):")
        for q in claimed:
            mine = q.coordinator == coordinator.username
            current = mine and q.handoff_id == coordinator.current_handoff_id
            who = "you (current)" if current else "you" if mine else q.coordinator
            urgent = " URGENT" if q.urgent else ""
            lines.append(f"#{q.handoff_id}{urgent}, {who}: {q.reason_text}")
    return "\n".join(lines)


async def _on_message(
    bot: Bot, gateway: Gateway, coordinator: Coordinator, chat_id: int, update: Update
) -> None:
    assert update.message is not None
    text = (update.message.text or "").strip()
    if not text:
        await _reply(bot, chat_id, "Only text can be passed on. Nothing was sent.")
        return
    if not text.startswith("/"):
        await _send_to_person(gateway, bot, coordinator, chat_id, text, update.update_id)
        return
    command, _, argument = text.partition(" ")
    command = command.split("@")[0].lower()
    argument = argument.strip()
    desk = gateway.handoffs
    try:
        if command in {"/help", "/start"}:
            await _reply(bot, chat_id, HELP)
        elif command == "/queue":
            await _queue(bot, gateway, coordinator, chat_id)
        elif command == "/claim":
            number = _number(argument, "/claim N")
            await _claim(bot, gateway, coordinator, chat_id, number)
        elif command == "/switch":
            number = _number(argument, "/switch N")
            await switch(gateway, coordinator, number)
            await _reply(bot, chat_id, f"Your messages now go to #{number}.")
        elif command == "/packet":
            await _show_packet(bot, gateway, coordinator, chat_id, _current(coordinator))
        elif command == "/note":
            handoff_id = _current(coordinator)
            await desk.note(handoff_id, coordinator, argument)
            await _reply(bot, chat_id, f"Note saved on #{handoff_id}. The person does not see it.")
        elif command == "/transfer":
            if not argument:
                raise HandoffError("Write /transfer and the coordinator's username.")
            handoff_id = _current(coordinator)
            target = await desk.transfer(handoff_id, coordinator, argument)
            await _reply(bot, chat_id, f"#{handoff_id} is now with {target.display_name}.")
        elif command == "/close":
            outcome = argument.lower().replace(" ", "_") or "resolved"
            if outcome not in OUTCOMES:
                raise HandoffError(f"Choose an outcome: {', '.join(OUTCOMES)}.")
            handoff_id = _current(coordinator)
            await desk.close(handoff_id, coordinator, outcome)
            await _reply(
                bot,
                chat_id,
                f"Closed #{handoff_id} ({outcome}). They are back with the assistant."
                + await _still_yours(gateway, coordinator),
            )
        elif command == "/back":
            handoff_id = _current(coordinator)
            await desk.hand_back(handoff_id, coordinator)
            await _reply(
                bot,
                chat_id,
                f"#{handoff_id} is back with the assistant."
                + await _still_yours(gateway, coordinator),
            )
        elif command == "/duty":
            if argument.lower() not in {"on", "off"}:
                raise HandoffError("Write /duty on or /duty off.")
            on = argument.lower() == "on"
            await desk.set_duty(coordinator, on)
            await _reply(
                bot,
                chat_id,
                "You are on duty: alerts will come here." if on else "You are off duty.",
            )
        elif command == "/stop":
            await _reply(bot, chat_id, "To stop alerts, send /duty off.")
        else:
            await _reply(bot, chat_id, "Unknown command. Nothing was sent. /help lists them.")
    except HandoffError as error:
        await _reply(bot, chat_id, str(error))


def _number(argument: str, usage: str) -> int:
    digits = argument.lstrip("#").strip()
    if not digits.isdigit() or len(digits) > 18:
        raise HandoffError(f"Write {usage}, with the handoff's number.")
    return int(digits)


def _current(coordinator: Coordinator) -> int:
    if coordinator.current_handoff_id is None:
        raise HandoffError("You have no open handoff. /queue shows who is waiting.")
    return coordinator.current_handoff_id


async def _still_yours(gateway: Gateway, coordinator: Coordinator) -> str:
    """A hint when the coordinator still has other handoffs (none is current now)."""
    async with gateway.sessions() as session:
        others = (
            await session.scalars(
                select(Handoff.id)
                .where(
                    Handoff.coordinator_id == coordinator.id,
                    Handoff.state == HandoffState.CLAIMED,
                )
                .order_by(Handoff.id)
            )
        ).all()
    if not others:
        return ""
    listed = ", ".join(f"#{n}" for n in others)
    return f" You still have {listed}: /switch N to write to one."


async def switch(gateway: Gateway, coordinator: Coordinator, handoff_id: int) -> None:
    """Make one of the coordinator's claimed handoffs the one their messages go to."""
    async with gateway.sessions() as session, session.begin():
        handoff = await session.get(Handoff, handoff_id)
        if handoff is None:
            raise HandoffError(f"There is no handoff #{handoff_id}.")
        if handoff.state == HandoffState.CLOSED:
            raise HandoffError(f"Handoff #{handoff_id} is already closed.")
        if handoff.state != HandoffState.CLAIMED or handoff.coordinator_id != coordinator.id:
            raise HandoffError(f"#{handoff_id} is not yours. /claim {handoff_id} if it is waiting.")
        await session.execute(
            update(Coordinator)
            .where(Coordinator.id == coordinator.id)
            .values(current_handoff_id=handoff_id)
        )
    coordinator.current_handoff_id = handoff_id


async def _queue(bot: Bot, gateway: Gateway, coordinator: Coordinator, chat_id: int) -> None:
    items = (await gateway.handoffs.queue(limit=QUEUE_SHOWN))[:QUEUE_SHOWN]
    async with gateway.sessions() as session, session.begin():
        session.add(audit.entry(coordinator, "view_queue"))
    waiting = [q.handoff_id for q in items if q.state == HandoffState.QUEUED]
    await _reply(
        bot,
        chat_id,
        queue_text(items, coordinator),
        _claim_buttons(waiting) if waiting else None,
    )


async def _send_to_person(
    gateway: Gateway, bot: Bot, coordinator: Coordinator, chat_id: int, text: str, update_id: int
) -> None:
    """The coordinator's message, to the person in their current handoff, once."""
    try:
        await gateway.handoffs.reply(
            _current(coordinator),
            coordinator,
            text,
            channel="telegram",
            provider_id=str(update_id),
        )
    except HandoffError as error:
        await _reply(bot, chat_id, str(error))
