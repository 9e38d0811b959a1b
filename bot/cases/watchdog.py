"""The update-deadline watchdog and the compliance report.

Two things make a case overdue (open cases only):

- "update_due": the victim has heard nothing for longer than the case's agreed update
  frequency (`cases.update_every_days`; Waymark's local standard is 28 days, which is
  not a Victims' Code rule);
- "decision_not_told": a key decision (bot.cases.vocabulary) the victim has not been told
  about by the end of the Code's 1st or 5th working day after it.

The work is done in SQL so it scales to a million cases: only overdue rows (and, for
decisions, a few days' margin of candidates) come back to Python. Each overdue item
becomes one coordinator task, found again by its dedupe key; tasks whose condition has
gone are closed. See docs/watchdog.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    Interval,
    and_,
    cast,
    extract,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import Session

from bot.cases.events import as_utc
from bot.cases.models import Case, CaseEvent, Task, TaskState, VictimUpdate
from bot.cases.vocabulary import EVENT_TYPES, decision_limit_days
from bot.cases.working_days import decision_due_at, decision_due_date, london_date
from bot.config import Settings

logger = logging.getLogger(__name__)

UPDATE_DUE = "update_due"
DECISION_NOT_TOLD = "decision_not_told"
TASK_KIND = {UPDATE_DUE: "overdue_update", DECISION_NOT_TOLD: "decision_not_told"}
CHUNK = 500  # keys per IN (...) list: well under SQLite's bound-parameter limit
# Deadlines are London midnights, so across a clock change a deadline can fall an hour
# nearer the decision than whole days suggest; the SQL pre-filter allows for that.
DST_MARGIN = timedelta(hours=1)
# Five working days never span more than a month, even over Christmas and New Year.
LONGEST_SPAN = timedelta(days=31)


@dataclass(frozen=True)
class Overdue:
    case_id: int
    reference: str
    kind: str  # update_due, decision_not_told
    due_at: datetime  # when it became overdue (UTC)
    due_date: date  # the last London day it was in time
    days_overdue: int  # whole days since due_at
    limit_days: int  # update_due: agreed calendar days; decision_not_told: working days
    enhanced_rights: bool
    event_id: int | None = None
    event_type: str | None = None

    @property
    def dedupe_key(self) -> str:
        if self.kind == UPDATE_DUE:
            return f"overdue:{self.case_id}:{self.due_date.isoformat()}"
        return f"decision:{self.event_id}"

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class WatchdogResult:
    created: int
    closed: int
    open: int  # open watchdog tasks after the run
    overdue: list[Overdue] = field(default_factory=list)


@dataclass(frozen=True)
class ComplianceReport:
    period_start: datetime
    period_end: datetime
    days: int
    open_cases: int
    cases_overdue_for_update: int
    median_days_since_update: float | None  # open cases; None when there are none
    decisions_overdue_now: int  # not told, past the limit, open cases (as the watchdog)
    decisions_due_in_period: int  # key decisions whose limit ended in the period
    decisions_told_in_time: int
    decisions_not_told_in_time: int  # told late, or not told yet
    proactive_contacts: int  # Waymark told the victim
    victim_initiated_contacts: int  # the victim looked their case up
    agency_contacts: int  # an agency reported telling the victim

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": {
                "start": self.period_start.isoformat(),
                "end": self.period_end.isoformat(),
                "days": self.days,
            },
            "open_cases": self.open_cases,
            "cases_overdue_for_update": self.cases_overdue_for_update,
            "median_days_since_update": self.median_days_since_update,
            "decisions": {
                "overdue_now": self.decisions_overdue_now,
                "due_in_period": self.decisions_due_in_period,
                "told_in_time": self.decisions_told_in_time,
                "not_told_in_time": self.decisions_not_told_in_time,
            },
            "contacts": {
                "proactive": self.proactive_contacts,
                "victim_initiated": self.victim_initiated_contacts,
                "agency": self.agency_contacts,
            },
        }


# -- finding what is overdue ------------------------------------------------------------


def overdue(session: Session, now: datetime) -> list[Overdue]:
    """Everything overdue on open cases at `now`, oldest first."""
    now = as_utc(now)
    items = [*_updates_due(session, now), *_decisions_not_told(session, now)]
    items.sort(key=lambda item: (item.due_at, item.case_id, item.event_id or 0))
    return items


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _whole_days(delta: timedelta) -> int:
    return max(delta.days, 0)


def _last_update() -> ColumnElement[datetime]:
    # A case nobody has updated yet counts from when it was opened.
    return func.coalesce(Case.last_victim_update_at, Case.created_at)


def _update_overdue(session: Session, now: datetime) -> ColumnElement[bool]:
    """SQL for "last update + the agreed days is before now" (per-row day counts)."""
    last = _last_update()
    if session.get_bind().dialect.name == "postgresql":
        # Hours, not days: a day in a PostgreSQL interval follows the session's clock
        # changes, and Python's timedelta (used for due_at) does not.
        every = func.make_interval(0, 0, 0, 0, Case.update_every_days * 24, type_=Interval())
        return (last + every) < now
    moment = literal(now, DateTime())  # SQLite stores UTC text; julianday reads it
    return (func.julianday(last) + Case.update_every_days) < func.julianday(moment)


def _updates_due(session: Session, now: datetime) -> Iterator[Overdue]:
    rows = session.execute(
        select(
            Case.id, Case.reference, Case.enhanced_rights, Case.update_every_days, _last_update()
        ).where(Case.closed_at.is_(None), _update_overdue(session, now))
    )
    for case_id, reference, enhanced, every, last in rows:
        due_at = _utc(last) + timedelta(days=every)
        if due_at < now:  # SQLite's julianday is approximate to the millisecond
            yield Overdue(
                case_id=case_id,
                reference=reference,
                kind=UPDATE_DUE,
                due_at=due_at,
                due_date=london_date(due_at),
                days_overdue=_whole_days(now - due_at),
                limit_days=every,
                enhanced_rights=enhanced,
            )


def _limits() -> dict[tuple[bool, int], list[str]]:
    """Key-decision event types grouped by (enhanced rights, working-day limit)."""
    groups: dict[tuple[bool, int], list[str]] = {}
    for enhanced in (False, True):
        for name in EVENT_TYPES:
            limit = decision_limit_days(name, enhanced)
            if limit is not None:
                groups.setdefault((enhanced, limit), []).append(name)
    return groups


def _decisions_not_told(session: Session, now: datetime) -> Iterator[Overdue]:
    # N working days are at least N calendar days, so only events older than that can
    # be late; the exact working-day deadline is checked here for those alone.
    candidates = [
        and_(
            Case.enhanced_rights.is_(enhanced),
            CaseEvent.type.in_(names),
            CaseEvent.occurred_at < now - timedelta(days=limit) + DST_MARGIN,
        )
        for (enhanced, limit), names in _limits().items()
    ]
    rows = session.execute(
        select(
            CaseEvent.id,
            CaseEvent.type,
            CaseEvent.occurred_at,
            Case.id,
            Case.reference,
            Case.enhanced_rights,
        )
        .join(Case, Case.id == CaseEvent.case_id)
        .where(
            Case.closed_at.is_(None),
            CaseEvent.victim_informed_at.is_(None),
            or_(*candidates),
        )
    )
    for event_id, type_, occurred_at, case_id, reference, enhanced in rows:
        limit = decision_limit_days(type_, enhanced)
        if limit is None:  # the query selects key decisions only
            continue
        due_at = decision_due_at(_utc(occurred_at), limit)
        if due_at <= now:
            yield Overdue(
                case_id=case_id,
                reference=reference,
                kind=DECISION_NOT_TOLD,
                due_at=due_at,
                due_date=decision_due_date(_utc(occurred_at), limit),
                days_overdue=_whole_days(now - due_at),
                limit_days=limit,
                enhanced_rights=enhanced,
                event_id=event_id,
                event_type=type_,
            )


# -- tasks ------------------------------------------------------------------------------


def run_watchdog(session: Session, now: datetime) -> WatchdogResult:
    """Open a coordinator task for each overdue item (once) and close the tasks whose
    condition no longer holds. Safe to run twice, or in two processes at once.

    Does not commit.
    """
    now = as_utc(now)
    items = overdue(session, now)
    wanted = {item.dedupe_key: item for item in items}
    created = _open_tasks(session, wanted, now)
    closed = _close_tasks(session, wanted.keys(), now)
    still_open = session.scalar(
        select(func.count())
        .select_from(Task)
        .where(Task.kind.in_(TASK_KIND.values()), Task.state == TaskState.OPEN)
    )
    return WatchdogResult(created=created, closed=closed, open=still_open or 0, overdue=items)


def _chunks(keys: Iterable[str]) -> Iterator[list[str]]:
    batch: list[str] = []
    for key in keys:
        batch.append(key)
        if len(batch) == CHUNK:
            yield batch
            batch = []
    if batch:
        yield batch


def _task_row(item: Overdue, now: datetime) -> dict[str, Any]:
    # Detail text for coordinators: what and why, never who.
    if item.kind == UPDATE_DUE:
        since = london_date(item.due_at - timedelta(days=item.limit_days))
        detail = (
            f"No update for the victim since {since} (agreed every {item.limit_days} days)."
            " Contact them or ask the officer."
        )
    else:
        words = (item.event_type or "").replace("_", " ")
        unit = "working day" if item.limit_days == 1 else "working days"
        detail = (
            f"Key decision ({words}) not told to the victim within {item.limit_days} {unit}"
            f" (by the end of {item.due_date}). Check they know."
        )
    return {
        "kind": TASK_KIND[item.kind],
        "dedupe_key": item.dedupe_key,
        "priority": 0 if item.enhanced_rights else 1,
        "state": TaskState.OPEN.value,
        "case_id": item.case_id,
        "event_id": item.event_id,
        "detail": detail,
        "due_at": item.due_at,
        "created_at": now,
    }


def _insert_if_absent(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Another run may insert the same key between our look and our insert: skip it.
    return insert(Task).on_conflict_do_nothing(index_elements=["dedupe_key"]).returning(Task.id)


def _open_tasks(session: Session, wanted: dict[str, Overdue], now: datetime) -> int:
    created = 0
    for keys in _chunks(wanted):
        # Done tasks keep their key too: a task closed by hand stays closed.
        known = set(session.scalars(select(Task.dedupe_key).where(Task.dedupe_key.in_(keys))))
        rows = [_task_row(wanted[key], now) for key in keys if key not in known]
        if rows:
            created += len(session.execute(_insert_if_absent(session), rows).all())
    return created


def _close_tasks(session: Session, current: Iterable[str], now: datetime) -> int:
    current = set(current)
    # A task opened after `now` (by a run that looked later) is not ours to judge: it
    # would be closed for good, since its key can never be opened again.
    stale = [
        task_id
        for task_id, key in session.execute(
            select(Task.id, Task.dedupe_key).where(
                Task.kind.in_(TASK_KIND.values()),
                Task.state == TaskState.OPEN,
                Task.created_at <= now,
            )
        )
        if key not in current
    ]
    closed = 0
    for start in range(0, len(stale), CHUNK):
        result = session.execute(
            update(Task)
            .where(Task.id.in_(stale[start : start + CHUNK]), Task.state == TaskState.OPEN)
            .values(state=TaskState.DONE.value, closed_at=now)
        )
        closed += result.rowcount
    return closed


async def run_periodically(
    sessions: async_sessionmaker, settings: Settings, stop: asyncio.Event
) -> None:
    """Run the watchdog now and every `watchdog_interval_minutes` until `stop` is set.

    Logs counts only: never a reference, a name or a detail.
    """
    interval = settings.watchdog_interval_minutes * 60
    while not stop.is_set():
        try:
            async with sessions() as session:
                now = datetime.now(UTC)
                result = await session.run_sync(run_watchdog, now)
                await session.commit()
            logger.info(
                "Watchdog: %d overdue, %d tasks created, %d closed, %d open",
                len(result.overdue),
                result.created,
                result.closed,
                result.open,
            )
        except Exception:
            logger.exception("The watchdog run failed; trying again next time")
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


# -- the compliance report --------------------------------------------------------------


def compliance_report(session: Session, now: datetime, days: int = 28) -> ComplianceReport:
    """Figures for the `days` before `now` and the state of open cases at `now`."""
    if days < 1:
        raise ValueError("days must be at least 1.")
    now = as_utc(now)
    start = now - timedelta(days=days)
    open_cases = session.scalar(
        select(func.count()).select_from(Case).where(Case.closed_at.is_(None))
    )
    overdue_updates = session.scalar(
        select(func.count())
        .select_from(Case)
        .where(Case.closed_at.is_(None), _update_overdue(session, now))
    )
    due, in_time = _decisions_in_period(session, start, now)
    contacts = dict(
        session.execute(
            select(VictimUpdate.route, func.count())
            .where(VictimUpdate.at > start, VictimUpdate.at <= now)
            .group_by(VictimUpdate.route)
        ).all()
    )
    return ComplianceReport(
        period_start=start,
        period_end=now,
        days=days,
        open_cases=open_cases or 0,
        cases_overdue_for_update=overdue_updates or 0,
        median_days_since_update=_median_days_since_update(session, now),
        decisions_overdue_now=sum(1 for _ in _decisions_not_told(session, now)),
        decisions_due_in_period=due,
        decisions_told_in_time=in_time,
        decisions_not_told_in_time=due - in_time,
        proactive_contacts=contacts.get("proactive", 0),
        victim_initiated_contacts=contacts.get("lookup", 0),
        agency_contacts=contacts.get("agency", 0),
    )


def _decisions_in_period(session: Session, start: datetime, now: datetime) -> tuple[int, int]:
    """Key decisions whose limit ended in (start, now], and how many were told by then.

    Closed cases count too: the limit ran while they were open.
    """
    rows = session.execute(
        select(
            CaseEvent.type,
            CaseEvent.occurred_at,
            CaseEvent.victim_informed_at,
            Case.enhanced_rights,
        )
        .join(Case, Case.id == CaseEvent.case_id)
        .where(
            CaseEvent.type.in_([n for n, kind in EVENT_TYPES.items() if kind.key_decision]),
            CaseEvent.occurred_at > start - LONGEST_SPAN,
            CaseEvent.occurred_at < now,
        )
    )
    due = in_time = 0
    for type_, occurred_at, informed_at, enhanced in rows:
        limit = decision_limit_days(type_, enhanced)
        if limit is None:
            continue
        deadline = decision_due_at(_utc(occurred_at), limit)
        if start < deadline <= now:
            due += 1
            if informed_at is not None and _utc(informed_at) < deadline:
                in_time += 1
    return due, in_time


def _median_days_since_update(session: Session, now: datetime) -> float | None:
    last = _last_update()
    if session.get_bind().dialect.name == "postgresql":
        epoch = session.scalar(
            select(
                func.percentile_cont(0.5).within_group(cast(extract("epoch", last), Float))
            ).where(Case.closed_at.is_(None))
        )
        if epoch is None:
            return None
        return round((now.timestamp() - float(epoch)) / 86400, 2)
    # SQLite has no percentile function: read the middle one or two rows by offset.
    count = session.scalar(select(func.count()).select_from(Case).where(Case.closed_at.is_(None)))
    if not count:
        return None
    ages = (func.julianday(literal(now, DateTime())) - func.julianday(last)).label("age")
    middle = session.scalars(
        select(ages)
        .where(Case.closed_at.is_(None))
        .order_by(ages)
        .limit(2 - count % 2)
        .offset((count - 1) // 2)
    ).all()
    return round(statistics.fmean(middle), 2)


# -- commands ---------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add `watchdog` and `report` to the app's command line."""
    watchdog = sub.add_parser(
        "watchdog", help="find overdue updates and decisions once, and open or close tasks"
    )
    watchdog.set_defaults(func=main_watchdog)
    report = sub.add_parser("report", help="print the Victims' Code compliance report")
    report.add_argument("--json", action="store_true", help="print JSON")
    report.add_argument(
        "--days", type=_positive, default=28, help="the period, in days (default 28)"
    )
    report.set_defaults(func=main_report)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


