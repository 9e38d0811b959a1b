"""Encryption at rest (bot/privacy/crypto.py): sealing, the column types, the migration
that seals existing rows, and key rotation, on SQLite and PostgreSQL.

"Raw" below means read without the app's column types: what is on disk.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy import Engine, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from bot import db
from bot.__main__ import main as cli
from bot.cases.models import Case, Victim, VictimContact
from bot.config import get_settings
from bot.handoff.models import Feedback, Handoff, HandoffEvent
from bot.models import Contact, Conversation, Inbound, Outbound
from bot.privacy import crypto, rotate
from bot.services.models import NeedsAssessment, Referral, ReferralEvent, ServiceRow
from tests.harness import database, fresh_reference

MIGRATION = "69dbc08daf54"
KEY_A, KEY_B = crypto.new_key(), crypto.new_key()

# What a person might give: none of it may be on disk in clear.
PHONE = "+447700900461"
OTHER = "+447700900462"
ADVOCATE = "+447700900777"
MESSAGE = "my ex Darren Whitcombe keeps turning up at 14 Larkspur Close"
REPLY = "I'm sorry that is happening. Are you safe right now?"
NOTE = "Caller mentioned Darren Whitcombe again"
COMMENT = "the lady called Bernadette was lovely"
REFERRAL_NOTE = "spoke to Bernadette at the service"
NEEDS = {"communication": "interpreter", "language": "Tigrinya"}
ROUTE = {"method": "phone", "phone": PHONE}
NEEDLES = [PHONE, PHONE[3:], ADVOCATE, "Whitcombe", "Larkspur", "Bernadette", "Tigrinya"]


@dataclass
class Store:
    url: str
    kind: str  # sqlite or postgres
    engine: Engine

    def session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    def use(self, ring: crypto.Keyring) -> None:
        crypto.bind(self.engine, ring)

    def raw_rows(self) -> str:
        """Every row of every table, read as plain values."""
        engine = sa.create_engine(db.sync_url(self.url))
        found = []
        try:
            with engine.connect() as connection:
                for table in sa.inspect(connection).get_table_names():
                    rows = connection.execute(text(f'SELECT * FROM "{table}"')).all()
                    found += [f"{table}: {tuple(row)!r}" for row in rows]
        finally:
            engine.dispose()
        return "\n".join(found)

    def raw(self, table: str, column: str) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.scalars(text(f'SELECT "{column}" FROM "{table}" ORDER BY id')))


def alembic(url: str, ring: crypto.Keyring) -> Any:
    config = db.alembic_config(url)
    config.attributes["keyring"] = ring
    return config


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A migrated, empty gateway database whose engine seals with KEY_A."""
    with database(request.param, tmp_path) as url:
        command.upgrade(alembic(url, crypto.Keyring(KEY_A)), "head")
        engine = db.create_sync_engine(url)
        crypto.bind(engine, crypto.Keyring(KEY_A))
        try:
            yield Store(url, request.param, engine)
        finally:
            engine.dispose()


@pytest.fixture
def process_keys() -> Iterator[None]:
    """For tests that change the process's keys or settings: put them back after."""
    before = crypto._process
    get_settings.cache_clear()
    yield
    crypto._process = before
    get_settings.cache_clear()


def fill(session: Session, phone: str = PHONE) -> int:
    """One person's rows in every sealed column; returns the conversation id."""
    contact = Contact(channel="sms", address=phone)
    session.add(contact)
    session.flush()
    conversation = Conversation(
        contact_id=contact.id,
        rasa_sender=hashlib.sha256(phone.encode()).hexdigest()[:32],  # as a pseudonym is
        referral_offer={"contact": ROUTE},
    )
    session.add(conversation)
    session.flush()
    inbound = Inbound(conversation_id=conversation.id, channel="sms", text=MESSAGE)
    session.add(inbound)
    session.flush()
    session.add(
        Outbound(conversation_id=conversation.id, inbound_id=inbound.id, channel="sms", text=REPLY)
    )
    case = Case(reference=fresh_reference(), agency="met", crime_type="burglary", stage="x")
    session.add(case)
    session.flush()
    victim = Victim(
        case_id=case.id,
        external_id="v1",
        consent_at=datetime.now(UTC),
        via_advocate=True,
        advocate_phone=ADVOCATE,
    )
    session.add(victim)
    session.flush()
    session.add(VictimContact(victim_id=victim.id, channel="sms", address=phone))
    handoff = Handoff(conversation_id=conversation.id, reason="request_human")
    session.add(handoff)
    session.flush()
    session.add(HandoffEvent(handoff_id=handoff.id, kind="note", text=NOTE))
    session.add(Feedback(conversation_id=conversation.id, rating=5, comment=COMMENT, source="bot"))
    if session.get(ServiceRow, "svc") is None:
        session.add(
            ServiceRow(id="svc", name="A service", entry={}, last_verified=date(2026, 11, 1))
        )
        session.flush()
    session.add(NeedsAssessment(conversation_id=conversation.id, answers=NEEDS))
    referral = Referral(
        conversation_id=conversation.id, service_id="svc", needs=NEEDS, contact=ROUTE
    )
    session.add(referral)
    session.flush()
    session.add(ReferralEvent(referral_id=referral.id, status="sent", by="c", note=REFERRAL_NOTE))
    session.commit()
    return conversation.id


