"""Case-progress benchmark (issue 4): a million cases on PostgreSQL, then the verified
look-up, the bulk import and the notification workers, each against its target.

1. Generate 1,000,000 cases and 5,000,000 events, with one victim and one linked SMS
   contact per case and a victim_updates row each time the victim heard, by COPY into a
   fresh schema (bench/case_data.py); VACUUM ANALYZE.
2. The look-up's queries (case by reference; the newest 50 events), through the app's
   async engine and raw: p50/p95/p99. Target p95 < 5 ms.
3. A verified look-up end to end without Rasa: `CaseDesk.render` on a real Gateway with a
   null sender (load, plain-English answer, outbound rows, victim update). Target p95
   < 20 ms. One argon2 secret check is timed apart: it runs once per verification.
4. Bulk import of 50,000 events through `import_events`, then the same file again (all
   replays). Target >= 2,000 events/s.
5. 10,000 due notifications, two workers (two Gateways, two engines, two threads with
   their own event loops), sent by the real TwilioSender over HTTP to a local fake
   Twilio. Target: all sent in < 60 s, no duplicates.

Run from the repo root: `.venv/bin/python bench/cases.py` (about 15 minutes at full size;
`--keep` leaves the schema for psql, `--reuse` runs steps 2-5 on a kept one).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from actions import content
from bench.case_data import (
    AGENCY,
    SECRET,
    Generator,
    details_for,
    next_event,
    plan,
)
from bot import db
from bot.cases import notify
from bot.cases.credentials import hash_secret, verify_secret
from bot.cases.desk import STATUS_EVENTS
from bot.cases.importer import ImportResult, import_events
from bot.cases.models import Case, CaseEvent
from bot.cases.vocabulary import EVENT_TYPES
from bot.channels.sms import TwilioSender, build_client
from bot.config import Settings
from bot.gateway import Gateway, Rendered, Reply, _Out
from bot.models import Contact, Conversation, Inbound, InboundState
from bot.privacy import crypto
from bot.rasa_client import RasaClient
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, fake_twilio, redirected_http_client

POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
# In the order of a generated chunk.
TABLES = ("cases", "victims", "victim_contacts", "case_events", "victim_updates")
COLUMNS = {
    "cases": Generator.CASE_COLUMNS,
    "victims": Generator.VICTIM_COLUMNS,
    "victim_contacts": Generator.CONTACT_COLUMNS,
    "case_events": Generator.EVENT_COLUMNS,
    "victim_updates": Generator.UPDATE_COLUMNS,
}
FROM_NUMBER = "+447700900000"
NO_RASA = "http://127.0.0.1:9"  # render never contacts Rasa; nothing listens here
WARMUP = 50


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(values: Sequence[float]) -> str:
    return (
        f"p50 {pct(values, 0.5) * 1000:6.2f} ms  p95 {pct(values, 0.95) * 1000:6.2f} ms  "
        f"p99 {pct(values, 0.99) * 1000:6.2f} ms  (n={len(values)})"
    )


@dataclass
class Figure:
    """One line of the summary: a measure, its figure and its target."""

    measure: str
    figure: str
    target: str
    ok: bool | None  # None: reported, no target
    ratio: str = ""


@dataclass
class Report:
    figures: list[Figure] = field(default_factory=list)

    def add(self, *args: Any, **kwargs: Any) -> None:
        self.figures.append(Figure(*args, **kwargs))

    def print(self) -> None:
        print("\nSummary")
        widths = (44, 26, 22, 9)
        head = ("measure", "figure", "target", "vs target")
        print("  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)) + "  result")
        for f in self.figures:
            result = "info" if f.ok is None else "PASS" if f.ok else "FAIL"
            cells = (f.measure, f.figure, f.target, f.ratio)
            print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + f"  {result}")


def schema_url(base: str, schema: str) -> str:
    return f"{base}{'&' if '?' in base else '?'}options=-csearch_path%3D{schema}"


def settings_for(url: str) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=url,
        secret_key="bench-pseudonym-key",
        rasa_token="bench",
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from_number=FROM_NUMBER,
    )


# -- 1. generation ------------------------------------------------------------------------


def _secondary(conn: psycopg.Connection) -> tuple[list[str], list[str]]:
    """The loaded tables' unique constraints, foreign keys and plain indexes (primary
    keys stay): statements to drop them, and statements that put them back as they were."""
    tables = list(TABLES)
    owned = (
        "SELECT oid FROM pg_class WHERE relnamespace = current_schema()::regnamespace"
        " AND relname = ANY(%s)"
    )
    constraints = conn.execute(
        "SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)"
        f" FROM pg_constraint WHERE contype IN ('u', 'f') AND conrelid IN ({owned})"
        " ORDER BY contype DESC, conname",  # drop foreign keys first, add them last
        [tables],
    ).fetchall()
    indexes = conn.execute(
        "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i"
        f" WHERE i.indrelid IN ({owned}) AND NOT i.indisprimary AND NOT EXISTS"
        " (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid"
        "  AND c.contype IN ('p', 'u', 'x'))",
        [tables],
    ).fetchall()
    drops = [f'ALTER TABLE {t} DROP CONSTRAINT "{name}"' for t, name, _, _ in constraints]
    drops += [f"DROP INDEX {name}" for name, _ in indexes]
    adds = [definition for _, definition in indexes]
    adds += [
        f'ALTER TABLE {t} ADD CONSTRAINT "{name}" {definition}'
        for t, name, kind, definition in reversed(constraints)
    ]
    return drops, adds


def _index_definitions(conn: psycopg.Connection) -> list[str]:
    return sorted(
        row[0]
        for row in conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            " UNION ALL SELECT pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE connamespace = current_schema()::regnamespace"
        )
    )


def generate(url: str, cases: int, events: int, seed: int) -> dict[str, float]:
    """Migrate, COPY the rows in, rebuild the indexes and constraints, VACUUM ANALYZE."""
    timings: dict[str, float] = {}
    start = time.perf_counter()
    db.migrate(url)
    rng = random.Random(seed)
    secret_hash = hash_secret(SECRET)
    with psycopg.connect(url, autocommit=True) as admin:
        schema_before = _index_definitions(admin)
        drops, adds = _secondary(admin)
        for statement in drops:
            admin.execute(statement)  # one build over loaded rows beats 5M index inserts
    timings["migrate"] = time.perf_counter() - start

    start = time.perf_counter()
    generator = Generator(plan(cases, events, rng), datetime.now(UTC), secret_hash, rng, 200)
    with ExitStack() as stack:
        # One connection per table: each COPY streams while the next chunk is generated.
        conns = [stack.enter_context(psycopg.connect(url)) for _ in TABLES]
        copies = [
            stack.enter_context(conn.cursor().copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN"))
            for conn, table in zip(conns, TABLES, strict=True)
        ]
        step = max(cases // 10, 1)
        done = 0
        for chunk in generator.chunks():
            for copy, data in zip(copies, chunk, strict=True):
                copy.write(data)
            before, done = done, done + chunk[0].count("\n")
            if done // step != before // step:
                print(
                    f"  {done:>9,} cases, {generator.event_id:>10,} events"
                    f" ({time.perf_counter() - start:5.0f} s)",
                    flush=True,
                )
        # Leaving the stack ends each COPY, then commits each connection.
    timings["copy"] = time.perf_counter() - start
    assert generator.event_id == events, (generator.event_id, events)
    print(f"  details checked with validate_details: {generator.checked:,} events", flush=True)

    start = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute("SET maintenance_work_mem = '1GB'")
        for statement in adds:
            admin.execute(statement)
        for table in TABLES:
            admin.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" (SELECT max(id) FROM {table}))"
            )
        assert _index_definitions(admin) == schema_before, "the indexes did not come back"
        timings["indexes"] = time.perf_counter() - start
        start = time.perf_counter()
        # VACUUM as well: autovacuum would have set hint bits and the visibility map
        # on a table this old; a fresh load left to do that would slow the first reads.
        for table in TABLES:
            admin.execute(f"VACUUM (ANALYZE) {table}")
    timings["analyze"] = time.perf_counter() - start
    return timings


def table_sizes(url: str) -> list[tuple[str, int, str]]:
    with psycopg.connect(url) as conn:
        return [
            (
                table,
                conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0],  # type: ignore[index]
                conn.execute(
                    f"SELECT pg_size_pretty(pg_total_relation_size('{table}'))"
                ).fetchone()[0],  # type: ignore[index]
            )
            for table in TABLES
        ]


def sample_cases(url: str, count: int, rng: random.Random) -> list[tuple[int, str, str, str]]:
    """(id, reference, stage, crime type) of `count` different random cases."""
    with psycopg.connect(url) as conn:
        top = conn.execute("SELECT max(id) FROM cases").fetchone()[0]  # type: ignore[index]
        ids = rng.sample(range(1, top + 1), min(count, top))
        rows = conn.execute(
            "SELECT id, reference, stage, crime_type FROM cases WHERE id = ANY(%s)", [ids]
        ).fetchall()
    found = {row[0]: row for row in rows}
    return [found[i] for i in ids if i in found]


# -- 2. look-up queries -------------------------------------------------------------------


async def lookup_queries(url: str, references: list[str]) -> tuple[list[float], list[float]]:
    """The desk's statements, through the app's engine: a session per look-up."""
    engine = db.create_engine(url)
    sessions = db.sessionmaker(engine)
    by_reference: list[float] = []
    newest: list[float] = []
    try:
        for index, ref in enumerate(references):
            async with sessions() as session:
                start = time.perf_counter()
                case = await session.scalar(select(Case).where(Case.reference == ref))
                middle = time.perf_counter()
                assert case is not None
                events = list(
                    await session.scalars(
                        select(CaseEvent)
                        .where(CaseEvent.case_id == case.id)
                        .order_by(CaseEvent.occurred_at.desc(), CaseEvent.id.desc())
                        .limit(STATUS_EVENTS)
                    )
                )
                end = time.perf_counter()
                assert events
            if index >= WARMUP:
                by_reference.append(middle - start)
                newest.append(end - middle)
    finally:
        await engine.dispose()
    return by_reference, newest


CASE_SQL = "SELECT * FROM cases WHERE reference = %s"
EVENTS_SQL = (
    "SELECT * FROM case_events WHERE case_id = %s ORDER BY occurred_at DESC, id DESC LIMIT 50"
)


def raw_queries(url: str, references: list[str]) -> tuple[list[float], list[float], list[str]]:
    """The same two queries on one psycopg connection: the database's share of the time."""
    by_reference: list[float] = []
    newest: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for index, ref in enumerate(references):
            start = time.perf_counter()
            case = conn.execute(CASE_SQL, [ref], prepare=True).fetchone()
            middle = time.perf_counter()
            assert case is not None
            conn.execute(EVENTS_SQL, [case[0]], prepare=True).fetchall()
            end = time.perf_counter()
            if index >= WARMUP:
                by_reference.append(middle - start)
                newest.append(end - middle)
        case_id = conn.execute(CASE_SQL, [references[-1]]).fetchone()[0]  # type: ignore[index]
        plans = []
        for sql, arg in ((CASE_SQL, references[-1]), (EVENTS_SQL, case_id)):
            rows = conn.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", [arg]).fetchall()
            plans.append("\n".join(f"    {r[0]}" for r in rows))
    return by_reference, newest, plans