@contextmanager
def _session() -> Iterator[Session]:
    from bot import db
    from bot.config import get_settings

    url = get_settings().database_url
    db.migrate(url)
    engine = db.create_sync_engine(url)
    try:
        with Session(engine) as session:
            yield session
    finally:
        engine.dispose()


def main_watchdog(args: argparse.Namespace) -> int:
    with _session() as session:
        result = run_watchdog(session, datetime.now(UTC))
        session.commit()
    print(f"{len(result.overdue)} overdue.")
    for item in result.overdue:
        what = "update due" if item.kind == UPDATE_DUE else f"{item.event_type} not told"
        event = f", event {item.event_id}" if item.event_id else ""
        days = "day" if item.days_overdue == 1 else "days"
        enhanced = ", enhanced rights" if item.enhanced_rights else ""
        print(
            f"  {item.reference}  {what} (case {item.case_id}{event}): due by {item.due_date},"
            f" {item.days_overdue} {days} overdue{enhanced}"
        )
    print(f"Tasks: {result.created} created, {result.closed} closed, {result.open} open.")
    return 0


def main_report(args: argparse.Namespace) -> int:
    with _session() as session:
        report = compliance_report(session, datetime.now(UTC), args.days)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
        return 0
    median = report.median_days_since_update
    print(
        f"Compliance report, {report.period_start:%Y-%m-%d %H:%M} to"
        f" {report.period_end:%Y-%m-%d %H:%M} UTC ({report.days} days)\n"
        f"Open cases: {report.open_cases}\n"
        f"Cases overdue for an update: {report.cases_overdue_for_update}\n"
        f"Median days since the last update (open cases): "
        f"{'n/a' if median is None else median}\n"
        f"Key decisions past their limit and still not told: {report.decisions_overdue_now}\n"
        f"Key decisions due in the period: {report.decisions_due_in_period}"
        f" (told in time {report.decisions_told_in_time},"
        f" not told in time {report.decisions_not_told_in_time})\n"
        f"Contacts in the period: {report.proactive_contacts} proactive,"
        f" {report.victim_initiated_contacts} victim look-ups,"
        f" {report.agency_contacts} reported by agencies"
    )
    return 0


def _jsonable(values: dict[str, Any]) -> dict[str, Any]:
    return {
        key: value.isoformat() if isinstance(value, date | datetime) else value
        for key, value in values.items()
    }
