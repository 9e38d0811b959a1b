"""What encryption at rest costs (bot/privacy/crypto.py).

1. Microseconds per seal and open: an SMS-sized text (random, Fernet) and a phone
   number (deterministic, AES-SIV), median of several runs.
2. A realistic database path, sealed against in clear: 1,000 outbound messages stored
   one transaction each (as the gateway stores a reply), then read back (as a
   transcript is), on SQLite and, if it is reachable, PostgreSQL.

Run: .venv/bin/python bench/crypto.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import psycopg
import sqlalchemy as sa
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import db
from bot.models import Contact, Conversation, Outbound
from bot.privacy import crypto

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
SMS = (
    "Thanks for telling me. You can report it to the police online, or call 101. If you"
    " are in danger now, call 999. Would you like to hear about support near you?"
)  # 160 characters
PHONE = "+447700900123"
MESSAGES = 1000
RUNS = 5


def per_call(call: Callable[[], object], count: int = 20_000) -> float:
    """Median microseconds per call over RUNS runs."""
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for _ in range(count):
            call()
        times.append((time.perf_counter() - start) / count * 1e6)
    return statistics.median(times)


def primitives(ring: crypto.Keyring) -> None:
    sealed, looked = ring.seal(SMS), ring.seal_lookup(PHONE)
    rows = [
        ("seal, SMS text (Fernet)", per_call(lambda: ring.seal(SMS))),
        ("open, SMS text", per_call(lambda: ring.open(sealed))),
        ("seal, phone number (AES-SIV)", per_call(lambda: ring.seal_lookup(PHONE))),
        ("open, phone number", per_call(lambda: ring.open(looked))),
    ]
    print(f"1. Per value ({len(SMS)}-character text: {len(sealed)} stored)")
    for name, micros in rows:
        print(f"   {name:<32} {micros:7.1f} µs")


def database_path(url: str, label: str) -> None:
    db.migrate(url)
    engine = db.create_sync_engine(url)
    sealed = Outbound.__table__
    # The same table with plain Text, as it was before encryption.
    plain = sa.table(
        "outbound_messages",
        *[sa.column(c.name, sa.Text if c.name == "text" else c.type) for c in sealed.columns],
    )
    try:
        with Session(engine) as session:
            contact = Contact(channel="sms", address=f"+4477009{uuid.uuid4().int % 10**5:05d}")
            session.add(contact)
            session.flush()
            conversation = Conversation(contact_id=contact.id, rasa_sender=uuid.uuid4().hex)
            session.add(conversation)
            session.commit()
            conversation_id = conversation.id
        results: dict[str, list[tuple[float, float]]] = {"in clear": [], "sealed": []}
        for _ in range(RUNS):
            for name, table in (("in clear", plain), ("sealed", sealed)):
                with engine.begin() as connection:
                    connection.execute(sa.delete(sealed))
                start = time.perf_counter()
                for n in range(MESSAGES):
                    with engine.begin() as connection:
                        connection.execute(
                            sa.insert(table).values(
                                conversation_id=conversation_id,
                                channel="sms",
                                source="bot",
                                text=f"{SMS[:150]} {n:09d}",
                                status="sent",
                                status_rank=0,
                                attempts=0,
                                created_at=sa.func.now(),
                                updated_at=sa.func.now(),
                            )
                        )
                stored = time.perf_counter() - start
                start = time.perf_counter()
                with engine.connect() as connection:
                    texts = connection.scalars(
                        sa.select(table.c.text)
                        .where(table.c.conversation_id == conversation_id)
                        .order_by(table.c.id)
                    ).all()
                read = time.perf_counter() - start
                assert len(texts) == MESSAGES and texts[0].startswith(SMS[:20])
                results[name].append((stored, read))
        (clear_store, clear_read), (seal_store, seal_read) = (
            tuple(statistics.median(x) for x in zip(*results[k], strict=True))
            for k in ("in clear", "sealed")
        )
        print(f"2. {label}: {MESSAGES} messages, one transaction each, then read back")
        print(
            f"   store: {clear_store * 1e3:7.0f} ms in clear, {seal_store * 1e3:7.0f} ms sealed"
            f"  (x{seal_store / clear_store:.3f})"
        )
        print(
            f"   read:  {clear_read * 1e3:7.1f} ms in clear, {seal_read * 1e3:7.1f} ms sealed"
            f"  (x{seal_read / clear_read:.2f})"
        )
    finally:
        with engine.begin() as connection:
            connection.execute(sa.delete(sealed))
        engine.dispose()


def main() -> None:
    ring = crypto.use(crypto.new_key())
    primitives(ring)
    with tempfile.TemporaryDirectory() as tmp:
        database_path(f"sqlite:///{tmp}/bench.db", "SQLite (file, WAL)")
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    try:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError:
        print("2. PostgreSQL: not reachable, skipped")
        return
    try:
        database_path(f"{POSTGRES}?options=-csearch_path%3D{schema}", "PostgreSQL (local)")
    finally:
        with suppress(psycopg.Error), psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


if __name__ == "__main__":
    main()
