"""The handoff desk through a live gateway, the real model and fake providers: who owns a
conversation, what the person is told, the response-time timers, nobody on duty, hand
back, audit and feedback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot import db
from bot.cases.models import Task
from bot.handoff import audit
from bot.handoff.availability import LONDON
from bot.handoff.models import AuditEntry, Feedback, Handoff, HandoffEvent
from bot.models import Inbound, Outbound
from bot.server import free_port
from tests.cases.conftest import make_case, make_victim
from tests.handoff.conftest import (
    conversation_of,
    coordinator,
    open_handoff,
)
from tests.harness import (
    LiveGateway,
    fresh_number,
    fresh_reference,
    gateway_settings,
    live_gateway_for,
    postgres_schema,
    wait_until,
)

DANGER = "he is outside with a knife, I'm scared"
QUESTION = "what is the right to review?"
REVIEW = "right to ask for a review"  # in the bot's answer to QUESTION


def texts(live: LiveGateway, number: str) -> list[str]:
    return live.twilio.to(number)


def say(
    live: LiveGateway, number: str, text: str, expect: int = 1, timeout: float = 60
) -> list[str]:
    """Send an SMS and return the replies it got (waits for at least `expect`)."""
    before = len(texts(live, number))
    live.sms(number, text)
    if expect == 0:
        return []
    return wait_until(lambda: texts(live, number), before + expect, timeout)[before:]


def settle(live: LiveGateway, number: str) -> None:
    """Wait until every message from this number has been dealt with."""
    conversation = conversation_of(live, "sms", number)

    def pending() -> list[int]:
        with live.db() as session:
            rows = session.scalars(
                select(Inbound.id).where(
                    Inbound.conversation_id == conversation.id, Inbound.state == "pending"
                )
            ).all()
        return [] if rows else [1]

    wait_until(pending, 1)


def start(live: LiveGateway, number: str, reason: str = "request_human") -> int:
    say(live, number, "hello")
    conversation = conversation_of(live, "sms", number)
    return live.run(live.gateway.handoffs.start(conversation.id, reason))


def bot_replies(live: LiveGateway, conversation_id: int) -> int:
    with live.db() as session:
        return len(
            session.scalars(
                select(Outbound.id).where(
                    Outbound.conversation_id == conversation_id, Outbound.source == "bot"
                )
            ).all()
        )


def rasa_paused(live: LiveGateway, sender: str) -> bool:
    response = live.client.get(
        f"{live.settings.rasa_url}/conversations/{sender}/tracker",
        params={"token": live.settings.rasa_token.get_secret_value()},
    )
    response.raise_for_status()
    return bool(response.json().get("paused"))


# -- ownership --------------------------------------------------------------------------


def test_a_queued_conversation_is_silent_and_the_backlog_is_never_answered(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    sam = coordinator(live)
    number = fresh_number()
    handoff_id = start(live, number)
    conversation = conversation_of(live, "sms", number)
    assert conversation.owner == "queued"
    told = texts(live, number)[-2:]
    assert told[0].startswith("I have asked a person from the Waymark team to reply.")
    assert "within 30 minutes" in told[0] and "999" in told[0]
    assert "0808 168 9111" in told[1]
    assert rasa_paused(live, conversation.rasa_sender)

    bot_before = bot_replies(live, conversation.id)
    say(live, number, QUESTION, expect=0)
    say(live, number, "are you there?", expect=0)
    settle(live, number)
    assert bot_replies(live, conversation.id) == bot_before

    assert live.run(live.gateway.handoffs.claim(handoff_id, sam))
    assert texts(live, number)[-1] == (
        f"You are now talking to {sam.display_name}, a person from the Waymark team. "
        "They will reply here."
    )
    live.run(live.gateway.handoffs.hand_back(handoff_id, sam))
    assert texts(live, number)[-2].startswith("You are back with the Waymark assistant.")
    assert texts(live, number)[-1].startswith("How was this conversation?")
    assert not rasa_paused(live, conversation.rasa_sender)
    # The two questions asked of the person were not answered by the bot afterwards.
    assert bot_replies(live, conversation.id) == bot_before
    answer = say(live, number, QUESTION)
    assert any(REVIEW in t for t in answer), answer


def test_a_waiting_person_is_reminded_at_most_every_ten_minutes(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    number = fresh_number()
    start(live, number)
    say(live, number, "hello?", expect=0)
    settle(live, number)
    assert not texts(live, number)[-1].startswith("Your message is with the Waymark team")
    with live.db() as session, session.begin():
        conversation = conversation_of(live, "sms", number)
        session.get(type(conversation), conversation.id).waiting_told_at = datetime.now(
            UTC
        ) - timedelta(minutes=11)
    reply = say(live, number, "still there?")
    assert reply == [
        "Your message is with the Waymark team. A person will reply here. "
        "If you are in danger now, call 999."
    ]


def test_danger_starts_an_urgent_handoff_after_the_999_reply(live_gateway: LiveGateway) -> None:
    live = live_gateway
    number = fresh_number()
    replies = say(live, number, DANGER, expect=5)
    assert replies[0].startswith("If you are in danger now, call 999.")
    conversation = conversation_of(live, "sms", number)
    handoff = open_handoff(live, conversation.id)
    assert handoff is not None and handoff.priority == 0 and handoff.reason == "emergency"
    assert conversation.owner == "queued"


def test_danger_in_a_waiting_conversation_makes_it_urgent(live_gateway: LiveGateway) -> None:
    live = live_gateway
    number = fresh_number()
    handoff_id = start(live, number)
    replies = say(live, number, DANGER, expect=4)
    assert replies[0].startswith("If you are in danger now, call 999.")
    settle(live, number)
    with live.db() as session:
        handoff = session.get(Handoff, handoff_id)
        assert handoff is not None and handoff.priority == 0
        kinds = session.scalars(
            select(HandoffEvent.kind).where(HandoffEvent.handoff_id == handoff_id)
        ).all()
    assert "urgent" in kinds


def test_a_coordinator_can_take_over_a_bot_conversation(live_gateway: LiveGateway) -> None:
    live = live_gateway
    kim = coordinator(live, name="Kim")
    number = fresh_number()
    say(live, number, "hello")
    conversation = conversation_of(live, "sms", number)
    handoff_id = live.run(live.gateway.handoffs.take_over(conversation.id, kim))
    assert conversation_of(live, "sms", number).owner == "human"
    assert texts(live, number)[-1].startswith("You are now talking to Kim")
    live.run(live.gateway.handoffs.reply(handoff_id, kim, "Hello, it's Kim. How can I help?"))
    assert texts(live, number)[-1] == "Hello, it's Kim. How can I help?"
    packet = live.run(live.gateway.handoffs.packet(handoff_id))
    assert packet.reason == "console" and packet.coordinator == "Kim"
    assert [line.who for line in packet.transcript][-1] == "coordinator"
    live.run(live.gateway.handoffs.close(handoff_id, kim, "resolved"))
    assert conversation_of(live, "sms", number).owner == "bot"


def test_only_the_owner_replies_and_bad_outcomes_are_refused(live_gateway: LiveGateway) -> None:
    from bot.handoff.errors import HandoffError

    live = live_gateway
    sam, ali = coordinator(live), coordinator(live)
    number = fresh_number()
    handoff_id = start(live, number)
    with pytest.raises(HandoffError, match="Claim"):
        live.run(live.gateway.handoffs.reply(handoff_id, sam, "hello"))
    assert live.run(live.gateway.handoffs.claim(handoff_id, sam))
    assert not live.run(live.gateway.handoffs.claim(handoff_id, ali))
    with pytest.raises(HandoffError, match="another coordinator"):
        live.run(live.gateway.handoffs.reply(handoff_id, ali, "hello"))
    with pytest.raises(HandoffError, match="outcome"):
        live.run(live.gateway.handoffs.close(handoff_id, sam, "whatever"))
    with pytest.raises(HandoffError, match="empty"):
        live.run(live.gateway.handoffs.reply(handoff_id, sam, "   "))
    live.run(live.gateway.handoffs.transfer(handoff_id, sam, ali.username))
    live.run(live.gateway.handoffs.reply(handoff_id, ali, "Hello from Ali"))
    assert texts(live, number)[-1] == "Hello from Ali"
    live.run(live.gateway.handoffs.close(handoff_id, ali, "referred"))
    with pytest.raises(HandoffError, match="already closed"):
        live.run(live.gateway.handoffs.close(handoff_id, ali, "resolved"))


def test_an_opted_out_person_gets_nothing_and_the_coordinator_is_told(
    live_gateway: LiveGateway,
) -> None:
    from bot.handoff.errors import HandoffError

    live = live_gateway
    sam = coordinator(live)
    number = fresh_number()
    handoff_id = start(live, number)
    assert live.run(live.gateway.handoffs.claim(handoff_id, sam))
    live.sms(number, "STOP")
    settle(live, number)
    before = len(texts(live, number))
    with pytest.raises(HandoffError, match="stopped messages"):
        live.run(live.gateway.handoffs.reply(handoff_id, sam, "Are you OK?"))
    assert len(texts(live, number)) == before


# -- audit and feedback ---------------------------------------------------------------


def test_every_action_is_audited_without_content(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam, ali = coordinator(live), coordinator(live)
    number = fresh_number()
    handoff_id = start(live, number)
    desk = live.gateway.handoffs
    live.run(desk.claim(handoff_id, sam))
    live.run(desk.note(handoff_id, sam, "Private: she mentioned her sister's address"))
    live.run(desk.reply(handoff_id, sam, "A secret reply text"))
    live.run(desk.transfer(handoff_id, sam, ali.username))
    live.run(desk.close(handoff_id, ali, "resolved"))
    with live.db() as session:
        entries = session.scalars(
            select(AuditEntry).where(AuditEntry.handoff_id == handoff_id).order_by(AuditEntry.id)
        ).all()
    assert [(e.actor, e.action) for e in entries] == [
        (sam.username, "claim"),
        (sam.username, "note"),
        (sam.username, "reply"),
        (sam.username, "transfer"),
        (ali.username, "close"),
    ]
    flat = repr([(e.detail, e.actor, e.action) for e in entries])
    assert "sister" not in flat and "secret reply" not in flat.lower()
    packet = live.run(desk.packet(handoff_id))
    assert [n.text for n in packet.notes] == ["Private: she mentioned her sister's address"]


@pytest.mark.postgres
def test_the_audit_log_is_append_only_in_postgres() -> None:
    with postgres_schema() as url:
        db.migrate(url)
        engine = db.create_sync_engine(url)
        with Session(engine) as session, session.begin():
            session.add(audit.entry("system", "view_queue"))
        engine.dispose()
        base, _, options = url.partition("?options=")
        schema = options.split("%3D", 1)[1]
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute("UPDATE audit_log SET action = 'x'")
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute("DELETE FROM audit_log")
            assert conn.execute("SELECT count(*) FROM audit_log").fetchone() == (1,)


def test_a_rating_and_a_comment_are_stored_and_thanked(live_gateway: LiveGateway) -> None:
    live = live_gateway
    sam = coordinator(live)
    number = fresh_number()
    handoff_id = start(live, number)
    live.run(live.gateway.handoffs.claim(handoff_id, sam))
    live.run(live.gateway.handoffs.close(handoff_id, sam, "resolved"))
    assert "Reply 4 for Good" in texts(live, number)[-1]
    assert say(live, number, "4") == [
        "Thank you. It helps us make Waymark better. To tell us more, send a message that "
        "starts with the word feedback."
    ]
    assert say(live, number, "Feedback: Sam was kind and quick") == [
        "Thank you for telling us. It helps us make Waymark better."
    ]
    conversation = conversation_of(live, "sms", number)
    with live.db() as session:
        rows = session.scalars(
            select(Feedback)
            .where(Feedback.conversation_id == conversation.id)
            .order_by(Feedback.id)
        ).all()
    assert [(r.rating, r.comment, r.source, r.handoff_id) for r in rows] == [
        (4, None, "handoff", handoff_id),
        (None, "Sam was kind and quick", "message", None),
    ]
    # The numbers mean the rating only once: "4" again is an ordinary message.
    assert say(live, number, "4")


# -- timers: response targets and nobody on duty (own gateway: the timers see all) ---


def test_nobody_on_duty_is_told_when_we_reopen_then_back_to_the_bot(
    gateway_on: LiveGateway,
) -> None:
    live = gateway_on
    # Off duty, working every day from midnight: the service reopens at 12am tomorrow.
    coordinator(live, on_duty=False, hours="mon-sun 00:00-23:59")
    number = fresh_number()
    handoff_id = start(live, number)
    told = texts(live, number)[-2:]
    assert told[0] == (
        "Nobody from the Waymark team is working right now. We open again at 12am tomorrow. "
        "I have kept your message, and someone will reply then. If you are in danger now, "
        "call 999."
    )
    assert "0808 168 9111" in told[1] and "116 123" in told[1]
    assert conversation_of(live, "sms", number).owner == "queued"

    desk = live.gateway.handoffs
    assert live.run(desk.counts()) == {"waiting": 1, "urgent": 0, "claimed": 0}
    live.run(desk.check_timers(datetime.now(UTC) + timedelta(minutes=5)))
    assert conversation_of(live, "sms", number).owner == "queued"
    live.run(desk.check_timers(datetime.now(UTC) + timedelta(minutes=16)))
    conversation = conversation_of(live, "sms", number)
    assert conversation.owner == "bot"
    assert texts(live, number)[-1] == (
        "Nobody from the team could reply yet. I have asked them to contact you at 12am "
        "tomorrow. Until then, I can still answer questions. If you are in danger now, call 999."
    )
    with live.db() as session:
        handoff = session.get(Handoff, handoff_id)
        task = session.scalar(select(Task).where(Task.dedupe_key == f"callback:{handoff_id}"))
    assert handoff is not None and handoff.outcome == "returned_to_bot"
    assert task is not None and task.kind == "callback_request" and task.state == "open"
    answer = say(live, number, QUESTION)
    assert any(REVIEW in t for t in answer), answer


@pytest.mark.parametrize("urgent", [True, False], ids=["urgent", "normal"])
def test_an_unclaimed_handoff_alerts_again_and_escalates_to_a_supervisor(
    gateway_on: LiveGateway, urgent: bool
) -> None:
    live = gateway_on
    on_duty = coordinator(live, telegram=True)
    boss = coordinator(live, role="supervisor", on_duty=False, telegram=True)
    number = fresh_number()
    handoff_id = start(live, number, "emergency" if urgent else "request_human")
    chat, boss_chat = int(on_duty.telegram_chat_id or 0), int(boss.telegram_chat_id or 0)
    first = live.telegram_replies(chat, 1)
    assert ("URGENT handoff" if urgent else "Handoff") + f" #{handoff_id} (new)" in first[0]["text"]
    assert not live.telegram.sent(boss_chat)  # someone is on duty: no escalation yet

    target = 2 if urgent else 30
    desk = live.gateway.handoffs
    live.run(desk.check_timers(datetime.now(UTC) + timedelta(minutes=target - 1)))
    assert not live.telegram.sent(boss_chat)
    live.run(desk.check_timers(datetime.now(UTC) + timedelta(minutes=target + 1)))
    escalation = live.telegram_replies(boss_chat, 1)
    assert f"#{handoff_id} (unclaimed for" in escalation[0]["text"]
    assert len(live.telegram_replies(chat, 2)) == 2  # alerted again
    with live.db() as session:
        handoff = session.get(Handoff, handoff_id)
    assert handoff is not None and handoff.escalated_at is not None
    # Claimed: the first human reply time is recorded for the figures.
    assert live.run(desk.claim(handoff_id, on_duty))
    live.run(desk.reply(handoff_id, on_duty, "Hello"))
    figures = live.run(desk.figures(datetime.now(UTC) - timedelta(hours=1)))
    assert figures["handoffs"] == 1 and figures["escalated"] == 1
    assert figures["median_minutes_to_first_reply"] is not None


def test_handing_back_while_rasa_is_unreachable_resumes_it_on_the_next_message(
    live_gateway: LiveGateway,
) -> None:
    live = live_gateway
    sam = coordinator(live)
    number = fresh_number()
    handoff_id = start(live, number)
    conversation = conversation_of(live, "sms", number)
    live.run(live.gateway.handoffs.claim(handoff_id, sam))
    # As if the resume had failed: Rasa still paused, the flag still set.
    live.run(live.gateway.handoffs.close(handoff_id, sam, "resolved"))
    live.run(live.gateway.rasa.add_event(conversation.rasa_sender, {"event": "pause"}))
    with live.db() as session, session.begin():
        session.get(type(conversation), conversation.id).rasa_paused = True
    assert rasa_paused(live, conversation.rasa_sender)
    answer = say(live, number, QUESTION)
    assert any(REVIEW in t for t in answer), answer
    assert not conversation_of(live, "sms", number).rasa_paused


def test_danger_while_rasa_is_down_asks_a_person_at_once(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = gateway_settings(f"sqlite:///{tmp_path / 'gateway.db'}", nowhere, "token")
    with live_gateway_for(settings) as live:
        sam = coordinator(live, telegram=True)
        number = fresh_number()
        live.sms(number, "what does bail mean")  # waits for Rasa, with the holding reply
        wait_until(lambda: texts(live, number), 1)
        replies = say(live, number, DANGER, expect=5)
        assert replies[0].startswith("If you are in danger now, call 999.")
        assert replies[-1].startswith("I have also asked a person from the Waymark team")
        alert = live.telegram_replies(int(sam.telegram_chat_id or 0), 1)
        assert "URGENT handoff" in alert[0]["text"]
        conversation = conversation_of(live, "sms", number)
        assert conversation.owner == "queued"


def test_a_late_reply_respects_a_verified_victims_quiet_hours(live_gateway: LiveGateway) -> None:
    from bot.handoff.errors import HandoffError

    live = live_gateway
    sam = coordinator(live)
    number = fresh_number()
    handoff_id = start(live, number)
    conversation = conversation_of(live, "sms", number)
    london = datetime.now(LONDON)
    with live.db() as session, session.begin():
        case = make_case(session, fresh_reference())
        victim = make_victim(
            session,
            case,
            phone=number,
            quiet_start=(london - timedelta(hours=1)).time().replace(second=0, microsecond=0),
            quiet_end=(london + timedelta(hours=1)).time().replace(second=0, microsecond=0),
        )
        session.get(type(conversation), conversation.id).verified_victim_id = victim.id
    desk = live.gateway.handoffs
    live.run(desk.claim(handoff_id, sam))
    # They wrote a moment ago: a live chat, so the reply goes now.
    live.run(desk.reply(handoff_id, sam, "I'm here."))
    assert texts(live, number)[-1] == "I'm here."
    with live.db() as session, session.begin():
        for inbound in session.scalars(
            select(Inbound).where(Inbound.conversation_id == conversation.id)
        ):
            inbound.received_at = datetime.now(UTC) - timedelta(minutes=31)
    with pytest.raises(HandoffError, match=r"It is their quiet time until .*Nothing was sent"):
        live.run(desk.reply(handoff_id, sam, "Are you still there?"))
    assert texts(live, number)[-1] == "I'm here."
