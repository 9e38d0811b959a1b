"""The notification worker: delivers the transactional outbox, so the victim hears first.

`bot.cases.events.add_event` writes a `Notification` row in the same transaction as the
event. Workers (`run_worker`, several side by side, in one process or many) claim due
rows and send them through `Gateway.notify`:

1. Claim: one statement moves up to `batch` due rows from pending to sending and
   commits before anything is sent (PostgreSQL: FOR UPDATE SKIP LOCKED, so workers
   never wait for or take each other's rows). A row is sent at most once: one left in
   `sending` by a crash is never picked up again, only counted by `stuck` for operators.
2. Decide at send time, since preferences can change after the event: paused victims
   get nothing; the route is the advocate, or the victim's linked contacts (preferred
   channel first, never SMS when texting is not safe); quiet hours defer all but urgent
   news (unless the victim opted out of that too).
3. Send the discreet nudge or the detailed message, and record what happened.

See docs/notifications.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from actions import content
from bot.cases import events
from bot.cases.enrolment import enrolment_text
from bot.cases.models import (
    Case,
    CaseEvent,
    Notification,
    NotificationState,
    Task,
    Victim,
    VictimContact,
    VictimUpdate,
)
from bot.cases.status import event_summary
from bot.cases.vocabulary import EVENT_TYPES
from bot.cases.working_days import LONDON
from bot.config import Settings
from bot.gateway import Gateway, Notified, Reply
from bot.models import Outbound

logger = logging.getLogger(__name__)

ENROLMENT_KINDS = frozenset({"enrolment", "secret_reset"})
NOTIFIABLE = ("sms", "telegram")  # channels a message nobody asked for can go out on
VICTIM, ADVOCATE_ROUTE = "victim", "advocate"
RETRY_AFTER = timedelta(minutes=5)  # when no provider is set up for the channel
MAX_ATTEMPTS = 5
NUDGE_AGAIN_AFTER = timedelta(days=1)  # an unread "new update" nudge is repeated at most daily
DISCREET = "case.notify.discreet"
DETAILED = "case.notify.detailed"  # {reference}, {summary}
ADVOCATE = "case.notify.advocate"
SHUTDOWN_GRACE = 10.0  # seconds a worker gets to finish its batch when the app stops


# -- pure decisions --------------------------------------------------------------------


def quiet_until(now: datetime, start: time | None, end: time | None) -> datetime | None:
    """The end of the victim's quiet hours (UTC) if `now` falls inside them, else None.

    The window is in London time, includes its start, excludes its end, and may wrap
    midnight (22:00-07:00). Equal start and end means no window.
    """
    if start is None or end is None or start == end:
        return None
    local = now.astimezone(LONDON)
    moment, today = local.time(), local.date()
    if start < end:
        inside, end_day = start <= moment < end, today
    else:
        inside = moment >= start or moment < end
        end_day = today + timedelta(days=1) if moment >= start else today
    if not inside:
        return None
    until = datetime.combine(end_day, end, LONDON).astimezone(UTC)
    return until if until > now else None  # a clock change can make the end already past


@dataclass(frozen=True)
class Route:
    recipient: str  # victim, advocate
    channel: str
    address: str
    contact_id: int | None = None


def _may_use(victim: Victim, channel: str) -> bool:
    # Anything but an explicit yes to texting keeps SMS off: someone may read the phone.
    return channel in NOTIFIABLE and (channel != "sms" or victim.safe_to_text is True)


def victim_routes(victim: Victim, contacts: Sequence[VictimContact]) -> list[Route]:
    """Where news goes, best first: the advocate alone, or the linked contacts (the
    preferred channel first). Empty when there is no safe route."""
    if victim.via_advocate and victim.advocate_phone:
        return [Route(ADVOCATE_ROUTE, "sms", victim.advocate_phone)]
    linked = [c for c in contacts if c.verified_at is not None and _may_use(victim, c.channel)]
    linked.sort(key=lambda c: (c.channel != victim.preferred_channel, c.id or 0))
    return [Route(VICTIM, c.channel, c.address, c.id) for c in linked]


def enrolment_routes(
    victim: Victim, contacts: Sequence[VictimContact], *, reset: bool = False
) -> list[Route]:
    """Every SMS contact still waiting to be proved gets its own code. After a secret
    reset, proved ones too: the code is how the person chooses a new secret."""
    return [
        Route(VICTIM, c.channel, c.address, c.id)
        for c in sorted(contacts, key=lambda c: (c.verified_at is None, c.id or 0))
        if (reset or c.verified_at is None) and c.channel == "sms" and _may_use(victim, c.channel)
    ]


@dataclass(frozen=True)
class Decision:
    action: str  # send, defer, cancel
    routes: tuple[Route, ...] = ()
    not_before: datetime | None = None
    reason: str | None = None  # why it was cancelled (no personal data)


def decide(
    notification: Notification,
    victim: Victim | None,
    contacts: Sequence[VictimContact],
    now: datetime,
) -> Decision:
    """What to do with a claimed notification now."""
    if victim is None or victim.paused:
        return Decision("cancel", reason="messages paused")
    if notification.kind in ENROLMENT_KINDS:
        routes = enrolment_routes(victim, contacts, reset=notification.kind == "secret_reset")
    else:
        routes = victim_routes(victim, contacts)
    if not routes:
        return Decision("cancel", reason="no safe route")
    if not (notification.urgent and victim.urgent_in_quiet_hours):
        until = quiet_until(now, victim.quiet_start, victim.quiet_end)
        if until is not None:
            return Decision("defer", not_before=until)
    return Decision("send", routes=tuple(routes))


def wording(route: Route, victim: Victim, case: Case, event: CaseEvent | None) -> tuple[str, bool]:
    """The text for one route, and whether it tells the news (not just that there is some).

    Discreet (the default) says only that there is an update: the detail comes after
    the person verifies and replies UPDATE. Advocates always get the detail.
    """
    if event is not None and route.recipient == ADVOCATE_ROUTE:
        item = content.item(ADVOCATE)
    elif event is None or victim.discreet is not False:
        return content.item(DISCREET).part(0), False
    else:
        item = content.item(DETAILED)
    opening = item.part(0, reference=case.reference, summary="")
    # The summary leaves room for the opening, so the whole stays SMS-sized.
    summary = event_summary(case, event, reserve=len(opening))
    return item.part(0, reference=case.reference, summary=summary), True


def important(kind: str) -> bool:
    """Urgent or a key decision: a coordinator must know when the victim can't be told."""
    event_type = EVENT_TYPES.get(kind)
    return event_type is not None and (event_type.urgent or event_type.key_decision)