# -- 3. the verified look-up, end to end --------------------------------------------------


class NullSender:
    """Accepts every message at once, so the figure is Waymark's own work."""

    channel = "sms"

    def __init__(self) -> None:
        self.sent = 0
        self.last = ""

    def render(self, reply: Reply) -> list[Rendered]:
        return [Rendered(reply.text)]

    async def deliver(
        self, *, conversation_id: int, address: str, outbound_id: int, message: Rendered
    ) -> tuple[str | None, str]:
        self.sent += 1
        self.last = message.text
        return f"NULL{outbound_id}", "sent"


async def verified_conversations(
    gateway: Gateway, victims: list[tuple[int, str]]
) -> list[tuple[Conversation, Contact, Inbound]]:
    """A verified conversation per (victim id, phone), as `_check_secret` leaves it, with
    the "any news?" message the answer belongs to."""
    until = datetime.now(UTC) + timedelta(hours=2)
    made: list[tuple[Conversation, Contact, Inbound]] = []
    async with gateway.sessions() as session, session.begin():
        for victim_id, address in victims:
            conversation = await gateway.conversation_for(session, "sms", address)
            conversation.verified_victim_id = victim_id
            conversation.verified_until = until
            contact = await session.get(Contact, conversation.contact_id)
            assert contact is not None
            inbound = Inbound(
                conversation_id=conversation.id,
                channel="sms",
                kind="text",
                text="any news on my case?",
                state=InboundState.DONE,
            )
            session.add(inbound)
            made.append((conversation, contact, inbound))
        await session.flush()
    return made


