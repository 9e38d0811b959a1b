"""The preferences desk: a verified victim chooses how and when they hear about their case.

The assistant sends a `{"privacy": "preferences"}` marker (`start`); after that the menu is
the gateway's own, answered here without Rasa (`handle`), so no choice lands in Rasa's
tracker. A short menu (buttons; numbered on SMS): how we contact you, quiet hours,
discreet or detailed, through an advocate, pause or start messages again, done. Each
choice updates the `Victim` row, writes an audit entry naming the fields changed (never
their values) and is confirmed in one line. The notification worker reads the row at
send time, so the next message already follows it (bot/cases/notify.py).

Only someone verified in this conversation in the last `verification_minutes`, or who
has just finished enrolling here (`offer`), can change anything. Where the person is in
the menu is kept in memory for 10 minutes: after a restart they just ask again.
"""

from __future__ import annotations

import logging
import re
import time as clock
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from actions import content
from bot.cases.models import Victim, VictimContact
from bot.cases.tasks import add_task_once
from bot.gateway import Reply
from bot.handoff import audit
from bot.models import Conversation, Owner

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from bot.gateway import Gateway, _Out

logger = logging.getLogger(__name__)

PREFIX = "prefs:"  # every payload this desk offers (and so answers) starts with it
STATE_SECONDS = 10 * 60
LOOKUP = "/request_case_update"  # how Rasa starts the case look-up (data/rules/case_progress.yml)
KEY = "preferences."

# A choice: the Victim fields it sets. Its content item (KEY + choice) has the button
# title and the line that confirms it.
CHOICES: dict[str, dict[str, Any]] = {
    "channel.sms": {"preferred_channel": "sms", "safe_to_text": True},
    "channel.telegram": {"preferred_channel": "telegram"},
    "channel.no_texts": {"safe_to_text": False},
    # Notifications can't reach a web chat: "web only" means none are sent at all.
    "channel.web": {"paused": True},
    "quiet.night": {"quiet_start": time(21), "quiet_end": time(8)},
    "quiet.evening": {"quiet_start": time(18), "quiet_end": time(9)},
    "quiet.day": {"quiet_start": time(9), "quiet_end": time(17)},
    "quiet.none": {"quiet_start": None, "quiet_end": None},
    "detail.discreet": {"discreet": True},
    "detail.detailed": {"discreet": False},
    "advocate.yes": {"via_advocate": True},
    "advocate.no": {"via_advocate": False},
    "pause": {"paused": True},
    "resume": {"paused": False},
}
SUBMENUS = {
    "quiet": ("quiet.night", "quiet.evening", "quiet.day", "quiet.none"),
    "detail": ("detail.discreet", "detail.detailed"),
    "advocate": ("advocate.yes", "advocate.no"),
}  # "channel" depends on the victim's linked contacts
YES = frozenset({"yes", "y", "yeah", "yep", "ok", "okay", "sure", "yes please"})
NO = frozenset({"no", "n", "nope", "no thanks", "not now", "later"})


@dataclass
class _State:
    step: str  # verify, offer, menu, channel, quiet, detail, advocate
    buttons: tuple[dict[str, str], ...]
    grant: int | None  # the victim who just enrolled in this conversation
    until: float  # time.monotonic()


def _button(name: str, payload: str | None = None) -> dict[str, str]:
    return {"title": content.item(KEY + name).title, "payload": payload or PREFIX + name}


def _line(name: str) -> str:
    return content.item(KEY + name).part(0)


def _words(text: str) -> str:
    text = text.lower().replace("\u2019", "'")
    return " ".join(re.sub(r"[^a-z0-9' ]", " ", text).split())


def _clock(moment: time) -> str:
    """9pm, 5:30pm (the writing guide's times)."""
    hour = moment.hour % 12 or 12
    minutes = f":{moment.minute:02d}" if moment.minute else ""
    return f"{hour}{minutes}{'am' if moment.hour < 12 else 'pm'}"


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


def _picked(state: _State, text: str, payload: str | None) -> str | None:
    """The payload of the button the person chose: tapped, numbered, typed or said."""
    if payload:
        return payload if any(b["payload"] == payload for b in state.buttons) else None
    typed = text.strip()
    if typed.isdigit():
        number = int(typed)
        return state.buttons[number - 1]["payload"] if 1 <= number <= len(state.buttons) else None
    words = _words(typed)
    for button in state.buttons:
        if _words(button["title"]) == words:
            return button["payload"]
    if words in YES and state.step in {"offer", "advocate"}:
        return state.buttons[0]["payload"]
    if words in NO and state.step in {"verify", "offer", "advocate", "menu"}:
        return state.buttons[1 if state.step != "menu" else -1]["payload"]
    return None


def _stale(conversation: Conversation, text: str, payload: str | None) -> bool:
    """A tap (or a number) on one of this desk's menus after it closed."""
    chosen = payload
    typed = text.strip()
    if chosen is None and typed.isdigit() and conversation.choices:
        number = int(typed)
        if 1 <= number <= len(conversation.choices):
            chosen = conversation.choices[number - 1].get("payload")
    return bool(chosen and chosen.startswith(PREFIX))


