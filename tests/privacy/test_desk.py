"""Privacy as a person lives it, through the live gateway, the real model and actions,
and fake Twilio and Telegram, on SQLite and PostgreSQL: "what do you keep?", "delete my
data" (yes, no, anything else, a cry for help, a lapsed question, a verified victim, a
referral already sent, Telegram buttons, the web chat), contact preferences, and STOP as
a possible safety signal."""

from __future__ import annotations

import itertools
import json
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from actions import content
from bot.cases.models import Case, Task, Victim, VictimContact
from bot.handoff.models import AuditEntry
from bot.models import Contact, Conversation, Inbound, InboundState, Outbound
from bot.privacy.desk import BUTTONS, CONFIRM_MINUTES, STOP_TASK
from bot.services.models import Referral, ServiceRow
from tests.cases.test_lookup import new_case, verified_answer
from tests.conftest import RasaStack
from tests.fakes.telegram_api import callback_update, text_update
from tests.handoff.conftest import conversation_of
from tests.harness import (
    LiveGateway,
    database,
    fresh_number,
    fresh_reference,
    gateway_settings,
    live_gateway_for,
    wait_until,
)

pytestmark = pytest.mark.rasa

ANONYMOUS_DAYS, IDENTIFIED_DAYS = 14, 90  # not the defaults: the notice reads the settings
QUESTION = content.item("privacy.forget_question").parts[0]
DONE = content.item("privacy.forget_done").parts[0]
KEPT = content.item("privacy.forget_kept").parts[0]
_chats = itertools.count(7_300_000)
_updates = itertools.count(7_300_000)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def live(
    request: pytest.FixtureRequest,
    rasa_stack: RasaStack,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LiveGateway]:
    """A gateway whose deletions reach the test Rasa's own tracker store."""
    with database(request.param, tmp_path_factory.mktemp("privacy")) as url:
        settings = gateway_settings(
            url,
            rasa_stack.url,
            rasa_stack.token,
            rasa_tracker_store_url=f"sqlite:///{rasa_stack.tracker_store_path}",
            retention_anonymous_days=ANONYMOUS_DAYS,
            retention_identified_days=IDENTIFIED_DAYS,
        )
        with live_gateway_for(settings) as gateway:
            yield gateway


# -- helpers --------------------------------------------------------------------------


