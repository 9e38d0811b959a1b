"""The notification worker: the outbox, delivered through a real gateway (fake Twilio and
Telegram behind it) on SQLite and PostgreSQL, plus its pure decisions at fixed times."""

from __future__ import annotations

import asyncio
import itertools
import re
import time as clock
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from actions import content
from bot import db
from bot.cases import notify
from bot.cases.credentials import code_digest
from bot.cases.events import add_event
from bot.cases.models import (
    Case,
    CaseEvent,
    Notification,
    OneTimeCode,
    Task,
    Victim,
    VictimContact,
    VictimUpdate,
)
from bot.cases.status import event_summary
from bot.cases.working_days import LONDON
from bot.config import Settings
from bot.gateway import DeliveryError, Gateway, Rendered, Reply
from bot.models import Contact, Outbound
from bot.rasa_client import RasaClient
from tests.cases.conftest import CaseDb, make_case, make_victim
from tests.harness import LiveGateway, database, gateway_settings, live_gateway_for

NO_RASA = "http://127.0.0.1:1"  # the worker never asks Rasa anything
SECRET = "pseudonym-key-for-tests"  # gateway_settings' secret key
DISCREET = content.item("case.notify.discreet").part(0)
DETAILED = content.item("case.notify.detailed")
ADVOCATE = content.item("case.notify.advocate")
_numbers = itertools.count(1)


def next_phone() -> str:
    return f"+4477009{next(_numbers) + 60000:05d}"


def next_reference() -> str:
    return f"{next(_numbers) + 5000000:07d}/26"


def aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


# -- the live gateway, its worker running every 0.2 s -----------------------------------


@dataclass
class Live:
    gateway: LiveGateway
    sessions: sessionmaker[Session]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    with database(request.param, tmp_path_factory.mktemp("notify")) as url:
        settings = gateway_settings(url, NO_RASA, "token", notify_interval=0.2)
        with live_gateway_for(settings) as gateway:
            engine = db.create_sync_engine(url)
            try:
                yield Live(gateway, sessionmaker(engine, expire_on_commit=False))
            finally:
                engine.dispose()


def new_victim(
    live: Live, *, phone: str | None = None, chat: int | None = None, **fields: Any
) -> tuple[int, int]:
    """A case with one victim: its phone (linked unless linked=False), maybe a chat."""
    with live.sessions() as session, session.begin():
        case = make_case(session, next_reference())
        victim = make_victim(session, case, phone=phone, **fields)
        if chat is not None:
            session.add(
                VictimContact(
                    victim_id=victim.id,
                    channel="telegram",
                    address=str(chat),
                    verified_at=datetime.now(UTC),
                )
            )
        return case.id, victim.id


def post(live: Live, case_id: int, type: str, details: dict[str, Any] | None = None) -> int:
    with live.sessions() as session, session.begin():
        case = session.get(Case, case_id)
        assert case is not None
        added = add_event(
            session,
            case,
            type=type,
            occurred_at=datetime.now(UTC) - timedelta(minutes=5),
            agency="met",
            details=details,
        )
        return added.event.id


def settled(live: Live, where: Any, timeout: float = 15) -> Notification:
    """The notification once the worker has dealt with it (sent, deferred, given up)."""
    deadline = clock.monotonic() + timeout
    while True:
        with live.sessions() as session:
            row = session.scalar(select(Notification).where(where))
        if row is not None and (
            row.state in ("sent", "failed", "cancelled")
            or (row.state == "pending" and row.not_before is not None)
        ):
            return row
        if clock.monotonic() > deadline:
            raise AssertionError(f"not settled: {row and row.state}")
        clock.sleep(0.05)


def wait_for(read: Callable[[], list[Any]], count: int, timeout: float = 15) -> list[Any]:
    deadline = clock.monotonic() + timeout
    while len(items := read()) < count:
        if clock.monotonic() > deadline:
            raise AssertionError(f"expected {count}, got {items}")
        clock.sleep(0.05)
    return items


def load(live: Live, model: type, id: int) -> Any:
    with live.sessions() as session:
        return session.get(model, id)


def quiet_now() -> dict[str, time]:
    """Quiet hours from an hour ago to an hour from now (London), maybe over midnight."""
    local = datetime.now(LONDON).replace(microsecond=0)
    return {
        "quiet_start": (local - timedelta(hours=1)).time(),
        "quiet_end": (local + timedelta(hours=1)).time(),
    }


def test_by_default_the_victim_gets_the_discreet_nudge(live: Live) -> None:
    phone = next_phone()
    case_id, victim_id = new_victim(live, phone=phone)
    event_id = post(live, case_id, "investigation_started")
    row = settled(live, Notification.event_id == event_id)
    assert row.state == "sent"
    assert (row.channel, row.recipient, row.attempts) == ("sms", "victim", 1)
    assert row.outbound_id is not None and row.sent_at is not None
    assert live.gateway.twilio.to(phone) == [DISCREET]
    # A nudge is not the news: the event still counts as untold.
    assert load(live, CaseEvent, event_id).victim_informed_at is None
    with live.sessions() as session:
        assert session.scalars(select(VictimUpdate).filter_by(victim_id=victim_id)).all() == []


