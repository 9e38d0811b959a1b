"""Builders for the retention and forget-me tests: a migrated database, a person with a
row in every table that can hold something about them, Rasa's tracker table, and a
generic walk over `Base.metadata` that finds every row belonging to a person."""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, declarative_base, sessionmaker

import bot.cases.models
import bot.handoff.models
import bot.services.models  # noqa: F401  (every table in Base.metadata)
from bot import db
from bot.cases.models import (
    Case,
    CaseEvent,
    Notification,
    OneTimeCode,
    Task,
    VerificationAttempt,
    Victim,
    VictimContact,
    VictimUpdate,
)
from bot.config import Settings
from bot.handoff.models import (
    AuditEntry,
    Coordinator,
    Feedback,
    Handoff,
    HandoffEvent,
)
from bot.models import Base, Contact, Conversation, Inbound, Outbound
from bot.services.models import NeedsAssessment, Referral, ReferralEvent, ServiceRow
from tests.harness import database, fresh_number, fresh_reference

# Rows here are kept on purpose when their person is forgotten, with their links to
# the person cleared: coordinators' tasks, the append-only audit log, and a victim's
# case notifications (they come from the police; only the sent message goes).
KEPT_UNLINKED = frozenset({"tasks", "audit_log", "notifications"})
SERVICE = "test-service"
_tags = itertools.count(1)