def _pending(live: LiveGateway, channel: str, address: str) -> bool:
    with live.db() as session:
        found = session.scalar(
            select(Inbound.id)
            .join(Conversation, Conversation.id == Inbound.conversation_id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(
                Contact.channel == channel,
                Contact.address == address,
                Inbound.state == InboundState.PENDING,
            )
            .limit(1)
        )
    return found is not None


def turn(live: LiveGateway, number: str, text: str) -> list[str]:
    """Send an SMS; every reply to it, once it is answered (or deleted with the rest)."""
    before = len(live.twilio.to(number))
    live.sms(number, text)  # returns once the message is stored, pending
    wait_until(lambda: [] if _pending(live, "sms", number) else [True], 1, timeout=90)
    return live.twilio.to(number)[before:]


def choose(live: LiveGateway, number: str, title: str) -> list[str]:
    """Reply with the number of the button called `title`, as a person would by SMS."""
    offered = conversation_of(live, "sms", number).choices or []
    titles = [c["title"] for c in offered]
    assert title in titles, titles
    return turn(live, number, str(titles.index(title) + 1))


def contact_exists(live: LiveGateway, channel: str, address: str) -> bool:
    with live.db() as session:
        found = session.scalar(
            select(Contact.id).where(Contact.channel == channel, Contact.address == address)
        )
    return found is not None


def tracker_events(rasa_stack: RasaStack, sender: str) -> int:
    with sqlite3.connect(rasa_stack.tracker_store_path) as conn:
        (count,) = conn.execute(
            "SELECT count(*) FROM events WHERE sender_id = ?", (sender,)
        ).fetchone()
    return int(count)


def victim_at(live: LiveGateway, channel: str, address: str, *, closed: bool = False) -> int:
    """A victim with a case (open unless `closed`) registered at this address."""
    with live.db() as session, session.begin():
        case = Case(
            reference=fresh_reference(),
            agency="met",
            crime_type="assault",
            stage="investigation",
            closed_at=datetime.now(UTC) if closed else None,
        )
        session.add(case)
        session.flush()
        victim = Victim(case_id=case.id, external_id="v", consent_at=datetime.now(UTC))
        session.add(victim)
        session.flush()
        session.add(
            VictimContact(
                victim_id=victim.id,
                channel=channel,
                address=address,
                verified_at=datetime.now(UTC),
            )
        )
        return victim.id


def stop_tasks(live: LiveGateway, victim_id: int) -> list[Task]:
    with live.db() as session:
        case_id = session.scalar(select(Victim.case_id).where(Victim.id == victim_id))
        return list(
            session.scalars(
                select(Task).where(Task.kind == "stop_signal", Task.case_id == case_id)
            ).all()
        )


def paused(live: LiveGateway, victim_id: int) -> bool:
    with live.db() as session:
        return bool(session.scalar(select(Victim.paused).where(Victim.id == victim_id)))


# -- what Waymark keeps --------------------------------------------------------------------


def test_what_do_you_keep_gets_the_configured_days_then_more(live: LiveGateway) -> None:
    number = fresh_number()
    notice = content.item("privacy.notice")
    replies = turn(live, number, "what do you keep about me")
    first = notice.part(0, anonymous_days=str(ANONYMOUS_DAYS), identified_days=str(IDENTIFIED_DAYS))
    assert replies == [content.with_more_prompt(first)]
    assert f"{ANONYMOUS_DAYS} days" in replies[0] and f"{IDENTIFIED_DAYS} days" in replies[0]
    assert turn(live, number, "MORE") == [content.with_more_prompt(notice.parts[1])]
    assert turn(live, number, "MORE") == [notice.parts[2]]


@pytest.mark.parametrize(
    "question", ["who can see my messages", "will the police see this", "is this chat private"]
)
def test_the_issues_questions_get_the_notice(live: LiveGateway, question: str) -> None:
    (reply,) = turn(live, fresh_number(), question)
    assert reply.startswith(content.item("privacy.notice").parts[0][:40])


# -- forget me ---------------------------------------------------------------------------


def test_yes_deletes_everything_and_the_next_message_starts_afresh(
    live: LiveGateway, rasa_stack: RasaStack
) -> None:
    number = fresh_number()
    turn(live, number, "what does bail mean")
    asked = turn(live, number, "delete my data")
    text = "\n".join(asked)
    assert content.item("privacy.forget_ask").part(0, route="phone number") in text
    assert QUESTION in asked[-1]
    assert "Reply 1 for Yes, delete" in asked[-1] and "Reply 2 for No, keep it" in asked[-1]
    # Nothing about a case or a service for someone anonymous.
    assert content.item("privacy.forget_case").parts[0] not in text
    assert content.item("privacy.forget_referral").parts[0] not in text
    conversation = conversation_of(live, "sms", number)
    assert tracker_events(rasa_stack, conversation.rasa_sender) > 0

    assert choose(live, number, "Yes, delete") == [DONE]
    assert not contact_exists(live, "sms", number)
    with live.db() as session:
        assert session.get(Conversation, conversation.id) is None
        for table in (Inbound, Outbound):
            rows = session.scalar(
                select(func.count())
                .select_from(table)
                .where(table.conversation_id == conversation.id)
            )
            assert rows == 0, table
        entry = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action == "forget_me")
            .order_by(AuditEntry.id.desc())
            .limit(1)
        ).one()
        assert entry.conversation_id is None and number not in json.dumps(entry.detail)
    assert tracker_events(rasa_stack, conversation.rasa_sender) == 0

    # Starting again is a new conversation: nothing from before comes back.
    greeting = turn(live, number, "hello")
    assert greeting[0].startswith(content.item("assistant.greet").parts[0][:30])
    again = conversation_of(live, "sms", number)
    with live.db() as session:
        count = session.scalar(
            select(func.count()).select_from(Inbound).where(Inbound.conversation_id == again.id)
        )
    assert count == 1