def read_back(session: Session, conversation_id: int) -> dict[str, Any]:
    conversation = session.get(Conversation, conversation_id)
    assert conversation is not None
    contact = session.get(Contact, conversation.contact_id)
    assert contact is not None
    return {
        "address": contact.address,
        "offer": conversation.referral_offer,
        "inbound": session.scalar(
            select(Inbound.text).where(Inbound.conversation_id == conversation_id)
        ),
        "outbound": session.scalar(
            select(Outbound.text).where(Outbound.conversation_id == conversation_id)
        ),
        "victim_address": session.scalar(
            select(VictimContact.address).where(VictimContact.address == contact.address)
        ),
        "advocate": session.scalar(
            select(Victim.advocate_phone)
            .join(VictimContact, VictimContact.victim_id == Victim.id)
            .where(VictimContact.address == contact.address)
        ),
        "note": session.scalar(
            select(HandoffEvent.text)
            .join(Handoff, Handoff.id == HandoffEvent.handoff_id)
            .where(Handoff.conversation_id == conversation_id)
        ),
        "comment": session.scalar(
            select(Feedback.comment).where(Feedback.conversation_id == conversation_id)
        ),
        "answers": session.scalar(
            select(NeedsAssessment.answers).where(
                NeedsAssessment.conversation_id == conversation_id
            )
        ),
        "referral": tuple(
            session.execute(
                select(Referral.needs, Referral.contact).where(
                    Referral.conversation_id == conversation_id
                )
            ).one()
        ),
        "referral_note": session.scalar(
            select(ReferralEvent.note)
            .join(Referral, Referral.id == ReferralEvent.referral_id)
            .where(Referral.conversation_id == conversation_id)
        ),
    }


EXPECTED = {
    "address": PHONE,
    "offer": {"contact": ROUTE},
    "inbound": MESSAGE,
    "outbound": REPLY,
    "victim_address": PHONE,
    "advocate": ADVOCATE,
    "note": NOTE,
    "comment": COMMENT,
    "answers": NEEDS,
    "referral": (NEEDS, ROUTE),
    "referral_note": REFERRAL_NOTE,
}


# -- sealing --------------------------------------------------------------------------------


def test_round_trip_random_and_lookup() -> None:
    ring = crypto.Keyring(KEY_A)
    for value in ["", "hi", MESSAGE, "émoji 🙂 and ünïcode", "x" * 5000]:
        sealed = ring.seal(value)
        assert ring.open(sealed) == value
        assert sealed != ring.seal(value)  # random: equal texts look different
        assert sealed.startswith(f"f1.{ring.primary.kid}.")
        looked = ring.seal_lookup(value)
        assert ring.open(looked) == value
        assert looked == ring.seal_lookup(value)  # deterministic: equal texts seal equal
        assert looked.startswith(f"s1.{ring.primary.kid}.")
    assert ring.seal_lookup(PHONE) != ring.seal_lookup(PHONE + "1")
    # The longest address a column held before (128 characters) fits the lookup column.
    assert len(ring.seal_lookup("9" * 128)) <= crypto.LOOKUP_LENGTH