@dataclass
class Db:
    url: str
    kind: str  # sqlite or postgres
    engine: Engine
    sessions: sessionmaker[Session]
    tracker_url: str

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": self.url,
            "rasa_tracker_store_url": self.tracker_url,
            "secret_key": "pseudonym-key-for-tests",
        }
        return Settings(**{**values, **overrides})


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def privacy_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A migrated gateway database, and a tracker store URL (SQLite: its own file, as
    by default; PostgreSQL: the same schema) whose `events` table is not made yet."""
    with database(request.param, tmp_path) as url:
        db.migrate(url)
        engine = db.create_sync_engine(url)
        tracker = url if request.param == "postgres" else f"sqlite:///{tmp_path / 'tracker.db'}"
        try:
            yield Db(
                url, request.param, engine, sessionmaker(engine, expire_on_commit=False), tracker
            )
        finally:
            engine.dispose()


# -- Rasa's tracker store ---------------------------------------------------------------

RasaBase = declarative_base()


class SQLEvent(RasaBase):  # type: ignore[misc, valid-type]
    """Rasa 3.6's `events` table, as rasa.core.tracker_store.SQLTrackerStore.SQLEvent
    declares it (it makes the table with `metadata.create_all`)."""

    __tablename__ = "events"

    id = sa.Column(sa.Integer, sa.Sequence("events_seq", optional=True), primary_key=True)
    sender_id = sa.Column(sa.String(255), nullable=False, index=True)
    type_name = sa.Column(sa.String(255), nullable=False)
    timestamp = sa.Column(sa.Float)
    intent_name = sa.Column(sa.String(255))
    action_name = sa.Column(sa.String(255))
    data = sa.Column(sa.Text)


def make_tracker(url: str) -> None:
    engine = sa.create_engine(db.sync_url(url))
    try:
        RasaBase.metadata.create_all(engine)
    finally:
        engine.dispose()


def add_events(url: str, sender: str, *moments: datetime) -> None:
    engine = sa.create_engine(db.sync_url(url))
    try:
        with Session(engine) as session, session.begin():
            for moment in moments:
                session.add(
                    SQLEvent(
                        sender_id=sender,
                        type_name="user",
                        timestamp=moment.timestamp(),
                        intent_name="greet",
                        data=json.dumps({"event": "user", "text": "hello"}),
                    )
                )
    finally:
        engine.dispose()


def events_of(url: str, sender: str | None = None) -> int:
    engine = sa.create_engine(db.sync_url(url))
    try:
        with Session(engine) as session:
            query = select(sa.func.count()).select_from(SQLEvent)
            if sender is not None:
                query = query.where(SQLEvent.sender_id == sender)
            return int(session.scalar(query) or 0)
    finally:
        engine.dispose()


# -- a person with a row in every table -----------------------------------------------------


@dataclass
class Person:
    tag: str
    channel: str
    address: str
    sender: str
    contact_id: int
    conversation_id: int
    case_id: int
    victim_id: int
    said: str  # a phrase only this person's messages contain


def shared_rows(session: Session) -> None:
    """Rows that belong to nobody in particular."""
    if session.get(ServiceRow, SERVICE) is None:
        session.add(
            ServiceRow(
                id=SERVICE, name="Test Support Service", entry={}, last_verified=date.today()
            )
        )
        session.flush()


def make_person(
    session: Session, now: datetime, *, channel: str = "sms", case_open: bool = True
) -> Person:
    """Everything one person can leave: messages, a victim's case contact, codes, checks,
    handoffs with notes, feedback, audit entries, needs answers, a referral a service
    already has, tasks, and case rows (which stay)."""
    shared_rows(session)
    n = next(_tags)
    tag = f"p{n}-{uuid.uuid4().hex[:6]}"
    address = fresh_number() if channel == "sms" else f"55500{n:08d}"
    said = f"my name is Person{tag} and I live at {n} Acacia Avenue"
    contact = Contact(channel=channel, address=address, created_at=now, last_seen_at=now)
    case = Case(
        reference=fresh_reference(),
        agency="met",
        crime_type="burglary",
        stage="investigation",
        closed_at=None if case_open else now,
    )
    session.add_all([contact, case])
    session.flush()
    victim = Victim(case_id=case.id, external_id=tag, consent_at=now)
    session.add(victim)
    session.flush()
    victim_contact = VictimContact(
        victim_id=victim.id, channel=channel, address=address, verified_at=now
    )
    conversation = Conversation(
        contact_id=contact.id,
        rasa_sender=f"sender-{tag}",
        verified_victim_id=victim.id,
        verified_until=now + timedelta(minutes=30),
        updated_at=now,
    )
    event = CaseEvent(case_id=case.id, type="investigation_started", occurred_at=now, agency="met")
    session.add_all([victim_contact, conversation, event])
    session.flush()
    inbound = Inbound(
        conversation_id=conversation.id,
        channel=channel,
        text=f"{said}, call {address}",
        state="done",
        received_at=now,
    )
    pending = Inbound(
        conversation_id=conversation.id, channel=channel, text=f"{said} again", received_at=now
    )
    session.add_all([inbound, pending])
    session.flush()
    outbound = Outbound(
        conversation_id=conversation.id,
        inbound_id=inbound.id,
        channel=channel,
        text=f"Thanks. {said}?",
        created_at=now,
        updated_at=now,
    )
    session.add(outbound)
    session.flush()
    coordinator = Coordinator(username=f"coord-{tag}", display_name=f"Sam {n}")
    session.add(coordinator)
    session.flush()
    handoff = Handoff(
        conversation_id=conversation.id,
        state="claimed",
        reason="request_human",
        coordinator_id=coordinator.id,
        created_at=now,
        claimed_at=now,
    )
    earlier = Handoff(
        conversation_id=conversation.id,
        state="closed",
        reason="fallback",
        created_at=now,
        closed_at=now,
        outcome="resolved",
    )
    session.add_all([handoff, earlier])
    session.flush()
    coordinator.current_handoff_id = handoff.id
    task = Task(
        kind="referral",
        dedupe_key=f"referral-test:{tag}",
        conversation_id=conversation.id,
        detail="Send the referral to Test Support Service, then record their answer.",
    )
    done = Task(
        kind="callback_request",
        dedupe_key=f"callback-test:{tag}",
        state="done",
        conversation_id=conversation.id,
        detail="Call back.",
        closed_at=now,
    )
    session.add_all([task, done])
    session.flush()
    referral = Referral(
        conversation_id=conversation.id,
        service_id=SERVICE,
        status="sent",
        reason="burglary",
        needs={"safe_now": "yes"},
        contact={"phone": address},
        task_id=task.id,
        consented_at=now,
        updated_at=now,
    )
    session.add(referral)
    session.flush()
    session.add_all(
        [
            Notification(
                victim_id=victim.id,
                case_id=case.id,
                event_id=event.id,
                kind="investigation_started",
                state="sent",
                channel=channel,
                recipient="victim",
                outbound_id=outbound.id,
                sent_at=now,
            ),
            VictimUpdate(case_id=case.id, victim_id=victim.id, route="proactive", at=now),
            OneTimeCode(
                victim_id=victim.id,
                purpose="verify",
                digest=uuid.uuid4().hex,
                conversation_id=conversation.id,
                expires_at=now + timedelta(minutes=15),
            ),
            OneTimeCode(
                victim_id=victim.id,
                purpose="enrol",
                digest=uuid.uuid4().hex,
                victim_contact_id=victim_contact.id,
                expires_at=now + timedelta(minutes=15),
            ),
            VerificationAttempt(
                conversation_id=conversation.id, case_id=case.id, succeeded=True, at=now
            ),
            HandoffEvent(handoff_id=handoff.id, kind="claimed", coordinator_id=coordinator.id),
            HandoffEvent(
                handoff_id=earlier.id,
                kind="note",
                coordinator_id=coordinator.id,
                text=f"Note: {said}",
                at=now,
            ),
            AuditEntry(
                actor=coordinator.username,
                coordinator_id=coordinator.id,
                action="claim",
                conversation_id=conversation.id,
                handoff_id=handoff.id,
                case_id=case.id,
                at=now,
            ),
            AuditEntry(
                actor=coordinator.username,
                action="view_conversation",
                conversation_id=conversation.id,
                at=now,
            ),
            Feedback(
                conversation_id=conversation.id,
                handoff_id=earlier.id,
                rating=4,
                comment=f"Feedback: {said}",
                source="handoff",
                at=now,
            ),
            NeedsAssessment(
                conversation_id=conversation.id,
                answers={"safe_now": "yes"},
                created_at=now,
                updated_at=now,
            ),
            ReferralEvent(referral_id=referral.id, status="sent", by="coordinator:sam", at=now),
        ]
    )
    session.flush()
    return Person(
        tag=tag,
        channel=channel,
        address=address,
        sender=conversation.rasa_sender,
        contact_id=contact.id,
        conversation_id=conversation.id,
        case_id=case.id,
        victim_id=victim.id,
        said=said,
    )


# -- finding a person's rows, table by table --------------------------------------------------

Key = tuple[Any, ...]


def _key(table: sa.Table, row: sa.Row[Any]) -> Key:
    return tuple(row._mapping[c.name] for c in table.primary_key.columns)


def seeds(table: sa.Table, person: Person) -> sa.ColumnElement[bool] | None:
    """How a table names a person directly: by id, or by channel and address."""
    if table.name == "conversations":
        return table.c.id == person.conversation_id
    if table.name == "contacts":
        return table.c.id == person.contact_id
    if "channel" in table.c and "address" in table.c:
        return sa.and_(table.c.channel == person.channel, table.c.address == person.address)
    return None


def reachable_tables() -> set[str]:
    """Tables that can hold rows about a person (by schema): those naming a channel and
    an address, conversations, and every table with a foreign key into those."""
    tables = Base.metadata.tables.values()
    found = {
        t.name
        for t in tables
        if t.name in ("conversations", "contacts") or {"channel", "address"} <= set(t.c.keys())
    }
    while True:
        more = {
            t.name
            for t in tables
            if t.name not in found and any(fk.column.table.name in found for fk in t.foreign_keys)
        }
        if not more:
            return found
        found |= more


def owned_rows(session: Session, person: Person) -> dict[str, dict[Key, dict[str, Any]]]:
    """Every row that belongs to `person`: the rows naming them, then (to a fixed point)
    every row with a foreign key to one of those. Table name -> primary key -> row."""
    owned: dict[str, dict[Key, dict[str, Any]]] = {}
    tables = list(Base.metadata.sorted_tables)
    for table in tables:
        where = seeds(table, person)
        if where is not None:
            owned[table.name] = {
                _key(table, r): dict(r._mapping)
                for r in session.execute(select(table).where(where))
            }
    changed = True
    while changed:
        changed = False
        for table in tables:
            for fk in table.foreign_keys:
                parent = owned.get(fk.column.table.name)
                if not parent:
                    continue
                values = {row[fk.column.name] for row in parent.values()}
                rows = session.execute(select(table).where(fk.parent.in_(values)))
                mine = owned.setdefault(table.name, {})
                for row in rows:
                    key = _key(table, row)
                    if key not in mine:
                        mine[key] = dict(row._mapping)
                        changed = True
    return {name: rows for name, rows in owned.items() if rows}


def still_there(session: Session, table_name: str, keys: Iterable[Key]) -> list[Key]:
    table = Base.metadata.tables[table_name]
    pk = list(table.primary_key.columns)
    wanted = set(keys)
    if not wanted:
        return []
    found = session.execute(select(*pk).where(pk[0].in_([k[0] for k in wanted])))
    return [tuple(r) for r in found if tuple(r) in wanted]


def links_to(session: Session, owned: dict[str, dict[Key, dict[str, Any]]]) -> dict[str, list[Key]]:
    """Rows (anywhere) whose foreign keys still point at any of the `owned` rows."""
    found: dict[str, list[Key]] = {}
    for table in Base.metadata.sorted_tables:
        for fk in table.foreign_keys:
            parent = owned.get(fk.column.table.name)
            if not parent:
                continue
            values = {row[fk.column.name] for row in parent.values()}
            for row in session.execute(select(table).where(fk.parent.in_(values))):
                found.setdefault(f"{table.name}.{fk.parent.name}", []).append(_key(table, row))
    return found


def mentions(session: Session, *needles: str) -> dict[str, list[str]]:
    """Every value in every table (as the app reads it) that contains one of `needles`."""
    found: dict[str, list[str]] = {}
    for table in Base.metadata.sorted_tables:
        for row in session.execute(select(table)):
            for column, value in row._mapping.items():
                text = (
                    json.dumps(value, default=str) if isinstance(value, dict | list) else str(value)
                )
                if any(needle in text for needle in needles):
                    found.setdefault(table.name, []).append(f"{column}={text[:80]}")
    return found


def now_utc() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)