def test_no_keeps_everything(live: LiveGateway) -> None:
    number = fresh_number()
    turn(live, number, "please delete everything i told you")
    assert choose(live, number, "No, keep it") == [KEPT]
    assert contact_exists(live, "sms", number)
    assert turn(live, number, "no") != [KEPT]  # the question is closed: Rasa answers


def test_anything_else_deletes_nothing_and_is_answered(live: LiveGateway) -> None:
    number = fresh_number()
    turn(live, number, "delete my data")
    replies = turn(live, number, "what does bail mean")
    assert replies[0] == KEPT
    assert "bail" in " ".join(replies[1:]).lower()
    assert contact_exists(live, "sms", number)


def test_a_cry_for_help_is_never_a_yes(live: LiveGateway) -> None:
    number = fresh_number()
    turn(live, number, "delete my data")
    replies = turn(live, number, "yes delete it, he is outside my door with a knife")
    assert replies[0].startswith("If you are in danger now, call 999.")
    assert KEPT in replies and DONE not in replies
    assert contact_exists(live, "sms", number)


def test_a_lapsed_question_is_asked_again(live: LiveGateway) -> None:
    number = fresh_number()
    desk = live.gateway.privacy
    desk.confirm_for = timedelta(0)
    try:
        turn(live, number, "delete my data")
        again = turn(live, number, "yes")  # reaches Rasa, which asks again
    finally:
        desk.confirm_for = timedelta(minutes=CONFIRM_MINUTES)
    assert QUESTION in again[-1] and DONE not in again
    assert contact_exists(live, "sms", number)


def test_a_verified_victim_hears_that_their_case_stays(live: LiveGateway) -> None:
    number, reference = new_case(live)
    verified_answer(live, number, reference, "marigold")
    asked = turn(live, number, "delete my data")
    assert content.item("privacy.forget_case").parts[0] in "\n".join(asked)
    assert choose(live, number, "Yes, delete") == [DONE]
    with live.db() as session:
        case = session.scalar(select(Case).where(Case.reference == reference))
        assert case is not None  # the case is the police's: it stays
        assert session.scalar(select(Victim.id).where(Victim.case_id == case.id)) is not None
        linked = session.scalar(
            select(VictimContact.id).where(
                VictimContact.channel == "sms", VictimContact.address == number
            )
        )
        assert linked is None  # no more updates to this number


def test_holding_a_victims_phone_is_not_enough_to_hear_about_the_case(
    live: LiveGateway,
) -> None:
    number, _ = new_case(live)
    asked = turn(live, number, "delete my data")
    assert content.item("privacy.forget_case").parts[0] not in "\n".join(asked)
    assert choose(live, number, "No, keep it") == [KEPT]


def test_a_referral_already_sent_is_mentioned(live: LiveGateway) -> None:
    number = fresh_number()
    turn(live, number, "hello")
    conversation = conversation_of(live, "sms", number)
    with live.db() as session, session.begin():
        service = session.scalar(select(ServiceRow.id).where(ServiceRow.active).limit(1))
        assert service is not None
        session.add(
            Referral(
                conversation_id=conversation.id,
                service_id=service,
                status="sent",
                needs={},
                contact={},
            )
        )
    asked = turn(live, number, "delete my data")
    assert content.item("privacy.forget_referral").parts[0] in "\n".join(asked)
    assert choose(live, number, "Yes, delete") == [DONE]
    with live.db() as session:
        told = session.scalars(select(Task).where(Task.kind == "forgotten_referral")).all()
        assert told and all(number not in t.detail for t in told)


