"""Case look-ups end to end: the real gateway, the real Rasa model and actions.

A demo victim texts "any news?", gives the crime reference and the memorable word,
and gets the case; nobody learns anything without the secret; the secret never
reaches Rasa's tracker, the gateway's messages or the logs.
"""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from actions import content
from bot import db
from bot.cases import demo
from bot.cases.credentials import hash_secret
from bot.cases.keys import create_key
from bot.cases.models import Case, Task, VerificationAttempt, Victim, VictimContact
from bot.models import Contact, Conversation, Inbound, InboundState, Outbound
from tests.handoff.conftest import conversation_of, coordinator, open_handoff
from tests.harness import LiveGateway, fresh_number, fresh_reference, wait_until

pytestmark = pytest.mark.rasa

ASK_REFERENCE = "what is your crime reference number"
ASK_SECRET = "send your PIN or memorable word"
NO_MATCH = "Those details do not match what we have."


@pytest.fixture(scope="module")
def seeded(live_gateway: LiveGateway) -> LiveGateway:
    engine = db.create_sync_engine(live_gateway.settings.database_url)
    with Session(engine) as session, session.begin():
        demo.seed(session, live_gateway.settings)
    engine.dispose()
    return live_gateway


def sms_turn(live: LiveGateway, number: str, text: str) -> list[str]:
    """Send one SMS and return every reply to it, once the gateway has finished."""
    before = len(live.twilio.to(number))
    live.sms(number, text)

    def settled() -> list[Any]:
        with live.db() as session:
            pending = session.scalars(
                select(Inbound.id)
                .join(Conversation, Conversation.id == Inbound.conversation_id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.address == number, Inbound.state == InboundState.PENDING)
            ).all()
            total = session.scalars(
                select(Inbound.id)
                .join(Conversation, Conversation.id == Inbound.conversation_id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.address == number)
            ).all()
        return [1] if total and not pending else []

    time.sleep(0.2)
    wait_until(settled, 1, timeout=60)
    time.sleep(0.3)  # the last reply's delivery is recorded just after the note
    return live.twilio.to(number)[before:]


def verified_answer(live: LiveGateway, number: str, reference: str, secret: str) -> list[str]:
    asked = sms_turn(live, number, "any news on my case?")
    assert len(asked) == 1 and ASK_REFERENCE in asked[0].lower(), asked
    asked = sms_turn(live, number, reference)
    assert any(ASK_SECRET in t for t in asked), asked
    return sms_turn(live, number, secret)


def new_case(
    live: LiveGateway, *, secret: str = "marigold", linked: bool = True, number: str | None = None
) -> tuple[str, str]:
    """A fresh case (unique reference) with one victim whose phone is linked."""
    number = number or fresh_number()
    reference = fresh_reference()
    with live.db() as session, session.begin():
        case = Case(reference=reference, agency="met", crime_type="burglary", stage="charge")
        session.add(case)
        session.flush()
        victim = Victim(
            case_id=case.id,
            external_id="v",
            consent_at=datetime.now(UTC),
            secret_hash=hash_secret(secret),
        )
        session.add(victim)
        session.flush()
        session.add(
            VictimContact(
                victim_id=victim.id,
                channel="sms",
                address=number,
                verified_at=datetime.now(UTC) if linked else None,
            )
        )
    return number, reference


@pytest.mark.parametrize("case", demo.DEMO_CASES, ids=lambda c: c.reference)
def test_a_verified_victim_gets_their_case_at_every_stage(
    seeded: LiveGateway, case: demo.DemoCase
) -> None:
    replies = verified_answer(seeded, case.phone, case.reference, demo.DEMO_SECRET)
    with seeded.db() as session:
        stage = session.scalar(select(Case.stage).where(Case.reference == case.reference))
    text = " ".join(replies)
    stage_text = content.item(f"case.stage.{stage}").parts[0]
    assert stage_text.split(".")[0] in text, (stage, replies)
    assert not any("{" in r for r in replies)


