"""The event write path: `add_events` (many events in a few statements) gives exactly
what `add_event` gives one event at a time, on SQLite and PostgreSQL.

Each test builds the same small world twice, for two agencies, feeds one world event
by event and the other in batches, and compares the outcomes and everything stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from bot.cases.events import Added, EventConflict, NewEvent, add_event, add_events
from bot.cases.models import Case, CaseEvent, Notification, Task, Victim, VictimUpdate
from tests.cases.conftest import CaseDb, make_case, make_victim

NOW = datetime.now(UTC).replace(microsecond=0)
BASE = NOW - timedelta(days=2)
ONE, BATCHED = "met", "kent"  # the agency (and world) fed event by event, and in batches


def at(hours: float) -> datetime:
    return BASE + timedelta(hours=hours)


@dataclass(frozen=True)
class Spec:
    """An event for the case called `case` in either world."""

    case: str
    type: str
    occurred_at: datetime
    external_id: str | None = None
    details: dict[str, Any] | None = None
    note: str | None = None
    victim_informed_at: datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def new(self, cases: dict[str, Case]) -> NewEvent:
        return NewEvent(
            cases[self.case],
            self.type,
            self.occurred_at,
            self.external_id,
            self.details,
            self.note,
            self.victim_informed_at,
        )


def world(session: Session, agency: str) -> dict[str, Case]:
    """Cases with no, one and two victims, and one already closed."""
    cases: dict[str, Case] = {}
    for name, victims, fields in (
        ("open", 1, {}),
        ("two", 2, {"next_key_place": "Highbury Corner", "last_victim_update_at": at(20)}),
        ("none", 0, {}),
        ("closed", 1, {"stage": "charge", "closed_at": at(-5)}),
    ):
        case = make_case(session, f"{agency}-{name}", agency=agency, updated_at=at(-9), **fields)
        for n in range(victims):
            make_victim(session, case, external_id=f"v{n}", phone=None)
        cases[name] = case
    return cases


def feed(
    session: Session, cases: dict[str, Case], agency: str, steps: Sequence[Sequence[Spec]]
) -> tuple[list[Added | Exception], list[Added | Exception]]:
    """The same steps event by event (in ONE's world) and a batch a step (BATCHED's)."""
    single: list[Added | Exception] = []
    batched: list[Added | Exception] = []
    one, other = cases, world_cases(session, BATCHED)
    for number, step in enumerate(steps):
        now = NOW + timedelta(minutes=number)
        for spec in step:
            try:
                single.append(
                    add_event(
                        session,
                        one[spec.case],
                        type=spec.type,
                        occurred_at=spec.occurred_at,
                        agency=agency,
                        external_id=spec.external_id,
                        details=spec.details,
                        note=spec.note,
                        victim_informed_at=spec.victim_informed_at,
                        now=now,
                    )
                )
            except (ValueError, EventConflict) as error:
                single.append(error)
        batched += add_events(session, [s.new(other) for s in step], agency=BATCHED, now=now)
    return single, batched


def world_cases(session: Session, agency: str) -> dict[str, Case]:
    return {
        c.reference.split("-", 1)[1]: c
        for c in session.scalars(select(Case).where(Case.agency == agency))
    }


def utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def outcome(result: Added | Exception, positions: dict[int, int]) -> tuple[Any, ...]:
    if isinstance(result, Added):
        return ("added", result.created, positions[result.event.id])
    return (type(result).__name__, str(result))


def snapshot(session: Session, agency: str) -> dict[str, Any]:
    """Everything stored for `agency`'s world, without ids or the agency's name."""
    names = {c.id: c.reference.split("-", 1)[1] for c in world_cases(session, agency).values()}
    events = session.scalars(
        select(CaseEvent).where(CaseEvent.case_id.in_(names)).order_by(CaseEvent.id)
    ).all()
    position = {e.id: n for n, e in enumerate(events)}  # both paths insert in order
    victims = {v.id: v.external_id for v in session.scalars(select(Victim))}
    cases = session.scalars(select(Case).where(Case.id.in_(names))).all()
    return {
        "positions": position,
        "cases": sorted(
            (
                names[c.id],
                c.stage,
                c.next_key_date,
                c.next_key_date_kind,
                c.next_key_place,
                c.officer_name,
                c.officer_contact,
                utc(c.closed_at),
                utc(c.last_victim_update_at),
                utc(c.updated_at),
            )
            for c in cases
        ),
        "events": [
            (
                names[e.case_id],
                e.type,
                utc(e.occurred_at),
                e.external_id,
                e.details,
                e.note,
                utc(e.victim_informed_at),
                utc(e.created_at),
            )
            for e in events
        ],
        "notifications": sorted(
            (
                *(position[n.event_id], victims[n.victim_id], names[n.case_id], n.kind),
                *(n.urgent, n.state, utc(n.created_at)),
            )
            for n in session.scalars(select(Notification).where(Notification.case_id.in_(names)))
        ),
        "tasks": sorted(
            (
                *(position[t.event_id], t.kind, t.priority, t.detail, utc(t.due_at), t.state),
                t.dedupe_key == f"urgent:{t.event_id}",
            )
            for t in session.scalars(select(Task).where(Task.case_id.in_(names)))
        ),
        "updates": sorted(
            (names[u.case_id], victims[u.victim_id], u.route, utc(u.at))
            for u in session.scalars(select(VictimUpdate).where(VictimUpdate.case_id.in_(names)))
        ),
    }


def compare(
    session: Session, single: list[Added | Exception], batched: list[Added | Exception]
) -> dict[str, Any]:
    """Assert both worlds agree; ONE's snapshot, to check against expectations."""
    session.flush()
    mine, theirs = snapshot(session, ONE), snapshot(session, BATCHED)
    assert [outcome(r, mine["positions"]) for r in single] == [
        outcome(r, theirs["positions"]) for r in batched
    ]
    for part in ("cases", "events", "notifications", "tasks", "updates"):
        assert mine[part] == theirs[part], part
    return mine


