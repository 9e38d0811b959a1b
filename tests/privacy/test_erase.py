"""Forget me (bot/privacy/erase.py): every row about the person goes, checked table by
table over `Base.metadata`; other people's rows stay; what is kept is unlinked; Rasa's
tracker events go too. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from bot import db
from bot.cases.models import Task
from bot.config import Settings
from bot.gateway import Gateway, IncomingMessage
from bot.handoff.models import AuditEntry, Coordinator
from bot.models import Base, Channel, Contact, Conversation
from bot.privacy import erase
from bot.privacy.erase import Removed, forget_conversation, tracker_delete
from bot.rasa_client import RasaClient
from tests.harness import fresh_number
from tests.privacy.people import (
    KEPT_UNLINKED,
    Db,
    Person,
    add_events,
    events_of,
    links_to,
    make_person,
    make_tracker,
    mentions,
    now_utc,
    owned_rows,
    privacy_db,
    reachable_tables,
    still_there,
)

__all__ = ["privacy_db"]  # the fixture, used by name


def forget(database: Db, conversation_id: int, settings: Settings | None = None) -> Removed:
    async def go() -> Removed:
        engine = db.create_engine(database.url)
        try:
            return await forget_conversation(
                db.sessionmaker(engine), settings or database.settings(), conversation_id
            )
        finally:
            await engine.dispose()

    return asyncio.run(go())


def people(database: Db, count: int = 2, **kwargs: object) -> list[Person]:
    now = now_utc()
    with database.sessions() as session, session.begin():
        return [make_person(session, now, **kwargs) for _ in range(count)]  # type: ignore[arg-type]


def test_forget_removes_every_row_about_the_person_table_by_table(privacy_db: Db) -> None:
    me, other = people(privacy_db)
    make_tracker(privacy_db.tracker_url)
    now = now_utc()
    add_events(privacy_db.tracker_url, me.sender, now - timedelta(days=90), now)
    add_events(privacy_db.tracker_url, other.sender, now)
    with privacy_db.sessions() as session:
        mine = owned_rows(session, me)
        theirs = owned_rows(session, other)
        audit_before = session.scalar(select(func.count()).select_from(AuditEntry))

    # The fixture must cover every table that can hold something about a person, so a
    # table added later fails here until forget_conversation (and this test) handle it.
    assert set(mine) == reachable_tables(), "tables a person can leave rows in"

    removed = forget(privacy_db, me.conversation_id)

    with privacy_db.sessions() as session:
        for table, rows in mine.items():
            left = still_there(session, table, rows)
            if table in KEPT_UNLINKED:
                assert sorted(left) == sorted(rows), f"{table}: kept rows were deleted"
            else:
                assert left == [], f"{table}: rows about the person remain"
        assert links_to(session, mine) == {}, "rows still pointing at the person"
        assert mentions(session, me.address, me.sender, me.said) == {}
        # Coordinators don't stay pointed at a handoff that is gone.
        assert (
            session.scalar(
                select(func.count())
                .select_from(Coordinator)
                .where(Coordinator.current_handoff_id.in_([k[0] for k in mine["handoffs"]]))
            )
            == 0
        )

        # Other people's rows are all there, links and all.
        after = owned_rows(session, other)
        assert {t: sorted(r) for t, r in after.items()} == {t: sorted(r) for t, r in theirs.items()}
        assert mentions(session, other.address, other.sender, other.said)

        # The case, the victim and the case events stay (they come from the police).
        assert (
            session.execute(
                text("SELECT count(*) FROM victims WHERE id = :v"), {"v": me.victim_id}
            ).scalar()
            == 1
        )

        # One audit entry records it, without content or a link.
        entries = session.scalars(select(AuditEntry).where(AuditEntry.action == "forget_me")).all()
        assert session.scalar(select(func.count()).select_from(AuditEntry)) == audit_before + 1
        (entry,) = entries
        assert entry.actor == "person"
        assert entry.conversation_id is None and entry.case_id is None
        assert entry.detail == {"tables": removed.counts}

        # Open tasks about the person are closed; a service that has the referral, and
        # the coordinators of a victim with an open case, get a task each.
        kept_tasks = session.scalars(select(Task).where(Task.id.in_([k[0] for k in mine["tasks"]])))
        assert {t.state for t in kept_tasks} == {"done"}
        new = {t.kind: t for t in session.scalars(select(Task).where(Task.kind.like("forgotten%")))}
        assert new["forgotten_referral"].priority == 0
        assert "Test Support Service" in new["forgotten_referral"].detail
        assert new["forgotten_contact"].case_id == me.case_id
        assert new["forgotten_contact"].state == "open"

    assert events_of(privacy_db.tracker_url, me.sender) == 0
    assert events_of(privacy_db.tracker_url, other.sender) == 1
    assert removed.counts == {
        "audit_log": 2,
        "contacts": 1,
        "conversations": 1,
        "feedback": 1,
        "handoff_events": 2,
        "handoffs": 2,
        "inbound_messages": 2,
        "needs_assessments": 1,
        "notifications": 1,
        "one_time_codes": 2,
        "outbound_messages": 1,
        "rasa_events": 2,
        "referral_events": 1,
        "referrals": 1,
        "tasks": 2,
        "verification_attempts": 1,
        "victim_contacts": 1,
    }


def test_a_closed_case_gets_no_task_and_an_unknown_conversation_removes_nothing(
    privacy_db: Db,
) -> None:
    (me,) = people(privacy_db, 1, channel="telegram", case_open=False)
    assert forget(privacy_db, 999_999) == Removed()  # no tracker table yet either
    removed = forget(privacy_db, me.conversation_id)
    assert removed.counts["victim_contacts"] == 1
    assert "rasa_events" not in removed.counts  # Rasa has not made its table yet
    with privacy_db.sessions() as session:
        kinds = set(session.scalars(select(Task.kind)))
        assert "forgotten_contact" not in kinds
        assert session.scalar(select(Contact.id).where(Contact.address == me.address)) is None
    assert forget(privacy_db, me.conversation_id) == Removed()  # twice: nothing more


def test_a_tracker_failure_deletes_nothing(privacy_db: Db, tmp_path: Path) -> None:
    (me,) = people(privacy_db, 1)
    broken = tmp_path / "tracker.db"
    broken.write_text("this is not a database")
    with pytest.raises(DBAPIError):
        forget(
            privacy_db,
            me.conversation_id,
            privacy_db.settings(rasa_tracker_store_url=f"sqlite:///{broken}"),
        )
    with privacy_db.sessions() as session:
        assert session.get(Conversation, me.conversation_id) is not None
        assert session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "forget_me")) == 0  # fmt: skip


def test_a_reused_referral_id_does_not_clash_with_the_kept_task(privacy_db: Db) -> None:
    """On SQLite a deleted row's id can come back; the kept task's key must not block
    the next referral's task ("referral:<id>")."""
    (me,) = people(privacy_db, 1)
    with privacy_db.sessions() as session, session.begin():
        session.execute(
            update(Task)
            .where(Task.conversation_id == me.conversation_id, Task.kind == "referral")
            .values(dedupe_key="referral:1")
        )
    forget(privacy_db, me.conversation_id)
    with privacy_db.sessions() as session, session.begin():
        session.add(Task(kind="referral", dedupe_key="referral:1", detail="A new referral."))