def test_a_victim_who_chose_detail_gets_the_event_and_is_counted_as_told(live: Live) -> None:
    phone = next_phone()
    case_id, _ = new_victim(live, phone=phone, discreet=False)
    event_id = post(live, case_id, "charged", {"offences": ["Burglary"]})
    assert settled(live, Notification.event_id == event_id).state == "sent"
    case, event = load(live, Case, case_id), load(live, CaseEvent, event_id)
    opening = DETAILED.part(0, reference=case.reference, summary="")
    summary = event_summary(case, event, reserve=len(opening))
    assert live.gateway.twilio.to(phone) == [opening + summary]
    assert event.victim_informed_at is not None
    assert case.last_victim_update_at is not None


def test_quiet_hours_defer_the_nudge_to_their_end(live: Live) -> None:
    phone = next_phone()
    case_id, _ = new_victim(live, phone=phone, **quiet_now())
    event_id = post(live, case_id, "suspect_interviewed")
    row = settled(live, Notification.event_id == event_id)
    assert row.state == "pending"
    assert aware(row.not_before) > datetime.now(UTC) + timedelta(minutes=55)
    assert live.gateway.twilio.to(phone) == []


def test_urgent_news_comes_in_quiet_hours_unless_the_victim_said_no(live: Live) -> None:
    phone, other = next_phone(), next_phone()
    case_id, _ = new_victim(live, phone=phone, **quiet_now())
    other_case, _ = new_victim(live, phone=other, urgent_in_quiet_hours=False, **quiet_now())
    urgent = post(live, case_id, "released_from_custody")
    held = post(live, other_case, "released_from_custody")
    assert settled(live, Notification.event_id == urgent).state == "sent"
    assert live.gateway.twilio.to(phone) == [DISCREET]
    assert settled(live, Notification.event_id == held).state == "pending"
    assert live.gateway.twilio.to(other) == []


def test_an_advocate_gets_the_detail_with_the_reference_and_no_name(live: Live) -> None:
    phone, advocate = next_phone(), next_phone()
    case_id, _ = new_victim(
        live, phone=phone, via_advocate=True, advocate_name="Sam Advocate", advocate_phone=advocate
    )
    event_id = post(live, case_id, "suspect_arrested")
    row = settled(live, Notification.event_id == event_id)
    assert (row.state, row.recipient, row.channel) == ("sent", "advocate", "sms")
    case, event = load(live, Case, case_id), load(live, CaseEvent, event_id)
    opening = ADVOCATE.part(0, reference=case.reference, summary="")
    summary = event_summary(case, event, reserve=len(opening))
    assert live.gateway.twilio.to(advocate) == [opening + summary]
    assert live.gateway.twilio.to(phone) == []
    assert event.victim_informed_at is not None  # the advocate route tells the victim


def test_a_paused_victim_gets_nothing(live: Live) -> None:
    phone = next_phone()
    case_id, _ = new_victim(live, phone=phone, paused=True)
    event_id = post(live, case_id, "charged", {"offences": ["Burglary"]})
    row = settled(live, Notification.event_id == event_id)
    assert (row.state, row.error) == ("cancelled", "messages paused")
    assert live.gateway.twilio.to(phone) == []


def test_no_text_when_texting_is_not_safe_and_a_coordinator_is_told(live: Live) -> None:
    phone = next_phone()
    case_id, _ = new_victim(live, phone=phone, safe_to_text=False)
    event_id = post(live, case_id, "released_from_custody")  # urgent
    row = settled(live, Notification.event_id == event_id)
    assert (row.state, row.error) == ("cancelled", "no safe route")
    assert live.gateway.twilio.to(phone) == []
    with live.sessions() as session:
        task = session.scalar(select(Task).filter_by(dedupe_key=f"noroute:{row.id}"))
    assert task is not None
    assert (task.kind, task.priority, task.case_id, task.event_id) == (
        "no_safe_route",
        0,
        case_id,
        event_id,
    )
    assert phone not in task.detail


def test_not_safe_to_text_goes_to_telegram_even_when_sms_is_preferred(live: Live) -> None:
    phone, chat = next_phone(), 700000 + next(_numbers)
    case_id, _ = new_victim(
        live, phone=phone, chat=chat, safe_to_text=False, preferred_channel="sms"
    )
    event_id = post(live, case_id, "investigation_started")
    row = settled(live, Notification.event_id == event_id)
    assert (row.state, row.channel) == ("sent", "telegram")
    assert [m["text"] for m in live.gateway.telegram.sent(chat)] == [DISCREET]
    assert live.gateway.twilio.to(phone) == []


def test_the_preferred_channel_goes_first(live: Live) -> None:
    phone, chat = next_phone(), 700000 + next(_numbers)
    case_id, _ = new_victim(live, phone=phone, chat=chat, preferred_channel="telegram")
    event_id = post(live, case_id, "investigation_started")
    assert settled(live, Notification.event_id == event_id).channel == "telegram"
    assert len(live.gateway.telegram.sent(chat)) == 1
    assert live.gateway.twilio.to(phone) == []


