"""Signposting as a person lives it, by SMS through the live gateway and the real model:
the issue's sentence gets three services in two messages; REFER, the needs questions,
consent, a referral and its task; and cancelling it."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from actions import content
from bot.cases.models import Task
from bot.models import Contact, Conversation, Inbound, InboundState
from bot.services.models import NeedsAssessment, Referral
from tests.handoff.conftest import conversation_of
from tests.harness import LiveGateway, fresh_number, wait_until

pytestmark = pytest.mark.rasa
LEWISHAM = "is there anyone who can help me, I'm in Lewisham and my ex keeps turning up"
GSM_TWO_SEGMENTS = 306


class Texter:
    def __init__(self, live: LiveGateway) -> None:
        self.live = live
        self.number = fresh_number()
        self.seen = 0

    def say(self, text: str, *, until: str) -> list[str]:
        """Send an SMS; the replies to it, once one of them contains `until`."""
        self.live.sms(self.number, text)

        def new() -> list[list[str]]:
            got = self.live.twilio.to(self.number)[self.seen :]
            return [got] if any(until in m for m in got) else []

        (replies,) = wait_until(new, 1, timeout=90)
        self.seen += len(replies)
        # The offered buttons are stored when the turn ends: wait for that.
        wait_until(self._finished, 1)
        return replies

    def _finished(self) -> list[bool]:
        with self.live.db() as session:
            pending = session.scalar(
                select(Inbound.id)
                .join(Conversation, Conversation.id == Inbound.conversation_id)
                .join(Contact, Contact.id == Conversation.contact_id)
                .where(Contact.address == self.number, Inbound.state == InboundState.PENDING)
                .limit(1)
            )
        return [True] if pending is None else []

    def choices(self) -> list[str]:
        with self.live.db() as session:
            found = session.scalar(
                select(Conversation.choices).where(
                    Conversation.id == conversation_of(self.live, "sms", self.number).id
                )
            )
        return [c["title"] for c in found or []]

    def choose(self, title: str, *, until: str) -> list[str]:
        titles = self.choices()
        assert title in titles, (title, titles)
        return self.say(str(titles.index(title) + 1), until=until)


def test_the_issue_sentence_gets_three_services_in_two_texts(live_gateway: LiveGateway) -> None:
    person = Texter(live_gateway)
    replies = person.say(LEWISHAM, until="3)")
    assert len(replies) == 2, replies
    first, second = replies
    assert first.startswith(content.item("services.intro").parts[0].split(".")[0])
    assert "1) National Domestic Abuse Helpline" in first and "2) " in first
    assert "3) " in second and "REFER" in second
    for text in replies:
        assert len(text) <= GSM_TWO_SEGMENTS, text
    # Each service has a number to call and a one-line reason.
    assert first.count("call ") + second.count("call ") >= 3
    assert "24/7" in first


def test_refer_asks_the_needs_then_consent_then_makes_a_referral_and_a_task(
    live_gateway: LiveGateway,
) -> None:
    person = Texter(live_gateway)
    person.say(LEWISHAM, until="3)")
    chooser = person.say("REFER", until="Which service")
    assert "Reply 1 for" in chooser[-1]
    first_choice = person.choices()[0]

    asked = person.choose(first_choice, until="safe right now")
    assert any("few short questions" in m for m in asked)
    person.choose("Yes", until="talk with services")
    person.choose("An interpreter", until="?")
    answers = person.say("Polish", until="?")
    while not any("Do you agree?" in m for m in answers):
        titles = person.choices()
        pick = next(
            (t for t in ("Skip", "Text message", "Evening") if t in titles),
            titles[-1] if titles else None,
        )
        assert pick is not None, answers
        answers = person.choose(pick, until="?")
    consent = "\n".join(answers)
    assert first_choice in consent
    assert "Polish interpreter" in consent

    conversation = conversation_of(live_gateway, "sms", person.number)
    with live_gateway.db() as session:
        needs = session.scalar(
            select(NeedsAssessment.answers).where(
                NeedsAssessment.conversation_id == conversation.id
            )
        )
        assert needs is not None and needs["communication"] == "interpreter"
        assert (
            session.scalars(
                select(Referral).where(Referral.conversation_id == conversation.id)
            ).all()
            == []
        )

    done = person.choose("Yes", until="Our team will pass your referral")
    assert any(first_choice in m for m in done)
    with live_gateway.db() as session:
        (referral,) = session.scalars(
            select(Referral).where(Referral.conversation_id == conversation.id)
        ).all()
        assert referral.status == "pending"
        assert referral.reason == "domestic_abuse"
        task = session.get(Task, referral.task_id)
        assert task is not None and task.kind == "referral" and task.state == "open"

    cancelled = person.say("cancel my referral", until="cancelled")
    assert any("nothing more will be shared" in m for m in cancelled)
    with live_gateway.db() as session:
        after = session.get(Referral, referral.id)
        assert after is not None and after.status == "withdrawn"


def test_saying_no_to_the_referral_shares_nothing(live_gateway: LiveGateway) -> None:
    person = Texter(live_gateway)
    person.say("who can help me after a fraud, I'm in Croydon", until="3)")
    person.say("REFER", until="Which service")
    person.choose(person.choices()[0], until="safe right now")
    answers = person.say("no more questions", until="?")
    while not any("Do you agree?" in m for m in answers):
        answers = person.choose(person.choices()[-1], until="?")
    refused = person.choose("No", until="Nothing has been shared")
    assert refused[-1] == content.item("referrals.refused").parts[0]
    conversation = conversation_of(live_gateway, "sms", person.number)
    with live_gateway.db() as session:
        assert (
            session.scalars(
                select(Referral).where(Referral.conversation_id == conversation.id)
            ).all()
            == []
        )
