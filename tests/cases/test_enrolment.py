"""Enrolment without the assistant: the gateway links a phone or Telegram chat and takes
the new secret itself (Rasa is not running here, and is never needed for it)."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from actions import content
from bot.cases.credentials import verify_secret
from bot.cases.enrolment import enrolment_text, telegram_link
from bot.cases.keys import create_key
from bot.cases.models import Case, Victim, VictimContact
from bot.models import Inbound
from tests.fakes.telegram_api import text_update
from tests.harness import LiveGateway, database, gateway_settings, live_gateway_for, wait_until

NUMBER = "+447700900555"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveGateway]:
    with database(request.param, tmp_path) as url:
        settings = gateway_settings(
            url, "http://127.0.0.1:9", "token", telegram_bot_username="WaymarkTestBot"
        )
        with live_gateway_for(settings) as gateway:
            yield gateway


def registered_victim(live: LiveGateway) -> tuple[int, int]:
    """A victim an agency registered, with an SMS number not yet confirmed."""
    with live.db() as session, session.begin():
        case = Case(
            reference=f"{random.randrange(10**7):07d}/26",
            agency="met",
            crime_type="theft",
            stage="report",
        )
        session.add(case)
        session.flush()
        victim = Victim(case_id=case.id, external_id="v1", consent_at=datetime.now(UTC))
        session.add(victim)
        session.flush()
        contact = VictimContact(victim_id=victim.id, channel="sms", address=NUMBER)
        session.add(contact)
        session.flush()
        return victim.id, contact.id


def sms_reply(live: LiveGateway, text: str, count: int) -> str:
    live.sms(NUMBER, text)
    # The count-th message: after "All set" comes the offer to choose contact preferences.
    return wait_until(lambda: live.twilio.to(NUMBER), count)[count - 1]


def test_a_victim_confirms_the_code_and_chooses_a_secret(live: LiveGateway) -> None:
    victim_id, contact_id = registered_victim(live)
    with live.db() as session, session.begin():
        contact = session.get(VictimContact, contact_id)
        assert contact is not None
        message = enrolment_text(session, live.settings, contact)
    code = message.split("code is ")[1][:6]
    assert "Reply STOP" in message and "crime" not in message.lower()  # discreet

    assert (
        sms_reply(live, code[:3] + " " + code[3:], 1) == content.item("case.enrol.choose").parts[0]
    )
    assert sms_reply(live, "1234", 2) == content.item("case.secret_rule").parts[0]
    assert sms_reply(live, "Wild Garlic", 3) == content.item("case.enrol.confirm").parts[0]
    assert sms_reply(live, "wild onion", 4) == content.item("case.enrol.mismatch").parts[0]
    assert sms_reply(live, "wild garlic", 5) == content.item("case.enrol.confirm").parts[0]
    assert sms_reply(live, "  WILD garlic ", 6) == content.item("case.enrol.done").parts[0]

    with live.db() as session:
        victim = session.get(Victim, victim_id)
        contact = session.get(VictimContact, contact_id)
        assert victim is not None and contact is not None
        assert contact.verified_at is not None
        assert verify_secret(victim.secret_hash, "wild garlic")
        stored = session.scalars(select(Inbound.text)).all()
    # Neither the code nor any secret was ever written down.
    assert stored and all(t is None for t in stored)


def test_a_wrong_or_used_code_links_nothing(live: LiveGateway) -> None:
    _, contact_id = registered_victim(live)
    with live.db() as session, session.begin():
        contact = session.get(VictimContact, contact_id)
        assert contact is not None
        old = enrolment_text(session, live.settings, contact).split("code is ")[1][:6]
        new = enrolment_text(session, live.settings, contact).split("code is ")[1][:6]
    assert old != new
    live.sms(NUMBER, old)  # replaced by the newer code: goes to the assistant instead
    wait_until(lambda: live.twilio.to(NUMBER), 1)  # the holding reply (no Rasa here)
    with live.db() as session:
        assert session.get(VictimContact, contact_id).verified_at is None  # type: ignore[union-attr]


def test_telegram_is_linked_by_a_deep_link(live: LiveGateway) -> None:
    victim_id, _ = registered_victim(live)
    with live.db() as session, session.begin():
        victim = session.get(Victim, victim_id)
        assert victim is not None
        link = telegram_link(session, live.settings, victim)
    assert link.startswith("https://t.me/WaymarkTestBot?start=")
    token = link.split("start=")[1]
    chat_id = uuid.uuid4().int % 10**9
    live.telegram_update(text_update(random.randrange(10**9), chat_id, f"/start {token}"))
    reply = live.telegram_replies(chat_id, 1)[0]["text"]
    assert reply == content.item("case.enrol.choose").parts[0]
    with live.db() as session:
        linked = session.scalars(
            select(VictimContact).where(VictimContact.victim_id == victim_id)
        ).all()
    assert {(c.channel, c.address, c.verified_at is not None) for c in linked} >= {
        ("telegram", str(chat_id), True)
    }
    # The link works once.
    other = chat_id + 1
    live.telegram_update(text_update(random.randrange(10**9), other, f"/start {token}"))
    live.telegram_replies(other, 1)
    with live.db() as session:
        assert (
            session.scalar(select(VictimContact.id).where(VictimContact.address == str(other)))
            is None
        )


def test_an_agency_registers_a_victim_who_then_enrols_by_text(live: LiveGateway) -> None:
    with live.db() as session, session.begin():
        key = create_key(session, "met", "Met test key", ["cases:write"])
    reference = f"{random.randrange(10**7):07d}/26"
    registered = live.client.put(
        f"{live.url}/api/cases/{reference}",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "crime_type": "burglary",
            "stage": "investigation",
            "officer_contact": f"101, quoting {reference}",
            "victims": [
                {
                    "external_id": "P-1",
                    "consent": True,
                    "contacts": [{"channel": "sms", "address": "07700 900555"}],
                }
            ],
        },
    )
    assert registered.status_code == 201, registered.text
    # The notification worker sends the code, discreetly.
    message = wait_until(lambda: live.twilio.to(NUMBER), 1, timeout=30)[0]
    assert message.startswith("This is Waymark. Your code is ")
    code = message.split("code is ")[1][:6]
    assert sms_reply(live, code, 2) == content.item("case.enrol.choose").parts[0]
    sms_reply(live, "hawthorn", 3)
    assert sms_reply(live, "hawthorn", 4) == content.item("case.enrol.done").parts[0]
    with live.db() as session:
        victim = session.scalar(select(Victim).where(Victim.external_id == "P-1"))
        assert victim is not None and verify_secret(victim.secret_hash, "hawthorn")
