"""The agency update feed: an authenticated REST API for police, CPS and witness care
systems to register cases and victims, post case events, and read a case's status.

- Every call carries an agency API key (`Authorization: Bearer wm_...`, made with
  `python -m bot agency-key create`); a key has scopes, and an agency only ever sees
  its own cases (another agency's reference answers 404, like an unknown one).
- Each write is one transaction: a request that fails anywhere leaves nothing behind.
- Events go through `bot.cases.events.add_event`, the one write path, which also
  queues the victims' notifications (the transactional outbox).
- Request bodies over `agency_max_body_bytes` are refused (413) before they are parsed.

See docs/agency-api.md.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from actions.references import EXAMPLE_REFERENCE, normalise_reference
from bot.cases import watchdog
from bot.cases.credentials import api_key_digest
from bot.cases.enrolment import telegram_link
from bot.cases.events import EventConflict, add_event
from bot.cases.models import (
    AgencyKey,
    Case,
    CaseEvent,
    Notification,
    NotificationState,
    Victim,
    VictimContact,
)
from bot.cases.schemas import (
    MAX_EVENTS_SHOWN,
    CaseIn,
    CaseStatus,
    CaseWritten,
    ContactIn,
    EventIn,
    EventOut,
    EventSummary,
    InvalidRequest,
    PreferencesIn,
    Problem,
    SecretReset,
    VictimIn,
    VictimSummary,
    VictimWritten,
)
from bot.cases.vocabulary import validate_details
from bot.config import Settings
from bot.deps import GatewayDep
from bot.gateway import Gateway
from bot.handoff import audit

T = TypeVar("T")

NOT_A_REFERENCE = (
    f"That is not a crime reference in the expected format (for example {EXAMPLE_REFERENCE})"
)
NO_CASE = "No case with that reference."


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    descriptions = {
        401: "No API key, or one that is unknown or revoked",
        403: "The key lacks the scope this call needs",
        404: "No case with that reference for your agency",
        409: "Conflicts with what is stored",
        413: "The request body is too large",
        422: "The request is not valid: `detail` says why",
    }
    return {
        code: {
            "model": InvalidRequest if code == 422 else Problem,
            "description": descriptions[code],
        }
        for code in codes
    }


# -- body size ------------------------------------------------------------------------------


def _too_large(limit: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        f"The request body is larger than {limit} bytes. Send fewer victims or a shorter note;"
        " for many events use the bulk import.",
    )


class _LimitedRequest(Request):
    """Reads the body in chunks and stops past the limit (chunked uploads included)."""

    limit: int = 0

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            chunks: list[bytes] = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > self.limit:
                    raise _too_large(self.limit)
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body


class LimitedBodyRoute(APIRoute):
    """The agency routes refuse bodies over `agency_max_body_bytes`, before parsing."""

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler = super().get_route_handler()

        async def limited(request: Request) -> Response:
            limit = request.app.state.gateway.settings.agency_max_body_bytes
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > limit:
                raise _too_large(limit)
            checked = _LimitedRequest(request.scope, request.receive)
            checked.limit = limit
            return await handler(checked)

        return limited


router = APIRouter(prefix="/api", tags=["agencies"], route_class=LimitedBodyRoute)

# -- authentication -------------------------------------------------------------------------

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="AgencyKey",
    description="An agency API key: `Authorization: Bearer wm_...`",
)


@dataclass(frozen=True)
class Caller:
    agency: str
    key_id: int
    scopes: frozenset[str]


async def _caller(
    gateway: GatewayDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "Send your API key: Authorization: Bearer <key>.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    async with gateway.sessions() as session:
        key = await session.scalar(
            select(AgencyKey).where(
                AgencyKey.digest == api_key_digest(credentials.credentials),
                AgencyKey.revoked_at.is_(None),
            )
        )
    if key is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "That API key is not valid, or it was revoked.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    return Caller(key.agency, key.id, frozenset(key.scopes))


def _scope(scope: str) -> Callable[[Caller], Awaitable[Caller]]:
    async def check(caller: Annotated[Caller, Depends(_caller)]) -> Caller:
        if scope not in caller.scopes:
            raise HTTPException(status.HTTP_403_FORBIDDEN, f"This key lacks the {scope} scope.")
        return caller

    return check


CasesWrite = Annotated[Caller, Depends(_scope("cases:write"))]
EventsWrite = Annotated[Caller, Depends(_scope("events:write"))]
CasesRead = Annotated[Caller, Depends(_scope("cases:read"))]
ReportsRead = Annotated[Caller, Depends(_scope("reports:read"))]

# -- helpers --------------------------------------------------------------------------------


def _invalid(message: str, *loc: str | int) -> RequestValidationError:
    """A 422 in the app's usual shape: one sentence, then the details."""
    return RequestValidationError([{"loc": loc, "msg": message, "type": "value_error"}])


