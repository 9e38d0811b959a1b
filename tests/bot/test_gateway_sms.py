"""SMS through the gateway: Twilio's real RequestValidator and REST client against a local
fake of Twilio's API, and the real Rasa model behind the gateway."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from actions import content
from bot.channels.sms_text import segments
from bot.db import sync_url
from bot.gateway import Reply, _Out
from bot.models import Channel, Contact, Inbound, Outbound
from tests.fakes.twilio_api import AUTH_TOKEN
from tests.handoff.conftest import conversation_of, coordinator
from tests.harness import (
    FROM_NUMBER,
    PUBLIC_URL,
    LiveGateway,
    database,
    fresh_number,
    gateway_settings,
    live_gateway_for,
    wait_until,
)

pytestmark = pytest.mark.rasa
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def new_number() -> str:
    return fresh_number()  # never a demo victim's number


def rows(live: LiveGateway, model: type, **where: object) -> list:
    # Message text is sealed at rest (bot/privacy/crypto.py): compared here, not in SQL.
    text = where.pop("text", None)
    engine = create_engine(sync_url(live.settings.database_url))
    try:
        with Session(engine) as session:
            query = select(model).filter_by(**where)
            found = list(session.scalars(query).all())
    finally:
        engine.dispose()
    return [row for row in found if text is None or row.text == text]


def test_a_signed_text_gets_an_answer_through_the_rest_api(live_gateway: LiveGateway) -> None:
    number = new_number()
    response = live_gateway.sms(number, "what does charged mean")
    assert response.status_code == 200
    assert response.text == EMPTY_TWIML
    assert response.headers["content-type"].startswith("application/xml")
    replies = wait_until(lambda: live_gateway.twilio.to(number), 1)
    assert "charge" in replies[0].lower()
    sent = next(m for m in live_gateway.twilio.sent if m["To"] == number)
    assert sent["From"] == FROM_NUMBER
    assert sent["StatusCallback"] == f"{PUBLIC_URL}/sms/status"


def test_the_webhook_acknowledges_before_rasa_answers(live_gateway: LiveGateway) -> None:
    # The acknowledgement is the empty TwiML; the answer comes through the REST API.
    number = new_number()
    response = live_gateway.sms(number, "what is the right to review")
    assert response.text == EMPTY_TWIML
    assert response.elapsed.total_seconds() < 1.0
    wait_until(lambda: live_gateway.twilio.to(number), 1)


@pytest.mark.parametrize(
    "signature_for",
    ["nothing", "a different body", "the internal URL", "another path"],
)
def test_a_bad_signature_is_refused_and_nothing_is_kept(
    live_gateway: LiveGateway, signature_for: str
) -> None:
    number = new_number()
    params = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": number, "Body": "hello"}
    if signature_for == "nothing":
        response = live_gateway.client.post(live_gateway.url + "/sms/inbound", data=params)
    elif signature_for == "a different body":
        signature = RequestValidator(AUTH_TOKEN).compute_signature(
            PUBLIC_URL + "/sms/inbound", {**params, "Body": "something else"}
        )
        response = live_gateway.client.post(
            live_gateway.url + "/sms/inbound",
            data=params,
            headers={"X-Twilio-Signature": signature},
        )
    elif signature_for == "the internal URL":
        # Behind a proxy Twilio signs the public URL; a signature for the internal
        # address means the request did not come through it.
        response = live_gateway.signed_post(
            "/sms/inbound", params, sign_url=live_gateway.url + "/sms/inbound"
        )
    else:
        response = live_gateway.signed_post(
            "/sms/inbound", params, sign_url=PUBLIC_URL + "/sms/status"
        )
    assert response.status_code == 403
    assert rows(live_gateway, Contact, address=number) == []


def test_the_raw_query_string_is_part_of_the_signed_url(live_gateway: LiveGateway) -> None:
    number = new_number()
    params = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": number, "Body": "hello"}
    query = "source=number%201&x=y"
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        f"{PUBLIC_URL}/sms/inbound?{query}", params
    )
    response = live_gateway.client.post(
        f"{live_gateway.url}/sms/inbound?{query}",
        data=params,
        headers={"X-Twilio-Signature": signature},
    )
    assert response.status_code == 200
    wait_until(lambda: live_gateway.twilio.to(number), 1)


def test_a_redelivered_message_is_acknowledged_and_answered_once(gateway_on: LiveGateway) -> None:
    live = gateway_on
    number = new_number()
    sid = f"SM{uuid.uuid4().hex}"
    first = live.sms(number, "what does bail mean", sid=sid)
    again = live.sms(number, "what does bail mean", sid=sid)
    assert first.status_code == again.status_code == 200
    assert first.text == again.text == EMPTY_TWIML
    (stored,) = wait_until(lambda: rows(live, Inbound, provider_id=sid, state="done"), 1)
    answered = len(live.twilio.to(number))
    live.sms(number, "thanks", sid=f"SM{uuid.uuid4().hex}")
    wait_until(lambda: rows(live, Inbound, text="thanks", state="done"), 1)
    assert len(rows(live, Inbound, provider_id=sid)) == 1
    assert stored.attempts == 1  # Rasa was asked once
    assert answered == len(rows(live, Outbound, inbound_id=stored.id))


def test_delivery_status_only_moves_forward(gateway_on: LiveGateway) -> None:
    live = gateway_on
    number = new_number()
    live.sms(number, "hello")
    sent = wait_until(lambda: [m for m in live.twilio.sent if m["To"] == number], 1)
    sid = sent[0]["sid"]
    wait_until(lambda: [r for r in rows(live, Outbound, provider_id=sid)], 1)
    for state in ["sent", "delivered", "sent", "queued", "delivered"]:  # repeats, out of order
        assert live.sms_status(sid, state).status_code == 204
    (row,) = rows(live, Outbound, provider_id=sid)
    assert row.status == "delivered"
    # A status for a message we never sent is acknowledged, and changes nothing.
    assert live.sms_status(f"SM{uuid.uuid4().hex}", "delivered").status_code == 204


def test_a_status_callback_needs_a_valid_signature(live_gateway: LiveGateway) -> None:
    response = live_gateway.client.post(
        live_gateway.url + "/sms/status", data={"MessageSid": "SMx", "MessageStatus": "failed"}
    )
    assert response.status_code == 403


def test_an_opted_out_error_is_recorded_and_not_retried(gateway_on: LiveGateway) -> None:
    live = gateway_on
    number = new_number()
    live.twilio.fail_next.extend([21610])
    live.sms(number, "hello")
    failed = wait_until(lambda: [r for r in rows(live, Outbound) if r.error_code == "21610"], 1)
    assert failed[0].status == "failed"
    assert failed[0].attempts == 1
    (contact,) = rows(live, Contact, address=number)
    assert contact.opted_out
    # Nothing more is sent to them.
    live.sms(number, "what does charged mean")
    wait_until(lambda: [r for r in rows(live, Inbound) if r.note == "opted_out"], 1)
    assert live.twilio.to(number) == []


def test_a_provider_error_is_retried_then_sent(live_gateway: LiveGateway) -> None:
    number = new_number()
    live_gateway.twilio.fail_next.extend([500])
    live_gateway.sms(number, "what does remand mean")
    replies = wait_until(lambda: live_gateway.twilio.to(number), 1)
    assert replies


def test_a_failed_delivery_callback_is_recorded(live_gateway: LiveGateway) -> None:
    number = new_number()
    live_gateway.sms(number, "hello")
    sid = wait_until(lambda: [m for m in live_gateway.twilio.sent if m["To"] == number], 1)[0][
        "sid"
    ]
    wait_until(lambda: rows(live_gateway, Outbound, provider_id=sid), 1)
    live_gateway.sms_status(sid, "undelivered", error_code="30003")
    (row,) = rows(live_gateway, Outbound, provider_id=sid)
    assert (row.status, row.error_code) == ("undelivered", "30003")


def test_stop_then_a_message_sends_nothing_and_start_resumes(gateway_on: LiveGateway) -> None:
    live = gateway_on
    number = new_number()
    live.sms(number, "STOP")
    live.sms(number, "what does charged mean")
    wait_until(lambda: [r for r in rows(live, Inbound) if r.note == "opted_out"], 1)
    assert live.twilio.to(number) == []
    (contact,) = rows(live, Contact, address=number)
    assert contact.opted_out
    live.sms(number, "Start")
    replies = wait_until(lambda: live.twilio.to(number), 1)
    assert replies[0] == content.item("gateway.start").parts[0]
    (contact,) = rows(live, Contact, address=number)
    assert not contact.opted_out


def test_keywords_never_reach_rasa(live_gateway: LiveGateway, rasa_stack: object) -> None:
    number = new_number()
    live_gateway.sms(number, "help")
    replies = wait_until(lambda: live_gateway.twilio.to(number), 1)
    assert replies == list(content.item("gateway.help").parts)
    assert "999" in replies[0]
    (inbound,) = rows(live_gateway, Inbound, note="help", text="help")[-1:]
    assert inbound.kind == "help"


def test_yes_is_an_answer_unless_someone_has_opted_out(live_gateway: LiveGateway) -> None:
    number = new_number()
    live_gateway.sms(number, "yes")
    wait_until(lambda: live_gateway.twilio.to(number), 1)
    conversation_id = conversation_of(live_gateway, "sms", number).id

    def noted() -> list[str | None]:
        found = rows(live_gateway, Inbound, conversation_id=conversation_id)
        return [r.note for r in found if r.note]

    # The note is written once the whole turn is sent: wait for it.
    assert wait_until(noted, 1) == ["answered"]  # went to Rasa, not treated as opt-in


def test_buttons_become_numbered_choices_and_a_number_picks_one(live_gateway: LiveGateway) -> None:
    number = new_number()
    live_gateway.sms(number, "they said no further action, can I challenge it")
    replies = wait_until(lambda: live_gateway.twilio.to(number), 1)
    # Wait for the whole answer (the question with its choices comes last).
    choices = wait_until(
        lambda: [r for r in live_gateway.twilio.to(number) if "Reply 1 for" in r], 1
    )
    assert "Reply 2 for The CPS (prosecutors)" in choices[0]
    before = len(live_gateway.twilio.to(number))
    live_gateway.sms(number, "2")
    after = wait_until(lambda: live_gateway.twilio.to(number), before + 1)
    answer = " ".join(after[before:])
    # Choosing the CPS moves the form on to when they were told.
    assert "when" in answer.lower() or "date" in answer.lower(), (replies, answer)


def test_a_picture_gets_a_kind_text_only_reply(live_gateway: LiveGateway) -> None:
    number = new_number()
    live_gateway.sms(number, "", NumMedia="1", MediaUrl0="https://example.org/p.jpg")
    replies = wait_until(lambda: live_gateway.twilio.to(number), 1)
    assert replies == list(content.item("gateway.non_text").parts)


def test_an_emergency_gets_999_first(live_gateway: LiveGateway) -> None:
    number = new_number()
    live_gateway.sms(number, "he is outside my door right now and I'm scared")
    replies = wait_until(lambda: live_gateway.twilio.to(number), 1)
    assert "999" in replies[0] and "55" in replies[0]
    # Rasa's own emergency answer is not sent a second time.
    everything = wait_until(lambda: live_gateway.twilio.to(number), 4)
    assert len(everything) == len(set(everything))


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"From": "+447700900001", "Body": "hi"}, 400),  # no MessageSid
        ({"MessageSid": "SM1", "Body": "hi"}, 400),  # no From
        ({"MessageSid": "SM2", "From": "+447700900001", "Body": "x" * 10_000}, 413),
    ],
)
def test_bad_input_gets_a_clear_4xx(live_gateway: LiveGateway, params: dict, code: int) -> None:
    response = live_gateway.signed_post("/sms/inbound", params)
    assert response.status_code == code
    assert response.json()["detail"]


def test_malformed_form_data_gets_a_4xx(live_gateway: LiveGateway) -> None:
    response = live_gateway.client.post(
        live_gateway.url + "/sms/inbound",
        content=b"\xff\xfe%%%=&&=",
        headers={"Content-Type": "multipart/form-data; boundary=nothing"},
    )
    assert 400 <= response.status_code < 500


@pytest.mark.parametrize(
    "body", ["🙂🙂 what does charged mean", "ما معنى التهمة", "what\x00 does\x07 bail mean\u200b"]
)
def test_emoji_other_scripts_and_control_characters_are_answered(
    live_gateway: LiveGateway, body: str
) -> None:
    number = new_number()
    assert live_gateway.sms(number, body).status_code == 200
    replies = wait_until(lambda: live_gateway.twilio.to(number), 1)
    assert all(r.strip() for r in replies)


def test_long_replies_fit_the_segment_limit(live_gateway: LiveGateway) -> None:
    number = new_number()
    live_gateway.sms(number, "what happens at a trial")
    replies = wait_until(lambda: live_gateway.twilio.to(number), 1)
    assert all(segments(r) <= live_gateway.settings.sms_max_segments for r in replies)


def test_a_person_owned_conversation_still_gets_the_emergency_route(
    live_gateway: LiveGateway,
) -> None:
    number = new_number()
    live_gateway.sms(number, "hello")
    wait_until(lambda: live_gateway.twilio.to(number), 1)
    # A coordinator takes over.
    conversation = conversation_of(live_gateway, "sms", number)
    live_gateway.run(
        live_gateway.gateway.handoffs.take_over(conversation.id, coordinator(live_gateway))
    )
    before = len(live_gateway.twilio.to(number))
    live_gateway.sms(number, "what does bail mean")
    live_gateway.sms(number, "he is outside my door with a knife")
    replies = wait_until(lambda: live_gateway.twilio.to(number), before + 1)
    assert "999" in replies[before]
    notes = wait_until(
        lambda: [
            i.note
            for i in rows(live_gateway, Inbound, conversation_id=conversation.id)
            if i.note == "for_human"
        ],
        2,
    )
    assert len(notes) == 2  # neither went to Rasa
    assert not any("bail" in r.lower() for r in live_gateway.twilio.to(number))


# -- several messages at once, without the assistant ---------------------------------------

NO_RASA = "http://127.0.0.1:9"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def no_rasa(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveGateway]:
    with (
        database(request.param, tmp_path) as url,
        live_gateway_for(gateway_settings(url, NO_RASA, "token")) as live,
    ):
        yield live


def out_to(live: LiveGateway, number: str) -> _Out:
    gateway = live.gateway

    async def make() -> _Out:
        async with gateway.sessions() as session, session.begin():
            conversation = await gateway.conversation_for(session, Channel.SMS, number)
            contact = await session.get(Contact, conversation.contact_id)
        assert contact is not None
        return _Out(gateway, gateway.senders[Channel.SMS], conversation.id, contact, None)

    return live.run(make())


THREE = [Reply("First, the news."), Reply("Second, what it means."), Reply("Third, what next.")]


def test_several_replies_are_stored_in_two_transactions_and_sent_in_order(
    no_rasa: LiveGateway,
) -> None:
    number = new_number()
    out = out_to(no_rasa, number)
    engine = no_rasa.gateway.sessions.kw["bind"].sync_engine
    began: list[object] = []

    def count(connection: object) -> None:
        began.append(connection)

    event.listen(engine, "begin", count)
    try:
        no_rasa.run(out.send_all(THREE, source="bot"))
    finally:
        event.remove(engine, "begin", count)
    # One stores every row before anything goes out; one stores how they went.
    assert len(began) == 2
    sent = [m for m in no_rasa.twilio.sent if m["To"] == number]
    assert [m["Body"] for m in sent] == [r.text for r in THREE]
    stored = sorted(rows(no_rasa, Outbound, channel="sms"), key=lambda r: r.id)
    stored = [r for r in stored if r.conversation_id == out.conversation_id]
    assert [r.text for r in stored] == [r.text for r in THREE]
    assert [r.provider_id for r in stored] == [m["sid"] for m in sent]
    assert all(r.status == "queued" and r.attempts == 1 for r in stored)


def test_an_opt_out_part_way_keeps_what_was_tried_and_drops_the_rest(
    no_rasa: LiveGateway,
) -> None:
    number = new_number()
    out = out_to(no_rasa, number)
    no_rasa.twilio.fail_next.extend([0, 21610])  # the first goes; the second: opted out
    no_rasa.run(out.send_all(THREE, source="bot"))
    assert no_rasa.twilio.to(number) == [THREE[0].text]
    stored = sorted(
        (r for r in rows(no_rasa, Outbound) if r.conversation_id == out.conversation_id),
        key=lambda r: r.id,
    )
    assert [(r.text, r.status, r.error_code) for r in stored] == [
        (THREE[0].text, "queued", None),
        (THREE[1].text, "failed", "21610"),
    ]
    (contact,) = rows(no_rasa, Contact, address=number)
    assert contact.opted_out
    no_rasa.run(out.send_all(THREE, source="bot"))  # nothing more once stopped
    assert no_rasa.twilio.to(number) == [THREE[0].text]


def test_an_empty_reply_stores_and_sends_nothing(no_rasa: LiveGateway) -> None:
    number = new_number()
    out = out_to(no_rasa, number)
    no_rasa.run(out.send_all([Reply(""), Reply("  ")], source="bot"))
    no_rasa.run(out.send_all([], source="bot"))
    assert no_rasa.twilio.to(number) == []
    assert [r for r in rows(no_rasa, Outbound) if r.conversation_id == out.conversation_id] == []
