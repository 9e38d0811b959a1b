"""Contact preferences through the real gateway (fake Twilio and Telegram), on SQLite and
PostgreSQL: the offer after enrolment, the menu, what each choice stores, and that the
next notification follows it (quiet hours defer, detailed or discreet text, pause).

Most of it needs no assistant: after enrolment the gateway itself asks, and the menu is
answered by the gateway. The tests marked `rasa` start from "change how you contact me".
"""

from __future__ import annotations

import random
import time as clock
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from actions import content
from bot.cases import notify
from bot.cases.enrolment import enrolment_text, telegram_link
from bot.cases.events import add_event
from bot.cases.models import Case, Notification, Task, Victim, VictimContact
from bot.cases.working_days import LONDON
from bot.handoff.models import AuditEntry
from bot.models import Contact, Conversation, Inbound, InboundState, Outbound
from tests.cases.test_lookup import ASK_REFERENCE, new_case
from tests.fakes.telegram_api import callback_update, text_update
from tests.harness import (
    LiveGateway,
    database,
    fresh_number,
    fresh_reference,
    gateway_settings,
    live_gateway_for,
    wait_until,
)

NO_RASA = "http://127.0.0.1:9"  # the menu never asks the assistant anything


def line(key: str) -> str:
    return content.item(f"preferences.{key}").part(0)


def title(key: str) -> str:
    return content.item(f"preferences.{key}").title


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def live(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveGateway]:
    """A gateway with no assistant behind it. Its notification worker runs once at start
    and then waits an hour: the tests deliver at the times they choose."""
    with database(request.param, tmp_path) as url:
        settings = gateway_settings(
            url, NO_RASA, "token", notify_interval=3600, telegram_bot_username="WaymarkTestBot"
        )
        with live_gateway_for(settings) as gateway:
            yield gateway


# -- talking to the gateway ------------------------------------------------------------


def settled(live: LiveGateway, channel: str, address: str) -> None:
    """Wait until every message from this address is answered."""

    def done() -> list[int]:
        with live.db() as session:
            states = session.scalars(
                select(Inbound.state)
                .join(Conversation, Conversation.id == Inbound.conversation_id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.channel == channel, Contact.address == address)
            ).all()
        return [1] if states and InboundState.PENDING not in states else []

    wait_until(done, 1, timeout=30)
    clock.sleep(0.2)  # the last reply's delivery is recorded just after the note


def sms(live: LiveGateway, number: str, text: str) -> list[str]:
    """Send one SMS; every reply to it."""
    before = len(live.twilio.to(number))
    live.sms(number, text)
    clock.sleep(0.1)
    settled(live, "sms", number)
    return live.twilio.to(number)[before:]


def tap(live: LiveGateway, chat_id: int, button: str) -> list[dict[str, Any]]:
    """Tap a button (by title) on the last Telegram message that had buttons."""
    with live.db() as session:
        rows = session.execute(
            select(Outbound.id, Outbound.buttons)
            .join(Conversation, Conversation.id == Outbound.conversation_id)
            .join(Contact, Contact.id == Conversation.contact_id)
            .where(Contact.channel == "telegram", Contact.address == str(chat_id))
            .order_by(Outbound.id.desc())
        ).all()
    row = next(r for r in rows if r.buttons)
    index = [b["title"] for b in row.buttons].index(button)
    before = len(live.telegram.sent(chat_id))
    live.telegram_update(callback_update(random.randrange(10**9), chat_id, f"b:{row.id}:{index}"))
    clock.sleep(0.1)
    settled(live, "telegram", str(chat_id))
    return live.telegram.sent(chat_id)[before:]


# -- victims ----------------------------------------------------------------------------


