"""The notification worker: delivers the transactional outbox, so the victim hears first.

`bot.cases.events.add_event` writes a `Notification` row in the same transaction as the
event. Workers (`run_worker`, several side by side, in one process or many) claim due
rows and send them through `Gateway.notify_many`, a batch at a time:

1. Claim: one statement moves up to `batch` due rows, with every other due row of the
   same victims, from pending to sending and commits before anything is sent
   (PostgreSQL: FOR UPDATE SKIP LOCKED, one claim at a time, so workers never take each
   other's rows and a victim's news is never split between them). A row is sent at
   most once: one left in `sending` by a crash is never picked up again, only counted
   by `stuck` for operators.
2. Decide at send time, since preferences can change after the event: paused victims
   get nothing; the route is the advocate, or the victim's linked contacts (preferred
   channel first, never SMS when texting is not safe); quiet hours defer all but urgent
   news (unless the victim opted out of that too). The whole batch in one transaction.
3. Send the discreet nudge or the detailed message, different victims' at the same time
   and each victim's in order, merging nudges the victim hasn't read; record each round
   of sends in one transaction.

See docs/notifications.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.orm import Session, aliased

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
from bot.gateway import Gateway, Notice, Notified, Reply
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
# Messages one worker has with the providers at once: provider calls are mostly waiting,
# but Twilio and Telegram limit concurrent requests per account.
PARALLEL = 25
CLAIM_LOCK = 0x57A1_0001  # PostgreSQL advisory lock key: one claim at a time


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
        Notification.state == NotificationState.PENDING,
        or_(Notification.not_before.is_(None), Notification.not_before <= now),
    )
    oldest = (
        select(Notification.victim_id)
        .where(*due)
        .order_by(Notification.created_at, Notification.id)
        .limit(batch)
        # PostgreSQL: lock the rows, skipping any another transaction holds. SQLite
        # ignores this; it has one writer, so the whole statement is already atomic.
        .with_for_update(skip_locked=True)
        # Run once: as a plain subquery PostgreSQL may run it again for each row the
        # update meets, and SKIP LOCKED then passes over the rows just claimed.
        .cte("oldest")
        .prefix_with("MATERIALIZED")
    )
    # Their victims' other due rows come too: a victim's nudges can only be merged, and
    # their news sent in order, by the one worker that has them all.
    claim = (
        update(Notification)
        .where(Notification.victim_id.in_(select(oldest.c.victim_id)), *due)
        .values(state=NotificationState.SENDING)
        .returning(Notification.id, Notification.created_at)
    )
    async with gateway.sessions() as session, session.begin():
        if (await session.connection()).dialect.name == "postgresql":
            # One claim at a time: two at once could split a victim's rows between them.
            await session.execute(select(func.pg_advisory_xact_lock(CLAIM_LOCK)))
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


# -- preparing a batch -----------------------------------------------------------------

DELIVERED = ("sent", "demo")


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

    @property
    def nudge_only(self) -> bool:
        """Says only "you have a new update": merged while an earlier one is unread."""
        return not self.every_route and not any(send.tells for send in self.sends)


@dataclass
class _Prepared:
    jobs: list[_Job] = field(default_factory=list)  # in claim order
    # Per victim with news to send: a nudge went out in the last day, unread since.
    nudged: dict[int, bool] = field(default_factory=dict)


Settle = tuple[int, dict[str, Any]]  # a notification id, the values it moves on with


def _settle(session: Session, settles: Sequence[Settle]) -> None:
    """Move claimed rows on, if still claimed: one statement per set of columns, run as
    executemany (pipelined by psycopg) when there are several."""
    shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for notification_id, values in settles:
        shapes.setdefault(tuple(sorted(values)), []).append(
            {"n_id": notification_id, **{f"n_{key}": value for key, value in values.items()}}
        )
    for keys, params in shapes.items():
        # Core on the connection: plain UPDATEs, not the ORM's bulk-by-key form.
        session.connection().execute(
            update(Notification)
            .where(
                Notification.id == bindparam("n_id"),
                Notification.state == NotificationState.SENDING,
            )
            .values({key: bindparam(f"n_{key}") for key in keys}),
            params,
        )


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes; everything stored is UTC.
    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


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


def _prepare(session: Session, ids: Sequence[int], settings: Settings, now: datetime) -> _Prepared:
    """Decide for claimed rows in two queries, and settle at once those that need no
    sending (paused, no safe route, quiet hours). Returns the sends for the rest."""
    since = now - NUDGE_AGAIN_AFTER
    earlier = aliased(Notification)
    looked = (
        select(func.max(VictimUpdate.at))
        .where(VictimUpdate.victim_id == Notification.victim_id)
        .scalar_subquery()
    )
    news_sent = and_(earlier.state == NotificationState.SENT, earlier.event_id.is_not(None))
    nudge = (
        # The state test is max()'s FILTER, not in WHERE: an index on state would tempt
        # the planner away from the victim's own few rows.
        select(func.max(earlier.sent_at).filter(news_sent))
        .where(earlier.victim_id == Notification.victim_id, earlier.sent_at > since)
        .scalar_subquery()
    )
    rows = session.execute(
        select(Notification, Victim, Case, CaseEvent, looked, nudge)
        .outerjoin(Victim, Victim.id == Notification.victim_id)
        .outerjoin(Case, Case.id == Notification.case_id)
        .outerjoin(CaseEvent, CaseEvent.id == Notification.event_id)
        .where(Notification.id.in_(ids), Notification.state == NotificationState.SENDING)
    ).all()
    found = {row[0].id: row for row in rows}
    contacts: dict[int, list[VictimContact]] = {}
    victim_ids = {victim.id for _, victim, *_ in found.values() if victim is not None}
    if victim_ids:
        for contact in session.scalars(
            select(VictimContact).where(VictimContact.victim_id.in_(victim_ids))
        ):
            contacts.setdefault(contact.victim_id, []).append(contact)
    prepared = _Prepared()
    settles: list[Settle] = []
    for notification_id in ids:
        if notification_id not in found:
            continue
        notification, victim, case, event, looked_at, nudged_at = found[notification_id]
        decision = decide(notification, victim, contacts.get(notification.victim_id, []), now)
        if decision.action == "cancel":
            settles.append(
                (notification.id, {"state": NotificationState.CANCELLED, "error": decision.reason})
            )
            if decision.reason == "no safe route":
                _no_route_task(session, notification, now)
            continue
        if decision.action == "defer":
            settles.append(
                (
                    notification.id,
                    {"state": NotificationState.PENDING, "not_before": decision.not_before},
                )
            )
            continue
        assert victim is not None
        enrolling = notification.kind in ENROLMENT_KINDS
        if enrolling:
            # The codes are committed before they are sent, so a quick reply finds them.
            sends = tuple(
                _Send(
                    r,
                    enrolment_text(
                        session, settings, session.get(VictimContact, r.contact_id), now
                    ),
                    False,
                )
                for r in decision.routes
            )
        else:
            assert case is not None
            sends = tuple(_Send(r, *wording(r, victim, case, event)) for r in decision.routes)
            nudged_at, looked_at = _aware(nudged_at), _aware(looked_at)
            prepared.nudged[victim.id] = nudged_at is not None and (
                looked_at is None or nudged_at > looked_at
            )
        prepared.jobs.append(
            _Job(
                id=notification.id,
                case_id=notification.case_id,
                victim_id=notification.victim_id,
                event_id=notification.event_id,
                kind=notification.kind,
                attempts=notification.attempts,
                sends=sends,
                every_route=enrolling,
            )
        )
    _settle(session, settles)
    return prepared


def _not_prepared(session: Session, notification_id: int, reason: str, now: datetime) -> None:
    attempts = (
        session.scalar(select(Notification.attempts).where(Notification.id == notification_id)) or 0
    ) + 1
    if attempts >= MAX_ATTEMPTS:
        values: dict[str, Any] = {"state": NotificationState.FAILED}
    else:
        values = {"state": NotificationState.PENDING, "not_before": now + RETRY_AFTER}
    values |= {"attempts": attempts, "error": f"could not be prepared ({reason})"}
    _settle(session, [(notification_id, values)])


async def _prepare_all(gateway: Gateway, ids: Sequence[int], now: datetime) -> _Prepared:
    """The batch in one transaction; if that fails, each alone, so one that can't be
    prepared (a bug in its wording, say) holds up nobody else."""
    if len(ids) > 1:
        try:
            async with gateway.sessions() as session, session.begin():
                return await session.run_sync(_prepare, ids, gateway.settings, now)
        except Exception as error:
            logger.warning(
                "%d notifications could not be prepared together (%s); one at a time",
                len(ids),
                type(error).__name__,
            )
    prepared = _Prepared()
    for notification_id in ids:
        try:
            async with gateway.sessions() as session, session.begin():
                one = await session.run_sync(_prepare, [notification_id], gateway.settings, now)
        except Exception as error:
            # Nothing went out, so it can be tried again: the database may have been away.
            logger.error(
                "Notification %s could not be prepared (%s)", notification_id, type(error).__name__
            )
            try:
                async with gateway.sessions() as session, session.begin():
                    await session.run_sync(
                        _not_prepared, notification_id, type(error).__name__, now
                    )
            except Exception as again:  # left in `sending`, counted by `stuck`
                logger.error("Notification %s: %s", notification_id, type(again).__name__)
            continue
        prepared.jobs += one.jobs
        prepared.nudged |= one.nudged
    return prepared


# -- sending and recording -------------------------------------------------------------

Results = list[tuple[_Send, Notified]]


@dataclass
class _Run:
    """A job being sent, and what each of its sends so far came to."""

    job: _Job
    results: Results = field(default_factory=list)

    def next_sends(self) -> tuple[_Send, ...]:
        # Enrolment: every contact's code at once. News: one route, the next if it failed.
        tried = len(self.results)
        return self.job.sends[tried:] if self.job.every_route else self.job.sends[tried : tried + 1]

    @property
    def finished(self) -> bool:
        return len(self.results) == len(self.job.sends) or (
            not self.job.every_route and any(n.status in DELIVERED for _, n in self.results)
        )


def _outcome(session: Session, job: _Job, results: Results, now: datetime) -> dict[str, Any]:
    """What a sent job's row becomes (and what goes with it: the victim told, a task)."""
    attempts = job.attempts + 1
    delivered = [(s, n) for s, n in results if n.status in DELIVERED]
    statuses = {n.status for _, n in results}
    if delivered:
        send, notified = delivered[0]
        if any(s.tells for s, _ in delivered):
            events.record_victim_update(session, job.case_id, job.victim_id, "proactive", now)
        return {
            "state": NotificationState.SENT,
            "sent_at": now,
            "channel": send.route.channel,
            "recipient": send.route.recipient,
            "outbound_id": notified.outbound_id,
            "attempts": attempts,
            "error": None,
        }
    if "no_channel" in statuses:
        missing = sorted({s.route.channel for s, n in results if n.status == "no_channel"})
        if attempts >= MAX_ATTEMPTS:
            error = f"no provider set up for {', '.join(missing)}"
            return {"state": NotificationState.FAILED, "attempts": attempts, "error": error}
        return {
            "state": NotificationState.PENDING,
            "not_before": now + RETRY_AFTER,
            "attempts": attempts,
        }
    if "failed" in statuses:
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
        return {"state": NotificationState.FAILED, "attempts": attempts, "error": error}
    # Every route has opted out (replied STOP, blocked the bot).
    if not job.every_route:
        _no_route_task(session, job, now)
    return {
        "state": NotificationState.CANCELLED,
        "attempts": attempts,
        "error": "no safe route (opted out)",
    }