def _details_invalid(error: ValidationError) -> RequestValidationError:
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "details"
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(
            {
                "loc": ("body", "details", *item["loc"]),
                "msg": f"details.{where}: {message}" if item["loc"] else message,
                "type": item["type"],
            }
        )
    return RequestValidationError(problems)


def reference_from(raw: str, settings: Settings) -> str:
    """The reference in the path, written the standard way; 422 unless that is all it is."""
    text = raw.strip()
    if not re.fullmatch(settings.crime_reference_pattern, text):
        raise _invalid(NOT_A_REFERENCE, "path", "reference")
    reference = normalise_reference(
        text, settings.crime_reference_pattern, settings.crime_reference_format
    )
    if reference is None:
        raise _invalid(NOT_A_REFERENCE, "path", "reference")
    return reference


def _utc(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes (stored as UTC); PostgreSQL, the session's zone.
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def own_case(session: Session, agency: str, reference: str) -> Case:
    case = session.scalar(select(Case).where(Case.reference == reference))
    if case is None or case.agency != agency:
        raise HTTPException(status.HTTP_404_NOT_FOUND, NO_CASE)
    return case


async def _in_transaction(gateway: Gateway, work: Callable[..., T], *args: Any) -> T:
    """Run blocking `work(session, *args)` in one transaction; a unique-key race (two
    requests creating the same thing) is run once more, when it finds the winner's row."""
    for attempt in range(2):
        try:
            async with gateway.sessions() as session, session.begin():
                return await session.run_sync(work, *args)
        except IntegrityError:
            if attempt:
                raise HTTPException(
                    status.HTTP_409_CONFLICT,
                    "Another request changed this case at the same time. Try again.",
                ) from None
    raise AssertionError("unreachable")


# -- cases ----------------------------------------------------------------------------------


def _write_case(
    session: Session, caller: Caller, reference: str, body: CaseIn, settings: Settings
) -> CaseWritten:
    now = datetime.now(UTC)
    case = session.scalar(select(Case).where(Case.reference == reference))
    created = case is None
    if case is None:
        values = body.model_dump(exclude={"victims"})
        values["update_every_days"] = body.update_every_days or settings.update_every_days
        case = Case(
            reference=reference, agency=caller.agency, created_at=now, updated_at=now, **values
        )
        session.add(case)
        session.flush()
    elif case.agency != caller.agency:
        # References are unique across agencies; say no more than that it is taken.
        raise HTTPException(
            status.HTTP_409_CONFLICT, "That reference is already used by another agency."
        )
    else:
        for name, value in body.model_dump(exclude={"victims"}, exclude_unset=True).items():
            if name == "update_every_days" and value is None:
                value = settings.update_every_days
            setattr(case, name, value)
        case.updated_at = now

    existing = {
        v.external_id: v for v in session.scalars(select(Victim).where(Victim.case_id == case.id))
    }
    written = [
        _write_victim(session, case, existing.get(item.external_id), item, settings, now)
        for item in body.victims
    ]
    session.flush()
    return CaseWritten(
        reference=reference,
        created=created,
        stage=case.stage,
        victims=written,
        notifications_queued=sum(1 for v in written if v.enrolment_queued),
    )


def _write_victim(
    session: Session,
    case: Case,
    victim: Victim | None,
    item: VictimIn,
    settings: Settings,
    now: datetime,
) -> VictimWritten:
    created = victim is None
    if victim is None:
        victim = Victim(
            case_id=case.id, external_id=item.external_id, consent_at=now, created_at=now
        )
        session.add(victim)
    if item.preferences is not None or created:
        preferences = item.preferences or PreferencesIn()
        for name, value in preferences.model_dump(exclude_unset=not created).items():
            setattr(victim, name, value)
    session.flush()
    added = _add_contacts(session, victim, item.contacts, now)
    queued = bool(added) and _queue_enrolment(session, case, victim, now)
    link = telegram_link(session, settings, victim, now) if item.telegram_link else None
    return VictimWritten(
        external_id=item.external_id,
        created=created,
        new_contacts=added,
        telegram_link=link,
        enrolment_queued=queued,
    )


def _add_contacts(
    session: Session, victim: Victim, contacts: list[ContactIn], now: datetime
) -> int:
    known = set(
        session.execute(
            select(VictimContact.channel, VictimContact.address).where(
                VictimContact.victim_id == victim.id
            )
        )
    )
    added = 0
    for contact in contacts:
        if (contact.channel, contact.address) in known:
            continue
        known.add((contact.channel, contact.address))
        session.add(
            VictimContact(
                victim_id=victim.id,
                channel=contact.channel,
                address=contact.address,
                verified_at=None,
                created_at=now,
            )
        )
        added += 1
    return added


def _queue_enrolment(session: Session, case: Case, victim: Victim, now: datetime) -> bool:
    """One enrolment notification per victim: the worker sends a code to every contact
    still unproved when it runs, so a pending one already covers new contacts."""
    pending = session.scalar(
        select(Notification.id).where(
            Notification.victim_id == victim.id,
            Notification.kind == "enrolment",
            Notification.state == NotificationState.PENDING,
        )
    )
    if pending is not None:
        return False
    session.add(
        Notification(
            victim_id=victim.id,
            case_id=case.id,
            event_id=None,
            kind="enrolment",
            urgent=False,
            created_at=now,
        )
    )
    return True


@router.put(
    "/cases/{reference:path}",
    summary="Create or update a case and its victims",
    status_code=status.HTTP_200_OK,
    responses={
        200: {"description": "The case was updated"},
        201: {"model": CaseWritten, "description": "The case was created"},
        **_errors(401, 403, 409, 413, 422),
    },
)
async def put_case(
    reference: str, body: CaseIn, caller: CasesWrite, gateway: GatewayDep, response: Response
) -> CaseWritten:
    """Creates the case (201) or updates it (200). On update, case and preference fields
    left out keep their values; victims not listed are kept. Each new SMS number gets an
    enrolment code; `telegram_link: true` returns a one-time Telegram link, only here.
    Victims must have agreed to hear from Waymark (`consent: true`)."""
    settings = gateway.settings
    ref = reference_from(reference, settings)
    written = await _in_transaction(gateway, _write_case, caller, ref, body, settings)
    response.status_code = status.HTTP_201_CREATED if written.created else status.HTTP_200_OK
    return written


def _case_status(session: Session, caller: Caller, reference: str) -> CaseStatus:
    case = own_case(session, caller.agency, reference)
    events = session.scalars(
        select(CaseEvent)
        .where(CaseEvent.case_id == case.id)
        .order_by(CaseEvent.occurred_at.desc(), CaseEvent.id.desc())
        .limit(MAX_EVENTS_SHOWN)
    ).all()
    victims = session.scalars(
        select(Victim).where(Victim.case_id == case.id).order_by(Victim.id)
    ).all()
    counts: dict[tuple[int, bool], int] = {
        (victim_id, linked): count
        for victim_id, linked, count in session.execute(
            select(
                VictimContact.victim_id,
                VictimContact.verified_at.is_not(None),
                func.count(),
            )
            .join(Victim, Victim.id == VictimContact.victim_id)
            .where(Victim.case_id == case.id)
            .group_by(VictimContact.victim_id, VictimContact.verified_at.is_not(None))
        )
    }
    pending = session.scalar(
        select(func.count())
        .select_from(Notification)
        .where(
            Notification.case_id == case.id,
            Notification.state.in_([NotificationState.PENDING, NotificationState.SENDING]),
        )
    )
    last = _utc(case.last_victim_update_at)
    due = None
    if case.closed_at is None:  # as the watchdog counts: from the last update, or opening
        due = (last or _utc(case.created_at)) + timedelta(days=case.update_every_days)
    return CaseStatus(
        reference=case.reference,
        crime_type=case.crime_type,
        stage=case.stage,
        enhanced_rights=case.enhanced_rights,
        update_every_days=case.update_every_days,
        last_victim_update_at=last,
        next_update_due=due,
        next_key_date=case.next_key_date,
        next_key_date_kind=case.next_key_date_kind,
        next_key_place=case.next_key_place,
        officer_name=case.officer_name,
        officer_contact=case.officer_contact,
        witness_care_contact=case.witness_care_contact,
        closed_at=_utc(case.closed_at),
        events=[
            EventSummary(
                id=e.id,
                type=e.type,
                occurred_at=_utc(e.occurred_at),
                details=e.details or {},
                victim_informed_at=_utc(e.victim_informed_at),
            )
            for e in events
        ],
        victims=[
            VictimSummary(
                external_id=v.external_id,
                enrolled=v.secret_hash is not None,
                linked_contacts=counts.get((v.id, True), 0),
                unconfirmed_contacts=counts.get((v.id, False), 0),
            )
            for v in victims
        ],
        pending_notifications=pending or 0,
    )


# -- events ---------------------------------------------------------------------------------


def _post_event(
    session: Session, caller: Caller, reference: str, body: EventIn
) -> tuple[EventOut, bool]:
    case = own_case(session, caller.agency, reference)
    try:
        added = add_event(
            session,
            case,
            type=body.type,
            occurred_at=body.occurred_at,
            agency=caller.agency,
            external_id=body.external_id,
            details=body.details,
            note=body.note,
            victim_informed_at=body.victim_informed_at,
        )
    except EventConflict as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    except ValidationError as error:  # before ValueError: it is one
        raise _details_invalid(error) from None
    except ValueError as error:
        raise _invalid(str(error), "body") from None
    session.flush()
    event = added.event
    queued = session.scalar(
        select(func.count()).select_from(Notification).where(Notification.event_id == event.id)
    )
    out = EventOut(
        id=event.id,
        type=event.type,
        occurred_at=_utc(event.occurred_at),
        external_id=event.external_id,
        stage=case.stage,
        notifications_queued=queued or 0,
    )
    return out, added.created


@router.post(
    "/cases/{reference:path}/events",
    summary="Post a case event",
    status_code=status.HTTP_201_CREATED,
    responses={
        201: {"description": "The event was stored"},
        200: {"model": EventOut, "description": "A replay: this event id was already stored"},
        **_errors(401, 403, 404, 409, 413, 422),
    },
)
async def post_event(
    reference: str, body: EventIn, caller: EventsWrite, gateway: GatewayDep, response: Response
) -> EventOut:
    """Stores the event, moves the case on (stage, next key date, officer, closed) and
    queues a notification for each victim, all in one transaction. With `external_id`,
    a retry is safe: the same event again answers 200 with the same body; a different
    event under the same id answers 409."""
    ref = reference_from(reference, gateway.settings)
    try:
        validate_details(body.type, body.details)
    except ValidationError as error:
        raise _details_invalid(error) from None
    out, created = await _in_transaction(gateway, _post_event, caller, ref, body)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    return out


# -- reading --------------------------------------------------------------------------------


@router.get(
    "/cases/{reference:path}",
    summary="A case's status",
    responses=_errors(401, 403, 404, 422),
)
async def get_case(reference: str, caller: CasesRead, gateway: GatewayDep) -> CaseStatus:
    """The case as Waymark holds it: stage, dates, the latest events, and for each
    victim whether they have enrolled (never their addresses or secret)."""
    ref = reference_from(reference, gateway.settings)
    async with gateway.sessions() as session:
        return await session.run_sync(_case_status, caller, ref)


def _reset_secret(session: Session, caller: Caller, reference: str, external_id: str) -> None:
    case = own_case(session, caller.agency, reference)
    victim = session.scalar(
        select(Victim).where(Victim.case_id == case.id, Victim.external_id == external_id)
    )
    if victim is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "No victim with that id on this case.")
    victim.secret_hash = None
    victim.secret_set_at = None
    session.add(
        Notification(
            victim_id=victim.id,
            case_id=case.id,
            event_id=None,
            kind="secret_reset",
            urgent=False,
            created_at=datetime.now(UTC),
        )
    )
    session.add(
        audit.entry(
            f"agency:{caller.agency}",
            "secret_reset",
            case_id=case.id,
            detail={"key_id": caller.key_id, "victim_id": victim.id},
        )
    )