def registered(live: LiveGateway, number: str, **preferences: Any) -> tuple[int, int, str]:
    """An agency's new victim, their phone not yet proved: (case id, victim id, code)."""
    with live.db() as session, session.begin():
        case = Case(
            reference=fresh_reference(), agency="met", crime_type="burglary", stage="charge"
        )
        session.add(case)
        session.flush()
        victim = Victim(
            case_id=case.id, external_id="v1", consent_at=datetime.now(UTC), **preferences
        )
        session.add(victim)
        session.flush()
        contact = VictimContact(victim_id=victim.id, channel="sms", address=number)
        session.add(contact)
        session.flush()
        code = enrolment_text(session, live.settings, contact).split("code is ")[1][:6]
        return case.id, victim.id, code


def enrolled(live: LiveGateway, **preferences: Any) -> tuple[str, int, int]:
    """A victim who proved their phone and chose a secret by SMS, and was just offered
    the preferences menu: (number, case id, victim id)."""
    number = fresh_number()
    case_id, victim_id, code = registered(live, number, **preferences)
    assert sms(live, number, code) == [content.item("case.enrol.choose").part(0)]
    sms(live, number, "wild garlic")
    replies = sms(live, number, "wild garlic")
    assert replies == [
        content.item("case.enrol.done").part(0),
        f"{line('offer')}\nReply 1 for Yes\nReply 2 for Not now",
    ]
    return number, case_id, victim_id


def victim(live: LiveGateway, victim_id: int) -> Victim:
    with live.db() as session:
        found = session.get(Victim, victim_id)
        assert found is not None
        return found


def audit(live: LiveGateway, case_id: int) -> list[AuditEntry]:
    with live.db() as session:
        return list(
            session.scalars(
                select(AuditEntry)
                .where(AuditEntry.case_id == case_id, AuditEntry.action == "preferences")
                .order_by(AuditEntry.id)
            )
        )


def menu_lines(paused: bool = False) -> list[str]:
    names = ["channel", "quiet", "detail", "advocate", "resume" if paused else "pause", "done"]
    return [f"Reply {n} for {title(name)}" for n, name in enumerate(names, 1)]


# -- notifications, at a time the test chooses ---------------------------------------------


def post(live: LiveGateway, case_id: int, type: str = "investigation_started") -> int:
    with live.db() as session, session.begin():
        case = session.get(Case, case_id)
        assert case is not None
        added = add_event(
            session,
            case,
            type=type,
            occurred_at=datetime.now(UTC) - timedelta(minutes=5),
            agency="met",
        )
        return added.event.id


def deliver(live: LiveGateway, event_id: int, at: datetime) -> Notification:
    live.run(notify.deliver_due(live.gateway, now=at))
    with live.db() as session:
        row = session.scalar(select(Notification).where(Notification.event_id == event_id))
        assert row is not None
        return row


def london(day: datetime, hour: int, minute: int = 0) -> datetime:
    return datetime.combine(day.date(), time(hour, minute), LONDON)


def tonight() -> datetime:
    """11pm London, later than now (the notification exists by then)."""
    now = datetime.now(LONDON)
    at = london(now, 23)
    return at if at > now else at + timedelta(days=1)


# -- the tests ----------------------------------------------------------------------------


def test_quiet_hours_chosen_after_enrolment_hold_the_next_notification(
    live: LiveGateway,
) -> None:
    number, case_id, victim_id = enrolled(live)
    menu = sms(live, number, "1")  # Yes
    assert menu == ["\n".join([line("menu"), *menu_lines()])]
    asked = sms(live, number, "2")  # Quiet hours
    assert asked[0].startswith(
        content.item("preferences.quiet").part(0, now=title("quiet.none").lower())
    )
    assert "Reply 1 for 9pm to 8am" in asked[0] and "Reply 5 for Back" in asked[0]
    saved = sms(live, number, "1")  # 9pm to 8am
    assert saved[0].startswith(
        f"{line('quiet.night')} {line('quiet.urgent')} {line('again')}\nReply 1 for "
    )
    stored = victim(live, victim_id)
    assert (stored.quiet_start, stored.quiet_end) == (time(21), time(8))
    # The audit entry names the fields, never their values.
    [entry] = audit(live, case_id)
    assert (entry.actor, entry.detail) == ("victim", {"changed": ["quiet_end", "quiet_start"]})
    assert entry.conversation_id is not None
    assert sms(live, number, "done") == [line("done")]

    before = len(live.twilio.to(number))
    event_id = post(live, case_id)
    night = tonight()
    held = deliver(live, event_id, night)
    morning = london(night + timedelta(days=1), 8)
    assert held.state == "pending"
    assert held.not_before is not None
    assert held.not_before.replace(tzinfo=UTC) == morning.astimezone(UTC)
    assert len(live.twilio.to(number)) == before  # nothing at 11pm
    sent = deliver(live, event_id, morning + timedelta(minutes=5))
    assert sent.state == "sent"
    assert live.twilio.to(number)[before:] == [content.item("case.notify.discreet").part(0)]


