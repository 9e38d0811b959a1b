"""Adding a case event: the one write path for the agency API, the bulk import and the
demo data.

In one transaction (the caller's), an event is stored, the case moves on (stage, next
key date, officer, closed), and the transactional outbox gets a notification for each
victim, so a committed event is always followed by its notifications and an event
that failed leaves nothing behind. Urgent events also become a coordinator task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.cases.models import Case, CaseEvent, Notification, Task, Victim, VictimUpdate
from bot.cases.vocabulary import EVENT_TYPES, validate_details

EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
CLOCK_SKEW = timedelta(minutes=10)  # an agency's clock may run a little fast


class EventConflict(Exception):
    """The agency already sent an event with this id, and it said something else."""


@dataclass(frozen=True)
class Added:
    event: CaseEvent
    created: bool  # False: the same external id was seen before (idempotent replay)


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
    now = now or datetime.now(UTC)
    kind = EVENT_TYPES.get(type)
    if kind is None:
        raise ValueError(f"Unknown event type {type!r}.")
    clean = validate_details(type, details)
    occurred_at = check_time(occurred_at, now)
    if victim_informed_at is not None:
        victim_informed_at = check_time(victim_informed_at, now, "victim_informed_at")
        if victim_informed_at < occurred_at:
            raise ValueError("victim_informed_at is before occurred_at.")
    if external_id is not None:
        existing = session.scalar(
            select(CaseEvent).where(
                CaseEvent.agency == agency, CaseEvent.external_id == external_id
            )
        )
        if existing is not None:
            same = (
                existing.case_id == case.id
                and existing.type == type
                and as_utc(_aware(existing.occurred_at)) == occurred_at
                and (existing.details or {}) == clean
            )
            if not same:
                raise EventConflict(
                    f"Event id {external_id!r} was already used for a different event."
                )
            return Added(existing, created=False)

    event = CaseEvent(
        case_id=case.id,
        type=type,
        occurred_at=occurred_at,
        agency=agency,
        external_id=external_id,
        details=clean or None,
        note=note,
        victim_informed_at=victim_informed_at,
        created_at=now,
    )
    session.add(event)
    session.flush()
    _apply(session, case, event, clean, now)

    victims = session.scalars(select(Victim).where(Victim.case_id == case.id)).all()
    if victim_informed_at is not None:
        _record_update(session, case, victims, victim_informed_at, "agency")
    if (kind.notify and case.closed_at is None) or type == "case_closed":
        for victim in victims:
            session.add(
                Notification(
                    victim_id=victim.id,
                    case_id=case.id,
                    event_id=event.id,
                    kind=type,
                    urgent=kind.urgent,
                    created_at=now,
                )
            )
    if kind.urgent:
        session.add(
            Task(
                kind="urgent_event",
                dedupe_key=f"urgent:{event.id}",
                priority=0,
                case_id=case.id,
                event_id=event.id,
                detail=f"Urgent case event: {type.replace('_', ' ')}. Check the victim knows.",
                due_at=now,
                created_at=now,
            )
        )
    return Added(event, created=True)


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _apply(
    session: Session, case: Case, event: CaseEvent, details: dict[str, Any], now: datetime
) -> None:
    kind = EVENT_TYPES[event.type]
    if kind.stage is not None:
        # Events can arrive out of order: the stage follows the latest one.
        later = session.scalar(
            select(func.count())
            .select_from(CaseEvent)
            .where(
                CaseEvent.case_id == case.id,
                CaseEvent.id != event.id,
                CaseEvent.occurred_at > event.occurred_at,
                CaseEvent.type.in_([n for n, k in EVENT_TYPES.items() if k.stage]),
            )
        )
        if not later:
            case.stage = kind.stage
    if kind.sets_key_date and details.get(kind.sets_key_date):
        case.next_key_date = date.fromisoformat(details[kind.sets_key_date])
        case.next_key_date_kind = "trial" if "trial" in event.type else "hearing"
        case.next_key_place = details.get("court") or case.next_key_place
    if event.type == "officer_changed":
        case.officer_name = details["officer_name"]
        case.officer_contact = details["officer_contact"]
    if event.type == "case_closed":
        case.closed_at = event.occurred_at
    case.updated_at = now


def _record_update(
    session: Session, case: Case, victims: list[Victim] | Any, at: datetime, route: str
) -> None:
    for victim in victims:
        session.add(VictimUpdate(case_id=case.id, victim_id=victim.id, route=route, at=at))
    last = case.last_victim_update_at
    if last is None or _aware(last) < at:
        case.last_victim_update_at = at


def record_victim_update(
    session: Session, case_id: int, victim_id: int, route: str, at: datetime
) -> None:
    """The victim has just been brought up to date (a look-up, or a detailed message):
    every event so far counts as told, and the update clock restarts."""
    case = session.get(Case, case_id)
    if case is None:
        return
    session.add(VictimUpdate(case_id=case_id, victim_id=victim_id, route=route, at=at))
    if case.last_victim_update_at is None or _aware(case.last_victim_update_at) < at:
        case.last_victim_update_at = at
    for event in session.scalars(
        select(CaseEvent).where(
            CaseEvent.case_id == case_id,
            CaseEvent.victim_informed_at.is_(None),
            CaseEvent.occurred_at <= at,
        )
    ):
        event.victim_informed_at = at