def test_a_refused_text_fails_with_the_providers_code_only(live: Live) -> None:
    phone = next_phone()
    case_id, _ = new_victim(live, phone=phone)
    live.gateway.twilio.fail_next.append(21211)  # invalid number: permanent
    event_id = post(live, case_id, "investigation_started")
    row = settled(live, Notification.event_id == event_id)
    assert (row.state, row.error) == ("failed", "refused by the provider (sms 21211)")


def test_enrolment_sends_a_code_to_each_unproved_phone(live: Live) -> None:
    phone, proved = next_phone(), next_phone()
    case_id, victim_id = new_victim(live, phone=phone, linked=False)
    with live.sessions() as session, session.begin():
        session.add(
            VictimContact(
                victim_id=victim_id, channel="sms", address=proved, verified_at=datetime.now(UTC)
            )
        )
        notification = Notification(
            victim_id=victim_id, case_id=case_id, kind="enrolment", urgent=False
        )
        session.add(notification)
    row = settled(live, Notification.id == notification.id)
    assert (row.state, row.channel, row.recipient) == ("sent", "sms", "victim")
    (text,) = live.gateway.twilio.to(phone)
    code = re.search(r"\b(\d{6})\b", text)
    assert code is not None
    assert text == content.item("case.enrol.code").part(0, code=code.group(1))
    assert live.gateway.twilio.to(proved) == []
    with live.sessions() as session:
        stored = session.scalar(select(OneTimeCode).filter_by(victim_id=victim_id, purpose="enrol"))
    assert stored is not None and stored.used_at is None
    assert stored.digest == code_digest(SECRET, code.group(1))


def test_a_secret_reset_sends_a_code_to_the_proved_phone(live: Live) -> None:
    phone = next_phone()
    case_id, victim_id = new_victim(live, phone=phone)
    with live.sessions() as session, session.begin():
        notification = Notification(
            victim_id=victim_id, case_id=case_id, kind="secret_reset", urgent=False
        )
        session.add(notification)
    assert settled(live, Notification.id == notification.id).state == "sent"
    (text,) = live.gateway.twilio.to(phone)
    assert re.search(r"\b\d{6}\b", text)


# -- deliver_due at fixed times, on a gateway of the test's own --------------------------


class Recording:
    """A sender that records what it is given (and counts per address)."""

    def __init__(self, channel: str = "sms", counts: Counter[str] | None = None) -> None:
        self.channel = channel
        self.counts: Counter[str] = counts if counts is not None else Counter()
        self.texts: list[tuple[str, str]] = []

    def render(self, reply: Reply) -> list[Rendered]:
        return [Rendered(reply.text)]

    async def deliver(
        self, *, conversation_id: int, address: str, outbound_id: int, message: Rendered
    ) -> tuple[str | None, str]:
        self.counts[address] += 1
        self.texts.append((address, message.text))
        await asyncio.sleep(0)  # let the other workers in
        return f"P{outbound_id}", "queued"


def own_gateway(url: str, *senders: Recording, **settings: Any) -> Gateway:
    config: Settings = gateway_settings(url, NO_RASA, "token", **settings)
    gateway = Gateway(config, db.sessionmaker(db.create_engine(url)), RasaClient(NO_RASA, "t"))
    for sender in senders:
        gateway.add_sender(sender)
    return gateway


async def close(gateway: Gateway) -> None:
    await gateway.rasa.aclose()
    await gateway.sessions.kw["bind"].dispose()


def seed(
    case_db: CaseDb,
    now: datetime,
    type: str = "investigation_started",
    details: dict[str, Any] | None = None,
    case_id: int | None = None,
    **victim: Any,
) -> tuple[int, int]:
    """An event (on a new case with one victim, or on `case_id`); its notification."""
    with case_db.sessions() as session, session.begin():
        if case_id is None:
            case = make_case(session, next_reference())
            make_victim(session, case, phone=victim.pop("phone", "+447700900123"), **victim)
        else:
            case = session.get(Case, case_id)  # type: ignore[assignment]
        added = add_event(
            session, case, type=type, details=details, occurred_at=now - timedelta(hours=1),
            agency="met", now=now,
        )  # fmt: skip
        notification = session.scalar(select(Notification).filter_by(event_id=added.event.id))
        assert notification is not None
        return notification.id, case.id


def run(gateway: Gateway, *moments: datetime) -> None:
    async def go() -> None:
        try:
            for moment in moments:
                await notify.deliver_due(gateway, now=moment)
        finally:
            await close(gateway)

    asyncio.run(go())


def row(case_db: CaseDb, notification_id: int) -> Notification:
    with case_db.sessions() as session:
        found = session.get(Notification, notification_id)
        assert found is not None
        return found