def test_detailed_or_discreet_is_what_the_next_notification_says(live: LiveGateway) -> None:
    number, case_id, victim_id = enrolled(live)
    sms(live, number, "yes")
    asked = sms(live, number, "Discreet or detailed")  # typed, as the button says
    assert asked[0].startswith(
        content.item("preferences.detail").part(0, now=title("detail.discreet").lower())
    )
    saved = sms(live, number, "2")  # Detailed
    assert saved[0].startswith(line("detail.detailed"))
    assert victim(live, victim_id).discreet is False
    with live.db() as session:
        reference = session.scalar(select(Case.reference).where(Case.id == case_id))
    before = len(live.twilio.to(number))
    afternoon = london(datetime.now(LONDON) + timedelta(days=1), 14)
    assert deliver(live, post(live, case_id), afternoon).state == "sent"
    [detailed] = live.twilio.to(number)[before:]
    assert reference and reference in detailed
    assert detailed != content.item("case.notify.discreet").part(0)

    sms(live, number, "3")  # Discreet or detailed, from the menu that followed
    sms(live, number, "1")  # Discreet
    assert victim(live, victim_id).discreet is True
    before = len(live.twilio.to(number))
    later = afternoon + timedelta(days=1)
    assert deliver(live, post(live, case_id, "suspect_interviewed"), later).state == "sent"
    assert live.twilio.to(number)[before:] == [content.item("case.notify.discreet").part(0)]
    assert [e.detail for e in audit(live, case_id)] == [{"changed": ["discreet"]}] * 2


def test_paused_messages_send_nothing_until_started_again(live: LiveGateway) -> None:
    number, case_id, victim_id = enrolled(live)
    sms(live, number, "1")
    saved = sms(live, number, "5")  # Pause all messages
    assert saved == ["\n".join([f"{line('pause')} {line('again')}", *menu_lines(paused=True)])]
    assert victim(live, victim_id).paused is True
    before = len(live.twilio.to(number))
    day = london(datetime.now(LONDON) + timedelta(days=1), 12)
    cancelled = deliver(live, post(live, case_id), day)
    assert (cancelled.state, cancelled.error) == ("cancelled", "messages paused")
    assert len(live.twilio.to(number)) == before

    assert sms(live, number, "5")[0].startswith(line("resume"))  # Start messages again
    assert victim(live, victim_id).paused is False
    before = len(live.twilio.to(number))
    assert deliver(live, post(live, case_id, "suspect_interviewed"), day).state == "sent"
    assert len(live.twilio.to(number)) == before + 1


def test_texts_are_not_safe_stops_texts_and_says_there_is_no_other_way(
    live: LiveGateway,
) -> None:
    number, case_id, victim_id = enrolled(live)
    sms(live, number, "1")
    asked = sms(live, number, "1")  # How we contact you
    assert asked[0].startswith(line("channel"))
    # Only what this victim has: a phone, no Telegram.
    options = [title("channel.sms"), title("channel.no_texts"), title("channel.web")]
    assert [f"Reply {n} for {o}" for n, o in enumerate(options, 1)] == asked[0].split("\n")[1:4]
    saved = sms(live, number, "2")
    assert saved[0].startswith(f"{line('channel.no_texts')} {line('channel.no_route')}")
    assert victim(live, victim_id).safe_to_text is False
    before = len(live.twilio.to(number))
    day = london(datetime.now(LONDON) + timedelta(days=1), 12)
    row = deliver(live, post(live, case_id, "suspect_arrested"), day)
    assert (row.state, row.error) == ("cancelled", "no safe route")
    assert len(live.twilio.to(number)) == before
    with live.db() as session:  # a key decision they can't be told: a coordinator is
        kinds = session.scalars(select(Task.kind).where(Task.case_id == case_id)).all()
    assert "no_safe_route" in kinds