@dataclass
class RenderResult:
    times: list[float]
    cpu: list[float]  # this process's CPU per look-up: the part the machine's noise can't add
    messages: int
    refused: int  # answered "verify first": must be 0


async def renders(url: str, settings: Settings, victims: list[tuple[int, str]]) -> RenderResult:
    engine = db.create_engine(url)
    gateway = Gateway(settings, db.sessionmaker(engine), RasaClient(NO_RASA, "bench"))
    sender = NullSender()
    gateway.add_sender(sender)
    needed = content.item("case.verify.needed").part(0)
    times: list[float] = []
    cpu: list[float] = []
    refused = 0
    try:
        for index, (conversation, contact, inbound) in enumerate(
            await verified_conversations(gateway, victims)
        ):
            out = _Out(gateway, sender, conversation.id, contact, inbound)
            start, used = time.perf_counter(), time.thread_time()
            await gateway.desk.render(out, conversation.id)
            elapsed, used = time.perf_counter() - start, time.thread_time() - used
            refused += sender.last == needed
            if index >= WARMUP:
                times.append(elapsed)
                cpu.append(used)
    finally:
        await gateway.rasa.aclose()
        await engine.dispose()
    return RenderResult(times, cpu, sender.sent, refused)


def secret_checks(count: int = 20) -> list[float]:
    stored = hash_secret(SECRET)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        assert verify_secret(stored, SECRET)
        times.append(time.perf_counter() - start)
    return times