class PreferencesDesk:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.sessions = gateway.sessions
        self._states: dict[int, _State] = {}  # by conversation id

    def drop(self, conversation_id: int) -> None:
        """Forget an open menu (the conversation's rows were deleted)."""
        self._states.pop(conversation_id, None)

    # -- entry points -------------------------------------------------------------------

    async def start(self, out: _Out, conversation: Conversation) -> None:
        """The assistant's marker: the menu for a verified victim, else how to verify."""
        state = self._state(conversation.id)
        await self._open(out, conversation, state.grant if state else None)

    async def offer(self, out: _Out, conversation: Conversation, victim_id: int) -> None:
        """After enrolment: ask once whether they want to choose now."""
        if conversation.owner != Owner.BOT:
            return  # a person is looking after this conversation
        reply = Reply(_line("offer"), (_button("offer", PREFIX + "menu"), _button("not_now")))
        await self._send(out, conversation.id, reply, "offer", victim_id)

    async def handle(
        self, out: _Out, conversation: Conversation, text: str, *, safety: bool
    ) -> str | None:
        """Answer a menu choice; None (and the menu closes) for anything else."""
        state = self._state(conversation.id)
        payload = out.inbound.payload
        if safety or conversation.awaiting or conversation.owner != Owner.BOT:
            # A cry for help, a secret the case desk waits for, or a person in charge.
            self._states.pop(conversation.id, None)
            return None
        picked = _picked(state, text, payload) if state else None
        if picked is None or not picked.startswith(PREFIX):
            # Something else (or "check it's me", which Rasa answers): the menu closes.
            self._states.pop(conversation.id, None)
            if picked is None and _stale(conversation, text, payload):
                # A button from a menu that has closed: show the menu again, as it is now.
                await self._open(out, conversation, state.grant if state else None)
                return "preferences_menu"
            return None
        assert state is not None
        return await self._choose(out, conversation, state, picked.removeprefix(PREFIX))

    async def _open(self, out: _Out, conversation: Conversation, grant: int | None) -> None:
        victim_id = self._victim_id(conversation, grant)
        if victim_id is None:
            await self._verify_first(out, conversation.id, "verify")
        else:
            await self._menu(out, conversation.id, victim_id, grant)

    # -- steps --------------------------------------------------------------------------

    async def _choose(
        self, out: _Out, conversation: Conversation, state: _State, action: str
    ) -> str:
        if action == "not_now":
            await self._end(out, conversation.id, "not_now")
            return "preferences_not_now"
        victim_id = self._victim_id(conversation, state.grant)
        if victim_id is None:  # the verification ran out meanwhile
            await self._verify_first(out, conversation.id, "expired")
            return "preferences_verify"
        if action == "done":
            await self._end(out, conversation.id, "done")
            return "preferences_done"
        if action in {"menu", "back"}:
            lead = _line("back") + " " if action == "back" else ""
            await self._menu(out, conversation.id, victim_id, state.grant, lead=lead)
            return "preferences_menu"
        if action in SUBMENUS or action == "channel":
            await self._submenu(out, conversation.id, victim_id, state.grant, action)
            return "preferences_menu"
        choice = action.removeprefix("set:")
        if choice not in CHOICES:
            self._states.pop(conversation.id, None)
            return "preferences_unknown"
        victim, linked = await self._save(conversation.id, victim_id, choice)
        lines = [self._confirmation(choice, victim, linked)]
        if victim.paused and choice.startswith("channel.") and choice != "channel.web":
            lines.append(_line("still_paused"))
        lead = " ".join(lines) + " "
        await self._menu(out, conversation.id, victim_id, state.grant, lead=lead, victim=victim)
        return "preferences_saved"

    async def _menu(
        self,
        out: _Out,
        conversation_id: int,
        victim_id: int,
        grant: int | None,
        *,
        lead: str = "",
        victim: Victim | None = None,
    ) -> None:
        if victim is None:
            victim, _ = await self._victim(victim_id)
        text = lead + _line("again") if lead else _line("menu")
        pause = "resume" if victim.paused else "pause"
        buttons = (
            _button("channel"),
            _button("quiet"),
            _button("detail"),
            _button("advocate"),
            _button(pause, PREFIX + "set:" + pause),
            _button("done"),
        )
        await self._send(out, conversation_id, Reply(text, buttons), "menu", grant)

    async def _submenu(
        self, out: _Out, conversation_id: int, victim_id: int, grant: int | None, name: str
    ) -> None:
        victim, linked = await self._victim(victim_id)
        if name == "channel":
            options = [f"channel.{c}" for c in ("sms", "telegram") if c in linked]
            options += ["channel.no_texts", "channel.web"]
        else:
            options = list(SUBMENUS[name])
        now = ""
        if name == "quiet":
            if victim.quiet_start and victim.quiet_end and victim.quiet_start != victim.quiet_end:
                now = f"{_clock(victim.quiet_start)} to {_clock(victim.quiet_end)}"
            else:
                now = content.item(KEY + "quiet.none").title.lower()
        elif name == "detail":
            chosen = "detail.discreet" if victim.discreet is not False else "detail.detailed"
            now = content.item(KEY + chosen).title.lower()
        text = content.item(KEY + name).part(0, now=now) if now else _line(name)
        buttons = (*(_button(o, PREFIX + "set:" + o) for o in options), _button("back"))
        await self._send(out, conversation_id, Reply(text, buttons), name, grant)

    async def _verify_first(self, out: _Out, conversation_id: int, why: str) -> None:
        text = _line(why) if why == "verify" else f"{_line(why)} {_line('verify')}"
        buttons = (_button("verify", LOOKUP), _button("not_now"))
        await self._send(out, conversation_id, Reply(text, buttons), "verify", None)

    async def _end(self, out: _Out, conversation_id: int, line: str) -> None:
        self._states.pop(conversation_id, None)
        await out.send(Reply(_line(line)), source="system")
        await self._set_choices(conversation_id, None)

    # -- the victim row -----------------------------------------------------------------

    async def _victim(self, victim_id: int) -> tuple[Victim, set[str]]:
        """The victim and the channels they have a proved contact on."""
        async with self.sessions() as session:
            victim = await session.get(Victim, victim_id)
            assert victim is not None
            linked = set(
                await session.scalars(
                    select(VictimContact.channel).where(
                        VictimContact.victim_id == victim_id,
                        VictimContact.verified_at.is_not(None),
                    )
                )
            )
        return victim, linked

    async def _save(
        self, conversation_id: int, victim_id: int, choice: str
    ) -> tuple[Victim, set[str]]:
        """Apply one choice, with its audit entry, in one transaction."""
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            victim = await session.get(Victim, victim_id, with_for_update=True)
            assert victim is not None
            values = CHOICES[choice]
            changed = sorted(
                name for name, value in values.items() if getattr(victim, name) != value
            )
            for name in changed:
                setattr(victim, name, values[name])
            if changed:
                session.add(
                    audit.entry(
                        "victim",
                        "preferences",
                        conversation_id=conversation_id,
                        case_id=victim.case_id,
                        detail={"changed": changed},
                    )
                )
            if choice == "advocate.yes" and not victim.advocate_phone:
                await self._advocate_task(session, victim, conversation_id, now)
            linked = set(
                await session.scalars(
                    select(VictimContact.channel).where(
                        VictimContact.victim_id == victim_id,
                        VictimContact.verified_at.is_not(None),
                    )
                )
            )
        logger.info("Victim %s changed contact preferences: %s", victim_id, ", ".join(changed))
        return victim, linked

    @staticmethod
    async def _advocate_task(
        session: AsyncSession, victim: Victim, conversation_id: int, now: datetime
    ) -> None:
        """Nobody asks for an advocate's details in chat: a coordinator gets them."""
        await add_task_once(
            session,
            key=f"advocate:{victim.id}:{now.date().isoformat()}",
            kind="advocate_details",
            detail=(
                "A victim asked for case news to go through their advocate. Waymark has no "
                "advocate details. Ask the agency to add them. Until then, news goes to "
                "the victim."
            ),
            now=now,
            priority=1,
            case_id=victim.case_id,
            conversation_id=conversation_id,
        )

    @staticmethod
    def _confirmation(choice: str, victim: Victim, linked: set[str]) -> str:
        """The one line that says what now happens, honestly."""
        if choice == "advocate.yes" and not victim.advocate_phone:
            return _line("advocate.pending")
        line = _line(choice)
        if choice == "channel.no_texts" and "telegram" not in linked:
            line += " " + _line("channel.no_route")
        if choice.startswith("quiet.") and choice != "quiet.none" and victim.urgent_in_quiet_hours:
            line += " " + _line("quiet.urgent")
        return line

    # -- state ----------------------------------------------------------------------------

    def _victim_id(self, conversation: Conversation, grant: int | None) -> int | None:
        until = _aware(conversation.verified_until)
        if conversation.verified_victim_id and until and until > datetime.now(UTC):
            return conversation.verified_victim_id
        return grant

    def _state(self, conversation_id: int) -> _State | None:
        state = self._states.get(conversation_id)
        if state is not None and state.until < clock.monotonic():
            del self._states[conversation_id]
            return None
        return state

    async def _send(
        self, out: _Out, conversation_id: int, reply: Reply, step: str, grant: int | None
    ) -> None:
        await out.send(reply, source="system")
        if len(self._states) > 10_000:  # drop the expired ones now and then
            now = clock.monotonic()
            self._states = {k: s for k, s in self._states.items() if s.until >= now}
        self._states[conversation_id] = _State(
            step, reply.buttons, grant, clock.monotonic() + STATE_SECONDS
        )
        # "2" and a web client's button must map to these buttons, whoever answers next.
        await self._set_choices(conversation_id, list(reply.buttons))

    async def _set_choices(
        self, conversation_id: int, buttons: list[dict[str, str]] | None
    ) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(choices=buttons)
            )