def test_the_secret_never_reaches_rasa_the_database_or_the_logs(
    seeded: LiveGateway, caplog: pytest.LogCaptureFixture, rasa_stack: Any
) -> None:
    secret = f"sunflower{uuid.uuid4().hex[:6]}"
    number, reference = new_case(seeded, secret=secret)
    caplog.set_level(logging.DEBUG)
    replies = verified_answer(seeded, number, reference, secret)
    assert "charged" in " ".join(replies).lower()
    # Not in the gateway's messages...
    with seeded.db() as session:
        texts = session.scalars(select(Inbound.text)).all()
    assert all(secret not in (t or "") for t in texts)
    # ...not in Rasa's tracker store...
    tracker_db = Path(rasa_stack.tracker_store_path)
    with sqlite3.connect(tracker_db) as conn:
        rows = conn.execute("SELECT data FROM events").fetchall()
    assert rows and all(secret not in row[0] for row in rows)
    # What Rasa got instead: the verdict.
    assert any('"entity": "case_check", "value": "verified"' in row[0] for row in rows)
    # ...and not in the logs.
    assert secret not in caplog.text


def test_wrong_secret_and_unknown_reference_get_the_same_reply(seeded: LiveGateway) -> None:
    number, reference = new_case(seeded)
    wrong = verified_answer(seeded, number, reference, "not-my-word")
    assert any(NO_MATCH in r for r in wrong)
    assert any(ASK_REFERENCE in r.lower() for r in wrong)  # and asks again
    sms_turn(seeded, number, "1111111/26")
    unknown = sms_turn(seeded, number, "marigold")
    assert wrong == unknown


def test_five_failures_lock_the_case_and_tell_a_coordinator(seeded: LiveGateway) -> None:
    number, reference = new_case(seeded)
    sms_turn(seeded, number, "any news?")
    replies: list[str] = []
    for _ in range(5):
        sms_turn(seeded, number, reference)
        replies = sms_turn(seeded, number, "wrong guess")
    locked = content.item("case.locked").parts[0]
    assert any(locked in r for r in replies), replies
    # The lock-out asked a person to help: the conversation waits for a coordinator.
    conversation = conversation_of(seeded, "sms", number)
    handoff = open_handoff(seeded, conversation.id)
    assert handoff is not None and handoff.reason == "verification_locked"
    helper = coordinator(seeded)
    seeded.run(seeded.gateway.handoffs.claim(handoff.id, helper))
    seeded.run(seeded.gateway.handoffs.hand_back(handoff.id, helper))
    # Back with the bot, even the right secret is refused now, from this phone...
    again = verified_answer_or_locked(seeded, number, reference, "marigold")
    assert any(locked in r for r in again)
    with seeded.db() as session:
        case_id = session.scalar(select(Case.id).where(Case.reference == reference))
        tasks = session.scalars(select(Task).where(Task.case_id == case_id)).all()
    assert [t.kind for t in tasks] == ["verification_locked"]


def verified_answer_or_locked(
    live: LiveGateway, number: str, reference: str, secret: str
) -> list[str]:
    replies = sms_turn(live, number, "any news on my case?")
    if any(ASK_REFERENCE in t.lower() for t in replies):
        sms_turn(live, number, reference)
        replies = sms_turn(live, number, secret)
    return replies