def kinds(results: list[Added | Exception]) -> list[str]:
    return [
        ("new" if r.created else "replay") if isinstance(r, Added) else type(r).__name__
        for r in results
    ]


STEPS: list[list[Spec]] = [
    [
        Spec("open", "suspect_arrested", at(10), "a1"),
        Spec("open", "charged", at(5), "a2", {"offences": ["burglary"]}),  # earlier: no move
        Spec("open", "suspect_arrested", at(10), "a1", note="again"),  # a replay in the batch
        Spec("open", "charged", at(5), "a2", {"offences": ["theft"]}),  # a conflict in it
        Spec("two", "bail_conditions_changed", at(3), "b1", {"removed": True}, None, at(4)),
        Spec(
            "two",
            "first_hearing_scheduled",
            at(6),
            "b2",
            {"date": "2027-01-14", "court": "Wood Green"},
        ),
        Spec("two", "trial_adjourned", at(7), "b3", {"new_date": "2027-02-01"}),  # same court
        Spec("none", "investigation_started", at(1), "c1"),  # nobody to tell
        Spec("closed", "verdict", at(2), "d1", {"outcome": "guilty"}),  # closed: nobody told
        Spec("open", "arrested_again", at(1), "x1"),
        Spec("open", "charged", at(1), "x2", {}),  # no offences
        Spec("open", "charged", at(1), "x3", {"offences": ["theft"]}, extra={"naive": True}),
        Spec("open", "suspect_interviewed", at(2), "x4", None, None, at(1)),  # told before
        Spec("open", "suspect_interviewed", NOW + timedelta(hours=1), "x5"),  # the future
        Spec("open", "charged", at(1), "x2", {"offences": ["theft"]}),  # x2 unused: new
        Spec("open", "officer_changed", at(8), "a3", {"officer_name": "DC Lee"} | {"x": 1}),
        Spec(
            "open",
            "officer_changed",
            at(8),
            "a3",
            {"officer_name": "DC Lee", "officer_contact": "101, quoting the reference"},
            None,
            at(9),
        ),
        Spec("open", "suspect_interviewed", at(9)),  # no external id: always new
        Spec("open", "suspect_interviewed", at(9)),
    ],
    [
        Spec("open", "suspect_arrested", at(10), "a1", note="a different note"),  # a replay
        Spec("open", "charged", at(5), "a2", {"offences": ["burglary"]}),  # a replay
        Spec("two", "released_from_custody", at(3), "b1"),  # a conflict with a stored one
        Spec("open", "case_closed", at(11), "a4"),  # closing is always told
        Spec("open", "released_from_custody", at(12), "a5"),  # urgent: a task, no message
        Spec("open", "no_further_action", at(10), "a6", {"decided_by": "cps"}),  # a tie: it wins
        Spec("two", "suspect_interviewed", at(0.5), "b4", None, None, at(1)),  # earlier update
        Spec("closed", "case_closed", at(1), "d2"),  # closed again, earlier: closed_at moves
    ],
]


