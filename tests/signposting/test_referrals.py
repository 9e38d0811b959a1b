"""Needs and warm referrals at the gateway: the markers the assistant sends, answered by the
live gateway (real Twilio library against the fake), the console's referral page, JSON
export and status steps. The conversation that leads to them is in test_chat_flow.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from actions import content
from bot.cases.models import Task
from bot.gateway import _Out
from bot.handoff.models import AuditEntry
from bot.models import Contact, Conversation
from bot.services import directory as store
from bot.services.models import NeedsAssessment, Referral, ReferralEvent
from bot.services.schema import Service
from tests.handoff.conftest import coordinator, open_handoff
from tests.handoff.test_console import Console, close_consoles  # noqa: F401  (fixture)
from tests.harness import LiveGateway, fresh_number

pytestmark = pytest.mark.rasa
NEEDS = {
    "safe_now": "yes",
    "communication": "interpreter",
    "language": "polish",
    "disability": "skip",
    "others": "children",
    "contact": "text",
    "safe_times": "evening",
}


class Person:
    """Someone texting the gateway; markers go straight to the signposting desk."""

    def __init__(self, live: LiveGateway, channel: str = "sms") -> None:
        self.live = live
        self.channel = channel
        # A Telegram chat id is a number: the counter keeps it unique too.
        self.address = fresh_number() if channel == "sms" else "9" + fresh_number()[-8:]
        self.conversation_id = live.run(self._conversation())

    async def _conversation(self) -> int:
        async with self.live.gateway.sessions() as session, session.begin():
            found = await self.live.gateway.conversation_for(session, self.channel, self.address)
            return found.id

    def marker(self, marker: dict[str, Any]) -> None:
        self.live.run(self._marker(marker))

    async def _marker(self, marker: dict[str, Any]) -> None:
        gateway = self.live.gateway
        async with gateway.sessions() as session:
            contact = await session.scalar(
                select(Contact).where(
                    Contact.channel == self.channel, Contact.address == self.address
                )
            )
        assert contact is not None
        out = _Out(gateway, gateway.senders[self.channel], self.conversation_id, contact, None)
        await gateway.signposts.on_marker(out, self.conversation_id, marker)

    def texts(self) -> list[str]:
        return self.live.twilio.to(self.address)

    def referrals(self) -> list[Referral]:
        with self.live.db() as session:
            return list(
                session.scalars(
                    select(Referral)
                    .where(Referral.conversation_id == self.conversation_id)
                    .order_by(Referral.id)
                )
            )

    def offer_and_agree(self, service_id: str) -> Referral:
        self.marker({"referral": {"offer": service_id, "reason": "domestic_abuse"}})
        self.marker({"referral": {"consent": service_id}})
        (made,) = [r for r in self.referrals() if r.service_id == service_id]
        return made


@pytest.fixture
def person(live_gateway: LiveGateway) -> Iterator[Person]:
    yield Person(live_gateway)


def services(live: LiveGateway) -> list[Service]:
    with live.db() as session:
        return sorted(store.active(session), key=lambda s: s.id)


def referable(live: LiveGateway) -> str:
    found = [s for s in services(live) if s.referrals]
    assert found
    return found[0].id


def test_needs_are_kept_once_as_choices_and_reused(person: Person) -> None:
    person.marker({"needs": {**NEEDS, "note": "my address is 1 High St", "contact": "pigeon"}})
    with person.live.db() as session:
        kept = session.scalar(
            select(NeedsAssessment.answers).where(
                NeedsAssessment.conversation_id == person.conversation_id
            )
        )
    # Only known questions with known answers: free text never lands here.
    assert kept == {k: v for k, v in NEEDS.items() if k != "contact"} | {"language": "Polish"}
    assert person.texts()[-1] == content.item("referrals.needs_saved").parts[0]
    flags = person.live.run(person.live.gateway.signposts.flags(person.conversation_id))
    assert flags == {"stored": True}


def test_not_safe_now_gets_the_emergency_route_and_a_person(person: Person) -> None:
    person.marker({"needs": {"safe_now": "no"}})
    texts = person.texts()
    assert texts[0] == content.item("safety.emergency").parts[0]
    handoff = open_handoff(person.live, person.conversation_id)
    assert handoff is not None and handoff.priority == 0 and handoff.reason == "emergency"


def test_consent_says_what_is_shared_and_with_whom_then_a_referral_and_a_task(
    person: Person,
) -> None:
    live = person.live
    service_id = referable(live)
    service = live.gateway.signposts.directory.get(service_id)
    assert service is not None
    person.marker({"needs": NEEDS})
    person.marker({"referral": {"offer": service_id, "reason": "domestic_abuse"}})
    asked = person.texts()[-2:]
    assert service.name in asked[0]
    assert "domestic abuse" in asked[0]
    assert "you need a Polish interpreter" in asked[0]
    assert "children are affected too" in asked[0]
    assert "by text to this number, in the evening" in asked[0]
    assert "Do you agree?" in asked[1] and "Reply 1 for Yes" in asked[1]
    assert person.referrals() == []  # nothing until they say yes

    person.marker({"referral": {"consent": service_id}})
    (made,) = person.referrals()
    assert (made.status, made.reason) == ("pending", "domestic_abuse")
    assert made.needs["communication"] == "interpreter"
    assert made.contact == {
        "channel": "sms",
        "method": "text",
        "phone": person.address,
        "safe_times": "evening",
    }
    assert person.texts()[-1].startswith("Thank you. Our team will pass your referral to")
    with live.db() as session:
        task = session.get(Task, made.task_id)
        assert task is not None
        assert (task.kind, task.state, task.conversation_id) == (
            "referral",
            "open",
            person.conversation_id,
        )
        assert person.address not in task.detail  # no personal data in a task's text

    # Agreeing twice makes one referral; asking again says it is under way.
    person.marker({"referral": {"consent": service_id}})
    person.marker({"referral": {"offer": service_id}})
    assert len(person.referrals()) == 1
    assert "You already have a referral" in person.texts()[-1]


def test_a_web_or_telegram_person_is_contacted_through_the_chat_never_a_number(
    live_gateway: LiveGateway,
) -> None:
    person = Person(live_gateway, channel="telegram")
    person.marker({"needs": {**NEEDS, "contact": "call"}})
    made = person.offer_and_agree(referable(live_gateway))
    assert made.contact["method"] == "waymark" and made.contact["phone"] is None


def test_refusing_shares_nothing_and_a_late_yes_makes_nothing(person: Person) -> None:
    service_id = referable(person.live)
    person.marker({"referral": {"offer": service_id}})
    person.marker({"referral": {"refused": service_id}})
    assert person.texts()[-1] == content.item("referrals.refused").parts[0]
    person.marker({"referral": {"consent": service_id}})  # no offer is open any more
    assert person.texts()[-1] == content.item("referrals.expired").parts[0]
    assert person.referrals() == []


def test_consent_to_a_service_that_was_not_offered_makes_nothing(person: Person) -> None:
    first, second = [s.id for s in services(person.live) if s.referrals][:2]
    person.marker({"referral": {"offer": first}})
    person.marker({"referral": {"consent": second}})
    assert person.referrals() == []


def test_a_service_that_takes_no_referrals_is_refused(person: Person) -> None:
    closed = [s.id for s in services(person.live) if not s.referrals]
    assert closed, "the directory has reporting tools, which take no referrals"
    person.marker({"referral": {"offer": closed[0]}})
    person.marker({"referral": {"offer": "no-such-service"}})
    unavailable = content.item("referrals.unavailable").parts[0]
    assert person.texts()[-2:] == [unavailable, unavailable]


def test_choosing_offers_the_services_last_shown(person: Person) -> None:
    person.marker({"referral": {"choose": True}})
    assert person.texts()[-1] == content.item("referrals.choose_first").parts[0]
    person.marker({"services": {"crime_types": ["domestic_abuse"], "location": "Lewisham"}})
    with person.live.db() as session:
        conversation = session.get(Conversation, person.conversation_id)
        assert conversation is not None
        shown = conversation.services_shown
    assert shown and len(shown) == 3
    person.marker({"referral": {"choose": True}})
    question = person.texts()[-1]
    assert question.startswith(content.item("referrals.choose").parts[0])
    directory = person.live.gateway.signposts.directory
    for service_id in shown:
        service = directory.get(service_id)
        assert service is not None
        assert (service.name in question) == service.referrals


def test_withdrawing_stops_a_pending_referral_and_closes_its_task(person: Person) -> None:
    made = person.offer_and_agree(referable(person.live))
    person.marker({"referral": {"withdraw": True}})
    (after,) = person.referrals()
    assert after.status == "withdrawn" and after.closed_at is not None
    with person.live.db() as session:
        task = session.get(Task, made.task_id)
        assert task is not None and task.state == "done"
    assert person.texts()[-1].startswith("Done. Your referral to")
    person.marker({"referral": {"withdraw": True}})
    assert person.texts()[-1] == content.item("referrals.none_open").parts[0]


def test_the_coordinator_works_a_referral_in_the_console(person: Person) -> None:
    live = person.live
    sam = coordinator(live)
    person.marker({"needs": NEEDS})
    made = person.offer_and_agree(referable(live))
    console = Console.signed_in(live, sam)

    tasks = console.get("/console/api/tasks").json()["tasks"]
    (task,) = [t for t in tasks if t["id"] == made.task_id]
    assert (task["kind_text"], task["referral_id"]) == ("Referral to a service", made.id)

    exported = console.get(f"/console/api/referrals/{made.id}").json()
    assert exported["status"] == "pending"
    assert exported["service"]["id"] == made.service_id
    assert exported["contact"]["phone"] == person.address
    assert exported["needs"]["text"]
    assert exported["next"] == ["sent"]
    assert [h["status"] for h in exported["history"]] == ["pending"]

    page = console.get(f"/console/referrals/{made.id}")
    assert page.status_code == 200
    assert f"Referral #{made.id}" in page.text and "Mark as sent" in page.text

    # Steps in order; a step out of order is refused and says what is allowed.
    skipped = console.post(f"/console/api/referrals/{made.id}/status", {"status": "contacted"})
    assert skipped.status_code == 409 and "can only be marked sent" in skipped.json()["detail"]
    no_token = console.post(
        f"/console/api/referrals/{made.id}/status", {"status": "sent"}, csrf=False
    )
    assert no_token.status_code == 403
    for step in ("sent", "accepted"):
        done = console.post(f"/console/api/referrals/{made.id}/status", {"status": step})
        assert done.status_code == 200, done.text

    # The printable page's own form records the last step, then shows it saved.
    form = console.keep(
        console.client.post(
            console.url(f"/console/referrals/{made.id}/status"),
            data={"status": "contacted", "note": "called back", "csrf_token": console.csrf or ""},
            headers=console.cookie_header(),
        )
    )
    assert form.status_code == 303
    shown = console.get(f"/console/referrals/{made.id}?saved=1")
    assert "The service has contacted the person" in shown.text
    assert "Mark as" not in shown.text  # closed: nothing more to record

    with live.db() as session:
        referral = session.get(Referral, made.id)
        assert referral is not None and referral.status == "contacted"
        steps = session.scalars(
            select(ReferralEvent.status)
            .where(ReferralEvent.referral_id == made.id)
            .order_by(ReferralEvent.id)
        ).all()
        assert steps == ["pending", "sent", "accepted", "contacted"]
        task = session.get(Task, made.task_id)
        assert task is not None and task.state == "done"
        audited = session.scalars(
            select(AuditEntry.action).where(AuditEntry.actor == sam.username)
        ).all()
        assert "view_referral" in audited and audited.count("referral_status") == 3

    closed = console.post(f"/console/api/referrals/{made.id}/status", {"status": "declined"})
    assert closed.status_code == 409
    assert console.get("/console/api/referrals/999999").status_code == 404


def test_withdrawing_after_it_was_sent_asks_the_team_to_tell_the_service(
    person: Person,
) -> None:
    live = person.live
    made = person.offer_and_agree(referable(live))
    console = Console.signed_in(live, coordinator(live))
    assert console.post(f"/console/api/referrals/{made.id}/status", {"status": "sent"}).is_success
    person.marker({"referral": {"withdraw": True}})
    assert person.texts()[-1] == content.item("referrals.withdrawn_sent").parts[0]
    with live.db() as session:
        task = session.get(Task, made.task_id)
        assert task is not None
        assert (task.state, task.priority) == ("open", 0)
        assert "withdrawn their consent" in task.detail