# -- claiming --------------------------------------------------------------------------


async def _claim(gateway: Gateway, now: datetime, batch: int) -> list[int]:
    due = (
        select(Notification.id)
        .where(
            Notification.state == NotificationState.PENDING,
            or_(Notification.not_before.is_(None), Notification.not_before <= now),
        )
        .order_by(Notification.created_at, Notification.id)
        .limit(batch)
        # PostgreSQL: lock the rows, skipping any another worker holds. SQLite ignores
        # this; it has one writer, so the whole statement is already atomic.
        .with_for_update(skip_locked=True)
    )
    claim = (
        update(Notification)
        .where(Notification.id.in_(due), Notification.state == NotificationState.PENDING)
        .values(state=NotificationState.SENDING)
        .returning(Notification.id, Notification.created_at)
    )
    async with gateway.sessions() as session, session.begin():
        rows = (await session.execute(claim)).all()
    return [row.id for row in sorted(rows, key=lambda r: (r.created_at, r.id))]


async def _release(gateway: Gateway, ids: Sequence[int]) -> None:
    """Hand claimed rows nobody started on back to the queue (the worker is stopping)."""
    if not ids:
        return
    async with gateway.sessions() as session, session.begin():
        await session.execute(
            update(Notification)
            .where(Notification.id.in_(ids), Notification.state == NotificationState.SENDING)
            .values(state=NotificationState.PENDING)
        )


def stuck(session: Session) -> int:
    """Notifications in `sending`: briefly non-zero while a worker sends; a count that
    stays up means a worker died mid-send, and someone must check whether they went."""
    return (
        session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.state == NotificationState.SENDING)
        )
        or 0
    )


# -- one notification ------------------------------------------------------------------


@dataclass(frozen=True)
class _Send:
    route: Route
    text: str
    tells: bool  # a detailed message: the victim now knows the news


@dataclass(frozen=True)
class _Job:
    id: int
    case_id: int
    victim_id: int
    event_id: int | None
    kind: str
    attempts: int
    sends: tuple[_Send, ...]
    every_route: bool  # enrolment: every contact gets a code; news: the first that works


def _settle(session: Session, notification_id: int, **values: Any) -> None:
    session.execute(
        update(Notification)
        .where(Notification.id == notification_id, Notification.state == NotificationState.SENDING)
        .values(**values)
    )