def test_the_first_key_seals_and_any_listed_key_opens() -> None:
    old, both = crypto.Keyring(KEY_A), crypto.Keyring(f"{KEY_B}, {KEY_A}")
    assert both.primary.kid == crypto.Keyring(KEY_B).primary.kid
    assert both.kids == [crypto.Keyring(KEY_B).primary.kid, old.primary.kid]
    sealed = old.seal(MESSAGE)
    assert both.open(sealed) == MESSAGE
    assert not both.is_current(sealed)
    moved = both.reseal(sealed, crypto.RANDOM)
    assert both.is_current(moved) and crypto.Keyring(KEY_B).open(moved) == MESSAGE
    assert both.reseal(moved, crypto.RANDOM) == moved  # already current: unchanged


def test_keys_must_be_data_keys() -> None:
    with pytest.raises(crypto.DataKeyError, match="empty"):
        crypto.Keyring(" , ")
    secretish = "not-a-key-but-maybe-a-secret"
    with pytest.raises(crypto.DataKeyError, match="key 2 is not a data key") as raised:
        crypto.Keyring([KEY_A, secretish])
    assert secretish not in str(raised.value)  # never echoed into logs
    assert crypto.Keyring([KEY_A, KEY_A]).kids == crypto.Keyring(KEY_A).kids


def test_a_wrong_or_missing_key_is_a_clear_error() -> None:
    sealed = crypto.Keyring(KEY_A).seal(MESSAGE)
    kid = crypto.Keyring(KEY_A).primary.kid
    with pytest.raises(
        crypto.SealError, match=f"data key {kid}, which is not in WAYMARK_DATA_KEYS"
    ):
        crypto.Keyring(KEY_B).open(sealed)
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    with pytest.raises(crypto.SealError, match="did not open"):
        crypto.Keyring(KEY_A).open(tampered)
    with pytest.raises(crypto.SealError, match="not sealed"):
        crypto.Keyring(KEY_A).open(MESSAGE)


def test_sql_can_not_compare_randomly_sealed_columns() -> None:
    # Such a comparison would silently match nothing: it fails loudly instead.
    with pytest.raises(TypeError, match="compare in Python"):
        select(Inbound).where(Inbound.text == MESSAGE)
    with pytest.raises(TypeError, match="sealed"):
        select(Outbound).where(Outbound.text.like("%safe%"))
    with pytest.raises(TypeError, match="sealed"):
        select(Contact).order_by(Contact.address.desc())
    # NULL tests, and equality on lookup columns, are fine.
    select(Inbound).where(Inbound.text.is_(None), Feedback.comment.is_not(None))
    select(Contact).where(Contact.address == PHONE, VictimContact.address.in_([PHONE]))


# -- on the database ------------------------------------------------------------------------


def test_round_trip_and_nothing_in_clear_on_disk(store: Store) -> None:
    with store.session() as session:
        conversation_id = fill(session)
    with store.session() as session:
        assert read_back(session, conversation_id) == EXPECTED
    raw = store.raw_rows()
    assert "f1." in raw and "s1." in raw
    assert [n for n in NEEDLES if n.lower() in raw.lower()] == []
    if store.kind == "sqlite":  # the file itself, and its write-ahead log
        path = Path(sa.make_url(store.url).database or "")
        store.engine.dispose()
        for file in (path, path.with_name(path.name + "-wal")):
            if file.exists():
                data = file.read_bytes().decode("latin-1").lower()
                assert [n for n in NEEDLES if n.lower() in data] == [], file.name


def test_lookups_unique_keys_and_upserts_still_work(store: Store) -> None:
    other = OTHER
    with store.session() as session:
        fill(session)
        fill(session, other)
    with store.session() as session:
        found = session.scalars(
            select(Contact.address).where(Contact.address.in_([PHONE, other, "+447700900999"]))
        ).all()
        assert sorted(found) == [PHONE, other]
        # A join on two sealed columns compares ciphertexts: same key, same address.
        joined = session.execute(
            select(Contact.address, VictimContact.address).join(
                VictimContact,
                (VictimContact.address == Contact.address)
                & (VictimContact.channel == Contact.channel),
            )
        ).all()
        assert sorted(joined) == [(PHONE, PHONE), (other, other)]
    with store.session() as session, pytest.raises(IntegrityError):
        session.add(Contact(channel="sms", address=PHONE))
        session.commit()
    with store.session() as session, pytest.raises(IntegrityError):
        victim_id = session.scalar(
            select(VictimContact.victim_id).where(VictimContact.address == PHONE)
        )
        session.add(VictimContact(victim_id=victim_id, channel="sms", address=PHONE))
        session.commit()

    # The gateway's upsert (Gateway._contacts): ON CONFLICT on (channel, address).
    later = datetime(2030, 1, 1, tzinfo=UTC)
    dialect = postgresql if store.kind == "postgres" else sqlite
    upsert = dialect.insert(Contact)
    upsert = upsert.on_conflict_do_update(
        index_elements=["channel", "address"], set_={"last_seen_at": upsert.excluded.last_seen_at}
    ).returning(Contact.id, Contact.address)
    new = "+447700900463"
    with store.engine.begin() as connection:
        rows = connection.execute(
            upsert,
            [
                {"channel": "sms", "address": a, "created_at": later, "last_seen_at": later}
                for a in (PHONE, new)
            ],
        ).all()
    assert sorted(address for _, address in rows) == sorted([PHONE, new])
    with store.session() as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 3
        touched = session.scalar(select(Contact).where(Contact.address == PHONE))
        assert touched is not None and touched.last_seen_at.year == 2030