def naive(spec: Spec) -> Spec:
    if not spec.extra.get("naive"):
        return spec
    return Spec(
        spec.case, spec.type, spec.occurred_at.replace(tzinfo=None), spec.external_id, spec.details
    )


def test_a_batch_stores_exactly_what_one_event_at_a_time_stores(case_db: CaseDb) -> None:
    with case_db.sessions() as session:
        cases = world(session, ONE)
        world(session, BATCHED)
        steps = [[naive(s) for s in step] for step in STEPS]
        single, batched = feed(session, cases, ONE, steps)
        stored = compare(session, single, batched)
        session.commit()

    assert kinds(single) == [
        *("new", "new", "replay", "EventConflict", "new", "new", "new", "new", "new"),
        *("ValueError", "ValidationError", "ValueError", "ValueError", "ValueError"),
        *("new", "ValidationError", "new", "new", "new"),
        *("replay", "replay", "EventConflict", "new", "new", "new", "new", "new"),
    ]
    messages = [str(r) for r in single if isinstance(r, Exception)]
    assert "Unknown event type 'arrested_again'." in messages
    assert "Event id 'a2' was already used for a different event." in messages
    assert "victim_informed_at is before occurred_at." in messages
    assert "occurred_at is in the future." in messages

    cases = {row[0]: row[1:] for row in stored["cases"]}
    # open: arrested at 10, charged at 5 (no move), no further action at 10 (a tie: the
    # newcomer wins); the officer changed; closed at 11; told by someone else at 9.
    assert cases["open"][:8] == (
        *("no_further_action", None, None, None),
        *("DC Lee", "101, quoting the reference", at(11), at(9)),
    )
    # two: the trial date moved (new_date), the court stayed; the update time never goes back.
    assert cases["two"][:4] == ("trial", date(2027, 2, 1), "trial", "Wood Green")
    assert cases["two"][7] == at(20)
    # closed: a verdict still moves the stage; closing again (earlier) moves closed_at.
    assert cases["closed"][0] == "verdict" and cases["closed"][6] == at(1)
    assert cases["none"][0] == "investigation"
    later = NOW + timedelta(minutes=1)  # the second step's
    assert {row[0]: row[-1] for row in stored["cases"]} == {
        "open": later,
        "two": later,
        "closed": later,
        "none": NOW,
    }  # updated_at

    told = [(kind, victim, case) for _, victim, case, kind, *_ in stored["notifications"]]
    assert sorted(told) == sorted(
        [
            ("suspect_arrested", "v0", "open"),
            ("charged", "v0", "open"),
            ("bail_conditions_changed", "v0", "two"),
            ("bail_conditions_changed", "v1", "two"),
            ("first_hearing_scheduled", "v0", "two"),
            ("first_hearing_scheduled", "v1", "two"),
            ("trial_adjourned", "v0", "two"),
            ("trial_adjourned", "v1", "two"),
            ("charged", "v0", "open"),  # x2
            ("officer_changed", "v0", "open"),
            ("suspect_interviewed", "v0", "open"),
            ("suspect_interviewed", "v0", "open"),
            ("case_closed", "v0", "open"),
            ("suspect_interviewed", "v0", "two"),
            ("suspect_interviewed", "v1", "two"),
            ("case_closed", "v0", "closed"),
        ]
    )
    # Urgent events open a task each, told or not.
    assert [task[1:4] for task in stored["tasks"]] == [
        ("urgent_event", 0, "Urgent case event: bail conditions changed. Check the victim knows."),
        ("urgent_event", 0, "Urgent case event: released from custody. Check the victim knows."),
        ("urgent_event", 0, "Urgent case event: no further action. Check the victim knows."),
    ]
    assert all(task[-1] for task in stored["tasks"])
    assert stored["updates"] == sorted(
        [
            ("two", "v0", "agency", at(4)),
            ("two", "v1", "agency", at(4)),
            ("open", "v0", "agency", at(9)),
            ("two", "v0", "agency", at(1)),
            ("two", "v1", "agency", at(1)),
        ]
    )


