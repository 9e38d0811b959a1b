"""The signposting desk: answers the assistant's services, needs and referral markers.

Rasa decides what to ask; the gateway holds the directory, the person's needs answers
and their referrals, so none of it lives in Rasa's tracker. See
docs/conversation-contract.md for the markers and docs/signposting.md for the flow.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import yaml
from sqlalchemy import Select, select, update

from actions import content
from bot.cases.models import Task, TaskState
from bot.models import Conversation
from bot.services import directory as store
from bot.services import places, render
from bot.services.matching import AGE_GROUPS, Directory, Query
from bot.services.models import (
    OPEN,
    NeedsAssessment,
    Referral,
    ReferralEvent,
    ReferralStatus,
)
from bot.services.referrals import (
    REASONS,
    clean_needs,
    contact_route,
    contact_text,
    needs_text,
    reason_text,
)
from bot.services.schema import DirectoryError

if TYPE_CHECKING:
    from bot.gateway import Gateway, _Out

logger = logging.getLogger(__name__)

OFFER_MINUTES = 60  # how long "Do you agree?" stays answerable
GENDERS = frozenset({"woman", "man"})
PAGE = 3


def referral_task_detail(service_name: str) -> str:
    return f"Send the referral to {service_name}, then record their answer."


class SignpostDesk:
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.sessions = gateway.sessions
        self.directory = Directory(())

    async def load(self) -> None:
        """Load the directory file if it changed since the last import, then index it.
        A bad file is reported and the last good directory kept: start-up never fails
        on it (the import command and the tests say what is wrong)."""
        async with self.sessions() as session:
            try:
                result = await session.run_sync(_import_at_startup)
            except DirectoryError as error:
                logger.error(
                    "The services directory file was not loaded: %s", store.describe(error)
                )
                result = None
            except (OSError, yaml.YAMLError) as error:
                logger.error("The services directory file could not be read: %s", error)
                result = None
        if result is not None:
            logger.info("Services directory loaded: %s entries", result.total)
        await self.reload()

    async def reload(self) -> None:
        async with self.sessions() as session:
            services = await session.run_sync(store.active)
        # Building the indexes is CPU work: keep it off the event loop for big directories.
        self.directory = await asyncio.to_thread(Directory, services)

    async def flags(self, conversation_id: int) -> dict[str, bool]:
        async with self.sessions() as session:
            found = await session.scalar(
                select(NeedsAssessment.id).where(NeedsAssessment.conversation_id == conversation_id)
            )
        return {"stored": found is not None}

    async def on_marker(self, out: _Out, conversation_id: int, marker: dict[str, Any]) -> None:
        if isinstance(marker.get("services"), dict):
            await self.services(out, conversation_id, marker["services"])
        elif isinstance(marker.get("needs"), dict):
            await self.needs(out, conversation_id, marker["needs"])
        elif isinstance(marker.get("referral"), dict):
            await self.referral(out, conversation_id, marker["referral"])

    # -- services ---------------------------------------------------------------------

    async def services(self, out: _Out, conversation_id: int, spec: dict[str, Any]) -> None:
        query = query_from(spec, datetime.now(UTC))
        offset = spec.get("offset") if isinstance(spec.get("offset"), int) else 0
        offset = max(0, min(offset, 1000))
        if offset == 0 and self.directory.question(query) == "age_group":
            text, buttons = render.age_question()
            await out.send(_reply(text, buttons), source="bot")
            return
        matches = self.directory.match(query, limit=PAGE, offset=offset)
        if offset and not matches:
            await out.send_content("services.no_more", source="bot")
            return
        total = self.directory.total(query)
        for text in render.results(matches, query, offset=offset, total=total):
            await out.send(_reply(text), source="bot")
        if matches:
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(Conversation)
                    .where(Conversation.id == conversation_id)
                    .values(services_shown=[m.service.id for m in matches])
                )

    # -- needs ------------------------------------------------------------------------

    async def needs(self, out: _Out, conversation_id: int, raw: dict[str, Any]) -> None:
        answers = clean_needs(raw)
        if answers:
            async with self.sessions() as session, session.begin():
                row = await session.scalar(
                    select(NeedsAssessment).where(
                        NeedsAssessment.conversation_id == conversation_id
                    )
                )
                if row is None:
                    session.add(NeedsAssessment(conversation_id=conversation_id, answers=answers))
                else:
                    # A later "not safe now" must not wipe the rest of what they said.
                    row.answers = {**row.answers, **answers} if len(answers) == 1 else answers
        if answers.get("safe_now") == "no":
            # Not safe now: the emergency route first, and a person, urgently.
            await out.send_content("safety.emergency", source="safety")
            if self.gateway.settings.handoff_on_safety:
                await self.gateway.handoffs.start(
                    conversation_id, "emergency", urgent=True, out=out
                )
            return
        await out.send_content("referrals.needs_saved", source="bot")

    # -- referrals --------------------------------------------------------------------

    async def referral(self, out: _Out, conversation_id: int, spec: dict[str, Any]) -> None:
        if spec.get("choose"):
            await self._choose(out, conversation_id)
        elif isinstance(spec.get("offer"), str):
            reason = spec.get("reason")
            await self._offer(
                out, conversation_id, spec["offer"], reason if reason in REASON_VALUES else None
            )
        elif isinstance(spec.get("consent"), str):
            await self._consent(out, conversation_id, spec["consent"])
        elif isinstance(spec.get("refused"), str):
            await self._set_offer(conversation_id, None)
            await out.send_content("referrals.refused", source="bot")
        elif spec.get("withdraw"):
            await self.withdraw(out, conversation_id)

    async def _choose(self, out: _Out, conversation_id: int) -> None:
        async with self.sessions() as session:
            shown = await session.scalar(
                select(Conversation.services_shown).where(Conversation.id == conversation_id)
            )
        services = [s for s in (self.directory.get(i) for i in shown or ()) if s and s.referrals]
        if not services:
            await out.send_content("referrals.choose_first", source="bot")
            return
        buttons = [
            {
                "title": s.name,
                "payload": f'/request_referral{{"service_id":"{s.id}"}}',
            }
            for s in services
        ]
        await out.send(_reply(content.item("referrals.choose").part(0), buttons), source="bot")

    async def _offer(
        self, out: _Out, conversation_id: int, service_id: str, reason: str | None
    ) -> None:
        service = self.directory.get(service_id)
        if service is None or not service.referrals:
            await out.send_content("referrals.unavailable", source="bot")
            return
        if await self._open_referral(conversation_id, service.id):
            await out.send(
                _reply(content.item("referrals.already").part(0, service=service.name)),
                source="bot",
            )
            return
        needs = await self._needs(conversation_id)
        route = contact_route(out.contact.channel, out.contact.address, needs)
        item = content.item("referrals.consent")
        fields = {
            "service": service.name,
            "reason": reason_text(reason),
            "needs": needs_text(needs),
            "contact": contact_text(route),
        }
        # What they agree to is what this message says: the consent uses this copy.
        offer = {"service": service.id, "reason": reason, "needs": needs, "contact": route}
        await self._set_offer(conversation_id, offer)
        await out.send(_reply(item.part(0, **fields)), source="bot")
        buttons = [{"title": "Yes", "payload": "/affirm"}, {"title": "No", "payload": "/deny"}]
        await out.send(_reply(item.part(1), buttons), source="bot")

    async def _consent(self, out: _Out, conversation_id: int, service_id: str) -> None:
        service = self.directory.get(service_id)
        now = datetime.now(UTC)
        async with self.sessions() as session, session.begin():
            conversation = await session.get(Conversation, conversation_id, with_for_update=True)
            assert conversation is not None
            offer = conversation.referral_offer or {}
            offered_at = _parse(offer.get("at"))
            if (
                service is None
                or offer.get("service") != service_id
                or offered_at is None
                or now - offered_at > timedelta(minutes=OFFER_MINUTES)
            ):
                conversation.referral_offer = None
                expired = True
            else:
                expired = False
                conversation.referral_offer = None
                existing = await session.scalar(_open_referral(conversation_id, service_id))
                if existing is None:
                    needs = offer.get("needs") or {}
                    referral = Referral(
                        conversation_id=conversation_id,
                        service_id=service_id,
                        status=ReferralStatus.PENDING,
                        reason=offer.get("reason"),
                        needs=needs,
                        contact=offer.get("contact") or {},
                        consented_at=now,
                    )
                    session.add(referral)
                    await session.flush()
                    task = Task(
                        kind="referral",
                        dedupe_key=f"referral:{referral.id}",
                        priority=0 if needs.get("safe_now") == "no" else 1,
                        state=TaskState.OPEN,
                        conversation_id=conversation_id,
                        detail=referral_task_detail(service.name),
                        due_at=now + timedelta(days=1),
                    )
                    session.add(task)
                    await session.flush()
                    referral.task_id = task.id
                    session.add(
                        ReferralEvent(
                            referral_id=referral.id,
                            status=ReferralStatus.PENDING,
                            by="person",
                            note="consent given",
                        )
                    )
        if expired or service is None:
            await out.send_content("referrals.expired", source="bot")
            return
        self.gateway.handoffs.broadcast({"type": "tasks"})
        text = content.item("referrals.made").part(
            0, service=service.name, contact=contact_text(offer.get("contact") or {})
        )
        await out.send(_reply(text), source="bot")

    async def withdraw(self, out: _Out, conversation_id: int) -> None:
        """The person takes their consent back: every open referral stops. One already
        sent stays a task, so the team tells the service."""
        now = datetime.now(UTC)
        names: list[str] = []
        sent = False
        async with self.sessions() as session, session.begin():
            referrals = list(
                await session.scalars(
                    select(Referral).where(
                        Referral.conversation_id == conversation_id, Referral.status.in_(OPEN)
                    )
                )
            )
            for referral in referrals:
                service = self.directory.get(referral.service_id)
                name = service.name if service else referral.service_id
                names.append(name)
                was_sent = referral.status != ReferralStatus.PENDING
                sent = sent or was_sent
                referral.status = ReferralStatus.WITHDRAWN
                referral.closed_at = now
                session.add(
                    ReferralEvent(
                        referral_id=referral.id,
                        status=ReferralStatus.WITHDRAWN,
                        by="person",
                        note="consent withdrawn",
                    )
                )
                if referral.task_id is None:
                    continue
                task = await session.get(Task, referral.task_id)
                if task is None:
                    continue
                if was_sent:
                    task.state, task.priority, task.due_at = TaskState.OPEN, 0, now
                    task.detail = f"Tell {name} the person has withdrawn their consent."
                else:
                    task.state, task.closed_at = TaskState.DONE, now
        if not names:
            await out.send_content("referrals.none_open", source="bot")
            return
        self.gateway.handoffs.broadcast({"type": "tasks"})
        text = content.item("referrals.withdrawn").part(0, services=" and ".join(names))
        await out.send(_reply(text), source="bot")
        if sent:
            await out.send_content("referrals.withdrawn_sent", source="bot")

    # -- state ------------------------------------------------------------------------

    async def _needs(self, conversation_id: int) -> dict[str, str]:
        async with self.sessions() as session:
            answers = await session.scalar(
                select(NeedsAssessment.answers).where(
                    NeedsAssessment.conversation_id == conversation_id
                )
            )
        return dict(answers or {})

    async def _open_referral(self, conversation_id: int, service_id: str) -> bool:
        async with self.sessions() as session:
            return await session.scalar(_open_referral(conversation_id, service_id)) is not None

    async def _set_offer(self, conversation_id: int, offer: dict[str, Any] | None) -> None:
        if offer is not None:
            offer = {**offer, "at": datetime.now(UTC).isoformat()}
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conversation_id)
                .values(referral_offer=offer)
            )


REASON_VALUES = frozenset(REASONS)  # the crime types a referral can give as its reason


def query_from(spec: dict[str, Any], now: datetime) -> Query:
    """A matching query from the assistant's marker; anything unexpected is ignored."""
    crime_types = tuple(
        c for c in spec.get("crime_types") or () if isinstance(c, str) and c in REASON_VALUES
    )
    borough = None
    for key in ("location", "postcode"):
        value = spec.get(key)
        if isinstance(value, str) and value.strip() and value.strip().lower() != "any":
            borough = places.borough_for(value[:40])
            if borough:
                break
    # A place that isn't a London borough or postcode: national services only.
    said = [spec.get(k) for k in ("place", "postcode")]
    outside = borough is None and any(
        isinstance(v, str) and v.strip() and v.strip().lower() != "any" for v in said
    )
    age = spec.get("age_group")
    gender = spec.get("gender")
    language = spec.get("language")
    return Query(
        crime_types=crime_types,
        borough=borough,
        outside_london=outside,
        age_group=age if age in AGE_GROUPS or age == "any" else None,
        gender=gender if gender in GENDERS else None,
        lgbt=spec.get("lgbt") is True,
        language=language.strip().title()[:40]
        if isinstance(language, str) and language.strip()
        else None,
        at=now,
    )


def _open_referral(conversation_id: int, service_id: str) -> Select[tuple[int]]:
    """The person's open referral to this service, if any (one at a time)."""
    return select(Referral.id).where(
        Referral.conversation_id == conversation_id,
        Referral.service_id == service_id,
        Referral.status.in_(OPEN),
    )


def _import_at_startup(session: Any) -> store.Imported | None:
    with session.begin():
        return store.import_file(session, by="startup")


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _reply(text: str, buttons: list[dict[str, str]] | None = None) -> Any:
    from bot.gateway import Reply

    return Reply(text, tuple(buttons or ()))
