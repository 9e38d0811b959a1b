"""Adding case events: the one write path for the agency API, the bulk import and the
demo data.

In one transaction (the caller's), an event is stored, the case moves on (stage, next
key date, officer, closed), and the transactional outbox gets a notification for each
victim, so a committed event is always followed by its notifications and an event
that failed leaves nothing behind. Urgent events also become a coordinator task.

`add_events` does this for many events at once in a handful of statements (the bulk
import); `add_event` is the same code with one event.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, func, insert, or_, select, true, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, aliased

from bot.cases.models import Case, CaseEvent, Notification, Task, Victim, VictimUpdate
from bot.cases.vocabulary import EVENT_TYPES, EventType, validate_details

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=10)  # an agency's clock may run a little fast
STAGE_TYPES = tuple(name for name, kind in EVENT_TYPES.items() if kind.stage)
# The case columns an event may change (besides updated_at, which every event sets).
MOVED = (
    "stage",
    "next_key_date",
    "next_key_date_kind",
    "next_key_place",
    "officer_name",
    "officer_contact",
    "closed_at",
    "last_victim_update_at",
)


class EventConflict(Exception):
    """The agency already sent an event with this id, and it said something else."""


@dataclass(frozen=True)
class Added:
    event: CaseEvent
    created: bool  # False: the same external id was seen before (idempotent replay)


@dataclass(frozen=True)
class NewEvent:
    """An event for `case` as an agency sends it (checked by `add_events`)."""

    case: Case
    type: str
    occurred_at: datetime
    external_id: str | None = None
    details: dict[str, Any] | None = None
    note: str | None = None
    victim_informed_at: datetime | None = None


@dataclass(frozen=True)
class _Valid:
    item: NewEvent
    kind: EventType
    details: dict[str, Any]  # normalised, as stored
    occurred_at: datetime  # UTC
    victim_informed_at: datetime | None  # UTC


def as_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("Times must include a time zone, for example 2026-11-26T09:30:00Z.")
    return moment.astimezone(UTC)


def check_time(moment: datetime, now: datetime, what: str = "occurred_at") -> datetime:
    moment = as_utc(moment)
    if moment > now + CLOCK_SKEW:
        raise ValueError(f"{what} is in the future.")
    if moment < EARLIEST:
        raise ValueError(f"{what} is before 1970.")
    return moment


def add_event(
    session: Session,
    case: Case,
    *,
    type: str,
    occurred_at: datetime,
    agency: str,
    external_id: str | None = None,
    details: dict[str, Any] | None = None,
    note: str | None = None,
    victim_informed_at: datetime | None = None,
    now: datetime | None = None,
) -> Added:
    """Store one event for `case` and everything that follows from it.

    Raises ValueError or pydantic.ValidationError for bad input, EventConflict when
    the external id was used for a different event. Does not commit.
    """
    item = NewEvent(case, type, occurred_at, external_id, details, note, victim_informed_at)
    [outcome] = add_events(session, [item], agency=agency, now=now)
    if isinstance(outcome, Exception):
        raise outcome
    return outcome


def add_events(
    session: Session, items: Sequence[NewEvent], *, agency: str, now: datetime | None = None
) -> list[Added | Exception]:
    """Store `items` as `agency`'s events, exactly as if each went through `add_event`
    in turn, but in a few statements whatever their number.

    Returns each item's outcome, in order: Added, or the error that refused it
    (ValueError, pydantic.ValidationError, EventConflict). A refused item writes nothing
    and changes nothing for the others. A database error (another writer storing the
    same external id meanwhile) is raised: roll back, and try again. Does not commit.
    """
    now = now or datetime.now(UTC)
    outcomes: dict[int, Added | Exception] = {}
    valid: list[tuple[int, _Valid]] = []
    for index, item in enumerate(items):
        try:
            valid.append((index, _validate(item, now)))
        except ValueError as error:  # pydantic's ValidationError is one too
            outcomes[index] = error

    # Idempotency: each external id belongs to its stored event or, failing that, to
    # the first item that brings it; any other item with it is a replay or a conflict.
    ids = {v.item.external_id for _, v in valid if v.item.external_id is not None}
    holders: dict[str, tuple[tuple[Any, ...], CaseEvent | int]] = {
        external_id: (_stored_key(event), event)
        for external_id, event in (_stored(session, agency, ids) if ids else {}).items()
    }
    fresh: list[tuple[int, _Valid]] = []
    replays: list[tuple[int, CaseEvent | int]] = []  # an int: a position in `fresh`
    for index, v in valid:
        external_id = v.item.external_id
        holder = holders.get(external_id) if external_id is not None else None
        if holder is None:
            if external_id is not None:
                holders[external_id] = (_key(v), len(fresh))
            fresh.append((index, v))
        elif holder[0] == _key(v):
            replays.append((index, holder[1]))
        else:
            outcomes[index] = EventConflict(
                f"Event id {external_id!r} was already used for a different event."
            )
    events = _store(session, agency, [v for _, v in fresh], now) if fresh else []
    for (index, _), event in zip(fresh, events, strict=True):
        outcomes[index] = Added(event, created=True)
    for index, holder in replays:
        outcomes[index] = Added(events[holder] if isinstance(holder, int) else holder, False)
    return [outcomes[index] for index in range(len(items))]


def _stored(session: Session, agency: str, ids: set[str]) -> dict[str, CaseEvent]:
    """`agency`'s stored events with these external ids."""
    query = select(CaseEvent).where(CaseEvent.agency == agency, CaseEvent.external_id.in_(ids))
    if session.get_bind(CaseEvent).dialect.name == "postgresql":
        # One index probe per id. An IN list, once psycopg prepares it, may get a generic
        # plan that scans all the agency's events and compares each with every id.
        wanted = (
            func.unnest(bindparam("ids", sorted(ids), type_=ARRAY(String)))
            .table_valued("external_id")
            .render_derived(name="wanted")
        )
        found = (
            select(CaseEvent)
            .where(CaseEvent.agency == agency, CaseEvent.external_id == wanted.c.external_id)
            .limit(1)  # it is unique; and LIMIT keeps the planner from unnesting the lateral
            .lateral("found")
        )
        query = select(aliased(CaseEvent, found)).select_from(wanted).join(found, true())
    return {event.external_id: event for event in session.scalars(query) if event.external_id}


