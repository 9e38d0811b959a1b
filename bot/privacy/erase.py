"""Deleting a person's data: `forget_conversation` (they asked us to), the cascade it
shares with the retention purge (`erase_conversations`), and Rasa's tracker events.

What stays: the case, the victim row (consent, preferences) and case events come from
the police; coordinator tasks and audit entries are kept but unlinked from the person.
See docs/privacy.md ("Deleting someone's data").
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Delete,
    MetaData,
    String,
    Table,
    Update,
    case,
    cast,
    delete,
    func,
    inspect,
    or_,
    select,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from bot import db
from bot.cases.models import (
    Case,
    Notification,
    OneTimeCode,
    Task,
    TaskState,
    VerificationAttempt,
    Victim,
    VictimContact,
)
from bot.config import Settings
from bot.handoff.models import (
    AuditEntry,
    Coordinator,
    Feedback,
    Handoff,
    HandoffEvent,
    HandoffState,
)
from bot.models import Contact, Conversation, Inbound, Outbound
from bot.services.models import (
    NeedsAssessment,
    Referral,
    ReferralEvent,
    ReferralStatus,
    ServiceRow,
)

logger = logging.getLogger(__name__)

RASA_EVENTS = "rasa_events"  # the count key for Rasa's tracker table (`events`)
TRACKER_BATCH = 5000  # tracker rows per delete: short transactions while Rasa writes
# A referral in these states reached the service: it must hear of the deletion.
REACHED_SERVICE = (ReferralStatus.SENT, ReferralStatus.ACCEPTED, ReferralStatus.CONTACTED)
CHANNEL_WORDS = {"sms": "phone number", "telegram": "Telegram chat", "web": "web chat"}


@dataclass
class Removed:
    """Rows deleted (or, for rows kept but unlinked or emptied, updated) per table."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, table: str, rows: int) -> None:
        if rows:
            self.counts[table] = self.counts.get(table, 0) + rows

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        return ", ".join(f"{table} {n}" for table, n in sorted(self.counts.items())) or "nothing"