# -- 4. bulk import -----------------------------------------------------------------------


def import_rows(
    cases: list[tuple[int, str, str, str]], rng: random.Random, token: str
) -> list[dict[str, Any]]:
    """JSON-lines-like rows: a plausible next event for each case, in the last 3 days."""
    now = datetime.now(UTC)
    rows = []
    for number, (_, ref, stage, crime) in enumerate(cases, 1):
        type_ = next_event(stage, rng)
        occurred = now - timedelta(seconds=rng.randint(60, 3 * 86_400))
        row: dict[str, Any] = {
            "reference": ref,
            "type": type_,
            "occurred_at": occurred.isoformat().replace("+00:00", "Z"),
            "external_id": f"bench-{token}-{number}",
        }
        if found := details_for(type_, rng, occurred.date(), crime, ref):
            row["details"] = found
        rows.append(row)
    return rows


def run_import(url: str, settings: Settings, rows: list[dict[str, Any]]) -> ImportResult:
    engine = db.create_sync_engine(url)
    try:
        return import_events(
            sessionmaker(engine, expire_on_commit=False),
            rows,
            AGENCY,
            dry_run=False,
            settings=settings,
        )
    finally:
        engine.dispose()


def cancel_pending(url: str, why: str) -> int:
    """The import queued notifications: keep them out of the delivery measurement."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "UPDATE notifications SET state = 'cancelled', error = %s WHERE state = 'pending'",
            [why],
        ).rowcount


# -- 5. notifications ---------------------------------------------------------------------


def due_notifications(url: str, count: int, rng: random.Random, token: str) -> dict[str, int]:
    """`count` new events, each with a pending notification for its case's victim, for
    victims who can be texted now: a linked SMS contact, no quiet hours, not paused, not
    through an advocate. Returns {phone number: notification id}."""
    with psycopg.connect(url) as conn:
        picked = conn.execute(
            "SELECT v.id, v.case_id, c.address, k.stage, k.crime_type, k.reference"
            " FROM victims v JOIN victim_contacts c ON c.victim_id = v.id"
            " JOIN cases k ON k.id = v.case_id"
            " WHERE v.safe_to_text AND v.quiet_start IS NULL AND NOT v.paused"
            " AND NOT v.via_advocate AND c.channel = 'sms' AND c.verified_at IS NOT NULL"
            " AND k.closed_at IS NULL AND NOT EXISTS (SELECT 1 FROM notifications n"
            "  WHERE n.victim_id = v.id AND n.state IN ('sent', 'sending'))"  # not merged
            " ORDER BY random() LIMIT %s",
            [count],
        ).fetchall()
        now = datetime.now(UTC)
        types, details = [], []
        for _, _, _, stage, crime, ref in picked:
            type_ = next_event(stage, rng)
            found = details_for(type_, rng, now.date(), crime, ref)
            types.append(type_)
            details.append(None if found is None else json.dumps(found, ensure_ascii=False))
        urgent = [name for name, kind in EVENT_TYPES.items() if kind.urgent]
        rows = conn.execute(
            "WITH new AS ("
            " INSERT INTO case_events (case_id, type, occurred_at, agency, external_id, details,"
            "  created_at)"
            " SELECT c, t, %s, %s, e, d::json, %s"
            " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS u(c, t, e, d)"
            " RETURNING id, case_id, type)"
            " INSERT INTO notifications (victim_id, case_id, event_id, kind, urgent, state,"
            "  attempts, created_at)"
            " SELECT v.id, new.case_id, new.id, new.type, new.type = ANY(%s), 'pending', 0, %s"
            " FROM new JOIN victims v ON v.case_id = new.case_id AND v.id = ANY(%s)"
            " RETURNING id, victim_id",
            [
                now - timedelta(minutes=5),
                AGENCY,
                now,
                [row[1] for row in picked],
                types,
                [f"bench-notify-{token}-{n}" for n in range(len(picked))],
                details,
                urgent,
                now,
                [row[0] for row in picked],
            ],
        ).fetchall()
    phones = {row[0]: crypto.keyring().open(row[2]) for row in picked}  # sealed at rest
    return {phones[victim_id]: notification_id for notification_id, victim_id in rows}


@dataclass
class WorkerResult:
    claimed: int = 0
    batches: int = 0
    started: float = 0.0
    finished: float = 0.0
    error: str | None = None


def worker_thread(
    url: str,
    settings: Settings,
    provider: str,
    barrier: threading.Barrier,
    limit: float,
    out: WorkerResult,
) -> None:
    """One worker: its own Gateway, engine and event loop, as a second process would be.
    It stops claiming after `limit` seconds, so a slow run still ends."""

    async def work() -> None:
        engine = db.create_engine(url)
        gateway = Gateway(settings, db.sessionmaker(engine), RasaClient(NO_RASA, "bench"))
        http = redirected_http_client(provider)  # inside the loop: aiohttp's rule
        gateway.add_sender(TwilioSender(settings, build_client(settings, http)))
        try:
            async with engine.connect():
                pass  # connect before the clock starts
            await asyncio.to_thread(barrier.wait)
            out.started = time.perf_counter()
            deadline = out.started + limit
            while time.perf_counter() < deadline and (
                claimed := await notify.deliver_due(gateway, batch=50)
            ):
                out.claimed += claimed
                out.batches += 1
            out.finished = time.perf_counter()
        finally:
            await http.close()
            await gateway.rasa.aclose()
            await engine.dispose()

    try:
        asyncio.run(work())
    except Exception as error:  # reported in the results, not lost in a thread
        out.error = repr(error)
        barrier.abort()


@dataclass
class NotifyResult:
    elapsed: float
    workers: list[WorkerResult]
    received: int  # messages the provider got for these notifications
    duplicates: int  # messages beyond the first per notification
    missing: int  # notifications the provider never got
    states: dict[str, int]

    @property
    def sent(self) -> int:
        return self.states.get("sent", 0)


def deliver(
    url: str, settings: Settings, due: dict[str, int], limit: float, workers: int = 2
) -> NotifyResult:
    results = [WorkerResult() for _ in range(workers)]
    with fake_twilio() as provider:
        # Message ids unique across runs: a kept schema already has the fake's first ones.
        provider._ids = itertools.count(time.time_ns() // 1000)
        barrier = threading.Barrier(workers)
        threads = [
            threading.Thread(
                target=worker_thread,
                args=(url, settings, provider.url, barrier, limit, result),
            )
            for result in results
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        counts = Counter(m.get("To") for m in provider.sent)
    for result in results:
        if result.error:
            raise SystemExit(f"a notification worker failed: {result.error}")
    received = sum(counts[phone] for phone in due)
    with psycopg.connect(url) as conn:
        states = dict(
            conn.execute(  # type: ignore[arg-type]
                "SELECT state, count(*) FROM notifications WHERE id = ANY(%s) GROUP BY state",
                [list(due.values())],
            ).fetchall()
        )
    return NotifyResult(
        elapsed=max(r.finished for r in results) - min(r.started for r in results),
        workers=results,
        received=received,
        duplicates=sum(max(counts[phone] - 1, 0) for phone in due),
        missing=sum(1 for phone in due if counts[phone] == 0),
        states=states,
    )


# -- the run ------------------------------------------------------------------------------


def timed(what: str, run: Callable[[], Any]) -> Any:
    print(f"\n{what}...", flush=True)
    return run()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", default=POSTGRES, help="a PostgreSQL database")
    parser.add_argument("--schema", default="bench_cases", help="created fresh, then dropped")
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--samples", type=int, default=2000, help="look-ups timed (2 and 3)")
    parser.add_argument("--import-rows", type=int, default=50_000)
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument(
        "--notify-limit", type=float, default=300, help="seconds before workers stop claiming"
    )
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    parser.add_argument(
        "--reuse", action="store_true", help="use the kept schema as it is (skip step 1)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

    schema = args.schema
    url = schema_url(args.database_url, schema)
    settings = settings_for(url)
    rng = random.Random(args.seed)
    token = f"{int(time.time())}"  # fresh external ids on every run, even with --reuse
    report = Report()
    with psycopg.connect(args.database_url, autocommit=True) as conn:
        if not args.reuse:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        # 1. Generation.
        if not args.reuse:
            print(
                f"1. Generating {args.cases:,} cases and {args.events:,} events"
                f" in schema {schema}...",
                flush=True,
            )
            started = time.perf_counter()
            timings = generate(url, args.cases, args.events, args.seed)
            total = time.perf_counter() - started
            print(
                "  "
                + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
                + f"; total {total:.0f} s ({total / 60:.1f} min)"
            )
            report.add(
                f"Generate {args.cases:,} cases + {args.events:,} events",
                f"{total:.0f} s ({total / 60:.1f} min)",
                "a few minutes",
                None,
            )
        for table, rows, size in table_sizes(url):
            print(f"  {table:16} {rows:>10,} rows  {size:>8}")

        # 2. Look-up queries.
        picked = sample_cases(url, args.samples + WARMUP, rng)
        references = [ref for _, ref, _, _ in picked]
        app_case, app_events = timed(
            f"2. Look-up queries, {args.samples} random references",
            lambda: asyncio.run(lookup_queries(url, references)),
        )
        raw_case, raw_events, plans = raw_queries(url, references[::-1])
        print(f"  app engine, case by reference:   {ms(app_case)}")
        print(f"  app engine, newest 50 events:    {ms(app_events)}")
        both = [a + b for a, b in zip(app_case, app_events, strict=True)]
        print(f"  app engine, both (one look-up):  {ms(both)}")
        print(f"  raw psycopg, case by reference:  {ms(raw_case)}")
        print(f"  raw psycopg, newest 50 events:   {ms(raw_events)}")
        print("  plans (EXPLAIN ANALYZE, one sample):")
        print("\n".join(plans))
        for name, values in (("case by reference", app_case), ("newest 50 events", app_events)):
            p95 = pct(values, 0.95) * 1000
            report.add(
                f"Look-up query p95: {name}",
                f"{p95:.2f} ms",
                "< 5 ms",
                p95 < 5,
                f"{p95 / 5:.2f}x",
            )

        # 3. The verified look-up end to end, and one secret check.
        with psycopg.connect(url) as conn:
            victims = [
                (victim_id, crypto.keyring().open(address))  # sealed at rest
                for victim_id, address in conn.execute(
                    "SELECT v.id, c.address FROM victims v JOIN victim_contacts c"
                    " ON c.victim_id = v.id WHERE v.case_id = ANY(%s)",
                    [[case_id for case_id, _, _, _ in picked]],
                )
            ]
        rendered: RenderResult = timed(
            f"3. Verified look-ups (CaseDesk.render, null sender), {len(victims) - WARMUP}",
            lambda: asyncio.run(renders(url, settings, victims)),
        )
        p50, p95 = pct(rendered.times, 0.5) * 1000, pct(rendered.times, 0.95) * 1000
        print(f"  render: {ms(rendered.times)}")
        print(f"  Python CPU per look-up: {ms(rendered.cpu)}")
        print(
            f"  {rendered.messages / len(victims):.2f} messages per answer;"
            f" answered 'verify first': {rendered.refused} (must be 0)"
        )
        report.add(
            "Verified look-up end to end p95",
            f"{p95:.1f} ms (p50 {p50:.1f})",
            "< 20 ms",
            p95 < 20 and rendered.refused == 0,
            f"{p95 / 20:.2f}x",
        )
        checks = secret_checks()
        print(
            f"  argon2 secret check: median {statistics.median(checks) * 1000:.0f} ms,"
            f" max {max(checks) * 1000:.0f} ms ({len(checks)} checks, once per verification)"
        )
        report.add(
            "Secret check (argon2 verify), median",
            f"{statistics.median(checks) * 1000:.0f} ms",
            "once per verification",
            None,
        )

        # 4. Bulk import.
        rows = import_rows(sample_cases(url, args.import_rows, rng), rng, token)
        first: ImportResult = timed(
            f"4. Bulk import of {len(rows):,} events (import_events)",
            lambda: run_import(url, settings, rows),
        )
        print(
            f"  first run: {first.imported:,} imported, {first.replayed:,} replayed,"
            f" {first.failed:,} failed in {first.seconds:.1f} s = {first.rate:,.0f} events/s"
        )
        for error in first.errors[:5]:
            print(f"    row {error.row}: {error.field}: {error.message}")
        again = run_import(url, settings, rows)
        print(
            f"  re-run:    {again.imported:,} imported, {again.replayed:,} replayed,"
            f" {again.failed:,} failed in {again.seconds:.1f} s = {again.rate:,.0f} events/s"
        )
        cancelled = cancel_pending(url, "bench: queued by the import, not sent")
        print(f"  ({cancelled:,} notifications the import queued set aside before step 5)")
        report.add(
            "Bulk import rate",
            f"{first.rate:,.0f} events/s",
            ">= 2,000 events/s",
            first.rate >= 2000 and first.failed == 0 and first.imported == len(rows),
            f"{first.rate / 2000:.2f}x",
        )
        report.add(
            "Import re-run (idempotent)",
            f"{again.rate:,.0f} events/s",
            "nothing new written",
            again.imported == 0 and again.replayed == len(rows),
        )

        # 5. Notifications.
        due = due_notifications(url, args.notifications, rng, token)
        sent: NotifyResult = timed(
            f"5. Delivering {len(due):,} notifications: 2 workers, TwilioSender -> fake Twilio",
            lambda: deliver(url, settings, due, args.notify_limit),
        )
        rate = sent.sent / sent.elapsed
        print(
            f"  {sent.received:,} SMS received by the provider in {sent.elapsed:.1f} s"
            f" = {rate:.1f}/s; duplicates {sent.duplicates}, never sent {sent.missing}"
        )
        if sent.sent < len(due):
            print(
                f"  stopped at the {args.notify_limit:.0f} s limit: at this rate all"
                f" {len(due):,} would take about {len(due) / rate:,.0f} s"
            )
        for index, worker in enumerate(sent.workers, 1):
            print(
                f"  worker {index}: {worker.claimed:,} claimed in {worker.batches} batches,"
                f" busy {worker.finished - worker.started:.1f} s"
            )
        print(f"  notification states: {sent.states}")
        whole = sent.elapsed if sent.sent == len(due) else len(due) / rate
        report.add(
            f"{len(due):,} notifications, 2 workers",
            f"{sent.elapsed:.1f} s ({rate:.0f}/s)"
            if sent.sent == len(due)
            else f"{sent.sent:,} in {sent.elapsed:.0f} s (~{whole:,.0f} s)",
            "< 60 s",
            whole < 60 and sent.sent == len(due),
            f"{whole / 60:.2f}x",
        )
        split = " / ".join(f"{w.claimed:,}" for w in sent.workers)
        report.add("Duplicate SMS", str(sent.duplicates), "0", sent.duplicates == 0)
        report.add("Work split between the workers", split, "both busy", None)
        report.print()
    finally:
        if args.keep:
            print(f"\nKept schema {schema}: {url}")
        else:
            with psycopg.connect(args.database_url, autocommit=True) as conn:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
