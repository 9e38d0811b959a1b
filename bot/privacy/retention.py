"""Retention: the scheduled purge of data kept longer than its retention period, and
the `python -m bot privacy purge|forget` commands. See docs/privacy.md ("Retention").

A conversation is *identified* when it was ever linked to a victim (a verified case
look-up, or its address is a victim's registered contact); otherwise *anonymous*.
Its messages, coordinator notes and, once idle, the conversation and contact go after
`retention_identified_days` or `retention_anonymous_days`. Never a message still
waiting for an answer, nothing of a conversation with an open handoff, and never an
opted-out contact (its opt-out is what stops us texting it again).

Work is done in batches, one short transaction each: the gateway writes meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Select,
    and_,
    delete,
    func,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased

from bot import db
from bot.cases.models import (
    Notification,
    OneTimeCode,
    Task,
    TaskState,
    VerificationAttempt,
    VictimContact,
)
from bot.config import Settings
from bot.handoff.models import (
    AuditEntry,
    ConsoleSession,
    Feedback,
    Handoff,
    HandoffEvent,
    HandoffState,
)
from bot.models import Contact, Conversation, Inbound, InboundState, Outbound
from bot.privacy.erase import (
    Removed,
    erase_conversations,
    forget_conversation,
    run,
    tracker_events,
    utc,
)
from bot.services.models import OPEN, NeedsAssessment, Referral, ReferralEvent

logger = logging.getLogger(__name__)

BATCH = 500  # rows per transaction (and bound ids per statement)
FIRST_RUN_DELAY = 60.0  # seconds after start-up: webhooks retried by providers go first


@dataclass(frozen=True)
class _Cuts:
    now: datetime
    anonymous: datetime
    identified: datetime
    attempts: datetime
    audit: datetime
    tracker: datetime

    @classmethod
    def of(cls, settings: Settings, now: datetime) -> _Cuts:
        return cls(
            now=now,
            anonymous=now - timedelta(days=settings.retention_anonymous_days),
            identified=now - timedelta(days=settings.retention_identified_days),
            # Failed checks only count within the lock-out window.
            attempts=now - timedelta(hours=settings.verification_window_hours),
            audit=now - timedelta(days=settings.retention_audit_days),
            tracker=now - timedelta(days=settings.retention_tracker_days),
        )

    def of_class(self, identified: bool) -> datetime:
        return self.identified if identified else self.anonymous


@dataclass(frozen=True)
class _Step:
    table: str  # what the count is reported as
    ids: Select[Any]  # the primary keys of the rows to handle
    apply: Callable[[Session, list[Any], Removed], None]


# -- what is expired ------------------------------------------------------------------------


def _identified() -> ColumnElement[bool]:
    """The conversation (joined with its contact) was ever linked to a victim."""
    registered = (
        select(VictimContact.id)
        .where(VictimContact.channel == Contact.channel, VictimContact.address == Contact.address)
        .exists()
    )
    return or_(Conversation.verified_victim_id.is_not(None), registered)


def _of_class(identified: bool) -> ColumnElement[bool]:
    return _identified() if identified else not_(_identified())


def _open_handoff() -> ColumnElement[bool]:
    other = aliased(Handoff)  # the notes' query has `handoffs` in its FROM already
    return (
        select(other.id)
        .where(other.conversation_id == Conversation.id, other.state != HandoffState.CLOSED)
        .exists()
    )


def _idle(cut: datetime) -> ColumnElement[bool]:
    return and_(Contact.last_seen_at < cut, Conversation.updated_at < cut)


def _of_conversations(query: Select[Any], conversation_id: Any) -> Select[Any]:
    return query.join(Conversation, Conversation.id == conversation_id).join(
        Contact, Contact.id == Conversation.contact_id
    )


def _message_steps(cuts: _Cuts, identified: bool) -> list[_Step]:
    cut = cuts.of_class(identified)
    where = (_of_class(identified), not_(_open_handoff()))
    outbound = _of_conversations(select(Outbound.id), Outbound.conversation_id).where(
        Outbound.created_at < cut, *where
    )
    inbound = _of_conversations(select(Inbound.id), Inbound.conversation_id).where(
        Inbound.received_at < cut, Inbound.state != InboundState.PENDING, *where
    )
    # Coordinators' notes are kept like messages.
    notes = (
        select(HandoffEvent.id)
        .join(Handoff, Handoff.id == HandoffEvent.handoff_id)
        .join(Conversation, Conversation.id == Handoff.conversation_id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(HandoffEvent.text.is_not(None), HandoffEvent.at < cut, *where)
    )
    return [
        _Step("outbound_messages", outbound, _delete_outbound),
        _Step("inbound_messages", inbound, _delete_inbound),
        _Step("handoff_events", notes, _clear_notes),
    ]


def _other_steps(cuts: _Cuts) -> list[_Step]:
    old_comment = and_(Feedback.at < cuts.anonymous, Feedback.comment.is_not(None))
    idle_referral = _of_conversations(select(Referral.id), Referral.conversation_id).where(
        Referral.status.not_in(OPEN),
        func.coalesce(Referral.closed_at, Referral.updated_at) < cuts.anonymous,
        _idle(cuts.anonymous),
    )
    idle_needs = _of_conversations(
        select(NeedsAssessment.id), NeedsAssessment.conversation_id
    ).where(NeedsAssessment.updated_at < cuts.anonymous, _idle(cuts.anonymous))
    return [
        # A comment alone goes with its row; a rating stays for the service's figures.
        _Step(
            "feedback",
            select(Feedback.id).where(old_comment, Feedback.rating.is_(None)),
            _deleting(Feedback),
        ),
        _Step(
            "feedback",
            select(Feedback.id).where(old_comment, Feedback.rating.is_not(None)),
            _clear_comments,
        ),
        _Step("referrals", idle_referral, _delete_referrals),
        _Step("needs_assessments", idle_needs, _deleting(NeedsAssessment)),
        _Step(
            "one_time_codes",
            select(OneTimeCode.id).where(OneTimeCode.expires_at < cuts.now),
            _deleting(OneTimeCode),
        ),
        _Step(
            "verification_attempts",
            select(VerificationAttempt.id).where(VerificationAttempt.at < cuts.attempts),
            _deleting(VerificationAttempt),
        ),
        _Step(
            "console_sessions",
            select(ConsoleSession.id).where(
                or_(ConsoleSession.expires_at < cuts.now, ConsoleSession.revoked_at.is_not(None))
            ),
            _deleting(ConsoleSession),
        ),
    ]


def _conversation_step(cuts: _Cuts, identified: bool) -> _Step:
    """Idle conversations (and their contacts) with nothing left that is still kept.

    "Still kept" mirrors the other steps, so a dry run counts what a real run deletes.
    What remains goes with the conversation: closed handoffs, ratings, old codes.
    """
    cut = cuts.of_class(identified)
    mine = Conversation.id

    def left(model: Any, *keep: Any) -> ColumnElement[bool]:
        return select(model.id).where(model.conversation_id == mine, or_(*keep)).exists()

    recent = or_(Contact.last_seen_at >= cuts.anonymous, Conversation.updated_at >= cuts.anonymous)
    blockers = [
        left(Inbound, Inbound.state == InboundState.PENDING, Inbound.received_at >= cut),
        left(Outbound, Outbound.created_at >= cut),
        left(Handoff, Handoff.state != HandoffState.CLOSED),
        left(
            Referral,
            Referral.status.in_(OPEN),
            func.coalesce(Referral.closed_at, Referral.updated_at) >= cuts.anonymous,
            recent,
        ),
        left(NeedsAssessment, NeedsAssessment.updated_at >= cuts.anonymous, recent),
        left(Task, Task.state == TaskState.OPEN),  # a coordinator still needs it
        left(OneTimeCode, OneTimeCode.expires_at >= cuts.now),
        left(VerificationAttempt, VerificationAttempt.at >= cuts.attempts),
    ]
    ids = (
        select(Conversation.id)
        .join(Contact, Contact.id == Conversation.contact_id)
        .where(
            Contact.opted_out.is_(False),
            _idle(cut),
            _of_class(identified),
            *(not_(b) for b in blockers),
        )
    )

    def apply(session: Session, batch: list[Any], removed: Removed) -> None:
        erase_conversations(session, batch, now=cuts.now, removed=removed, outcome="expired")

    return _Step("conversations", ids, apply)


def _audit_step(cuts: _Cuts) -> _Step:
    def apply(session: Session, batch: list[Any], removed: Removed) -> None:
        if session.get_bind().dialect.name == "postgresql":
            # The append-only trigger lets this transaction delete entries before the cut.
            session.execute(
                text("SELECT set_config('waymark.audit_purge_before', :cut, true)"),
                {"cut": cuts.audit.isoformat()},
            )
        removed.add("audit_log", run(session, delete(AuditEntry).where(AuditEntry.id.in_(batch))))

    return _Step("audit_log", select(AuditEntry.id).where(AuditEntry.at < cuts.audit), apply)


# -- what each step does to a batch --------------------------------------------------------


def _deleting(model: Any) -> Callable[[Session, list[Any], Removed], None]:
    def apply(session: Session, batch: list[Any], removed: Removed) -> None:
        removed.add(model.__tablename__, run(session, delete(model).where(model.id.in_(batch))))

    return apply


def _delete_outbound(session: Session, batch: list[Any], removed: Removed) -> None:
    removed.add(
        "notifications",
        run(
            session,
            update(Notification)
            .where(Notification.outbound_id.in_(batch))
            .values(outbound_id=None),
        ),
    )
    removed.add("outbound_messages", run(session, delete(Outbound).where(Outbound.id.in_(batch))))


def _delete_inbound(session: Session, batch: list[Any], removed: Removed) -> None:
    # A newer reply keeps its row (it has its own age); only its link goes.
    run(session, update(Outbound).where(Outbound.inbound_id.in_(batch)).values(inbound_id=None))
    removed.add("inbound_messages", run(session, delete(Inbound).where(Inbound.id.in_(batch))))


def _clear_notes(session: Session, batch: list[Any], removed: Removed) -> None:
    removed.add(
        "handoff_events",
        run(session, update(HandoffEvent).where(HandoffEvent.id.in_(batch)).values(text=None)),
    )


def _clear_comments(session: Session, batch: list[Any], removed: Removed) -> None:
    removed.add(
        "feedback",
        run(session, update(Feedback).where(Feedback.id.in_(batch)).values(comment=None)),
    )


def _delete_referrals(session: Session, batch: list[Any], removed: Removed) -> None:
    removed.add(
        "referral_events",
        run(session, delete(ReferralEvent).where(ReferralEvent.referral_id.in_(batch))),
    )
    removed.add("referrals", run(session, delete(Referral).where(Referral.id.in_(batch))))


# -- the purge ------------------------------------------------------------------------------


def purge(settings: Settings, *, now: datetime | None = None, dry_run: bool = False) -> Removed:
    """Delete what is past its retention, in the gateway's database and Rasa's tracker
    store. `dry_run` counts instead. Logs counts only."""
    return _purge(settings, utc(now), dry_run, threading.Event())


def _purge(settings: Settings, now: datetime, dry_run: bool, halt: threading.Event) -> Removed:
    cuts = _Cuts.of(settings, now)
    steps = [
        *_message_steps(cuts, identified=False),
        *_message_steps(cuts, identified=True),
        *_other_steps(cuts),
        _conversation_step(cuts, identified=False),
        _conversation_step(cuts, identified=True),
        _audit_step(cuts),
    ]
    removed = Removed()
    engine = db.create_sync_engine(settings.database_url)
    try:
        if dry_run:
            _rehearse(engine, steps, removed)
        else:
            for step in steps:
                if halt.is_set():
                    break
                _apply(engine, step, removed, halt)
    finally:
        engine.dispose()
    if not halt.is_set():
        removed.add("rasa_events", tracker_events(settings, before=cuts.tracker, dry_run=dry_run))
    logger.info("Retention purge%s: %s", " (dry run)" if dry_run else "", removed)
    return removed


def _batch(session: Session, step: _Step, removed: Removed) -> int:
    """One batch of a step; returns how many rows it picked."""
    ids = list(session.scalars(step.ids.limit(BATCH)))
    if ids:
        step.apply(session, ids, removed)
    return len(ids)


def _rehearse(engine: Engine, steps: list[_Step], removed: Removed) -> None:
    """A dry run: the real work in one transaction, rolled back, so the counts are
    exact (rows that go with a deleted conversation included)."""
    with Session(engine) as session:
        session.begin()
        try:
            for step in steps:
                while _batch(session, step, removed) == BATCH:
                    pass
        finally:
            session.rollback()


def _apply(engine: Engine, step: _Step, removed: Removed, halt: threading.Event) -> None:
    while not halt.is_set():
        batch = Removed()
        try:
            with Session(engine) as session, session.begin():
                picked = _batch(session, step, batch)
        except (IntegrityError, OperationalError):
            # A message arrived for a conversation being deleted, or the database was
            # busy: leave this step to the next run.
            logger.warning("Retention purge: %s left for the next run", step.table)
            return
        for table, rows in batch.counts.items():
            removed.add(table, rows)
        if picked < BATCH:
            return


async def run_periodically(
    settings: Settings,
    stop: asyncio.Event,
    purged: Callable[[Removed], None] | None = None,
) -> None:
    """Purge a minute after start-up, then every `retention_interval_minutes` (0: never),
    until `stop` is set. When stopped or cancelled mid-run, the current batch finishes.
    `purged` hears of each purge (the gateway drops its cache of deleted contacts)."""
    interval = settings.retention_interval_minutes * 60
    if interval <= 0:
        return
    delay = FIRST_RUN_DELAY
    while True:
        with suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        if stop.is_set():
            return
        delay = interval
        try:
            removed = await _run_in_thread(settings, stop)
            if purged is not None:
                purged(removed)
        except Exception:
            logger.exception("The retention purge failed; trying again next time")


async def _run_in_thread(settings: Settings, stop: asyncio.Event) -> Removed:
    halt = threading.Event()
    work = asyncio.ensure_future(asyncio.to_thread(_purge, settings, utc(None), False, halt))
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({work, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not work.done():
            halt.set()
        return await asyncio.shield(work)
    except asyncio.CancelledError:
        halt.set()  # a thread can't be cancelled: let it end after its batch
        with suppress(Exception):
            await work
        raise
    finally:
        stopping.cancel()


# -- commands ---------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add `privacy purge` and `privacy forget` to the app's command line."""
    parser = sub.add_parser("privacy", help="retention purge and deleting someone's data")
    actions = parser.add_subparsers(dest="privacy_command", required=True)
    purging = actions.add_parser("purge", help="delete what is past its retention, now")
    purging.add_argument(
        "--dry-run", action="store_true", help="count what would be deleted, delete nothing"
    )
    purging.set_defaults(func=main_purge)
    forget = actions.add_parser(
        "forget", help="delete everything about one person (a request by letter or phone)"
    )
    forget.add_argument("--channel", required=True, choices=["sms", "telegram", "web"])
    forget.add_argument(
        "--address", required=True, help="the phone number (07700 900123) or Telegram chat id"
    )
    forget.set_defaults(func=main_forget)