def test_an_engine_with_the_wrong_key_says_which_key_is_missing(store: Store) -> None:
    with store.session() as session:
        fill(session)
    store.use(crypto.Keyring(KEY_B))
    with store.session() as session, pytest.raises(crypto.SealError, match="WAYMARK_DATA_KEYS"):
        session.scalars(select(Inbound.text)).all()


def test_rotation(store: Store) -> None:
    old = crypto.Keyring(KEY_A)
    with store.session() as session:
        first = fill(session)
        second = fill(session, OTHER)
    # A value written around the column types (raw SQL) is sealed by the rotation too.
    with store.engine.begin() as connection:
        connection.execute(
            text("UPDATE feedback SET comment = :c WHERE conversation_id = :id"),
            {"c": COMMENT, "id": second},
        )

    # The new key goes first; the old one stays listed, so old rows still open.
    both = crypto.Keyring([KEY_B, KEY_A])
    store.use(both)
    with store.session() as session:
        assert (
            session.scalar(select(Inbound.text).where(Inbound.conversation_id == first)) == MESSAGE
        )
        # ...but a lookup seals with the new key, so it misses rows not yet rotated.
        assert session.scalar(select(Contact.id).where(Contact.address == PHONE)) is None

    results = rotate.rotate(store.engine, both, batch=1)
    moved = {r.column: r.resealed for r in results}
    assert moved["contacts.address"] == 2 and moved["victim_contacts.address"] == 2
    assert moved["inbound_messages.text"] == 2 and moved["feedback.comment"] == 2
    assert moved["referrals.needs"] == 2 and moved["conversations.referral_offer"] == 2
    assert {r.column for r in results} >= {
        "victims.advocate_phone",
        "outbound_messages.text",
        "handoff_events.text",
        "referral_events.note",
        "needs_assessments.answers",
        "referrals.contact",
    }
    assert all(r.current == 2 for r in results), results

    # Run again: nothing left to do.
    assert all(r.resealed == 0 for r in rotate.rotate(store.engine, both)), "not idempotent"
    # Everything is under the new key on disk, so the old key can be dropped.
    new_kid = both.primary.kid
    for table, column in rotate.sealed_columns():
        for value in store.raw(table.name, column.name):
            assert value is None or value[3:11] == new_kid, (table.name, column.name)
    assert [n for n in NEEDLES if n.lower() in store.raw_rows().lower()] == []
    store.use(crypto.Keyring(KEY_B))
    with store.session() as session:
        assert read_back(session, first) == EXPECTED
        assert read_back(session, second) == {**EXPECTED, "address": OTHER, "victim_address": OTHER}
        assert session.scalar(select(Contact.id).where(Contact.address == PHONE)) is not None
        # The old key alone no longer opens anything.
    store.use(old)
    with store.session() as session, pytest.raises(crypto.SealError):
        session.scalars(select(Outbound.text)).all()


def test_rotation_stops_on_an_address_stored_under_both_keys(store: Store) -> None:
    with store.session() as session:
        fill(session)
    store.use(crypto.Keyring([KEY_B, KEY_A]))
    with store.session() as session:  # the gateway ran with the new key before rotating
        session.add(Contact(channel="sms", address=PHONE))
        session.commit()
    with pytest.raises(rotate.RotateError, match=r"contacts\.address"):
        rotate.rotate(store.engine, crypto.Keyring([KEY_B, KEY_A]))


# -- the migration --------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with database(request.param, tmp_path) as url:
        yield url


def test_the_migration_seals_existing_rows_and_downgrade_opens_them(empty_url: str) -> None:
    check_migration(empty_url, crypto.Keyring(KEY_A))