def test_telegram_buttons_delete_the_chat(live: LiveGateway) -> None:
    chat = next(_chats)
    live.telegram_update(text_update(next(_updates), chat, "delete my data"))
    (asked,) = wait_until(lambda: [m for m in live.telegram.sent(chat) if m.get("reply_markup")], 1)
    assert "Telegram chat" in " ".join(m["text"] for m in live.telegram.sent(chat))
    markup = asked["reply_markup"]
    markup = json.loads(markup) if isinstance(markup, str) else markup
    keyboard = [row[0] for row in markup["inline_keyboard"]]
    assert [b["text"] for b in keyboard] == [b["title"] for b in BUTTONS]
    before = len(live.telegram.sent(chat))
    live.telegram_update(callback_update(next(_updates), chat, keyboard[0]["callback_data"]))
    replies = live.telegram_replies(chat, before + 1)
    assert replies[before]["text"] == DONE
    wait_until(lambda: [] if contact_exists(live, "telegram", str(chat)) else [True], 1)


def test_a_web_chat_ends_once_its_data_is_deleted(live: LiveGateway) -> None:
    session_id = live.web_session()
    asked = live.web_say(session_id, "delete my data")
    assert asked[-1]["buttons"] == [dict(b) for b in BUTTONS]
    address = live.gateway.pseudonym("web-session", session_id)
    conversation = conversation_of(live, "web", address)
    queue = live.gateway.subscribe(conversation.id)
    try:
        # The reply went out live, then was deleted with everything else.
        assert live.web_say(session_id, "Yes, delete", payload="/affirm") == []
        events: list[dict[str, Any]] = []
        while not queue.empty():
            events.append(queue.get_nowait())
    finally:
        live.gateway.unsubscribe(conversation.id, queue)
    assert [e.get("text") for e in events[:-1]] == [DONE]
    assert events[-1] == {"type": "end"}
    assert not contact_exists(live, "web", address)
    with pytest.raises(httpx.HTTPStatusError) as ended:
        live.web_say(session_id, "hello")
    assert ended.value.response.status_code == 404


# -- contact preferences ---------------------------------------------------------------------


def test_contact_preferences_are_the_preferences_desks(live: LiveGateway) -> None:
    replies = turn(live, fresh_number(), "change how you contact me")
    assert content.item("preferences.verify").parts[0] in "\n".join(replies)


# -- STOP ----------------------------------------------------------------------------------


def test_sms_stop_pauses_a_victim_with_an_open_case_and_tells_a_coordinator_once(
    live: LiveGateway,
) -> None:
    number = fresh_number()
    victim_id = victim_at(live, "sms", number)
    assert turn(live, number, "STOP") == []  # the carrier confirms STOP itself
    assert paused(live, victim_id)
    (task,) = stop_tasks(live, victim_id)
    assert task.priority == 0 and task.state == "open"
    assert task.detail == STOP_TASK and task.conversation_id is None
    # Once a day: STOP again the same day adds nothing.
    turn(live, number, "START")
    turn(live, number, "STOP")
    assert len(stop_tasks(live, victim_id)) == 1


def test_telegram_stop_pauses_a_victim_with_an_open_case(live: LiveGateway) -> None:
    chat = next(_chats)
    victim_id = victim_at(live, "telegram", str(chat))
    live.telegram_update(text_update(next(_updates), chat, "/stop"))
    (reply,) = live.telegram_replies(chat, 1)
    assert reply["text"] == content.item("gateway.stopped").parts[0]
    (task,) = wait_until(lambda: stop_tasks(live, victim_id), 1)
    assert task.detail == STOP_TASK and str(chat) not in task.detail
    assert paused(live, victim_id)


@pytest.mark.parametrize("closed", [True, False], ids=["closed case", "not a victim"])
def test_other_stops_only_opt_out(live: LiveGateway, closed: bool) -> None:
    number = fresh_number()
    victim_id = victim_at(live, "sms", number, closed=True) if closed else None
    with live.db() as session:
        before = session.scalar(
            select(func.count()).select_from(Task).where(Task.kind == "stop_signal")
        )
    turn(live, number, "hello")
    turn(live, number, "STOP")
    with live.db() as session:
        opted_out = session.scalar(
            select(Contact.opted_out).where(Contact.channel == "sms", Contact.address == number)
        )
        after = session.scalar(
            select(func.count()).select_from(Task).where(Task.kind == "stop_signal")
        )
    assert opted_out and after == before
    if victim_id is not None:
        assert not paused(live, victim_id)