def _print(removed: Removed, verb: str) -> None:
    if not removed.counts:
        print("Nothing to delete.")
        return
    width = max(len(table) for table in removed.counts)
    for table, rows in sorted(removed.counts.items()):
        print(f"  {table:<{width}}  {rows}")
    print(f"{removed.total} rows {verb}.")


def main_purge(args: argparse.Namespace) -> int:
    from bot.config import get_settings

    settings = get_settings()
    db.migrate(settings.database_url)
    removed = purge(settings, dry_run=args.dry_run)
    _print(removed, "would be deleted or emptied" if args.dry_run else "deleted or emptied")
    return 0


def address_for(channel: str, address: str) -> str:
    """The address as the gateway stores it: E.164 for SMS."""
    address = address.strip()
    if channel == "sms":
        from bot.cases.phones import normalise_phone

        with suppress(ValueError):
            return normalise_phone(address)
    return address


def main_forget(args: argparse.Namespace) -> int:
    from bot.config import get_settings

    settings = get_settings()
    db.migrate(settings.database_url)
    address = address_for(args.channel, args.address)
    removed = asyncio.run(_forget_address(settings, args.channel, address))
    if removed is None:
        print("No conversation with that address: nothing to delete.")
        return 1
    _print(removed, "deleted or unlinked")
    if db.sync_url(settings.database_url).get_backend_name() == "sqlite":
        # A running gateway caches address -> conversation, and SQLite can give the
        # deleted conversation's id to the next new one.
        print("If the gateway is running, restart it.")
    return 0


async def _forget_address(settings: Settings, channel: str, address: str) -> Removed | None:
    engine = db.create_engine(settings.database_url)
    sessions = db.sessionmaker(engine)
    try:
        async with sessions() as session:
            conversation_id = await session.scalar(
                select(Conversation.id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.channel == channel, Contact.address == address)
            )
        if conversation_id is None:
            return None
        return await forget_conversation(sessions, settings, conversation_id)
    finally:
        await engine.dispose()