def test_through_an_advocate_never_asks_for_their_details(live: LiveGateway) -> None:
    number, case_id, victim_id = enrolled(live)
    sms(live, number, "1")
    asked = sms(live, number, "4")  # Through an advocate
    assert asked[0].startswith(line("advocate"))
    saved = sms(live, number, "yes")
    assert saved[0].startswith(line("advocate.pending"))
    stored = victim(live, victim_id)
    assert stored.via_advocate is True and stored.advocate_phone is None
    with live.db() as session:
        [task] = session.scalars(
            select(Task).where(Task.case_id == case_id, Task.kind == "advocate_details")
        ).all()
    assert task.state == "open" and "+44" not in task.detail
    # Until the team adds the advocate, news still comes to the victim...
    day = london(datetime.now(LONDON) + timedelta(days=1), 12)
    first = deliver(live, post(live, case_id), day)
    assert (first.state, first.recipient) == ("sent", "victim")
    # ...and once they have, it goes to the advocate.
    advocate = fresh_number()
    with live.db() as session, session.begin():
        found = session.get(Victim, victim_id)
        assert found is not None
        found.advocate_phone = advocate
    second = deliver(live, post(live, case_id, "suspect_interviewed"), day + timedelta(days=1))
    assert (second.state, second.recipient) == ("sent", "advocate")
    assert len(live.twilio.to(advocate)) == 1


def test_not_now_changes_nothing(live: LiveGateway) -> None:
    number, case_id, victim_id = enrolled(live)
    assert sms(live, number, "2") == [line("not_now")]
    stored = victim(live, victim_id)
    assert (stored.paused, stored.discreet, stored.quiet_start) == (False, True, None)
    assert audit(live, case_id) == []


def test_a_cry_for_help_in_the_menu_is_never_taken_as_a_choice(live: LiveGateway) -> None:
    number, case_id, victim_id = enrolled(live)
    sms(live, number, "1")
    replies = sms(live, number, "he's outside my door, I'm scared he'll hurt me")
    assert replies[0].startswith("If you are in danger now, call 999.")
    assert victim(live, victim_id).paused is False
    assert audit(live, case_id) == []


def test_telegram_buttons_choose_telegram_for_the_next_notification(live: LiveGateway) -> None:
    number = fresh_number()
    case_id, victim_id, _ = registered(live, number)
    with live.db() as session, session.begin():
        session.execute(  # their phone is proved too: they can choose between the two
            update(VictimContact)
            .where(VictimContact.victim_id == victim_id)
            .values(verified_at=datetime.now(UTC))
        )
        found = session.get(Victim, victim_id)
        assert found is not None
        token = telegram_link(session, live.settings, found).split("start=")[1]
    chat = random.randrange(10**8, 10**9)
    live.telegram_update(text_update(random.randrange(10**9), chat, f"/start {token}"))
    live.telegram_replies(chat, 1)
    for _ in range(2):
        live.telegram_update(text_update(random.randrange(10**9), chat, "wild garlic"))
        clock.sleep(0.1)
        settled(live, "telegram", str(chat))
    offer = live.telegram.sent(chat)[-1]
    assert offer["text"] == line("offer")
    tap(live, chat, title("offer"))
    asked = tap(live, chat, title("channel"))
    assert asked[-1]["text"] == line("channel")
    saved = tap(live, chat, title("channel.telegram"))
    assert saved[-1]["text"] == f"{line('channel.telegram')} {line('again')}"
    assert victim(live, victim_id).preferred_channel == "telegram"
    assert tap(live, chat, title("done"))[-1]["text"] == line("done")
    # A button on a menu that has closed applies nothing; it shows what to do now.
    stale = tap(live, chat, title("pause"))
    assert stale[-1]["text"] == line("verify")
    assert victim(live, victim_id).paused is False

    before = len(live.twilio.to(number))
    day = london(datetime.now(LONDON) + timedelta(days=1), 12)
    row = deliver(live, post(live, case_id), day)
    assert (row.state, row.channel) == ("sent", "telegram")
    assert live.telegram.sent(chat)[-1]["text"] == content.item("case.notify.discreet").part(0)
    assert len(live.twilio.to(number)) == before