def test_tracker_delete_by_sender_and_by_age(privacy_db: Db) -> None:
    settings = privacy_db.settings()
    now = now_utc()
    assert tracker_delete(settings, sender_ids=["nobody"]) == 0  # no table yet
    make_tracker(privacy_db.tracker_url)
    add_events(privacy_db.tracker_url, "a", now - timedelta(days=31), now - timedelta(days=29))
    add_events(privacy_db.tracker_url, "b", now - timedelta(days=31), now)
    with pytest.raises(ValueError):
        tracker_delete(settings)  # never everything by accident
    assert erase.tracker_events(settings, before=now - timedelta(days=30), dry_run=True) == 2
    assert tracker_delete(settings, sender_ids=["a"], before=now - timedelta(days=30)) == 1
    assert tracker_delete(settings, before=now - timedelta(days=30)) == 1
    assert events_of(privacy_db.tracker_url, "b") == 1
    assert tracker_delete(settings, sender_ids=["a", "b"]) == 2
    assert events_of(privacy_db.tracker_url) == 0


def test_tracker_delete_in_batches(privacy_db: Db, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(erase, "TRACKER_BATCH", 3)
    make_tracker(privacy_db.tracker_url)
    now = now_utc()
    add_events(privacy_db.tracker_url, "a", *(now - timedelta(seconds=s) for s in range(7)))
    assert tracker_delete(privacy_db.settings(), sender_ids=["a"]) == 7


def test_the_gateway_finds_a_new_conversation_after_its_cached_one_is_forgotten(
    privacy_db: Db,
) -> None:
    """`python -m bot privacy forget` runs in another process: the running gateway's
    cache still names the deleted conversation."""
    settings = privacy_db.settings(rasa_port=1)
    number = fresh_number()

    async def go() -> tuple[int, int]:
        engine = db.create_engine(privacy_db.url)
        rasa = RasaClient(settings.rasa_url, "token")
        try:
            gateway = Gateway(settings, db.sessionmaker(engine), rasa)
            first = await gateway._store(
                IncomingMessage(Channel.SMS, number, "hello", provider_id="SM-first")
            )
            await forget_conversation(gateway.sessions, settings, first.conversation_id)
            again = IncomingMessage(Channel.SMS, number, "hello again", provider_id="SM-again")
            # The cached id fails once (and is dropped); `receive` tries again, as here.
            with pytest.raises(IntegrityError):
                await gateway._store(again)
            stored = await gateway._store(again)
            assert not stored.duplicate
            return first.conversation_id, stored.conversation_id
        finally:
            await rasa.aclose()
            await engine.dispose()

    _, again = asyncio.run(go())
    with privacy_db.sessions() as session:
        contact = session.scalar(select(Contact).where(Contact.address == number))
        assert contact is not None
        assert (
            session.scalar(select(Conversation.id).where(Conversation.contact_id == contact.id))
            == again
        )


def test_every_table_is_known() -> None:
    """Tables outside the person's reach (cases, services...) are listed here, so a new
    table is a decision: add it to the forget cascade, or here."""
    not_personal = {
        "cases",
        "victims",
        "case_events",
        "victim_updates",
        "agency_keys",
        "coordinators",
        "canned_replies",
        "console_sessions",
        "services",
        "directory_imports",
    }
    assert set(Base.metadata.tables) == reachable_tables() | not_personal


@pytest.mark.rasa
def test_real_rasa_tracker_events_are_deleted(rasa_stack, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Against the tracker store the real Rasa writes (SQLite, the stack's own file)."""
    settings = Settings(rasa_tracker_store_url=f"sqlite:///{rasa_stack.tracker_store_path}")
    sender = f"forget-{fresh_number()}"
    rasa_stack.say(sender, "hello")
    assert len(rasa_stack.tracker(sender)["events"]) > 2
    assert tracker_delete(settings, sender_ids=[sender]) > 2
    # Rasa starts the sender afresh: nothing they said is left.
    fresh = rasa_stack.tracker(f"never-{fresh_number()}")["events"]
    after = rasa_stack.tracker(sender)["events"]
    assert [e["event"] for e in after] == [e["event"] for e in fresh]
    assert "user" not in {e["event"] for e in after}


def test_rasa_makes_the_table_these_tests_make(tmp_path: Path) -> None:
    """The `events` schema in tests/privacy/people.py is Rasa's own (when the Rasa
    environment is there)."""
    python = Path(__file__).resolve().parents[2] / ".venv-rasa" / "bin" / "python"
    if not python.exists():
        pytest.skip("the Rasa environment is not set up")
    script = (
        "from rasa.core.tracker_store import SQLTrackerStore as S\n"
        "for c in S.SQLEvent.__table__.columns:\n"
        "    print(c.name, type(c.type).__name__, c.nullable, c.primary_key)\n"
    )
    out = subprocess.run([str(python), "-c", script], capture_output=True, text=True, check=True)
    from tests.privacy.people import SQLEvent

    ours = "".join(
        f"{c.name} {type(c.type).__name__} {c.nullable} {c.primary_key}\n"
        for c in SQLEvent.__table__.columns
    )
    assert out.stdout == ours