def test_refused_events_leave_nothing_behind(case_db: CaseDb) -> None:
    with case_db.sessions() as session:
        cases = world(session, ONE)
        world(session, BATCHED)
        bad = [
            Spec("open", "charged", at(1), "e1", {"offences": []}),
            Spec("open", "suspect_arrested", at(1), "e2", {"unexpected": True}),
            Spec("two", "case_closed", at(1), "e3", None, None, at(0)),
        ]
        single, batched = feed(session, cases, ONE, [bad])
        compare(session, single, batched)
        assert kinds(batched) == ["ValidationError", "ValidationError", "ValueError"]
        assert session.scalar(select(func.count()).select_from(CaseEvent)) == 0
        assert session.scalar(select(func.count()).select_from(Notification)) == 0
        assert session.scalar(select(func.count()).select_from(VictimUpdate)) == 0
        assert {c.stage for c in cases.values()} == {"investigation", "charge"}


def test_the_stage_follows_the_latest_event_within_and_across_batches(case_db: CaseDb) -> None:
    steps = [
        [Spec("open", "charged", at(10), "s1", {"offences": ["theft"]})],
        [Spec("open", "suspect_arrested", at(5), "s2"), Spec("open", "verdict", at(9), "s3", {"outcome": "guilty"})],
        [Spec("open", "plea_entered", at(10), "s4", {"plea": "guilty"})],  # a tie: it wins
        [Spec("two", "appeal_lodged", at(20), "t1"), Spec("two", "sentenced", at(15), "t2")],
    ]  # fmt: skip
    with case_db.sessions() as session:
        cases = world(session, ONE)
        world(session, BATCHED)
        single, batched = feed(session, cases, ONE, steps)
        stored = compare(session, single, batched)
        assert kinds(batched) == ["new"] * 6
        stages = {row[0]: row[1] for row in stored["cases"]}
        assert (stages["open"], stages["two"]) == ("plea", "appeal")
        # The caller's case object shows where the events left it.
        assert (cases["open"].stage, cases["two"].stage) == ("plea", "appeal")


def test_a_batch_costs_the_same_few_statements_whatever_its_size(case_db: CaseDb) -> None:
    def statements(size: int) -> list[str]:
        with case_db.sessions() as session:
            cases = list(world_cases(session, ONE).values())
            items = [
                NewEvent(cases[n % len(cases)], "suspect_interviewed", at(n / 60), f"i{size}-{n}")
                for n in range(size)
            ]
            seen: list[str] = []

            def count(*args: Any) -> None:
                seen.append(args[2])

            event.listen(case_db.engine, "before_cursor_execute", count)
            try:
                results = add_events(session, items, agency=ONE, now=NOW)
            finally:
                event.remove(case_db.engine, "before_cursor_execute", count)
            assert all(isinstance(r, Added) and r.created for r in results)
            session.commit()
            return seen

    with case_db.sessions() as session:
        world(session, ONE)
        session.commit()
    small, large = statements(10), statements(200)
    if case_db.kind == "sqlite":
        # SQLAlchemy can't rely on the order of SQLite's RETURNING: events go in one by one.
        small, large = ([s for s in run if "INTO case_events" not in s] for run in (small, large))
    assert len(small) == len(large) <= 6
