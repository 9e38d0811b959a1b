"""The case desk: the gateway's side of case look-ups.

Rasa runs the conversation ("any news?" -> reference -> secret), but what would be
unsafe in its tracker or logs never reaches it:

- When the assistant asks for a secret or a code, it sends the gateway a marker
  (`{"waymark": {"expect": "secret", "reference": ...}}`). The gateway remembers it
  (`Conversation.awaiting`), keeps the next message out of its database (the text is
  held in memory only), checks it here, and forwards only the result:
  `/inform{"case_check": "verified"}` (or no_match, code_sent, wrong_code, locked,
  no_route).
- Enrolment (a code from an agency's text, a Telegram deep link, choosing a secret)
  is answered here directly.
- Case details are rendered here, on a `{"waymark": {"render": "case_status"}}`
  marker, only for a conversation verified in the last `verification_minutes`.

Safety comes first: an emergency message is never taken as a secret.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from actions import content
from actions.references import normalise_reference
from bot.cases import status
from bot.cases.credentials import (
    code_digest,
    hash_secret,
    new_code,
    not_a_secret,
    read_code,
    secret_problem,
    verify_secret,
)
from bot.cases.events import record_victim_update
from bot.cases.models import (
    Case,
    CaseEvent,
    OneTimeCode,
    VerificationAttempt,
    Victim,
    VictimContact,
)
from bot.cases.tasks import add_task_once
from bot.models import Channel, Contact, Conversation, Inbound
from safety import assess, forced_intent

if TYPE_CHECKING:
    from bot.gateway import Gateway, _Out

logger = logging.getLogger(__name__)

STATUS_EVENTS = 50  # the newest events an answer looks at
CHOOSING = frozenset({"new_secret", "confirm_secret"})
CHOOSING_HOURS = 24  # how long someone who linked a phone has to choose their secret


@dataclass(frozen=True)
class Outcome:
    """What the desk did with a message: answered it, or what to send Rasa instead."""

    done: str | None = None  # the inbound note when the desk answered it itself
    forward: str | None = None  # the message for Rasa (a result payload, or the text)


def check_payload(result: str) -> str:
    return "/inform" + json.dumps({"case_check": result})


def _aware(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class CaseDesk:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.settings = gateway.settings
        self.sessions = gateway.sessions
        self._key = self.settings.secret_key.get_secret_value()
        # conversation id -> what it waits for; mirrors Conversation.awaiting.
        self._awaiting: dict[int, str] = {}
        # inbound id -> text kept out of the database (a secret or a code).
        self._held: dict[int, str] = {}

    async def load(self) -> None:
        async with self.sessions() as session:
            rows = await session.execute(
                select(Conversation.id, Conversation.awaiting).where(
                    Conversation.awaiting.is_not(None)
                )
            )
            self._awaiting = {row.id: row.awaiting.get("kind", "") for row in rows if row.awaiting}

    # -- at receipt -----------------------------------------------------------------

    def should_hold(self, conversation_id: int, text: str | None) -> bool:
        """Keep this message's text out of the database: it may be a secret or a code."""
        if not text or not (conversation_id in self._awaiting or read_code(text)):
            return False
        # A cry for help is never a secret: keep it like any other message.
        return forced_intent(assess(text)) is None

    def hold(self, inbound_id: int, text: str) -> None:
        self._held[inbound_id] = text

    def take(self, inbound_id: int) -> str | None:
        return self._held.pop(inbound_id, None)

    def drop(self, conversation_id: int) -> None:
        """Forget what this conversation waited for (its rows were deleted)."""
        self._awaiting.pop(conversation_id, None)

    # -- what Rasa gets to know -----------------------------------------------------

    async def flags(self, conversation: Conversation) -> dict[str, bool]:
        """Whether the person is verified now, or locked out. No case detail."""
        now = datetime.now(UTC)
        until = _aware(conversation.verified_until)
        verified = bool(conversation.verified_victim_id and until and until > now)
        async with self.sessions() as session:
            locked = (
                not verified
                and await self._failures(session, now, conversation_id=conversation.id)
                >= self.settings.verification_max_failures
            )
        return {"verified": verified, "locked": locked}

    async def on_marker(self, out: _Out, conversation_id: int, marker: dict[str, Any]) -> None:
        """A marker from the assistant: what to expect next, or a case to render."""
        if marker.get("render") == "case_status":
            await self.render(out, conversation_id)
            return
        expect = marker.get("expect")
        if expect == "secret":
            reference = normalise_reference(
                str(marker.get("reference") or ""),
                self.settings.crime_reference_pattern,
                self.settings.crime_reference_format,
            )
            if reference:
                await self._await(conversation_id, {"kind": "secret", "reference": reference})
        elif expect == "code":
            async with self.sessions() as session:
                awaiting = await session.scalar(
                    select(Conversation.awaiting).where(Conversation.id == conversation_id)
                )
            if not awaiting or awaiting.get("kind") != "code":
                logger.info(
                    "Asked for a code that was never sent (conversation %s)", conversation_id
                )

    # -- a message while something is awaited ---------------------------------------

    async def handle(
        self,
        out: _Out,
        conversation: Conversation,
        contact: Contact,
        held: str | None,
        lost: bool,
        safety: bool,
        start_param: str | None,
    ) -> Outcome | None:
        """Deal with a message if it is the desk's; None means "carry on as usual"."""
        if start_param and contact.channel == Channel.TELEGRAM:
            done = await self._telegram_link(out, conversation, contact, start_param)
            if done:
                return done
        awaiting = conversation.awaiting
        until = datetime.fromisoformat(awaiting["until"]) if awaiting else None
        if awaiting and until and until < datetime.now(UTC):
            await self._await(conversation.id, None)
            awaiting = None
        if lost:  # held in memory, and the gateway restarted before answering it
            if awaiting:
                await out.send_content("case.verify.again", source="system")
                return Outcome(done="held_text_lost")
            return Outcome(done="held_text_lost")
        if held is None:
            if awaiting and safety:  # a cry for help (never held) ends the questions
                await self._await(conversation.id, None)
            return None
        if safety or (awaiting and not_a_secret(held)):
            # Never take an emergency or "cancel" as a secret; the assistant answers it.
            # Someone choosing a secret may still send it next; a look-up stops here.
            if awaiting and (safety or awaiting.get("kind") not in CHOOSING):
                await self._await(conversation.id, None)
            await self._keep(out.inbound.id, held)
            return Outcome(forward=held)
        if awaiting is None:
            code = read_code(held)
            if code and (done := await self._enrol_with_code(out, conversation, contact, code)):
                return done
            await self._keep(out.inbound.id, held)
            return Outcome(forward=held)
        kind = awaiting.get("kind")
        if kind == "secret":
            result = await self._check_secret(out, conversation, contact, awaiting, held)
            return Outcome(forward=check_payload(result))
        if kind == "code":
            result = await self._check_code(conversation, contact, awaiting, held)
            return Outcome(forward=check_payload(result))
        if kind == "new_secret":
            return await self._new_secret(out, conversation, awaiting, held)
        if kind == "confirm_secret":
            return await self._confirm_secret(out, conversation, awaiting, held)
        await self._await(conversation.id, None)
        return Outcome(forward=held)

    # -- verification ---------------------------------------------------------------

    async def _check_secret(
        self,
        out: _Out,
        conversation: Conversation,
        contact: Contact,
        awaiting: dict[str, Any],
        text: str,
    ) -> str:
        now = datetime.now(UTC)
        limit = self.settings.verification_max_failures
        async with self.sessions() as session:
            sender_locked = (
                await self._failures(session, now, conversation_id=conversation.id) >= limit
            )
            case = await session.scalar(select(Case).where(Case.reference == awaiting["reference"]))
            victims = (
                list(await session.scalars(select(Victim).where(Victim.case_id == case.id)))
                if case
                else []
            )
            case_locked = (
                bool(case)
                and await self._failures(session, now, case_id=case.id if case else None) >= limit
            )
        if sender_locked:
            await self._await(conversation.id, None)
            return "locked"
        # The same slow hash runs whether or not the reference exists.
        matched: Victim | None = None
        for victim in victims or [None]:
            ok = await asyncio.to_thread(
                verify_secret, victim.secret_hash if victim else None, text
            )
            if ok and victim is not None:
                matched = victim
                break
        case_id = case.id if case else None
        if matched is None:
            return await self._failed(conversation.id, case_id, now)
        if case_locked:
            # Only someone with the right secret learns that the case is locked.
            await self._await(conversation.id, None)
            return "locked"
        async with self.sessions() as session, session.begin():
            linked = await session.scalar(
                select(VictimContact.id).where(
                    VictimContact.victim_id == matched.id,
                    VictimContact.channel == contact.channel,
                    VictimContact.address == contact.address,
                    VictimContact.verified_at.is_not(None),
                )
            )
            session.add(
                VerificationAttempt(
                    conversation_id=conversation.id, case_id=case_id, succeeded=True, at=now
                )
            )
            if linked:
                await self._verify(session, conversation.id, matched.id, now)
                self._awaiting.pop(conversation.id, None)
                return "verified"
        # Right details, but this phone, chat or web page isn't linked to the victim:
        # prove it with a code sent to one that is.
        return await self._send_code(out, conversation, matched, now)

    async def _send_code(
        self, out: _Out, conversation: Conversation, victim: Victim, now: datetime
    ) -> str:
        from bot.gateway import Reply

        async with self.sessions() as session:
            contacts = list(
                await session.scalars(
                    select(VictimContact)
                    .where(
                        VictimContact.victim_id == victim.id,
                        VictimContact.verified_at.is_not(None),
                    )
                    .order_by(VictimContact.id)
                )
            )
        usable = [
            c
            for c in contacts
            if c.channel in self.gateway.senders or self.settings.demo
            if c.channel != Channel.SMS or victim.safe_to_text
        ]
        usable.sort(key=lambda c: c.channel != victim.preferred_channel)
        if not usable:
            await self._await(conversation.id, None)
            return "no_route"
        code = new_code()
        minutes = self.settings.code_minutes
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(OneTimeCode)
                .where(
                    OneTimeCode.conversation_id == conversation.id,
                    OneTimeCode.purpose == "verify",
                    OneTimeCode.used_at.is_(None),
                )
                .values(used_at=now)
            )
            session.add(
                OneTimeCode(
                    victim_id=victim.id,
                    purpose="verify",
                    digest=code_digest(self._key, code),
                    conversation_id=conversation.id,
                    expires_at=now + timedelta(minutes=minutes),
                    created_at=now,
                )
            )
        text = content.item("case.verify.code").part(0, code=code, minutes=str(minutes))
        target = usable[0]
        sent = await self.gateway.notify(target.channel, target.address, Reply(text), source="code")
        if sent.status not in {"sent", "demo"}:
            await self._await(conversation.id, None)
            return "no_route"
        await self._await(conversation.id, {"kind": "code", "victim_id": victim.id})
        return "code_sent"

    async def _check_code(
        self, conversation: Conversation, contact: Contact, awaiting: dict[str, Any], text: str
    ) -> str:
        now = datetime.now(UTC)
        code = read_code(text)
        victim_id = int(awaiting["victim_id"])
        async with self.sessions() as session, session.begin():
            victim = await session.get(Victim, victim_id)
            assert victim is not None
            if (
                await self._failures(session, now, conversation_id=conversation.id)
                >= self.settings.verification_max_failures
            ):
                await self._await(conversation.id, None, session)
                return "locked"
            row = None
            if code:
                row = await session.scalar(
                    select(OneTimeCode).where(
                        OneTimeCode.conversation_id == conversation.id,
                        OneTimeCode.purpose == "verify",
                        OneTimeCode.digest == code_digest(self._key, code),
                        OneTimeCode.used_at.is_(None),
                        OneTimeCode.expires_at > now,
                    )
                )
            if row is None:
                session.add(
                    VerificationAttempt(
                        conversation_id=conversation.id,
                        case_id=victim.case_id,
                        succeeded=False,
                        at=now,
                    )
                )
                await session.flush()
                if (
                    await self._failures(session, now, conversation_id=conversation.id)
                    >= self.settings.verification_max_failures
                ):
                    await self._lock_task(session, victim.case_id, conversation.id, now)
                    await self._await(conversation.id, None, session)
                    return "locked"
                return "wrong_code"
            row.used_at = now
            session.add(
                VerificationAttempt(
                    conversation_id=conversation.id,
                    case_id=victim.case_id,
                    succeeded=True,
                    at=now,
                )
            )
            if contact.channel in (Channel.SMS, Channel.TELEGRAM):
                # A code from a linked phone proves this chat or number is theirs too.
                await self._link(session, victim.id, contact, now)
            await self._verify(session, conversation.id, victim.id, now)
        self._awaiting.pop(conversation.id, None)
        return "verified"

    async def _failed(self, conversation_id: int, case_id: int | None, now: datetime) -> str:
        async with self.sessions() as session, session.begin():
            session.add(
                VerificationAttempt(
                    conversation_id=conversation_id, case_id=case_id, succeeded=False, at=now
                )
            )
            await session.flush()
            limit = self.settings.verification_max_failures
            sender = await self._failures(session, now, conversation_id=conversation_id) >= limit
            case = case_id is not None and (
                await self._failures(session, now, case_id=case_id) >= limit
            )
            if sender or case:
                await self._lock_task(session, case_id, conversation_id, now)
            await self._await(conversation_id, None, session)
        # A locked case answers a wrong guess like an unknown reference: nothing is
        # learned about whether it exists.
        return "locked" if sender else "no_match"

    async def _failures(
        self,
        session: AsyncSession,
        now: datetime,
        *,
        conversation_id: int | None = None,
        case_id: int | None = None,
    ) -> int:
        since = now - timedelta(hours=self.settings.verification_window_hours)
        query = select(func.count()).where(
            VerificationAttempt.succeeded.is_(False), VerificationAttempt.at >= since
        )
        if conversation_id is not None:
            query = query.where(VerificationAttempt.conversation_id == conversation_id)
        if case_id is not None:
            query = query.where(VerificationAttempt.case_id == case_id)
        return int(await session.scalar(query) or 0)

    async def _lock_task(
        self, session: AsyncSession, case_id: int | None, conversation_id: int, now: datetime
    ) -> None:
        subject = f"case{case_id}" if case_id else f"conversation{conversation_id}"
        if await add_task_once(
            session,
            key=f"locked:{subject}:{now.date().isoformat()}",
            kind="verification_locked",
            detail=(
                "Case look-ups locked after too many failed checks. The victim may need "
                "a call, or their PIN or word reset."
            ),
            now=now,
            priority=1,
            case_id=case_id,
            conversation_id=conversation_id,
        ):
            logger.warning("Case look-ups locked after failed checks (%s)", subject)

    async def _verify(
        self, session: AsyncSession, conversation_id: int, victim_id: int, now: datetime
    ) -> None:
        await session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id)
            .values(
                verified_victim_id=victim_id,
                verified_until=now + timedelta(minutes=self.settings.verification_minutes),
                awaiting=None,
            )
        )

    async def _link(
        self, session: AsyncSession, victim_id: int, contact: Contact, now: datetime
    ) -> None:
        existing = await session.scalar(
            select(VictimContact).where(
                VictimContact.victim_id == victim_id,
                VictimContact.channel == contact.channel,
                VictimContact.address == contact.address,
            )
        )
        if existing is None:
            session.add(
                VictimContact(
                    victim_id=victim_id,
                    channel=contact.channel,
                    address=contact.address,
                    verified_at=now,
                    created_at=now,
                )
            )
        elif existing.verified_at is None:
            existing.verified_at = now

    # -- enrolment ------------------------------------------------------------------

    async def _enrol_with_code(
        self, out: _Out, conversation: Conversation, contact: Contact, code: str
    ) -> Outcome | None:
        """A code from an agency's enrolment text, sent back from the same address."""
        query = (
            select(OneTimeCode)
            .join(VictimContact, VictimContact.id == OneTimeCode.victim_contact_id)
            .where(
                OneTimeCode.purpose == "enrol",
                OneTimeCode.digest == code_digest(self._key, code),
                VictimContact.channel == contact.channel,
                VictimContact.address == contact.address,
            )
        )
        return await self._link_with(out, conversation, contact, query)

    async def _telegram_link(
        self, out: _Out, conversation: Conversation, contact: Contact, token: str
    ) -> Outcome | None:
        query = select(OneTimeCode).where(
            OneTimeCode.purpose == "telegram",
            OneTimeCode.digest == code_digest(self._key, token),
        )
        return await self._link_with(out, conversation, contact, query)

    async def _link_with(
        self, out: _Out, conversation: Conversation, contact: Contact, query: Select[Any]
    ) -> Outcome | None:
        """Use the unexpired, unused code `query` finds: link this contact, then ask for a
        secret if the victim has none yet."""
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            row = await session.scalar(
                query.where(OneTimeCode.used_at.is_(None), OneTimeCode.expires_at > now)
            )
            if row is None:
                return None
            row.used_at = now
            await self._link(session, row.victim_id, contact, now)
            victim = await session.get(Victim, row.victim_id)
            assert victim is not None
            needs_secret = victim.secret_hash is None
            if needs_secret:
                await self._await(
                    conversation.id, {"kind": "new_secret", "victim_id": victim.id}, session
                )
        await out.send_content(
            "case.enrol.choose" if needs_secret else "case.enrol.linked", source="system"
        )
        return Outcome(done="enrolled")

    async def _new_secret(
        self, out: _Out, conversation: Conversation, awaiting: dict[str, Any], text: str
    ) -> Outcome:
        problem = secret_problem(text)
        if problem:
            await out.send_content(problem, source="system")
            await self._await(conversation.id, awaiting)  # a fresh time limit
            return Outcome(done="secret_refused")
        hashed = await asyncio.to_thread(hash_secret, text)
        await self._await(
            conversation.id,
            {"kind": "confirm_secret", "victim_id": awaiting["victim_id"], "hash": hashed},
        )
        await out.send_content("case.enrol.confirm", source="system")
        return Outcome(done="secret_chosen")

    async def _confirm_secret(
        self, out: _Out, conversation: Conversation, awaiting: dict[str, Any], text: str
    ) -> Outcome:
        if not await asyncio.to_thread(verify_secret, awaiting["hash"], text):
            await self._await(
                conversation.id, {"kind": "new_secret", "victim_id": awaiting["victim_id"]}
            )
            await out.send_content("case.enrol.mismatch", source="system")
            return Outcome(done="secret_mismatch")
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Victim)
                .where(Victim.id == int(awaiting["victim_id"]))
                .values(secret_hash=awaiting["hash"], secret_set_at=now)
            )
            await self._await(conversation.id, None, session)
        await out.send_content("case.enrol.done", source="system")
        # Safe contact (issue 7): offer, once, to choose how and when we contact them.
        await self.gateway.preferences.offer(out, conversation, int(awaiting["victim_id"]))
        return Outcome(done="secret_set")

    # -- the answer -----------------------------------------------------------------

    async def render(self, out: _Out, conversation_id: int) -> None:
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            conversation = await session.get(Conversation, conversation_id)
            assert conversation is not None
            until = _aware(conversation.verified_until)
            victim = (
                await session.get(Victim, conversation.verified_victim_id)
                if conversation.verified_victim_id and until and until > now
                else None
            )
            if victim is None:
                replies = None
            else:
                case = await session.get(Case, victim.case_id)
                assert case is not None
                events = list(
                    await session.scalars(
                        select(CaseEvent)
                        .where(CaseEvent.case_id == case.id)
                        .order_by(CaseEvent.occurred_at.desc(), CaseEvent.id.desc())
                        .limit(STATUS_EVENTS)
                    )
                )
                replies = status.case_status(case, events, now=now)
                await session.run_sync(
                    lambda s: record_victim_update(s, case.id, victim.id, "lookup", now)
                )
        if replies is None:
            await out.send_content("case.verify.needed", source="system")
            return
        await out.send_all(replies, source="bot")

    # -- state ------------------------------------------------------------------------

    async def _keep(self, inbound_id: int, text: str) -> None:
        """A held message that turned out not to be a secret is stored like any other."""
        async with self.sessions() as session, session.begin():
            await session.execute(update(Inbound).where(Inbound.id == inbound_id).values(text=text))

    async def _await(
        self,
        conversation_id: int,
        value: dict[str, Any] | None,
        session: AsyncSession | None = None,
    ) -> None:
        """Set (or clear) what the gateway takes from this conversation's next message."""
        if value is not None:
            wait = (
                timedelta(hours=CHOOSING_HOURS)
                if value["kind"] in CHOOSING
                else timedelta(minutes=self.settings.code_minutes)
            )
            value = {**value, "until": (datetime.now(UTC) + wait).isoformat()}
        statement = (
            update(Conversation).where(Conversation.id == conversation_id).values(awaiting=value)
        )
        if session is not None:
            await session.execute(statement)
        else:
            async with self.sessions() as own, own.begin():
                await own.execute(statement)
        if value is None:
            self._awaiting.pop(conversation_id, None)
        else:
            self._awaiting[conversation_id] = value["kind"]