@pytest.mark.parametrize(
    ("now", "until"),
    [
        # Winter: London is UTC. 23:30 is inside 22:00-07:00; it ends 07:00 UTC.
        (datetime(2026, 11, 26, 23, 30, tzinfo=UTC), datetime(2026, 11, 27, 7, tzinfo=UTC)),
        # After midnight, the same morning.
        (datetime(2026, 11, 27, 3, 0, tzinfo=UTC), datetime(2026, 11, 27, 7, tzinfo=UTC)),
        # Summer: 21:30 UTC is 22:30 BST; 07:00 BST is 06:00 UTC.
        (datetime(2026, 7, 1, 21, 30, tzinfo=UTC), datetime(2026, 7, 2, 6, tzinfo=UTC)),
    ],
)
def test_quiet_hours_defer_until_their_end_then_it_goes(
    case_db: CaseDb, now: datetime, until: datetime
) -> None:
    quiet = {"quiet_start": time(22), "quiet_end": time(7)}
    notification_id, _ = seed(case_db, now, **quiet)
    sms = Recording()
    run(own_gateway(case_db.url, sms), now)
    deferred = row(case_db, notification_id)
    assert (deferred.state, aware(deferred.not_before), deferred.attempts) == ("pending", until, 0)
    assert sms.texts == []
    sms = Recording()
    run(own_gateway(case_db.url, sms), until - timedelta(seconds=1), until)
    assert row(case_db, notification_id).state == "sent"
    assert sms.texts == [("+447700900123", DISCREET)]


def test_no_provider_for_the_channel_retries_then_fails(case_db: CaseDb) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    notification_id, _ = seed(case_db, now)
    moments = [now + notify.RETRY_AFTER * i for i in range(notify.MAX_ATTEMPTS)]
    run(own_gateway(case_db.url), *moments[:-1])  # no senders at all
    waiting = row(case_db, notification_id)
    assert (waiting.state, waiting.attempts) == ("pending", notify.MAX_ATTEMPTS - 1)
    assert aware(waiting.not_before) == moments[-1]
    run(own_gateway(case_db.url), moments[-1])
    failed = row(case_db, notification_id)
    assert (failed.state, failed.error) == ("failed", "no provider set up for sms")


def test_demo_mode_counts_as_sent(case_db: CaseDb) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    notification_id, _ = seed(case_db, now)
    run(own_gateway(case_db.url, demo=True), now)
    sent = row(case_db, notification_id)
    assert (sent.state, sent.channel, sent.outbound_id) == ("sent", "sms", None)


def test_a_victim_who_opted_out_everywhere_has_no_route(case_db: CaseDb) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    first, case_id = seed(case_db, now)
    run(own_gateway(case_db.url, Recording()), now)
    assert row(case_db, first).state == "sent"
    with case_db.sessions() as session, session.begin():
        phone = session.scalar(select(Contact).filter_by(address="+447700900123"))
        assert phone is not None
        phone.opted_out = True  # they replied STOP
    charged, _ = seed(case_db, now, "charged", {"offences": ["Burglary"]}, case_id=case_id)
    sms = Recording()
    run(own_gateway(case_db.url, sms), now + timedelta(days=2))  # not merged with the first
    cancelled = row(case_db, charged)
    assert (cancelled.state, cancelled.error) == ("cancelled", "no safe route (opted out)")
    assert sms.texts == []
    with case_db.sessions() as session:
        task = session.scalar(select(Task).filter_by(dedupe_key=f"noroute:{charged}"))
    assert task is not None and task.priority == 1  # a key decision, not urgent


def test_stuck_counts_rows_left_in_sending(case_db: CaseDb) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    notification_id, _ = seed(case_db, now)
    with case_db.sessions() as session, session.begin():
        assert notify.stuck(session) == 0
        session.get(Notification, notification_id).state = "sending"  # type: ignore[union-attr]
    with case_db.sessions() as session:
        assert notify.stuck(session) == 1
    sms = Recording()
    run(own_gateway(case_db.url, sms), now + timedelta(days=1))
    assert sms.texts == []  # never picked up again


def test_a_notification_that_cannot_be_prepared_is_retried_then_fails(
    case_db: CaseDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: Any, **_kwargs: Any) -> str:
        raise KeyError("case.event.new_type")

    monkeypatch.setattr(notify, "event_summary", broken)
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    notification_id, _ = seed(case_db, now, discreet=False)
    sms = Recording()
    moments = [now + notify.RETRY_AFTER * i for i in range(notify.MAX_ATTEMPTS)]
    run(own_gateway(case_db.url, sms), *moments[:-1])
    waiting = row(case_db, notification_id)
    assert (waiting.state, waiting.attempts) == ("pending", notify.MAX_ATTEMPTS - 1)
    assert waiting.error == "could not be prepared (KeyError)"
    run(own_gateway(case_db.url, sms), moments[-1])
    assert row(case_db, notification_id).state == "failed"
    assert sms.texts == []