def _no_route_task(session: Session, notification: Notification | _Job, now: datetime) -> None:
    enrolling = notification.kind in ENROLMENT_KINDS
    if not (important(notification.kind) or enrolling):
        return
    key = f"noroute:{notification.id}"
    if session.scalar(select(Task.id).where(Task.dedupe_key == key)) is not None:
        return
    urgent = not enrolling and EVENT_TYPES[notification.kind].urgent
    what = (
        "a code to set up updates (the agency was told it was queued)"
        if enrolling
        else notification.kind.replace("_", " ")
    )
    session.add(
        Task(
            kind="no_safe_route",
            dedupe_key=key,
            priority=0 if urgent else 1,
            case_id=notification.case_id,
            event_id=notification.event_id,
            detail=(
                f"The victim could not be sent: {what}. "
                "Waymark has no safe contact route for them. Please reach them another way."
            ),
            due_at=now,
            created_at=now,
        )
    )


def _prepare(
    session: Session, notification_id: int, settings: Settings, now: datetime
) -> _Job | None:
    """Decide, and settle at once what needs no sending. Returns the sends otherwise."""
    found = session.execute(
        select(Notification, Victim, Case, CaseEvent)
        .outerjoin(Victim, Victim.id == Notification.victim_id)
        .outerjoin(Case, Case.id == Notification.case_id)
        .outerjoin(CaseEvent, CaseEvent.id == Notification.event_id)
        .where(Notification.id == notification_id)
    ).one_or_none()
    if found is None or found.Notification.state != NotificationState.SENDING:
        return None
    notification, victim, case, event = found
    contacts = (
        session.scalars(select(VictimContact).where(VictimContact.victim_id == victim.id)).all()
        if victim is not None
        else []
    )
    decision = decide(notification, victim, contacts, now)
    if decision.action == "cancel":
        _settle(session, notification.id, state=NotificationState.CANCELLED, error=decision.reason)
        if decision.reason == "no safe route":
            _no_route_task(session, notification, now)
        return None
    if decision.action == "defer":
        _settle(
            session,
            notification.id,
            state=NotificationState.PENDING,
            not_before=decision.not_before,
        )
        return None
    assert victim is not None
    enrolling = notification.kind in ENROLMENT_KINDS
    if enrolling:
        # The codes are committed before they are sent, so a quick reply finds them.
        sends = tuple(
            _Send(
                r,
                enrolment_text(session, settings, session.get(VictimContact, r.contact_id), now),
                False,
            )
            for r in decision.routes
        )
    else:
        assert case is not None
        sends = tuple(_Send(r, *wording(r, victim, case, event)) for r in decision.routes)
        if not any(send.tells for send in sends) and _nudged_already(session, victim, now):
            # One "you have a new update" is enough until they read it: ten events
            # imported at once must not mean ten identical texts.
            _settle(session, notification.id, state=NotificationState.CANCELLED, error="merged")
            return None
    return _Job(
        id=notification.id,
        case_id=notification.case_id,
        victim_id=notification.victim_id,
        event_id=notification.event_id,
        kind=notification.kind,
        attempts=notification.attempts,
        sends=sends,
        every_route=enrolling,
    )


def _nudged_already(session: Session, victim: Victim, now: datetime) -> bool:
    """A discreet nudge went out in the last day and the victim hasn't looked since."""
    since = now - NUDGE_AGAIN_AFTER
    looked = session.scalar(
        select(func.max(VictimUpdate.at)).where(VictimUpdate.victim_id == victim.id)
    )
    if looked is not None:
        since = max(since, looked if looked.tzinfo else looked.replace(tzinfo=UTC))
    return (
        session.scalar(
            select(Notification.id)
            .where(
                Notification.victim_id == victim.id,
                Notification.state == NotificationState.SENT,
                Notification.event_id.is_not(None),
                Notification.sent_at > since,
            )
            .limit(1)
        )
        is not None
    )


def _record(
    session: Session, job: _Job, results: Sequence[tuple[_Send, Notified]], now: datetime
) -> None:
    attempts = job.attempts + 1
    delivered = [(s, n) for s, n in results if n.status in ("sent", "demo")]
    statuses = {n.status for _, n in results}
    if delivered:
        send, notified = delivered[0]
        _settle(
            session,
            job.id,
            state=NotificationState.SENT,
            sent_at=now,
            channel=send.route.channel,
            recipient=send.route.recipient,
            outbound_id=notified.outbound_id,
            attempts=attempts,
            error=None,
        )
        if any(s.tells for s, _ in delivered):
            events.record_victim_update(session, job.case_id, job.victim_id, "proactive", now)
    elif "no_channel" in statuses:
        missing = sorted({s.route.channel for s, n in results if n.status == "no_channel"})
        if attempts >= MAX_ATTEMPTS:
            error = f"no provider set up for {', '.join(missing)}"
            _settle(session, job.id, state=NotificationState.FAILED, attempts=attempts, error=error)
        else:
            _settle(
                session,
                job.id,
                state=NotificationState.PENDING,
                not_before=now + RETRY_AFTER,
                attempts=attempts,
            )
    elif "failed" in statuses:
        reasons = []
        for send, notified in results:
            if notified.status != "failed":
                continue
            code = None
            if notified.outbound_id is not None:
                code = session.scalar(
                    select(Outbound.error_code).where(Outbound.id == notified.outbound_id)
                )
            reasons.append(f"{send.route.channel} {code or 'error'}")
        error = f"refused by the provider ({'; '.join(reasons)})"[:200]
        _settle(session, job.id, state=NotificationState.FAILED, attempts=attempts, error=error)
    else:  # every route has opted out (replied STOP, blocked the bot)
        _settle(
            session,
            job.id,
            state=NotificationState.CANCELLED,
            attempts=attempts,
            error="no safe route (opted out)",
        )
        if not job.every_route:
            _no_route_task(session, job, now)