def test_verification_lasts_for_the_session_only(seeded: LiveGateway) -> None:
    number, reference = new_case(seeded)
    verified_answer(seeded, number, reference, "marigold")
    again = sms_turn(seeded, number, "any news?")
    assert not any(ASK_REFERENCE in t.lower() for t in again)  # still verified
    with seeded.db() as session, session.begin():
        contact = session.scalar(select(Contact).where(Contact.address == number))
        assert contact is not None
        session.execute(
            update(Conversation)
            .where(Conversation.contact_id == contact.id)
            .values(verified_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    expired = sms_turn(seeded, number, "any news?")
    assert any(ASK_REFERENCE in t.lower() for t in expired)


def test_an_unlinked_phone_must_confirm_a_code_sent_to_the_linked_one(
    seeded: LiveGateway,
) -> None:
    number, reference = new_case(seeded)
    stranger = fresh_number()
    replies = verified_answer(seeded, stranger, reference, "marigold")
    assert any("sent a code" in r for r in replies), replies
    code_message = wait_until(lambda: seeded.twilio.to(number), 1)[-1]
    code = code_message.split("code is ")[1][:6]
    wrong = sms_turn(seeded, stranger, "000000" if code != "000000" else "111111")
    assert any("That code is not right" in r for r in wrong)
    answer = sms_turn(seeded, stranger, code)
    assert "charged" in " ".join(answer).lower()
    with seeded.db() as session:
        kept = session.scalars(select(Outbound.text).where(Outbound.source == "code")).all()
    assert kept and all(code not in text and "******" in text for text in kept)


def test_on_the_web_a_code_goes_to_the_linked_phone(seeded: LiveGateway) -> None:
    number, reference = new_case(seeded)
    session = seeded.web_session()
    asked = seeded.web_say(session, "any news on my case?")
    assert any(ASK_REFERENCE in m["text"].lower() for m in asked)
    seeded.web_say(session, reference)
    sent = seeded.web_say(session, "marigold")
    assert any("sent a code" in m["text"] for m in sent)
    code = seeded.twilio.to(number)[-1].split("code is ")[1][:6]
    answer = seeded.web_say(session, code)
    text = " ".join(m["text"] for m in answer)
    assert "charged" in text.lower()
    # The web page is never linked: the next session starts from nothing.
    with seeded.db() as session_db:
        channels = session_db.scalars(
            select(VictimContact.channel)
            .join(Victim, Victim.id == VictimContact.victim_id)
            .join(Case, Case.id == Victim.case_id)
            .where(Case.reference == reference)
        ).all()
    assert channels == ["sms"]


def test_an_emergency_while_asked_for_the_secret_gets_999_and_is_not_a_guess(
    seeded: LiveGateway,
) -> None:
    number, reference = new_case(seeded)
    sms_turn(seeded, number, "any news?")
    sms_turn(seeded, number, reference)
    replies = sms_turn(seeded, number, "he is outside my door with a knife")
    assert replies[0].startswith("If you are in danger now, call 999.")
    with seeded.db() as session:
        stored = session.scalars(
            select(Inbound.text)
            .join(Conversation, Conversation.id == Inbound.conversation_id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.address == number)
        ).all()
    assert "he is outside my door with a knife" in stored  # kept: it was not a secret


def test_an_agency_posts_a_release_and_the_victim_hears_first(seeded: LiveGateway) -> None:
    number, reference = new_case(seeded)
    with seeded.db() as session, session.begin():
        key = create_key(session, "met", "Met test key", ["events:write"])
    posted = seeded.client.post(
        f"{seeded.url}/api/cases/{reference}/events",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "type": "released_from_custody",
            "occurred_at": datetime.now(UTC).isoformat(),
            "external_id": f"release-{reference}",
        },
    )
    assert posted.status_code == 201, posted.text
    # Told first, and discreetly: nothing about the case in the text itself.
    nudge = wait_until(lambda: seeded.twilio.to(number), 1, timeout=30)
    assert nudge == [content.item("case.notify.discreet").parts[0]]
    replies = sms_turn(seeded, number, "UPDATE")
    assert len(replies) == 1 and ASK_REFERENCE in replies[0].lower()
    sms_turn(seeded, number, reference)
    answer = sms_turn(seeded, number, "marigold")
    assert "released from custody" in answer[0]
    assert "call 999" in answer[0]


def test_a_locked_case_only_tells_someone_with_the_right_secret(seeded: LiveGateway) -> None:
    number, reference = new_case(seeded)
    # Five wrong guesses today, from somewhere else.
    other = fresh_number()
    sms_turn(seeded, other, "hello")
    with seeded.db() as session, session.begin():
        case_id = session.scalar(select(Case.id).where(Case.reference == reference))
        conversation_id = session.scalar(
            select(Conversation.id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.address == other)
        )
        for _ in range(5):
            session.add(
                VerificationAttempt(
                    conversation_id=conversation_id, case_id=case_id, succeeded=False
                )
            )
    # A wrong guess from this phone gets the same reply as an unknown reference...
    wrong = verified_answer(seeded, number, reference, "not-my-word")
    assert any(NO_MATCH in r for r in wrong)
    # ...while the victim, with the right secret, is told kindly what to do instead.
    sms_turn(seeded, number, reference)
    right = sms_turn(seeded, number, "marigold")
    assert any(content.item("case.locked").parts[0] in r for r in right)


def test_a_question_while_asked_for_the_secret_is_not_a_guess(seeded: LiveGateway) -> None:
    number, reference = new_case(seeded)
    sms_turn(seeded, number, "any news?")
    sms_turn(seeded, number, reference)
    sms_turn(seeded, number, "what does bail mean?")
    with seeded.db() as session:
        attempts = session.scalars(
            select(VerificationAttempt)
            .join(Case, Case.id == VerificationAttempt.case_id)
            .where(Case.reference == reference)
        ).all()
        # Sealed at rest: compared in Python, not in SQL.
        kept = session.scalars(select(Inbound.text).where(Inbound.text.is_not(None))).all()
        assert "what does bail mean?" in kept  # not a secret: stored like any message
    assert attempts == []