def test_the_worker_survives_errors_and_stops_when_told(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    async def flaky(gateway: Any, *, batch: int) -> int:
        calls.append(batch)
        if len(calls) == 1:
            raise ConnectionError("database away")
        return 0

    monkeypatch.setattr(notify, "deliver_due", flaky)
    settings = gateway_settings("sqlite://", NO_RASA, "token", notify_interval=0.01)

    async def go() -> None:
        stop = asyncio.Event()
        gateway = Gateway(settings, None, None)  # type: ignore[arg-type]
        tasks = notify.start_workers(gateway, stop)
        while len(calls) < 3:
            await asyncio.sleep(0.01)
        await notify.stop_workers(tasks, stop, grace=5)
        assert all(task.done() and not task.cancelled() for task in tasks)

    asyncio.run(go())


class Blocking(Recording):
    """Holds the first send until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.started = asyncio.Event()

    async def deliver(self, **kwargs: Any) -> tuple[str | None, str]:
        self.started.set()
        await asyncio.sleep(3600)
        raise AssertionError("never")


def test_stopping_mid_batch_gives_back_what_was_not_started(case_db: CaseDb) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    first, case_id = seed(case_db, now)
    rest = [
        seed(case_db, now, "suspect_interviewed", case_id=case_id)[0],
        seed(case_db, now, "appeal_lodged", case_id=case_id)[0],
    ]
    sms = Blocking()
    gateway = own_gateway(case_db.url, sms)

    async def go() -> None:
        try:
            task = asyncio.create_task(notify.deliver_due(gateway, now=now))
            await asyncio.wait_for(sms.started.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        finally:
            await close(gateway)

    asyncio.run(go())
    # The one being sent may have gone: it stays visible. The others go back.
    assert row(case_db, first).state == "sending"
    assert [row(case_db, r).state for r in rest] == ["pending", "pending"]


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_each_of_many_notifications_goes_exactly_once(kind: str, tmp_path: Path) -> None:
    # Each send is a few transactions of Python work: SQLite needs fewer to make the point.
    count = 300 if kind == "postgres" else 100
    with database(kind, tmp_path) as url:
        db.migrate(url)
        engine: Engine = db.create_sync_engine(url)
        try:
            with Session(engine) as session, session.begin():
                case = make_case(session, next_reference())
                for i in range(count):
                    make_victim(session, case, external_id=f"v{i}", phone=f"+4477009{i:05d}")
                add_event(
                    session,
                    case,
                    type="investigation_started",
                    occurred_at=datetime.now(UTC),
                    agency="met",
                )
            counts: Counter[str] = Counter()
            # PostgreSQL: two gateways (two engines, as two processes would have), two
            # workers each. SQLite has one writer: two workers on one gateway.
            gateways = 2 if kind == "postgres" else 1

            async def go() -> None:
                own = [own_gateway(url, Recording(counts=counts)) for _ in range(gateways)]

                async def worker(gateway: Gateway) -> None:
                    while await notify.deliver_due(gateway, batch=10):
                        pass

                try:
                    await asyncio.gather(*(worker(g) for g in own for _ in range(2)))
                finally:
                    for gateway in own:
                        await close(gateway)

            asyncio.run(go())
            assert len(counts) == count
            assert set(counts.values()) == {1}
            with Session(engine) as session:
                states = dict(
                    session.execute(
                        select(Notification.state, func.count()).group_by(Notification.state)
                    ).all()
                )
            assert states == {"sent": count}
        finally:
            engine.dispose()


def many_events(case_db: CaseDb, now: datetime, victims: int, events: int) -> None:
    """`victims` victims on one case, each linked to their own phone; `events` events."""
    with case_db.sessions() as session, session.begin():
        case = make_case(session, next_reference())
        for i in range(victims):
            make_victim(session, case, external_id=f"v{i}", phone=f"+4477009{i:05d}")
        for i in range(events):
            add_event(
                session, case, type="investigation_started", agency="met", now=now,
                occurred_at=now - timedelta(hours=1), external_id=f"e{i}",
            )  # fmt: skip


def states(case_db: CaseDb) -> dict[str, int]:
    with case_db.sessions() as session:
        rows = session.execute(
            select(Notification.state, func.count()).group_by(Notification.state)
        ).all()
    return {state: count for state, count in rows}


def test_a_claim_takes_all_of_each_victims_due_notifications(case_db: CaseDb) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    first, case_id = seed(case_db, now)
    rest = [seed(case_db, now, "suspect_interviewed", case_id=case_id)[0] for _ in range(2)]
    other, _ = seed(case_db, now, phone="+447700900124")
    gateway = own_gateway(case_db.url, Recording())

    async def go() -> int:
        try:
            return await notify.deliver_due(gateway, now=now, batch=1)
        finally:
            await close(gateway)

    # The oldest row's victim has three: all three come, so one worker can merge them.
    assert asyncio.run(go()) == 3
    assert [row(case_db, i).state for i in [first, *rest]] == ["sent", "cancelled", "cancelled"]
    assert row(case_db, other).state == "pending"


def test_a_nudge_that_did_not_go_does_not_merge_the_next(case_db: CaseDb) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    first, case_id = seed(case_db, now)
    second, _ = seed(case_db, now, "suspect_interviewed", case_id=case_id)
    third, _ = seed(case_db, now, "appeal_lodged", case_id=case_id)

    class RefusesFirst(Recording):
        async def deliver(self, **kwargs: Any) -> tuple[str | None, str]:
            if not self.texts:
                self.texts.append(("refused", ""))
                raise DeliveryError("invalid number", code="21211", retryable=False)
            return await super().deliver(**kwargs)

    sms = RefusesFirst()
    run(own_gateway(case_db.url, sms), now)
    refused = row(case_db, first)
    assert (refused.state, refused.error) == ("failed", "refused by the provider (sms 21211)")
    # Decided in order, each on what the one before came to: the second goes, the third
    # is merged with it.
    assert row(case_db, second).state == "sent"
    merged = row(case_db, third)
    assert (merged.state, merged.error) == ("cancelled", "merged")
    assert sms.texts == [("refused", ""), ("+447700900123", DISCREET)]


def test_detailed_news_for_one_victim_goes_in_order(case_db: CaseDb) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    types = ["suspect_arrested", "suspect_interviewed", "remanded_in_custody"]
    _, case_id = seed(case_db, now, types[0], discreet=False)
    for type in types[1:]:
        seed(case_db, now, type, case_id=case_id)
    sms = Recording()
    run(own_gateway(case_db.url, sms), now)
    assert len(sms.texts) == 3  # the detail is never merged: each carries its own news
    with case_db.sessions() as session:
        case = session.get(Case, case_id)
        sent = session.scalars(
            select(CaseEvent).where(CaseEvent.case_id == case_id).order_by(CaseEvent.id)
        ).all()
        assert case is not None
        expected = []
        for event in sent:
            opening = DETAILED.part(0, reference=case.reference, summary="")
            expected.append(opening + event_summary(case, event, reserve=len(opening)))
    assert [text for _, text in sms.texts] == expected
    assert states(case_db) == {"sent": 3}


class Concurrency(Recording):
    """Counts how many messages are out at once, in all and per address."""

    def __init__(self) -> None:
        super().__init__()
        self.out: Counter[str] = Counter()
        self.most = 0
        self.most_per_address = 0

    async def deliver(self, *, address: str, **kwargs: Any) -> tuple[str | None, str]:
        self.out[address] += 1
        self.most = max(self.most, sum(self.out.values()))
        self.most_per_address = max(self.most_per_address, self.out[address])
        try:
            await asyncio.sleep(0.01)
            return await super().deliver(address=address, **kwargs)
        finally:
            self.out[address] -= 1


def test_victims_are_sent_to_at_once_within_bounds(case_db: CaseDb) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    many_events(case_db, now, victims=notify.PARALLEL + 10, events=1)
    shared = "+447700900999"
    for _ in range(3):  # an advocate with three clients
        seed(case_db, now, via_advocate=True, advocate_phone=shared, phone=next_phone())
    sms = Concurrency()
    run(own_gateway(case_db.url, sms), now)
    assert states(case_db) == {"sent": notify.PARALLEL + 13}
    assert 1 < sms.most <= notify.PARALLEL
    assert sms.most_per_address == 1
    assert sms.counts[shared] == 3


def test_one_that_cannot_be_prepared_holds_up_nobody_else(
    case_db: CaseDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_for_charges(case: Case, event: CaseEvent, **kwargs: Any) -> str:
        if event.type == "charged":
            raise KeyError("case.event.charged")
        return event_summary(case, event, **kwargs)

    monkeypatch.setattr(notify, "event_summary", broken_for_charges)
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    broken, _ = seed(case_db, now, "charged", {"offences": ["Burglary"]}, discreet=False)
    fine, _ = seed(case_db, now, discreet=False, phone="+447700900124")
    sms = Recording()
    run(own_gateway(case_db.url, sms), now)
    waiting = row(case_db, broken)
    assert (waiting.state, waiting.attempts) == ("pending", 1)
    assert waiting.error == "could not be prepared (KeyError)"
    assert row(case_db, fine).state == "sent"
    assert [address for address, _ in sms.texts] == ["+447700900124"]


def test_an_error_while_sending_one_leaves_only_that_one_in_sending(case_db: CaseDb) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    bad, _ = seed(case_db, now)
    good, _ = seed(case_db, now, phone="+447700900124")

    class Breaks(Recording):
        async def deliver(self, *, address: str, **kwargs: Any) -> tuple[str | None, str]:
            if address == "+447700900123":
                raise RuntimeError("a bug in the sender")
            return await super().deliver(address=address, **kwargs)

    run(own_gateway(case_db.url, Breaks()), now)
    assert row(case_db, bad).state == "sending"  # it may have gone: counted by `stuck`
    sent = row(case_db, good)
    assert sent.state == "sent"
    with case_db.sessions() as session:
        outbound = session.get(Outbound, sent.outbound_id)
        assert outbound is not None
        assert (outbound.status, outbound.provider_id) == ("queued", f"P{outbound.id}")


def test_a_message_in_parts_after_an_opt_out_is_not_kept(case_db: CaseDb) -> None:
    now = datetime(2026, 11, 26, 12, tzinfo=UTC)
    notification_id, _ = seed(case_db, now)

    class OptedOut(Recording):
        def render(self, reply: Reply) -> list[Rendered]:
            return [Rendered(reply.text), Rendered("(2/2)")]

        async def deliver(self, **kwargs: Any) -> tuple[str | None, str]:
            raise DeliveryError("unsubscribed", code="21610", retryable=False, opted_out=True)

    run(own_gateway(case_db.url, OptedOut()), now)
    refused = row(case_db, notification_id)
    assert (refused.state, refused.error) == ("failed", "refused by the provider (sms 21610)")
    with case_db.sessions() as session:
        rows = session.scalars(select(Outbound)).all()
        phone = session.scalar(select(Contact).filter_by(address="+447700900123"))
    # The first part was refused; the second was never sent, so it is not kept.
    assert [(r.text, r.status, r.error_code) for r in rows] == [(DISCREET, "failed", "21610")]
    assert phone is not None and phone.opted_out


def test_a_send_rolled_back_leaves_no_contact_known(case_db: CaseDb) -> None:
    class Broken(Recording):
        def render(self, reply: Reply) -> list[Rendered]:
            raise RuntimeError("a bug in the channel")

    gateway = own_gateway(case_db.url, Broken())
    phone = next_phone()

    async def go() -> None:
        try:
            with pytest.raises(RuntimeError):
                await gateway.notify("sms", phone, Reply("hello"), source="notification")
        finally:
            await close(gateway)

    asyncio.run(go())
    # The contact and conversation made for it were rolled back: an inbound message
    # must not be filed under a conversation id that never was.
    assert ("sms", phone) not in gateway._known
    with case_db.sessions() as session:
        assert session.scalar(select(Contact).filter_by(address=phone)) is None


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_each_victim_gets_one_nudge_however_many_workers(kind: str, tmp_path: Path) -> None:
    # A victim's rows are claimed together, so no two workers can both nudge them.
    victims = 100 if kind == "postgres" else 40
    now = datetime.now(UTC)
    with database(kind, tmp_path) as url:
        db.migrate(url)
        engine: Engine = db.create_sync_engine(url)
        try:
            case_db = CaseDb(url, engine, sessionmaker(engine, expire_on_commit=False), kind)
            many_events(case_db, now, victims=victims, events=3)
            counts: Counter[str] = Counter()
            gateways = 2 if kind == "postgres" else 1

            async def go() -> None:
                own = [own_gateway(url, Recording(counts=counts)) for _ in range(gateways)]

                async def worker(gateway: Gateway) -> None:
                    while await notify.deliver_due(gateway, batch=7):
                        pass

                try:
                    await asyncio.gather(*(worker(g) for g in own for _ in range(2)))
                finally:
                    for gateway in own:
                        await close(gateway)

            asyncio.run(go())
            assert len(counts) == victims
            assert set(counts.values()) == {1}
            assert states(case_db) == {"sent": victims, "cancelled": 2 * victims}
        finally:
            engine.dispose()


# -- pure decisions ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "start", "end", "until_local"),
    [
        ("12:00", "22:00", "07:00", None),
        ("22:00", "22:00", "07:00", "+1 07:00"),
        ("06:59", "22:00", "07:00", "07:00"),
        ("07:00", "22:00", "07:00", None),
        ("13:00", "12:30", "14:00", "14:00"),
        ("14:00", "12:30", "14:00", None),
        ("03:00", "07:00", "07:00", None),  # equal: no window
    ],
)
def test_quiet_until(local: str, start: str, end: str, until_local: str | None) -> None:
    day = datetime(2026, 11, 26, tzinfo=LONDON)
    now = datetime.combine(day.date(), time.fromisoformat(local), LONDON)
    until = notify.quiet_until(now, time.fromisoformat(start), time.fromisoformat(end))
    if until_local is None:
        assert until is None
        return
    plus, _, clock_time = until_local.rpartition(" ")
    expected = datetime.combine(
        day.date() + timedelta(days=1 if plus else 0), time.fromisoformat(clock_time), LONDON
    )
    assert until == expected.astimezone(UTC)
    assert until.tzinfo == UTC


def test_no_quiet_hours_set() -> None:
    now = datetime(2026, 11, 26, 23, tzinfo=UTC)
    assert notify.quiet_until(now, None, time(7)) is None
    assert notify.quiet_until(now, time(22), None) is None


def victim(**fields: Any) -> Victim:
    values: dict[str, Any] = {
        "id": 1,
        "safe_to_text": True,
        "discreet": True,
        "urgent_in_quiet_hours": True,
        "via_advocate": False,
        "paused": False,
        "preferred_channel": None,
    }
    return Victim(**{**values, **fields})


def contact(id: int, channel: str, address: str, linked: bool = True) -> VictimContact:
    verified = datetime(2026, 11, 1, tzinfo=UTC) if linked else None
    return VictimContact(id=id, victim_id=1, channel=channel, address=address, verified_at=verified)


PHONE = contact(1, "sms", "+447700900001")
CHAT = contact(2, "telegram", "42")
NEW_PHONE = contact(3, "sms", "+447700900003", linked=False)


def test_routes_are_linked_contacts_preferred_first_and_sms_only_if_safe() -> None:
    def channels(**fields: Any) -> list[str]:
        return [r.channel for r in notify.victim_routes(victim(**fields), [PHONE, CHAT, NEW_PHONE])]

    assert channels() == ["sms", "telegram"]
    assert channels(preferred_channel="telegram") == ["telegram", "sms"]
    assert channels(safe_to_text=False, preferred_channel="sms") == ["telegram"]
    assert notify.victim_routes(victim(safe_to_text=False), [PHONE, NEW_PHONE]) == []
    advocate = victim(via_advocate=True, advocate_phone="+447700900999")
    assert notify.victim_routes(advocate, [PHONE]) == [
        notify.Route("advocate", "sms", "+447700900999")
    ]
    # No advocate number: the victim's own contacts.
    assert channels(via_advocate=True) == ["sms", "telegram"]


def test_enrolment_routes_are_unproved_phones_when_texting_is_safe() -> None:
    routes = notify.enrolment_routes(victim(), [PHONE, CHAT, NEW_PHONE])
    assert [(r.address, r.contact_id) for r in routes] == [("+447700900003", 3)]
    assert notify.enrolment_routes(victim(safe_to_text=False), [NEW_PHONE]) == []
    # After a secret reset the proved phone gets a code too (to choose a new secret).
    reset = notify.enrolment_routes(victim(), [PHONE, CHAT, NEW_PHONE], reset=True)
    assert [r.contact_id for r in reset] == [1, 3]


def test_decide() -> None:
    night = datetime(2026, 11, 26, 23, tzinfo=UTC)
    quiet = {"quiet_start": time(22), "quiet_end": time(7)}
    news = Notification(kind="charged", urgent=False)
    urgent = Notification(kind="released_from_custody", urgent=True)
    enrol = Notification(kind="enrolment", urgent=False)

    assert notify.decide(news, victim(paused=True), [PHONE], night).action == "cancel"
    assert notify.decide(news, None, [PHONE], night).action == "cancel"
    assert notify.decide(news, victim(), [NEW_PHONE], night).reason == "no safe route"
    assert notify.decide(news, victim(), [PHONE], night).action == "send"
    deferred = notify.decide(news, victim(**quiet), [PHONE], night)
    assert (deferred.action, deferred.not_before) == (
        "defer",
        datetime(2026, 11, 27, 7, tzinfo=UTC),
    )
    assert notify.decide(urgent, victim(**quiet), [PHONE], night).action == "send"
    held = victim(urgent_in_quiet_hours=False, **quiet)
    assert notify.decide(urgent, held, [PHONE], night).action == "defer"
    assert notify.decide(enrol, victim(**quiet), [NEW_PHONE], night).action == "defer"
    sent = notify.decide(enrol, victim(), [PHONE, NEW_PHONE], night)
    assert [r.address for r in sent.routes] == ["+447700900003"]


def test_important_events_are_urgent_or_key_decisions() -> None:
    assert notify.important("released_from_custody")  # urgent
    assert notify.important("charged")  # key decision
    assert not notify.important("investigation_started")
    assert not notify.important("enrolment")


def test_wording() -> None:
    case = Case(reference="4301234/26", stage="charge", crime_type="burglary")
    event = CaseEvent(
        type="charged",
        occurred_at=datetime(2026, 11, 20, 10, tzinfo=UTC),
        details={"offences": ["Burglary"]},
    )
    to_victim = notify.Route("victim", "sms", "+447700900001")
    to_advocate = notify.Route("advocate", "sms", "+447700900999")
    assert notify.wording(to_victim, victim(), case, event) == (DISCREET, False)
    opening = DETAILED.part(0, reference="4301234/26", summary="")
    detailed = opening + event_summary(case, event, reserve=len(opening))
    assert notify.wording(to_victim, victim(discreet=False), case, event) == (detailed, True)
    opening = ADVOCATE.part(0, reference="4301234/26", summary="")
    advocate = opening + event_summary(case, event, reserve=len(opening))
    assert notify.wording(to_advocate, victim(), case, event) == (advocate, True)


def test_several_events_at_once_make_one_nudge(live: Live) -> None:
    phone = next_phone()
    case_id, _ = new_victim(live, phone=phone)
    first = post(live, case_id, "suspect_arrested")
    assert settled(live, Notification.event_id == first).state == "sent"
    second = post(live, case_id, "suspect_interviewed")
    merged = settled(live, Notification.event_id == second)
    assert (merged.state, merged.error) == ("cancelled", "merged")
    assert live.gateway.twilio.to(phone) == [DISCREET]