def _validate(item: NewEvent, now: datetime) -> _Valid:
    kind = EVENT_TYPES.get(item.type)
    if kind is None:
        raise ValueError(f"Unknown event type {item.type!r}.")
    clean = validate_details(item.type, item.details)
    occurred_at = check_time(item.occurred_at, now)
    informed = item.victim_informed_at
    if informed is not None:
        informed = check_time(informed, now, "victim_informed_at")
        if informed < occurred_at:
            raise ValueError("victim_informed_at is before occurred_at.")
    return _Valid(item, kind, clean, occurred_at, informed)


def _key(new: _Valid) -> tuple[Any, ...]:
    # What an agency's retry must repeat; the note and victim_informed_at may differ.
    return (new.item.case.id, new.item.type, new.occurred_at, new.details)


def _stored_key(event: CaseEvent) -> tuple[Any, ...]:
    return (event.case_id, event.type, as_utc(_aware(event.occurred_at)), event.details or {})


def _store(session: Session, agency: str, fresh: list[_Valid], now: datetime) -> list[CaseEvent]:
    """Insert new events, in their order, and everything that follows from them."""
    case_ids = {v.item.case.id for v in fresh}
    # Events can arrive out of order: the stage follows the latest stage-changing event.
    staged = {v.item.case.id for v in fresh if v.kind.stage}
    latest: dict[int, datetime] = {}
    if staged:
        latest = {
            case_id: _aware(moment)
            for case_id, moment in session.execute(
                select(CaseEvent.case_id, func.max(CaseEvent.occurred_at))
                .where(CaseEvent.case_id.in_(staged), CaseEvent.type.in_(STAGE_TYPES))
                .group_by(CaseEvent.case_id)
            )
        }
    victims: dict[int, list[int]] = {}
    for victim_id, case_id in session.execute(
        select(Victim.id, Victim.case_id).where(Victim.case_id.in_(case_ids)).order_by(Victim.id)
    ):
        victims.setdefault(case_id, []).append(victim_id)

    # One multi-row INSERT ... RETURNING id: the unit of work batches them with
    # SQLAlchemy's insertmanyvalues, and the session tracks them like any new object
    # (a rolled-back SAVEPOINT forgets them).
    events = [
        CaseEvent(
            case_id=v.item.case.id,
            type=v.item.type,
            occurred_at=v.occurred_at,
            agency=agency,
            external_id=v.item.external_id,
            details=v.details or None,
            note=v.item.note,
            victim_informed_at=v.victim_informed_at,
            created_at=now,
        )
        for v in fresh
    ]
    session.add_all(events)
    session.flush()

    notifications: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    # Each touched case, its MOVED columns before, and as the events leave them.
    moved: dict[int, tuple[Case, dict[str, Any], dict[str, Any]]] = {}
    for v, event in zip(fresh, events, strict=True):
        case = v.item.case
        if case.id not in moved:
            before = {name: getattr(case, name) for name in MOVED}
            moved[case.id] = (case, before, dict(before))
        state = moved[case.id][2]
        _move(state, case.id, v, latest)
        told = victims.get(case.id, [])
        at = v.victim_informed_at
        if at is not None:
            # Someone else already told the victims: that counts as an update.
            updates += [
                {"case_id": case.id, "victim_id": victim_id, "route": "agency", "at": at}
                for victim_id in told
            ]
            last = state["last_victim_update_at"]
            if last is None or _aware(last) < at:
                state["last_victim_update_at"] = at
        if (v.kind.notify and state["closed_at"] is None) or v.item.type == "case_closed":
            notifications += [
                {
                    "victim_id": victim_id,
                    "case_id": case.id,
                    "event_id": event.id,
                    "kind": v.item.type,
                    "urgent": v.kind.urgent,
                    "created_at": now,
                }
                for victim_id in told
            ]
        if v.kind.urgent:
            tasks.append(
                {
                    "kind": "urgent_event",
                    "dedupe_key": f"urgent:{event.id}",
                    "priority": 0,
                    "case_id": case.id,
                    "event_id": event.id,
                    "detail": (
                        f"Urgent case event: {v.item.type.replace('_', ' ')}."
                        " Check the victim knows."
                    ),
                    "due_at": now,
                    "created_at": now,
                }
            )
    for model, rows in ((Notification, notifications), (Task, tasks), (VictimUpdate, updates)):
        if rows:
            session.execute(insert(model.__table__), rows)
    _update_cases(session, list(moved.values()), now)
    return events