def _not_prepared(session: Session, notification_id: int, reason: str, now: datetime) -> None:
    attempts = (
        session.scalar(select(Notification.attempts).where(Notification.id == notification_id)) or 0
    ) + 1
    if attempts >= MAX_ATTEMPTS:
        values: dict[str, Any] = {"state": NotificationState.FAILED}
    else:
        values = {"state": NotificationState.PENDING, "not_before": now + RETRY_AFTER}
    _settle(
        session,
        notification_id,
        attempts=attempts,
        error=f"could not be prepared ({reason})",
        **values,
    )


async def _deliver_one(gateway: Gateway, notification_id: int, now: datetime) -> None:
    try:
        async with gateway.sessions() as session, session.begin():
            job = await session.run_sync(_prepare, notification_id, gateway.settings, now)
    except Exception as error:
        # Nothing went out, so it can be tried again: the database may have been away.
        logger.error(
            "Notification %s could not be prepared (%s)", notification_id, type(error).__name__
        )
        async with gateway.sessions() as session, session.begin():
            await session.run_sync(_not_prepared, notification_id, type(error).__name__, now)
        return
    if job is None:
        return
    results: list[tuple[_Send, Notified]] = []
    source = "enrolment" if job.every_route else "notification"
    for send in job.sends:
        notified = await gateway.notify(
            send.route.channel, send.route.address, Reply(send.text), source=source
        )
        results.append((send, notified))
        if notified.status in ("sent", "demo") and not job.every_route:
            break
    async with gateway.sessions() as session, session.begin():
        await session.run_sync(_record, job, results, now)


# -- the worker ------------------------------------------------------------------------


async def deliver_due(gateway: Gateway, *, now: datetime | None = None, batch: int = 50) -> int:
    """Claim and send up to `batch` due notifications, oldest first. Returns how many
    were claimed. `now` fixes the clock (tests); otherwise each send uses the time."""
    now = now.astimezone(UTC) if now else None  # SQLite compares stored UTC as text
    claimed = await _claim(gateway, now or datetime.now(UTC), batch)
    for index, notification_id in enumerate(claimed):
        try:
            await _deliver_one(gateway, notification_id, now or datetime.now(UTC))
        except asyncio.CancelledError:
            # Stopping: the rest were never started, so they can safely go back.
            await asyncio.shield(_release(gateway, claimed[index + 1 :]))
            raise
        except Exception as error:
            # It may have gone out: left in `sending`, counted by `stuck`. No details
            # in the log: exception messages can carry addresses and text.
            logger.error(
                "Notification %s failed while sending (%s)", notification_id, type(error).__name__
            )
    return len(claimed)


async def run_worker(gateway: Gateway, stop: asyncio.Event, *, batch: int = 50) -> None:
    """Deliver due notifications every `notify_interval` seconds until `stop` is set."""
    interval = gateway.settings.notify_interval
    while not stop.is_set():
        full = False
        try:
            full = await deliver_due(gateway, batch=batch) >= batch
        except Exception as error:  # the database may be away for a moment
            logger.error("Notification worker: %s; trying again", type(error).__name__)
        if full:
            await asyncio.sleep(0)  # more are due: go again at once
            continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), interval)


def start_workers(gateway: Gateway, stop: asyncio.Event) -> list[asyncio.Task[None]]:
    return [
        asyncio.create_task(run_worker(gateway, stop), name=f"notify-{i}")
        for i in range(gateway.settings.notify_workers)
    ]


async def stop_workers(
    tasks: Sequence[asyncio.Task[None]], stop: asyncio.Event, grace: float = SHUTDOWN_GRACE
) -> None:
    """Let the workers finish their batch, then cancel any still sending."""
    stop.set()
    if not tasks:
        return
    _, running = await asyncio.wait(tasks, timeout=grace)
    for task in running:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