def check_migration(url: str, ring: crypto.Keyring) -> None:
    config = alembic(url, ring)
    command.upgrade(config, f"{MIGRATION}-1")
    engine = db.create_sync_engine(url)
    try:
        plain = plain_rows()
        with engine.begin() as connection:  # through the tables as they were, reflected
            for name, rows in plain.items():
                table = sa.Table(name, sa.MetaData(), autoload_with=connection)
                connection.execute(table.insert(), rows)
        command.upgrade(config, MIGRATION)
        # On disk: sealed, none of it in clear.
        with engine.connect() as connection:
            for table in plain:
                for column in SEALED[table]:
                    stored = connection.scalars(
                        text(f"SELECT {column} FROM {table} ORDER BY id")
                    ).all()
                    assert all(v is None or crypto.is_sealed(v) for v in stored), (table, stored)
        store = Store(url, "", engine)
        raw = store.raw_rows().lower()
        assert [n for n in NEEDLES if n.lower() in raw] == []
        # Through the models: as they were.
        crypto.bind(engine, ring)
        with Session(engine) as session:
            assert session.scalar(select(Contact.address).order_by(Contact.id)) == PHONE
            assert session.scalar(select(Contact.id).where(Contact.address == PHONE)) == 1
            assert session.scalar(
                select(Conversation.referral_offer).order_by(Conversation.id)
            ) == {"contact": ROUTE}
            assert session.scalar(select(Inbound.text).order_by(Inbound.id)) == MESSAGE
            assert session.scalar(select(Outbound.text)) == REPLY
            assert session.scalar(select(Victim.advocate_phone)) == ADVOCATE
            assert session.scalar(select(VictimContact.address)) == PHONE
            assert session.scalar(select(Feedback.comment)) == COMMENT
            assert session.scalar(select(HandoffEvent.text)) == NOTE
            assert session.scalar(select(ReferralEvent.note)) == REFERRAL_NOTE
            assert session.scalar(select(NeedsAssessment.answers)) == NEEDS
            assert tuple(session.execute(select(Referral.needs, Referral.contact)).one()) == (
                NEEDS,
                ROUTE,
            )
        # Downgrade opens every value again; upgrading again seals them again.
        before = store.raw_rows()
        command.downgrade(config, f"{MIGRATION}-1")
        with engine.connect() as connection:
            for table, rows in plain.items():
                for column in SEALED[table]:
                    stored = connection.scalars(
                        text(f"SELECT {column} FROM {table} ORDER BY id")
                    ).all()
                    wanted = [row[column] for row in rows]
                    if column in JSON_COLUMNS:
                        stored = [json.loads(v) if isinstance(v, str) else v for v in stored]
                    assert stored == wanted, (table, column)
        command.upgrade(config, "head")
        assert before.count("f1.") == store.raw_rows().count("f1.")
    finally:
        engine.dispose()


SEALED = {
    "contacts": ["address"],
    "conversations": ["referral_offer"],
    "inbound_messages": ["text"],
    "outbound_messages": ["text"],
    "victims": ["advocate_phone"],
    "victim_contacts": ["address"],
    "handoffs": [],
    "handoff_events": ["text"],
    "feedback": ["comment"],
    "services": [],
    "needs_assessments": ["answers"],
    "referrals": ["needs", "contact"],
    "referral_events": ["note"],
    "cases": [],
}
JSON_COLUMNS = {"referral_offer", "answers", "needs", "contact", "entry"}