# -- from the assistant: "change how you contact me" -------------------------------------------


def case_for(live: LiveGateway, number: str, secret: str) -> tuple[int, int, str]:
    """A case whose victim has chosen a secret and proved this phone."""
    _, reference = new_case(live, secret=secret, number=number)
    with live.db() as session:
        victim = session.scalars(
            select(Victim).join(Case, Case.id == Victim.case_id).where(Case.reference == reference)
        ).one()
    return victim.case_id, victim.id, reference


@pytest.mark.rasa
def test_someone_not_verified_is_told_to_check_it_is_them_first(
    gateway_on: LiveGateway,
) -> None:
    live = gateway_on
    number = fresh_number()
    replies = sms(live, number, "change how you contact me")
    assert replies == [
        f"{line('verify')}\nReply 1 for {title('verify')}\nReply 2 for {title('not_now')}"
    ]
    # "1" starts the case look-up, which the assistant runs.
    assert any(ASK_REFERENCE in r.lower() for r in sms(live, number, "1"))


@pytest.mark.rasa
def test_web_chat_buttons_start_the_check(gateway_on: LiveGateway) -> None:
    live = gateway_on
    session_id = live.web_session()
    [asked] = live.web_say(session_id, "change how you contact me")
    assert asked["text"] == line("verify")
    check, not_now = asked["buttons"]
    assert check["title"] == title("verify") and not_now["title"] == title("not_now")
    replies = live.web_say(session_id, check["title"], payload=check["payload"])
    assert any(ASK_REFERENCE in r["text"].lower() for r in replies)


@pytest.mark.rasa
def test_a_verified_victim_pauses_messages_from_the_chat(gateway_on: LiveGateway) -> None:
    live = gateway_on
    number = fresh_number()
    case_id, victim_id, reference = case_for(live, number, "marigold")
    assert any(ASK_REFERENCE in r.lower() for r in sms(live, number, "any news on my case?"))
    sms(live, number, reference)
    assert "charged" in " ".join(sms(live, number, "marigold")).lower()  # verified

    menu = sms(live, number, "change how you contact me")
    assert menu == ["\n".join([line("menu"), *menu_lines()])]
    sms(live, number, "5")  # Pause all messages
    assert victim(live, victim_id).paused is True
    # This gateway's own worker sends it (or not), every 2 seconds.
    event_id = post(live, case_id)

    def decided() -> list[Notification]:
        with live.db() as session:
            row = session.scalar(select(Notification).where(Notification.event_id == event_id))
        return [row] if row is not None and row.state not in ("pending", "sending") else []

    [row] = wait_until(decided, 1, timeout=30)
    assert (row.state, row.error) == ("cancelled", "messages paused")

    # When the check runs out, nothing more changes until they check again.
    with live.db() as session, session.begin():
        session.execute(
            update(Conversation)
            .where(Conversation.verified_victim_id == victim_id)
            .values(verified_until=datetime.now(UTC) - timedelta(seconds=1))
        )
    replies = sms(live, number, "5")  # Start messages again
    assert replies[0].startswith(f"{line('expired')} {line('verify')}")
    assert victim(live, victim_id).paused is True