@router.post(
    "/cases/{reference:path}/victims/{external_id}/reset-secret",
    summary="Reset a victim's secret",
    status_code=status.HTTP_202_ACCEPTED,
    responses=_errors(401, 403, 404, 413, 422),
)
async def reset_secret(
    reference: str, external_id: str, caller: CasesWrite, gateway: GatewayDep
) -> SecretReset:
    """For a coordinator helping a victim who forgot their PIN or word: the old one
    stops working at once, and the victim is sent a code to choose a new one."""
    ref = reference_from(reference, gateway.settings)
    await _in_transaction(gateway, _reset_secret, caller, ref, external_id)
    return SecretReset(reference=ref, external_id=external_id, notification_queued=True)


@router.get(
    "/reports/compliance",
    summary="The Victims' Code compliance report",
    responses=_errors(401, 403, 422),
)
async def compliance(
    caller: ReportsRead,
    gateway: GatewayDep,
    days: Annotated[int, Query(ge=1, le=366, description="The period, in days")] = 28,
) -> dict[str, Any]:
    """Service-wide figures for the last `days` days: open cases, overdue updates, key
    decisions told in time, and contacts by route (see docs/watchdog.md)."""
    async with gateway.sessions() as session:
        report = await session.run_sync(watchdog.compliance_report, datetime.now(UTC), days)
    return report.as_dict()