Done = tuple[_Job, Results | None]  # None: merged, never sent


def _record(session: Session, done: Sequence[Done], now: datetime) -> None:
    settles: list[Settle] = []
    for job, results in done:
        if results is None:
            settles.append((job.id, {"state": NotificationState.CANCELLED, "error": "merged"}))
        else:
            settles.append((job.id, _outcome(session, job, results, now)))
    _settle(session, settles)


async def _record_all(gateway: Gateway, done: Sequence[Done], now: datetime) -> None:
    """A round's results in one transaction; if that fails, each alone."""
    try:
        async with gateway.sessions() as session, session.begin():
            await session.run_sync(_record, done, now)
        return
    except Exception as error:
        if len(done) == 1:
            job = done[0][0]
            logger.error("Notification %s not recorded (%s)", job.id, type(error).__name__)
            return
        logger.warning(
            "%d notifications could not be recorded together (%s); one at a time",
            len(done),
            type(error).__name__,
        )
    for item in done:
        try:
            async with gateway.sessions() as session, session.begin():
                await session.run_sync(_record, [item], now)
        except Exception as error:  # it went: left in `sending`, counted by `stuck`
            logger.error("Notification %s not recorded (%s)", item[0].id, type(error).__name__)


async def _round(
    gateway: Gateway, sends: Sequence[tuple[_Run, _Send]], nudged: dict[int, bool]
) -> tuple[list[Done], list[_Run]]:
    """Send one message per entry at once. Returns the jobs finished, and the jobs to
    drop: an error means a message may have gone, so those stay in `sending`."""
    notices = [
        Notice(
            send.route.channel,
            send.route.address,
            Reply(send.text),
            "enrolment" if run.job.every_route else "notification",
        )
        for run, send in sends
    ]
    runs = list({id(run): run for run, _ in sends}.values())
    try:
        results = await gateway.notify_many(notices)
    except Exception as error:
        # No details in the log: exception messages can carry addresses and text.
        ids = ", ".join(str(run.job.id) for run in runs)
        logger.error("Notifications %s failed while sending (%s)", ids, type(error).__name__)
        return [], runs
    dropped: dict[int, _Run] = {}
    for (run, send), result in zip(sends, results, strict=True):
        if isinstance(result, Exception):
            logger.error(
                "Notification %s failed while sending (%s)", run.job.id, type(result).__name__
            )
            dropped[id(run)] = run
        else:
            run.results.append((send, result))
    done: list[Done] = []
    for run in runs:
        if id(run) in dropped or not run.finished:
            continue
        done.append((run.job, run.results))
        delivered = [s for s, n in run.results if n.status in DELIVERED]
        if delivered and run.job.event_id is not None:
            # The detail brings the victim up to date; a nudge waits to be read.
            nudged[run.job.victim_id] = not any(s.tells for s in delivered)
    return done, list(dropped.values())