def utc(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        raise ValueError("now must include a time zone")
    return now.astimezone(UTC)


def run(session: Session, statement: Update | Delete) -> int:
    """A bulk UPDATE or DELETE; returns the rows it touched."""
    result = session.execute(statement, execution_options={"synchronize_session": False})
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


# -- forget me ----------------------------------------------------------------------------


async def forget_conversation(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    conversation_id: int,
    *,
    now: datetime | None = None,
) -> Removed:
    """Delete everything about one conversation's person: their messages and contact,
    handoffs, feedback, referrals, needs answers, codes and check attempts, the case
    contacts with the same address, and Rasa's tracker events. One transaction for the
    gateway's database; an audit entry without content records it.

    Dropping the gateway's cached contact (`gateway.forget`) is the caller's job.
    Returns the counts (empty if there is no such conversation).
    """
    now = utc(now)
    async with sessions() as session, session.begin():
        found = await session.run_sync(_forget, conversation_id, now)
        if found is None:
            return Removed()
        removed, sender = found
        # Inside the transaction: if the tracker store fails, nothing is deleted and the
        # person can ask again.
        events = await asyncio.to_thread(tracker_delete, settings, sender_ids=[sender])
        removed.add(RASA_EVENTS, events)
        session.add(
            AuditEntry(actor="person", action="forget_me", detail={"tables": dict(removed.counts)})
        )
    logger.info("Forget me: %s", removed)
    return removed


def _forget(session: Session, conversation_id: int, now: datetime) -> tuple[Removed, str] | None:
    row = session.execute(
        select(Conversation.rasa_sender, Contact.channel, Contact.address)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(Conversation.id == conversation_id)
    ).first()
    if row is None:
        return None
    removed = Removed()
    _tell_services(session, conversation_id, now)
    _forget_case_contacts(session, row.channel, row.address, now, removed)
    erase_conversations(session, [conversation_id], now=now, removed=removed, outcome="forgotten")
    return removed, row.rasa_sender


def _task(kind: str, detail: str, now: datetime, **fields: Any) -> Task:
    # A random key: these are one-off tasks, and deleted rows' ids can come back on SQLite.
    return Task(
        kind=kind,
        dedupe_key=f"{kind}:{uuid.uuid4().hex}",
        state=TaskState.OPEN,
        detail=detail[:300],
        due_at=now,
        created_at=now,
        **fields,
    )


def _tell_services(session: Session, conversation_id: int, now: datetime) -> None:
    """An urgent task per referral a service already has: they must hear of it."""
    rows = session.execute(
        select(ServiceRow.name, Referral.status, Referral.consented_at)
        .join(ServiceRow, ServiceRow.id == Referral.service_id)
        .where(Referral.conversation_id == conversation_id, Referral.status.in_(REACHED_SERVICE))
    )
    for name, status, agreed in rows:
        session.add(
            _task(
                "forgotten_referral",
                f"A person referred to {name} (agreed {agreed:%d %B %Y}, now {status}) has "
                "asked Waymark to delete their data. Tell the service, and ask them to "
                "consider deleting it too. Waymark no longer holds the referral.",
                now,
                priority=0,
            )
        )


def _forget_case_contacts(
    session: Session, channel: str, address: str, now: datetime, removed: Removed
) -> None:
    """This address gets no more case updates. A victim with an open case then needs
    another route: a task says so."""
    rows = session.execute(
        select(VictimContact.id, Victim.case_id, Case.closed_at)
        .join(Victim, Victim.id == VictimContact.victim_id)
        .join(Case, Case.id == Victim.case_id)
        .where(VictimContact.channel == channel, VictimContact.address == address)
    ).all()
    if not rows:
        return
    what = CHANNEL_WORDS.get(channel, "contact")
    for case_id in sorted({r.case_id for r in rows if r.closed_at is None}):
        session.add(
            _task(
                "forgotten_contact",
                f"A victim asked Waymark to delete their data, including the {what} used "
                "for case updates. Waymark cannot update them now. Agree another route "
                "with them through their officer or advocate.",
                now,
                priority=1,
                case_id=case_id,
            )
        )
    ids = [r.id for r in rows]
    removed.add(
        "one_time_codes",
        run(session, delete(OneTimeCode).where(OneTimeCode.victim_contact_id.in_(ids))),
    )
    removed.add(
        "victim_contacts", run(session, delete(VictimContact).where(VictimContact.id.in_(ids)))
    )


# -- the cascade --------------------------------------------------------------------------


def erase_conversations(
    session: Session,
    conversation_ids: Sequence[int],
    *,
    now: datetime,
    removed: Removed,
    outcome: str = "forgotten",
) -> None:
    """Delete these conversations, their contacts and every row that belongs to them;
    unlink the audit entries and tasks that point at them (those are kept). Does not
    commit. Keep a few hundred ids per call (they are bound parameters)."""
    ids = list(conversation_ids)
    if not ids:
        return
    contact_ids = list(
        session.scalars(select(Conversation.contact_id).where(Conversation.id.in_(ids)))
    )
    handoffs = select(Handoff.id).where(Handoff.conversation_id.in_(ids))
    # An open handoff is closed first, so no coordinator stays pointed at it.
    run(
        session,
        update(Handoff)
        .where(Handoff.conversation_id.in_(ids), Handoff.state != HandoffState.CLOSED)
        .values(state=HandoffState.CLOSED, closed_at=now, outcome=outcome),
    )
    run(
        session,
        update(Coordinator)
        .where(Coordinator.current_handoff_id.in_(handoffs))
        .values(current_handoff_id=None),
    )
    outbound = select(Outbound.id).where(Outbound.conversation_id.in_(ids))
    removed.add(
        "notifications",
        run(
            session,
            update(Notification)
            .where(Notification.outbound_id.in_(outbound))
            .values(outbound_id=None),
        ),
    )
    removed.add(
        "outbound_messages", run(session, delete(Outbound).where(Outbound.conversation_id.in_(ids)))
    )
    removed.add(
        "inbound_messages", run(session, delete(Inbound).where(Inbound.conversation_id.in_(ids)))
    )
    removed.add("audit_log", _unlink_audit(session, ids, handoffs))
    removed.add(
        "handoff_events",
        run(session, delete(HandoffEvent).where(HandoffEvent.handoff_id.in_(handoffs))),
    )
    removed.add(
        "feedback",
        run(
            session,
            delete(Feedback).where(
                or_(Feedback.conversation_id.in_(ids), Feedback.handoff_id.in_(handoffs))
            ),
        ),
    )
    removed.add("handoffs", run(session, delete(Handoff).where(Handoff.conversation_id.in_(ids))))
    referrals = select(Referral.id).where(Referral.conversation_id.in_(ids))
    removed.add(
        "referral_events",
        run(session, delete(ReferralEvent).where(ReferralEvent.referral_id.in_(referrals))),
    )
    removed.add(
        "referrals", run(session, delete(Referral).where(Referral.conversation_id.in_(ids)))
    )
    removed.add(
        "needs_assessments",
        run(session, delete(NeedsAssessment).where(NeedsAssessment.conversation_id.in_(ids))),
    )
    removed.add("tasks", _unlink_tasks(session, ids, now))
    removed.add(
        "one_time_codes",
        run(session, delete(OneTimeCode).where(OneTimeCode.conversation_id.in_(ids))),
    )
    removed.add(
        "verification_attempts",
        run(
            session,
            delete(VerificationAttempt).where(VerificationAttempt.conversation_id.in_(ids)),
        ),
    )
    removed.add("conversations", run(session, delete(Conversation).where(Conversation.id.in_(ids))))
    removed.add("contacts", run(session, delete(Contact).where(Contact.id.in_(contact_ids))))


def _unlink_audit(session: Session, ids: list[int], handoffs: Any) -> int:
    """Audit entries are kept, without the link (PostgreSQL's append-only trigger allows
    exactly this change)."""
    mine = AuditEntry.conversation_id.in_(ids)
    theirs = AuditEntry.handoff_id.in_(handoffs)
    return run(
        session,
        update(AuditEntry)
        .where(or_(mine, theirs))
        .values(
            conversation_id=case((mine, None), else_=AuditEntry.conversation_id),
            handoff_id=case((theirs, None), else_=AuditEntry.handoff_id),
        ),
    )


def _unlink_tasks(session: Session, ids: list[int], now: datetime) -> int:
    run(
        session,
        update(Task)
        .where(Task.conversation_id.in_(ids), Task.state == TaskState.OPEN)
        .values(state=TaskState.DONE, closed_at=now),
    )
    # The dedupe key named a row that is gone (referral:<id>, callback:<id>); on SQLite
    # a new row can get that id again, so the key is made unique to this task.
    return run(
        session,
        update(Task)
        .where(Task.conversation_id.in_(ids))
        .values(
            conversation_id=None,
            dedupe_key=func.substr(Task.dedupe_key, 1, 90, type_=String)
            + ":gone"
            + cast(Task.id, String),
        ),
    )


# -- Rasa's tracker store -------------------------------------------------------------------


def tracker_delete(
    settings: Settings,
    *,
    sender_ids: Collection[str] = (),
    before: datetime | None = None,
) -> int:
    """Delete Rasa tracker events: those of `sender_ids`, those older than `before`, or
    (both given) those of the senders older than `before`. Returns the rows deleted;
    0 when Rasa has not made its `events` table yet."""
    return tracker_events(settings, sender_ids=sender_ids, before=before)


def tracker_events(
    settings: Settings,
    *,
    sender_ids: Collection[str] = (),
    before: datetime | None = None,
    dry_run: bool = False,
) -> int:
    """`tracker_delete`, or with `dry_run` the count it would delete."""
    if not sender_ids and before is None:
        raise ValueError("Give sender ids, a time, or both: never every event.")
    url = settings.rasa_tracker_store_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not (
        parsed.database and Path(parsed.database).exists()
    ):
        return 0  # no store yet (and connecting would create an empty file)
    engine = db.create_sync_engine(url)
    try:
        if not inspect(engine).has_table("events"):
            return 0
        # Only the columns used here: Rasa owns the table (rasa.core.tracker_store.SQLEvent).
        events = Table(
            "events",
            MetaData(),
            autoload_with=engine,
            include_columns=["id", "sender_id", "timestamp"],
        )
        where = []
        if sender_ids:
            where.append(events.c.sender_id.in_(list(sender_ids)))
        if before is not None:
            where.append(events.c.timestamp < utc(before).timestamp())
        if dry_run:
            with engine.connect() as connection:
                return int(
                    connection.scalar(select(func.count()).select_from(events).where(*where)) or 0
                )
        total = 0
        while True:  # in batches: Rasa keeps writing to this table
            with engine.begin() as connection:
                batch = select(events.c.id).where(*where).limit(TRACKER_BATCH).scalar_subquery()
                deleted = connection.execute(delete(events).where(events.c.id.in_(batch))).rowcount
            total += deleted
            if deleted < TRACKER_BATCH:
                return total
    finally:
        engine.dispose()