def plain_rows() -> dict[str, list[dict[str, Any]]]:
    """Rows as the app wrote them before encryption, in insert order."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    return {
        "contacts": [
            {
                "id": 1,
                "channel": "sms",
                "address": PHONE,
                "opted_out": False,
                "created_at": now,
                "last_seen_at": now,
            },
            {
                "id": 2,
                "channel": "telegram",
                "address": "5550123",
                "opted_out": False,
                "created_at": now,
                "last_seen_at": now,
            },
        ],
        "conversations": [
            {
                "id": 1,
                "contact_id": 1,
                "rasa_sender": "s",
                "owner": "bot",
                "rasa_paused": False,
                "referral_offer": {"contact": ROUTE},
                "created_at": now,
                "updated_at": now,
            },
            {
                "id": 2,
                "contact_id": 2,
                "rasa_sender": "t",
                "owner": "bot",
                "rasa_paused": False,
                "referral_offer": None,
                "created_at": now,
                "updated_at": now,
            },
        ],
        "inbound_messages": [
            {
                "id": 1,
                "conversation_id": 1,
                "channel": "sms",
                "kind": "text",
                "text": MESSAGE,
                "state": "done",
                "safety_tier": 0,
                "holding_sent": False,
                "attempts": 0,
                "received_at": now,
            },
            {
                "id": 2,
                "conversation_id": 1,
                "channel": "sms",
                "kind": "non_text",
                "text": None,
                "state": "done",
                "safety_tier": 0,
                "holding_sent": False,
                "attempts": 0,
                "received_at": now,
            },
        ],
        "outbound_messages": [
            {
                "id": 1,
                "conversation_id": 1,
                "channel": "sms",
                "source": "bot",
                "text": REPLY,
                "status": "sent",
                "status_rank": 0,
                "attempts": 1,
                "created_at": now,
                "updated_at": now,
            },
        ],
        "cases": [
            {
                "id": 1,
                "reference": "4300001/26",
                "agency": "met",
                "crime_type": "burglary",
                "stage": "x",
                "enhanced_rights": False,
                "update_every_days": 28,
                "created_at": now,
                "updated_at": now,
            },
        ],
        "victims": [
            {
                "id": 1,
                "case_id": 1,
                "external_id": "v1",
                "consent_at": now,
                "safe_to_text": True,
                "discreet": True,
                "urgent_in_quiet_hours": True,
                "via_advocate": True,
                "advocate_phone": ADVOCATE,
                "paused": False,
                "created_at": now,
            },
        ],
        "victim_contacts": [
            {"id": 1, "victim_id": 1, "channel": "sms", "address": PHONE, "created_at": now},
        ],
        "handoffs": [
            {
                "id": 1,
                "conversation_id": 1,
                "state": "closed",
                "reason": "request_human",
                "priority": 1,
                "created_at": now,
            },
        ],
        "handoff_events": [
            {"id": 1, "handoff_id": 1, "kind": "note", "text": NOTE, "at": now},
        ],
        "feedback": [
            {
                "id": 1,
                "conversation_id": 1,
                "rating": 5,
                "comment": COMMENT,
                "source": "bot",
                "at": now,
            },
        ],
        "services": [
            {
                "id": "svc",
                "name": "A service",
                "entry": {},
                "last_verified": date(2026, 11, 1),
                "active": True,
                "origin": "file",
                "updated_at": now,
            },
        ],
        "needs_assessments": [
            {"id": 1, "conversation_id": 1, "answers": NEEDS, "created_at": now, "updated_at": now},
        ],
        "referrals": [
            {
                "id": 1,
                "conversation_id": 1,
                "service_id": "svc",
                "status": "sent",
                "needs": NEEDS,
                "contact": ROUTE,
                "consented_at": now,
                "updated_at": now,
            },
        ],
        "referral_events": [
            {
                "id": 1,
                "referral_id": 1,
                "status": "sent",
                "by": "c",
                "note": REFERRAL_NOTE,
                "at": now,
            },
        ],
    }


# -- the command line -----------------------------------------------------------------------


def test_data_key_new_prints_a_usable_key(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["data-key", "new"]) == 0
    out = capsys.readouterr()
    key = out.out.strip()
    assert crypto.Keyring(key).seal("x") and key not in (KEY_A, KEY_B)
    assert "rotate" in out.err


def test_data_key_rotate_command(
    store: Store,
    process_keys: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with store.session() as session:
        fill(session)
    monkeypatch.setenv("WAYMARK_DATABASE_URL", store.url)
    monkeypatch.setenv("WAYMARK_DATA_KEYS", f"{KEY_B},{KEY_A}")
    assert cli(["data-key", "rotate", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "contacts.address" in out and "1 re-sealed" in out
    assert f"now uses key {crypto.Keyring(KEY_B).primary.kid}" in out
    assert cli(["data-key", "rotate"]) == 0
    assert "1 re-sealed" not in capsys.readouterr().out
    store.use(crypto.Keyring(KEY_B))
    with store.session() as session:
        assert session.scalar(select(Contact.address).order_by(Contact.id)) == PHONE

    monkeypatch.setenv("WAYMARK_DATA_KEYS", "nonsense")
    get_settings.cache_clear()
    assert cli(["data-key", "rotate"]) == 2
    assert "key 1 is not a data key" in capsys.readouterr().err
