"""The update-deadline watchdog, its tasks, the compliance report and the commands, on
a known data set (SQLite and PostgreSQL). Christmas 2026 sets the working days: Friday
25 December and Monday 28 December (Boxing Day, observed) are bank holidays in England,
and so is Friday 1 January 2027."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import db
from bot.cases import watchdog
from bot.cases.events import add_event
from bot.cases.models import Case, CaseEvent, Task, TaskState, VictimUpdate
from bot.cases.watchdog import (
    DECISION_NOT_TOLD,
    UPDATE_DUE,
    Overdue,
    compliance_report,
    overdue,
    run_watchdog,
)
from bot.cases.working_days import (
    LONDON,
    add_working_days,
    decision_due_at,
    decision_due_date,
    is_working_day,
)
from bot.config import Settings, get_settings
from tests.cases.conftest import CaseDb, make_case, make_victim

NOW = datetime(2026, 12, 30, 12, 0, tzinfo=UTC)  # a Wednesday


def at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


# -- working days -----------------------------------------------------------------------


def test_working_days_skip_weekends_and_england_bank_holidays() -> None:
    assert not is_working_day(date(2026, 12, 25))  # Christmas Day, a Friday
    assert not is_working_day(date(2026, 12, 28))  # Boxing Day observed, a Monday
    assert not is_working_day(date(2026, 12, 27))  # Sunday
    assert is_working_day(date(2026, 12, 29))
    assert add_working_days(date(2026, 12, 24), 0) == date(2026, 12, 24)
    assert add_working_days(date(2026, 12, 24), 1) == date(2026, 12, 29)
    # 29, 30, 31 December, (1 January is a holiday) 4 and 5 January.
    assert add_working_days(date(2026, 12, 24), 5) == date(2027, 1, 5)
    assert add_working_days(date(2026, 12, 11), 1) == date(2026, 12, 14)  # Friday to Monday
    assert add_working_days(date(2026, 12, 19), 1) == date(2026, 12, 21)  # Saturday
    with pytest.raises(ValueError):
        add_working_days(date(2026, 12, 24), -1)


def test_a_decision_counts_from_its_london_date() -> None:
    # 23:30 UTC on Thursday 2 July is 00:30 on Friday in London (BST).
    late_thursday = datetime(2026, 7, 2, 23, 30, tzinfo=UTC)
    assert decision_due_date(late_thursday, 1) == date(2026, 7, 6)
    # Due by the end of Monday 6 July in London: 23:00 UTC in summer.
    assert decision_due_at(late_thursday, 1) == datetime(2026, 7, 6, 23, 0, tzinfo=UTC)
    # In winter London is on UTC: the end of Tuesday 29 December is midnight UTC.
    assert decision_due_at(at(date(2026, 12, 24)), 1) == datetime(2026, 12, 30, tzinfo=UTC)
    with pytest.raises(ValueError):
        decision_due_at(datetime(2026, 12, 24, 10), 1)


# -- the data set -----------------------------------------------------------------------


@dataclass
class Data:
    ids: dict[str, int]  # case name -> case id
    events: dict[str, int]  # event name -> event id


def seed(session: Session) -> Data:
    """Ten open cases and one closed one, with events around Christmas 2026."""
    ids: dict[str, int] = {}
    events: dict[str, int] = {}

    def case(name: str, age_days: float, *, created_days: float = 200, **fields: object) -> Case:
        made = make_case(
            session,
            f"REF-{name}",
            created_at=NOW - timedelta(days=created_days),
            last_victim_update_at=None if age_days < 0 else NOW - timedelta(days=age_days),
            **fields,
        )
        ids[name] = made.id
        return made

    def event(name: str, made: Case, type: str, occurred: datetime, **kwargs: object) -> None:
        added = add_event(
            session, made, type=type, occurred_at=occurred, agency="met", now=NOW, **kwargs
        )
        events[name] = added.event.id

    charged = {"details": {"offences": ["burglary"]}}
    # Enhanced rights, charged on Thursday 24 December: 1 working day, so due by the end
    # of Tuesday 29 December (Friday 25 and Monday 28 are bank holidays). Overdue.
    event(
        "enhanced_charge",
        case("E1", 1, enhanced_rights=True),
        "charged",
        at(date(2026, 12, 24)),
        **charged,
    )
    # Standard, charged the same day: 5 working days, due by the end of 5 January.
    event("standard_charge", case("S1", 2), "charged", at(date(2026, 12, 24)), **charged)
    # Standard, arrested Thursday 17 December: due by the end of Thursday 24. Overdue.
    event("arrest", case("S2", 4), "suspect_arrested", at(date(2026, 12, 17)))
    # A verdict is 1 working day for everyone: Wednesday 23 December, due Thursday 24.
    event(
        "verdict",
        case("V", 5),
        "verdict",
        at(date(2026, 12, 23), 15),
        details={"outcome": "guilty"},
    )
    # Enhanced, told on Friday 18 December, in time.
    event(
        "told_in_time",
        case("T", 6, enhanced_rights=True),
        "charged",
        at(date(2026, 12, 17)),
        victim_informed_at=at(date(2026, 12, 18), 9),
        **charged,
    )
    # Enhanced, released under investigation Monday 14 December, told Wednesday 16: late.
    event(
        "told_late",
        case("L", 7, enhanced_rights=True),
        "released_under_investigation",
        at(date(2026, 12, 14)),
        victim_informed_at=at(date(2026, 12, 16)),
    )
    # Not a key decision, never told: not the watchdog's business.
    event("not_key", session.get(Case, ids["S1"]), "investigation_started", at(date(2026, 11, 2)))

    u1 = case("U1", 3)  # updated 3 days ago
    case("U2", 40)  # 40 days without an update: 12 days overdue
    case("U3", -1, created_days=30, enhanced_rights=True)  # never updated, opened 30 days ago
    case("U4", 40, update_every_days=60)  # agreed every 60 days: fine
    closed = case("C", 100, closed_at=NOW - timedelta(days=50))
    event("closed_arrest", closed, "suspect_arrested", at(date(2026, 10, 1)))

    victim = make_victim(session, u1)
    for route, days_ago in [
        ("proactive", 1),
        ("proactive", 10),
        ("proactive", 27),
        ("proactive", 29),  # before the period
        ("lookup", 3),
        ("lookup", 5),
        ("lookup", -1 / 24),  # after `now`
        ("agency", 20),
    ]:
        session.add(
            VictimUpdate(
                case_id=u1.id, victim_id=victim.id, route=route, at=NOW - timedelta(days=days_ago)
            )
        )
    session.commit()
    return Data(ids, events)


@pytest.fixture
def data(case_db: CaseDb) -> Data:
    with case_db.sessions() as session:
        return seed(session)


def by_key(items: list[Overdue]) -> dict[str, Overdue]:
    return {item.dedupe_key: item for item in items}


# -- overdue ----------------------------------------------------------------------------


def test_overdue_finds_late_updates_and_untold_decisions(case_db: CaseDb, data: Data) -> None:
    with case_db.sessions() as session:
        items = overdue(session, NOW)

    ids, events = data.ids, data.events
    assert [(i.kind, i.reference) for i in items] == [
        (UPDATE_DUE, "REF-U2"),  # due 18 December
        (DECISION_NOT_TOLD, "REF-S2"),  # due by the end of 24 December
        (DECISION_NOT_TOLD, "REF-V"),
        (UPDATE_DUE, "REF-U3"),  # due 28 December
        (DECISION_NOT_TOLD, "REF-E1"),  # due by the end of 29 December
    ]
    found = by_key(items)
    u2 = found[f"overdue:{ids['U2']}:2026-12-18"]
    assert (u2.due_at, u2.days_overdue, u2.limit_days) == (NOW - timedelta(days=12), 12, 28)
    u3 = found[f"overdue:{ids['U3']}:2026-12-28"]
    assert (u3.days_overdue, u3.enhanced_rights) == (2, True)

    enhanced = found[f"decision:{events['enhanced_charge']}"]
    assert (enhanced.case_id, enhanced.event_type, enhanced.limit_days) == (
        ids["E1"],
        "charged",
        1,
    )
    assert enhanced.due_date == date(2026, 12, 29)
    assert enhanced.due_at == datetime(2026, 12, 30, tzinfo=UTC)
    assert enhanced.days_overdue == 0
    arrest = found[f"decision:{events['arrest']}"]
    assert (arrest.limit_days, arrest.due_date, arrest.days_overdue) == (5, date(2026, 12, 24), 5)
    verdict = found[f"decision:{events['verdict']}"]
    assert (verdict.limit_days, verdict.due_date) == (1, date(2026, 12, 24))
    assert verdict.as_dict()["due_at"] == "2026-12-25T00:00:00+00:00"


def test_a_decision_is_late_only_after_the_last_working_day(case_db: CaseDb, data: Data) -> None:
    key = f"decision:{data.events['enhanced_charge']}"
    with case_db.sessions() as session:
        # Friday 25 to Tuesday 29 December: still in time (bank holidays and a weekend).
        assert key not in by_key(overdue(session, datetime(2026, 12, 29, 23, 59, tzinfo=UTC)))
        assert key in by_key(overdue(session, datetime(2026, 12, 30, tzinfo=UTC)))
        # The standard case charged the same day is due by the end of 5 January 2027.
        standard = f"decision:{data.events['standard_charge']}"
        assert standard not in by_key(overdue(session, datetime(2027, 1, 5, 23, tzinfo=UTC)))
        assert standard in by_key(overdue(session, datetime(2027, 1, 6, tzinfo=UTC)))


def test_overdue_needs_an_aware_time(case_db: CaseDb) -> None:
    with case_db.sessions() as session, pytest.raises(ValueError):
        overdue(session, datetime(2026, 12, 30, 12))


# -- tasks ------------------------------------------------------------------------------


def open_tasks(session: Session) -> dict[str, Task]:
    return {
        task.dedupe_key: task
        for task in session.scalars(
            select(Task).where(
                Task.state == TaskState.OPEN, Task.kind.in_(["overdue_update", "decision_not_told"])
            )
        )
    }


def test_run_watchdog_opens_each_task_once_and_closes_resolved_ones(
    case_db: CaseDb, data: Data
) -> None:
    ids, events = data.ids, data.events
    with case_db.sessions() as session:
        first = run_watchdog(session, NOW)
        session.commit()
        assert (first.created, first.closed, first.open, len(first.overdue)) == (5, 0, 5, 5)
        tasks = open_tasks(session)
        assert set(tasks) == {
            f"overdue:{ids['U2']}:2026-12-18",
            f"overdue:{ids['U3']}:2026-12-28",
            f"decision:{events['arrest']}",
            f"decision:{events['verdict']}",
            f"decision:{events['enhanced_charge']}",
        }
        enhanced = tasks[f"decision:{events['enhanced_charge']}"]
        assert (enhanced.kind, enhanced.priority, enhanced.case_id) == (
            "decision_not_told",
            0,
            ids["E1"],
        )
        assert enhanced.event_id == events["enhanced_charge"]
        assert watchdog._utc(enhanced.due_at) == datetime(2026, 12, 30, tzinfo=UTC)
        assert "1 working day" in enhanced.detail and "charged" in enhanced.detail
        u2 = tasks[f"overdue:{ids['U2']}:2026-12-18"]
        assert (u2.kind, u2.priority, u2.event_id) == ("overdue_update", 1, None)
        assert tasks[f"overdue:{ids['U3']}:2026-12-28"].priority == 0  # enhanced rights
        assert all("REF-" not in task.detail for task in tasks.values())

    with case_db.sessions() as session:
        again = run_watchdog(session, NOW)
        session.commit()
        assert (again.created, again.closed, again.open) == (0, 0, 5)

    # The victim in U2 hears from the officer; the enhanced victim is told of the charge.
    later = NOW + timedelta(hours=1)
    with case_db.sessions() as session:
        session.get(Case, ids["U2"]).last_victim_update_at = later
        session.get(CaseEvent, events["enhanced_charge"]).victim_informed_at = later
        session.commit()
        result = run_watchdog(session, later)
        session.commit()
        assert (result.created, result.closed, result.open) == (0, 2, 3)
        done = session.scalar(
            select(Task).where(Task.dedupe_key == f"decision:{events['enhanced_charge']}")
        )
        assert done.state == TaskState.DONE
        assert watchdog._utc(done.closed_at) == later

    # Ten days on, the standard charge (due 5 January) is late too. A task a coordinator
    # closed by hand is not reopened for the same deadline.
    with case_db.sessions() as session:
        by_hand = session.scalar(
            select(Task).where(Task.dedupe_key == f"overdue:{ids['U3']}:2026-12-28")
        )
        by_hand.state = TaskState.DONE
        session.commit()
        result = run_watchdog(session, NOW + timedelta(days=10))
        session.commit()
        assert (result.created, result.closed, result.open) == (1, 0, 3)
        assert f"decision:{events['standard_charge']}" in open_tasks(session)
        assert f"overdue:{ids['U3']}:2026-12-28" not in open_tasks(session)


def test_closing_a_case_closes_its_tasks(case_db: CaseDb, data: Data) -> None:
    with case_db.sessions() as session:
        run_watchdog(session, NOW)
        session.commit()
        add_event(
            session,
            session.get(Case, data.ids["S2"]),
            type="case_closed",
            occurred_at=NOW,
            agency="met",
            now=NOW,
        )
        result = run_watchdog(session, NOW)
        session.commit()
        assert (result.created, result.closed, result.open) == (0, 1, 4)


def test_a_run_leaves_tasks_opened_by_a_later_run_alone(case_db: CaseDb, data: Data) -> None:
    standard = f"decision:{data.events['standard_charge']}"
    with case_db.sessions() as session:
        later = run_watchdog(session, datetime(2027, 1, 6, tzinfo=UTC))
        session.commit()
        assert standard in open_tasks(session)
        # A slower run that looked before the charge was late must not close its task.
        earlier = run_watchdog(session, datetime(2027, 1, 5, 23, tzinfo=UTC))
        session.commit()
        assert (earlier.created, earlier.closed, earlier.open) == (0, 0, later.open)
        assert standard in open_tasks(session)


def test_a_key_inserted_by_another_run_is_skipped(case_db: CaseDb, data: Data) -> None:
    item = next(i for i in overdue_now(case_db) if i.kind == UPDATE_DUE)
    with case_db.sessions() as session:
        session.add(Task(kind="overdue_update", dedupe_key=item.dedupe_key, detail="x"))
        session.commit()
        # Straight to the insert, as if the other run committed after our look.
        inserted = session.execute(
            watchdog._insert_if_absent(session), [watchdog._task_row(item, NOW)]
        ).all()
        session.commit()
        assert inserted == []
        assert session.scalar(select(Task.detail).where(Task.dedupe_key == item.dedupe_key)) == "x"


def overdue_now(case_db: CaseDb) -> list[Overdue]:
    with case_db.sessions() as session:
        return overdue(session, NOW)


# -- the compliance report --------------------------------------------------------------


def test_compliance_report_figures(case_db: CaseDb, data: Data) -> None:
    with case_db.sessions() as session:
        report = compliance_report(session, NOW, days=28)

    assert report.as_dict() == {
        "period": {
            "start": "2026-12-02T12:00:00+00:00",
            "end": "2026-12-30T12:00:00+00:00",
            "days": 28,
        },
        "open_cases": 10,
        "cases_overdue_for_update": 2,  # U2, U3
        # Days since the last update: 1 2 3 4 5 | 6 7 30 40 40.
        "median_days_since_update": 5.5,
        "decisions": {
            "overdue_now": 3,  # E1, S2, V
            # E1, S2, V, T and L had limits ending in the period; S1's ends in January.
            "due_in_period": 5,
            "told_in_time": 1,
            "not_told_in_time": 4,
        },
        "contacts": {"proactive": 3, "victim_initiated": 2, "agency": 1},
    }


def test_compliance_report_on_an_empty_store(case_db: CaseDb) -> None:
    with case_db.sessions() as session:
        report = compliance_report(session, NOW, days=7)
    assert report.open_cases == 0
    assert report.median_days_since_update is None
    assert report.as_dict()["contacts"] == {"proactive": 0, "victim_initiated": 0, "agency": 0}
    with case_db.sessions() as session, pytest.raises(ValueError):
        compliance_report(session, NOW, days=0)


def test_median_with_an_odd_number_of_open_cases(case_db: CaseDb, data: Data) -> None:
    with case_db.sessions() as session:
        session.get(Case, data.ids["U4"]).closed_at = NOW
        session.commit()
        # 1 2 3 4 5 6 7 30 40: the fifth.
        assert compliance_report(session, NOW).median_days_since_update == 5.0


# -- running in the gateway -------------------------------------------------------------


def test_run_periodically_runs_and_survives_errors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good_url = f"sqlite:///{tmp_path / 'good.db'}"
    db.migrate(good_url)
    with Session(db.create_sync_engine(good_url)) as session:
        make_case(session, "REF-LATE", last_victim_update_at=datetime.now(UTC) - timedelta(days=40))
        session.commit()
        session.get_bind().dispose()
    settings = Settings(watchdog_interval_minutes=0, secret_key="test-secret")

    async def run(url: str, until: int) -> int:
        engine = db.create_engine(url)
        stop = asyncio.Event()
        task = asyncio.create_task(
            watchdog.run_periodically(db.sessionmaker(engine), settings, stop)
        )
        try:
            for _ in range(500):  # until `until` runs have been logged
                await asyncio.sleep(0.01)
                if len([r for r in caplog.records if r.name == watchdog.__name__]) >= until:
                    break
            stop.set()
            await asyncio.wait_for(task, timeout=10)
        finally:
            await engine.dispose()
        return len(caplog.records)

    with caplog.at_level(logging.INFO, logger=watchdog.__name__):
        asyncio.run(run(good_url, 2))
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0] == "Watchdog: 1 overdue, 1 tasks created, 0 closed, 1 open"
    assert messages[1] == "Watchdog: 1 overdue, 0 tasks created, 0 closed, 1 open"
    assert not any("REF-LATE" in m for m in messages)

    # An unmigrated database fails every run; the loop logs and carries on.
    caplog.clear()
    with caplog.at_level(logging.INFO, logger=watchdog.__name__):
        asyncio.run(run(f"sqlite:///{tmp_path / 'empty.db'}", 3))
    failures = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) >= 3


# -- the commands -----------------------------------------------------------------------


@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("WAYMARK_DATABASE_URL", url)
    monkeypatch.setenv("WAYMARK_SECRET_KEY", "test-secret")
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def main(argv: list[str]) -> int:
    # As bot/__main__.py does: the sub-commands come from register().
    parser = argparse.ArgumentParser(prog="python -m bot")
    watchdog.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_watchdog_and_report_commands(cli_db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["watchdog"]) == 0  # migrates an empty database first
    assert capsys.readouterr().out == "0 overdue.\nTasks: 0 created, 0 closed, 0 open.\n"

    now = datetime.now(UTC)
    with Session(db.create_sync_engine(cli_db)) as session:
        late = make_case(session, "4301234/26", last_victim_update_at=now - timedelta(days=30))
        make_case(session, "4301235/26", last_victim_update_at=now - timedelta(days=1))
        late_id = late.id
        session.commit()
        session.get_bind().dispose()

    assert main(["watchdog"]) == 0
    out = capsys.readouterr().out
    due = (now - timedelta(days=2)).astimezone(LONDON).date()
    assert out == (
        "1 overdue.\n"
        f"  4301234/26  update due (case {late_id}): due by {due}, 2 days overdue\n"
        "Tasks: 1 created, 0 closed, 1 open.\n"
    )
    assert main(["watchdog"]) == 0
    assert capsys.readouterr().out.endswith("Tasks: 0 created, 0 closed, 1 open.\n")

    assert main(["report", "--json", "--days", "7"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["period"]["days"] == 7
    assert (report["open_cases"], report["cases_overdue_for_update"]) == (2, 1)
    assert report["median_days_since_update"] == pytest.approx(15.5, abs=0.01)

    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "(28 days)" in out
    assert "Open cases: 2\nCases overdue for an update: 1\n" in out
    assert "Contacts in the period: 0 proactive, 0 victim look-ups, 0 reported by agencies" in out

    with pytest.raises(SystemExit):
        main(["report", "--days", "0"])