async def _send(
    gateway: Gateway, prepared: _Prepared, fixed: datetime | None, started: set[int]
) -> None:
    """Send in rounds: one job per victim at a time (their news in order, each decided
    on what the last one came to), up to PARALLEL messages at once and one per address;
    each round's results recorded together. `started` gets every job something may
    have been sent for."""
    chains: dict[int, deque[_Job]] = {}
    for job in prepared.jobs:
        chains.setdefault(job.victim_id, deque()).append(job)
    running: dict[int, _Run] = {}  # by victim
    while chains or running:
        done: list[Done] = []
        for victim_id, chain in list(chains.items()):
            if victim_id in running:
                continue
            # One "you have a new update" is enough until they read it: ten events
            # imported at once must not mean ten identical texts.
            while chain and chain[0].nudge_only and prepared.nudged.get(victim_id, False):
                done.append((chain.popleft(), None))
            if chain:
                running[victim_id] = _Run(chain.popleft())
            if not chain:
                del chains[victim_id]
        sends: list[tuple[_Run, _Send]] = []
        busy: set[tuple[str, str]] = set()
        for run in running.values():
            some = run.next_sends()
            addresses = {(send.route.channel, send.route.address) for send in some}
            if sends and (len(sends) + len(some) > PARALLEL or addresses & busy):
                continue  # the next round
            sends += [(run, send) for send in some]
            busy |= addresses
            started.add(run.job.id)
        if sends:
            finished, dropped = await _round(gateway, sends, prepared.nudged)
            for job, _ in finished:
                del running[job.victim_id]
            for run in dropped:
                del running[run.job.victim_id]
            done += finished
        if done:
            await _record_all(gateway, done, fixed or datetime.now(UTC))


# -- the worker ------------------------------------------------------------------------


async def deliver_due(gateway: Gateway, *, now: datetime | None = None, batch: int = 50) -> int:
    """Claim and send about `batch` due notifications, oldest first (with their victims'
    other due ones). Returns how many were claimed. `now` fixes the clock (tests);
    otherwise each step uses the time."""
    fixed = now.astimezone(UTC) if now else None  # SQLite compares stored UTC as text
    claimed = await _claim(gateway, fixed or datetime.now(UTC), batch)
    if not claimed:
        return 0
    started: set[int] = set()
    try:
        prepared = await _prepare_all(gateway, claimed, fixed or datetime.now(UTC))
        await _send(gateway, prepared, fixed, started)
    except BaseException:
        # Stopping (or a bug): those never started can safely go back. The others may
        # have gone out: left in `sending`, counted by `stuck`.
        await asyncio.shield(_release(gateway, [i for i in claimed if i not in started]))
        raise
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
