"""The retention purge (bot/privacy/retention.py): only expired data goes (boundaries
either side), never a pending message, anything of a conversation with an open handoff,
or an opted-out contact. The scheduled run, the lifespan and the commands.
SQLite and PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from bot import db
from bot.cases.models import (
    Case,
    OneTimeCode,
    Task,
    VerificationAttempt,
    Victim,
    VictimContact,
)
from bot.config import Settings, get_settings
from bot.handoff.models import (
    AuditEntry,
    ConsoleSession,
    Coordinator,
    Feedback,
    Handoff,
    HandoffEvent,
)
from bot.models import Base, Contact, Conversation, Inbound, Outbound
from bot.privacy import retention
from bot.privacy.erase import Removed
from bot.privacy.retention import purge, run_periodically
from bot.services.models import NeedsAssessment, Referral, ReferralEvent
from tests.harness import (
    database,
    fresh_number,
    fresh_reference,
    gateway_settings,
    live_gateway_for,
)
from tests.privacy.people import (
    SERVICE,
    Db,
    add_events,
    events_of,
    make_tracker,
    now_utc,
    privacy_db,
    shared_rows,
)

__all__ = ["privacy_db"]  # the fixture, used by name

NOW = now_utc()
SECOND = timedelta(seconds=1)
ANONYMOUS = NOW - timedelta(days=30)  # the default cuts, at NOW
IDENTIFIED = NOW - timedelta(days=365)


@dataclass
class Convo:
    contact_id: int
    id: int
    address: str


def convo(
    session: Session,
    *,
    seen: datetime = NOW,
    linked: str | None = None,  # None, "verified" or "registered"
    opted_out: bool = False,
) -> Convo:
    """A conversation last active at `seen`; `linked` makes it identified."""
    address = fresh_number()
    victim_id = None
    if linked:
        case = Case(
            reference=fresh_reference(), agency="met", crime_type="burglary", stage="investigation"
        )
        session.add(case)
        session.flush()
        victim = Victim(case_id=case.id, external_id=uuid.uuid4().hex, consent_at=seen)
        session.add(victim)
        session.flush()
        victim_id = victim.id
        if linked == "registered":
            session.add(VictimContact(victim_id=victim.id, channel="sms", address=address))
    contact = Contact(
        channel="sms",
        address=address,
        created_at=seen,
        last_seen_at=seen,
        opted_out=opted_out,
        opted_out_at=seen if opted_out else None,
    )
    session.add(contact)
    session.flush()
    conversation = Conversation(
        contact_id=contact.id,
        rasa_sender=uuid.uuid4().hex,
        verified_victim_id=victim_id if linked == "verified" else None,
        created_at=seen,
        updated_at=seen,
    )
    session.add(conversation)
    session.flush()
    return Convo(contact.id, conversation.id, address)


def said(session: Session, c: Convo, at: datetime, *, state: str = "done") -> tuple[int, int]:
    """An inbound message and its reply, both at `at`; returns their ids."""
    inbound = Inbound(
        conversation_id=c.id, channel="sms", text="hello", state=state, received_at=at
    )
    session.add(inbound)
    session.flush()
    outbound = Outbound(
        conversation_id=c.id,
        inbound_id=inbound.id,
        channel="sms",
        text="Hello.",
        created_at=at,
        updated_at=at,
    )
    session.add(outbound)
    session.flush()
    return inbound.id, outbound.id


def exists(session: Session, model: Any, row_id: Any) -> bool:
    session.expire_all()
    return session.get(model, row_id) is not None


def counts(session: Session) -> dict[str, int]:
    return {
        t.name: int(session.scalar(select(func.count()).select_from(t)) or 0)
        for t in Base.metadata.sorted_tables
    }


def test_messages_go_after_the_retention_of_their_conversation(privacy_db: Db) -> None:
    with privacy_db.sessions() as session, session.begin():
        anonymous = convo(session)
        verified = convo(session, linked="verified")
        registered = convo(session, linked="registered")
        gone = [
            *said(session, anonymous, ANONYMOUS - SECOND),
            *said(session, verified, IDENTIFIED - SECOND),
            *said(session, registered, IDENTIFIED - SECOND),
        ]
        kept = [
            *said(session, anonymous, ANONYMOUS + SECOND),
            *said(session, verified, ANONYMOUS - SECOND),
            *said(session, verified, IDENTIFIED + SECOND),
            *said(session, registered, ANONYMOUS - timedelta(days=10)),
        ]

    removed = purge(privacy_db.settings(), now=NOW)

    assert removed.counts == {"inbound_messages": 3, "outbound_messages": 3}
    with privacy_db.sessions() as session:
        for ids, present in ((gone, False), (kept, True)):
            for inbound_id, outbound_id in zip(ids[::2], ids[1::2], strict=True):
                assert exists(session, Inbound, inbound_id) is present
                assert exists(session, Outbound, outbound_id) is present
    assert purge(privacy_db.settings(), now=NOW) == Removed()  # nothing more


def test_pending_messages_and_open_handoffs_are_kept(privacy_db: Db) -> None:
    old = ANONYMOUS - timedelta(days=5)
    with privacy_db.sessions() as session, session.begin():
        waiting = convo(session)
        pending, reply = said(session, waiting, old, state="pending")
        with_person = convo(session)
        held = said(session, with_person, old)
        handed_back = convo(session)
        answered = said(session, handed_back, old)
        open_handoff = Handoff(
            conversation_id=with_person.id, state="claimed", reason="request_human", created_at=old
        )
        closed = Handoff(
            conversation_id=handed_back.id,
            state="closed",
            reason="fallback",
            created_at=old,
            closed_at=old,
        )
        session.add_all([open_handoff, closed])
        session.flush()
        kept_note = HandoffEvent(handoff_id=open_handoff.id, kind="note", text="a note", at=old)
        old_note = HandoffEvent(handoff_id=closed.id, kind="note", text="a note", at=old)
        session.add_all([kept_note, old_note])

    removed = purge(privacy_db.settings(), now=NOW)

    with privacy_db.sessions() as session:
        assert exists(session, Inbound, pending)
        assert not exists(session, Outbound, reply)  # the reply was sent: it goes
        assert all(exists(session, m, i) for m, i in zip((Inbound, Outbound), held, strict=True))
        assert not any(
            exists(session, m, i) for m, i in zip((Inbound, Outbound), answered, strict=True)
        )
        assert session.get(HandoffEvent, kept_note.id).text == "a note"  # type: ignore[union-attr]
        assert session.get(HandoffEvent, old_note.id).text is None  # type: ignore[union-attr]
    assert removed.counts == {
        "inbound_messages": 1,
        "outbound_messages": 2,
        "handoff_events": 1,
    }


def test_idle_conversations_go_with_their_contacts_unless_still_needed(privacy_db: Db) -> None:
    idle = ANONYMOUS - SECOND
    with privacy_db.sessions() as session, session.begin():
        shared_rows(session)
        expired = convo(session, seen=idle)
        said(session, expired, idle)
        handoff = Handoff(
            conversation_id=expired.id,
            state="closed",
            reason="fallback",
            created_at=idle,
            closed_at=idle,
        )
        session.add(handoff)
        session.flush()
        coordinator = Coordinator(username=f"c-{uuid.uuid4().hex[:8]}", display_name="Sam")
        session.add(coordinator)
        session.flush()
        session.add_all(
            [
                HandoffEvent(handoff_id=handoff.id, kind="closed", at=idle),
                Feedback(
                    conversation_id=expired.id,
                    handoff_id=handoff.id,
                    rating=5,
                    source="handoff",
                    at=idle,
                ),
                Task(
                    kind="callback_request",
                    dedupe_key=f"callback:{uuid.uuid4().hex}",
                    state="done",
                    conversation_id=expired.id,
                    detail="Call back.",
                ),
                AuditEntry(
                    actor=coordinator.username,
                    action="claim",
                    conversation_id=expired.id,
                    handoff_id=handoff.id,
                    at=idle,
                ),
            ]
        )
        closed_referral = Referral(
            conversation_id=expired.id,
            service_id=SERVICE,
            status="contacted",
            needs={},
            contact={},
            consented_at=idle,
            updated_at=idle,
            closed_at=idle,
        )
        session.add(closed_referral)
        session.flush()
        session.add(ReferralEvent(referral_id=closed_referral.id, status="contacted", by="x"))
        session.add(NeedsAssessment(conversation_id=expired.id, answers={}, updated_at=idle))

        recent = convo(session, seen=ANONYMOUS + SECOND)
        opted_out = convo(session, seen=IDENTIFIED - SECOND, opted_out=True)
        said(session, opted_out, IDENTIFIED - SECOND)
        identified = convo(session, seen=idle, linked="verified")
        identified_expired = convo(session, seen=IDENTIFIED - SECOND, linked="registered")
        still_referred = convo(session, seen=idle)
        session.add(
            Referral(
                conversation_id=still_referred.id,
                service_id=SERVICE,
                status="sent",
                needs={},
                contact={},
                consented_at=idle,
                updated_at=idle,
            )
        )
        open_task = convo(session, seen=idle)
        session.add(
            Task(
                kind="callback_request",
                dedupe_key=uuid.uuid4().hex,
                conversation_id=open_task.id,
                detail="Call back.",
            )
        )
        waiting = convo(session, seen=idle)
        said(session, waiting, idle, state="pending")

    removed = purge(privacy_db.settings(), now=NOW)

    with privacy_db.sessions() as session:
        for c, present in (
            (expired, False),
            (recent, True),
            (opted_out, True),  # its opt-out must stay, so we never text it again
            (identified, True),
            (identified_expired, False),
            (still_referred, True),
            (open_task, True),
            (waiting, True),
        ):
            assert exists(session, Conversation, c.id) is present, c
            assert exists(session, Contact, c.contact_id) is present, c
        assert (
            session.scalar(
                select(func.count())
                .select_from(Inbound)
                .where(Inbound.conversation_id == opted_out.id)
            )
            == 0
        )
        assert not exists(session, Handoff, handoff.id)
        assert not exists(session, Referral, closed_referral.id)
        # The audit entry and the task are kept, unlinked.
        entry = session.scalar(select(AuditEntry).where(AuditEntry.actor == coordinator.username))
        assert entry is not None and entry.conversation_id is None and entry.handoff_id is None
        assert (
            session.scalar(
                select(func.count())
                .select_from(Task)
                .where(Task.kind == "callback_request", Task.conversation_id.is_(None))
            )
            == 1
        )
        # The identified one still has its victim and registered contact.
        assert (
            session.scalar(
                select(func.count())
                .select_from(VictimContact)
                .where(VictimContact.address == identified_expired.address)
            )
            == 1
        )
    assert removed.counts["conversations"] == 2
    assert removed.counts["contacts"] == 2
    assert removed.counts["referrals"] == 1
    assert removed.counts["needs_assessments"] == 1
    assert removed.counts["feedback"] == 1
    assert removed.counts["handoffs"] == 1


def test_comments_codes_checks_sessions_audit_and_tracker_events(privacy_db: Db) -> None:
    settings = privacy_db.settings()
    make_tracker(privacy_db.tracker_url)
    add_events(privacy_db.tracker_url, "old", NOW - timedelta(days=30) - SECOND)
    add_events(privacy_db.tracker_url, "new", NOW - timedelta(days=30) + SECOND)
    with privacy_db.sessions() as session, session.begin():
        c = convo(session)
        rated = Feedback(
            conversation_id=c.id,
            rating=4,
            comment="Great, thanks Priya",
            source="bot",
            at=ANONYMOUS - SECOND,
        )
        comment_only = Feedback(
            conversation_id=c.id, comment="ok", source="message", at=ANONYMOUS - SECOND
        )
        recent = Feedback(
            conversation_id=c.id, rating=2, comment="slow", source="bot", at=ANONYMOUS + SECOND
        )
        victim_id = _victim(session)
        expired_code = OneTimeCode(
            victim_id=victim_id,
            purpose="verify",
            digest="a" * 64,
            conversation_id=c.id,
            expires_at=NOW - SECOND,
        )
        live_code = OneTimeCode(
            victim_id=victim_id,
            purpose="verify",
            digest="b" * 64,
            conversation_id=c.id,
            expires_at=NOW + SECOND,
        )
        window = NOW - timedelta(hours=settings.verification_window_hours)
        old_check = VerificationAttempt(conversation_id=c.id, succeeded=False, at=window - SECOND)
        new_check = VerificationAttempt(conversation_id=c.id, succeeded=False, at=window + SECOND)
        coordinator = Coordinator(username=f"c-{uuid.uuid4().hex[:8]}", display_name="Sam")
        session.add(coordinator)
        session.flush()
        sessions = [
            ConsoleSession(
                token_digest=uuid.uuid4().hex,
                csrf_token="x",
                coordinator_id=coordinator.id,
                expires_at=expires,
                revoked_at=revoked,
            )
            for expires, revoked in (
                (NOW - SECOND, None),
                (NOW + timedelta(hours=1), NOW - SECOND),
                (NOW + timedelta(hours=1), None),
            )
        ]
        audit_cut = NOW - timedelta(days=730)
        old_entry = AuditEntry(actor="system", action="close", at=audit_cut - SECOND)
        new_entry = AuditEntry(actor="system", action="close", at=audit_cut + SECOND)
        session.add_all(
            [
                rated,
                comment_only,
                recent,
                expired_code,
                live_code,
                old_check,
                new_check,
                *sessions,
                old_entry,
                new_entry,
            ]
        )

    removed = purge(settings, now=NOW)

    with privacy_db.sessions() as session:
        kept = session.get(Feedback, rated.id)
        assert kept is not None and kept.rating == 4 and kept.comment is None
        assert not exists(session, Feedback, comment_only.id)
        assert session.get(Feedback, recent.id).comment == "slow"  # type: ignore[union-attr]
        assert not exists(session, OneTimeCode, expired_code.id)
        assert exists(session, OneTimeCode, live_code.id)
        assert not exists(session, VerificationAttempt, old_check.id)
        assert exists(session, VerificationAttempt, new_check.id)
        assert [exists(session, ConsoleSession, s.id) for s in sessions] == [False, False, True]
        assert not exists(session, AuditEntry, old_entry.id)
        assert exists(session, AuditEntry, new_entry.id)
    assert events_of(privacy_db.tracker_url, "old") == 0
    assert events_of(privacy_db.tracker_url, "new") == 1
    assert removed.counts == {
        "feedback": 2,
        "one_time_codes": 1,
        "verification_attempts": 1,
        "console_sessions": 2,
        "audit_log": 1,
        "rasa_events": 1,
    }


def _victim(session: Session) -> int:
    case = Case(
        reference=fresh_reference(), agency="met", crime_type="burglary", stage="investigation"
    )
    session.add(case)
    session.flush()
    victim = Victim(case_id=case.id, external_id=uuid.uuid4().hex, consent_at=NOW)
    session.add(victim)
    session.flush()
    return victim.id


@pytest.mark.postgres
def test_the_audit_log_stays_append_only_otherwise(tmp_path: Any) -> None:
    """PostgreSQL's trigger allows only unlinking and the purge's own expired deletes."""
    with database("postgres", tmp_path) as url:
        db.migrate(url)
        engine = db.create_sync_engine(url)
        try:
            with Session(engine) as session, session.begin():
                for days in (1, 3):
                    session.add(
                        AuditEntry(actor="system", action="close", at=NOW - timedelta(days=days))
                    )
            refused = (
                "UPDATE audit_log SET action = 'claim'",
                "UPDATE audit_log SET actor = 'someone'",
                "UPDATE audit_log SET detail = '{}'",
                "DELETE FROM audit_log",
            )
            for statement in refused:
                with (
                    pytest.raises(DBAPIError, match="append-only"),
                    Session(engine) as session,
                    session.begin(),
                ):
                    session.execute(text(statement))
            cut = {"c": (NOW - timedelta(days=2)).isoformat()}
            with (
                pytest.raises(DBAPIError, match="append-only"),
                Session(engine) as session,
                session.begin(),
            ):
                # Entries after the cut stay, even in the purge's transaction.
                session.execute(
                    text("SELECT set_config('waymark.audit_purge_before', :c, true)"), cut
                )
                session.execute(text("DELETE FROM audit_log"))
            with Session(engine) as session, session.begin():
                session.execute(
                    text("SELECT set_config('waymark.audit_purge_before', :c, true)"), cut
                )
                deleted = session.execute(text("DELETE FROM audit_log WHERE at < :c"), cut)
                assert deleted.rowcount == 1
            # The cut was for that transaction only.
            with (
                pytest.raises(DBAPIError, match="append-only"),
                Session(engine) as session,
                session.begin(),
            ):
                session.execute(text("DELETE FROM audit_log"))
            with Session(engine) as session, session.begin():
                assert (
                    session.execute(text("UPDATE audit_log SET conversation_id = NULL")).rowcount
                    == 1
                )
        finally:
            engine.dispose()


def test_a_dry_run_counts_what_a_real_run_deletes_and_deletes_nothing(
    privacy_db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_tracker(privacy_db.tracker_url)
    add_events(privacy_db.tracker_url, "old", NOW - timedelta(days=40), NOW - timedelta(days=31))
    with privacy_db.sessions() as session, session.begin():
        for _ in range(3):  # whole conversations, their messages and a rating
            c = convo(session, seen=ANONYMOUS - SECOND)
            said(session, c, ANONYMOUS - SECOND)
            session.add(
                Feedback(
                    conversation_id=c.id,
                    rating=3,
                    comment="fine",
                    source="bot",
                    at=ANONYMOUS - SECOND,
                )
            )
        busy = convo(session)  # still active: only its old messages go
        for days in range(5):
            said(session, busy, ANONYMOUS - timedelta(days=days + 1))
        session.add(AuditEntry(actor="system", action="close", at=NOW - timedelta(days=800)))
    with privacy_db.sessions() as session:
        before = counts(session)

    dry = purge(privacy_db.settings(), now=NOW, dry_run=True)
    with privacy_db.sessions() as session:
        assert counts(session) == before
    assert events_of(privacy_db.tracker_url) == 2

    monkeypatch.setattr(retention, "BATCH", 2)  # and in several batches
    real = purge(privacy_db.settings(), now=NOW)
    assert dry.counts == {
        "inbound_messages": 8,
        "outbound_messages": 8,
        "feedback": 6,  # 3 comments emptied, then the 3 rows went with their conversations
        "conversations": 3,
        "contacts": 3,
        "audit_log": 1,
        "rasa_events": 2,
    }
    assert real.counts == dry.counts


def test_run_periodically_purges_and_stops_cleanly(
    privacy_db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "FIRST_RUN_DELAY", 0.0)
    with privacy_db.sessions() as session, session.begin():
        old = convo(session, seen=ANONYMOUS - timedelta(days=1))

    heard: list[Removed] = []

    async def go() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_periodically(privacy_db.settings(), stop, heard.append))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if heard:
                break
        stop.set()
        await asyncio.wait_for(task, timeout=5)

    asyncio.run(go())
    with privacy_db.sessions() as session:
        assert session.get(Conversation, old.id) is None
    # The gateway hears of it, to drop its cache of deleted contacts.
    assert heard[0].counts.get("conversations") == 1

    # 0: never (the command still purges).
    never = privacy_db.settings(retention_interval_minutes=0)
    asyncio.run(asyncio.wait_for(run_periodically(never, asyncio.Event()), timeout=1))


def test_a_cancelled_run_finishes_its_batch_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retention, "FIRST_RUN_DELAY", 0.0)
    started, finished = threading.Event(), threading.Event()

    def slow(settings: Settings, now: datetime, dry_run: bool, halt: threading.Event) -> Removed:
        started.set()
        while not halt.wait(0.01):
            pass
        time.sleep(0.1)  # the batch under way
        finished.set()
        return Removed()

    monkeypatch.setattr(retention, "_purge", slow)

    async def go() -> None:
        task = asyncio.create_task(run_periodically(Settings(), asyncio.Event()))
        while not started.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished.is_set()

    asyncio.run(go())


def test_the_gateway_runs_the_purge_and_stops_it(
    privacy_db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(retention, "FIRST_RUN_DELAY", 0.0)
    with privacy_db.sessions() as session, session.begin():
        old = convo(session, seen=ANONYMOUS - timedelta(days=1))
    settings = gateway_settings(
        privacy_db.url,
        "http://127.0.0.1:1",
        "token",
        retention_interval_minutes=1,
        rasa_tracker_store_url=privacy_db.tracker_url,
    )
    with live_gateway_for(settings):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with privacy_db.sessions() as session:
                if session.get(Conversation, old.id) is None:
                    break
            time.sleep(0.1)
        else:
            pytest.fail("the scheduled purge did not run")


def test_the_commands(
    privacy_db: Db, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WAYMARK_DATABASE_URL", privacy_db.url)
    monkeypatch.setenv("WAYMARK_RASA_TRACKER_STORE_URL", privacy_db.tracker_url)
    monkeypatch.setenv("WAYMARK_SECRET_KEY", "pseudonym-key-for-tests")
    get_settings.cache_clear()
    with privacy_db.sessions() as session, session.begin():
        old = convo(session, seen=ANONYMOUS - timedelta(days=1))
        said(session, old, ANONYMOUS - timedelta(days=1))
        person = convo(session)
        said(session, person, NOW)
    parser = argparse.ArgumentParser()
    retention.register(parser.add_subparsers(dest="command", required=True))

    def run(*argv: str) -> tuple[int, str]:
        args = parser.parse_args(list(argv))
        code = int(args.func(args))
        return code, capsys.readouterr().out

    try:
        code, out = run("privacy", "purge", "--dry-run")
        assert code == 0 and "conversations" in out and "would be deleted" in out
        with privacy_db.sessions() as session:
            assert session.get(Conversation, old.id) is not None
        code, out = run("privacy", "purge")
        assert code == 0 and "inbound_messages" in out
        with privacy_db.sessions() as session:
            assert session.get(Conversation, old.id) is None
        assert run("privacy", "purge") == (0, "Nothing to delete.\n")

        # As a coordinator types it: 07700 98..., not +447700 98...
        local = "0" + person.address.removeprefix("+44")
        code, out = run("privacy", "forget", "--channel", "sms", "--address", local)
        assert code == 0 and "inbound_messages" in out and "contacts" in out
        with privacy_db.sessions() as session:
            assert session.get(Conversation, person.id) is None
            assert (
                session.scalar(select(AuditEntry.actor).where(AuditEntry.action == "forget_me"))
                == "person"
            )
        code, out = run("privacy", "forget", "--channel", "sms", "--address", local)
        assert code == 1 and "nothing to delete" in out
        with pytest.raises(SystemExit):
            parser.parse_args(["privacy", "forget", "--channel", "fax", "--address", "1"])
    finally:
        get_settings.cache_clear()