def _update_cases(
    session: Session, moved: list[tuple[Case, dict[str, Any], dict[str, Any]]], now: datetime
) -> None:
    """One UPDATE per case, of the columns that changed (as the ORM would: a column
    written by someone else meanwhile is left alone), sent as one executemany per set
    of columns rather than the ORM's statement per case."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for case, before, after in moved:
        changed = tuple(name for name in MOVED if after[name] != before[name])
        groups.setdefault(changed, []).append(
            {"case_id": case.id, "updated_at": now, **{name: after[name] for name in changed}}
        )
        # Read again when next used: as stored, or as it was if this is rolled back.
        session.expire(case, [*changed, "updated_at"])
    cases = Case.__table__
    for rows in groups.values():
        # The SET clause comes from the rows' keys.
        session.execute(update(cases).where(cases.c.id == bindparam("case_id")), rows)


def _move(case: dict[str, Any], case_id: int, new: _Valid, latest: dict[int, datetime]) -> None:
    """Move a case (its MOVED columns) on for a new event; `latest` is the time of each
    case's latest stage-changing event so far."""
    kind, details = new.kind, new.details
    if kind.stage is not None:
        top = latest.get(case_id)
        if top is None or new.occurred_at >= top:  # none later: a tie goes to the newcomer
            case["stage"] = kind.stage
            latest[case_id] = new.occurred_at
    if kind.sets_key_date and details.get(kind.sets_key_date):
        case["next_key_date"] = date.fromisoformat(details[kind.sets_key_date])
        case["next_key_date_kind"] = "trial" if "trial" in new.item.type else "hearing"
        case["next_key_place"] = details.get("court") or case["next_key_place"]
    if new.item.type == "officer_changed":
        case["officer_name"] = details["officer_name"]
        case["officer_contact"] = details["officer_contact"]
    if new.item.type == "case_closed":
        case["closed_at"] = new.occurred_at


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def record_victim_update(
    session: Session, case_id: int, victim_id: int, route: str, at: datetime
) -> None:
    """The victim has just been brought up to date (a look-up, or a detailed message):
    every event so far counts as told, and the update clock restarts."""
    # Plain statements, not loaded objects: this runs on every verified look-up.
    session.execute(
        insert(VictimUpdate).values(case_id=case_id, victim_id=victim_id, route=route, at=at)
    )
    session.execute(
        update(Case)
        .where(
            Case.id == case_id,
            or_(Case.last_victim_update_at.is_(None), Case.last_victim_update_at < at),
        )
        .values(last_victim_update_at=at)
        .execution_options(synchronize_session=False)
    )
    session.execute(
        update(CaseEvent)
        .where(
            CaseEvent.case_id == case_id,
            CaseEvent.victim_informed_at.is_(None),
            CaseEvent.occurred_at <= at,
        )
        .values(victim_informed_at=at)
        .execution_options(synchronize_session=False)
    )
