"""When Rasa is down or slow: a safe holding reply at once, nothing lost, answers in order
once Rasa is back. Uses real Rasa servers, stopped and started by the tests."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from actions import content
from bot.config import Settings
from bot.db import sync_url
from bot.models import Inbound, Outbound
from bot.server import free_port
from bot.stack import action_server, rasa_server
from tests.harness import LiveGateway, gateway_settings, live_gateway_for, wait_until

pytestmark = pytest.mark.rasa
HOLDING = content.item("gateway.holding").parts[0]


def table(live: LiveGateway, model: type) -> list:
    engine = create_engine(sync_url(live.settings.database_url))
    try:
        with Session(engine) as session:
            return list(session.scalars(select(model).order_by(model.id)).all())
    finally:
        engine.dispose()


def test_rasa_stopped_mid_conversation_loses_nothing(tmp_path: Path) -> None:
    rasa = Settings(
        rasa_port=free_port(),
        actions_port=free_port(),
        rasa_tracker_store_url=f"sqlite:///{tmp_path / 'tracker.db'}",
    )
    token = rasa.rasa_token.get_secret_value()
    settings = gateway_settings(
        f"sqlite:///{tmp_path / 'gateway.db'}",
        rasa.rasa_url,
        token,
        rasa_timeout=5.0,
        rasa_retry_interval=0.5,
        # This test is about Rasa; an emergency asking a person to take over (and the
        # bot then staying silent) is tested in tests/handoff/.
        handoff_on_safety=False,
    )
    number = "+447700900999"
    with action_server(rasa), live_gateway_for(settings) as live:
        with rasa_server(rasa):
            session = live.web_session()
            assert "bail" in live.web_say(session, "what does bail mean")[0]["text"].lower()
            live.sms(number, "hello")
            wait_until(lambda: live.twilio.to(number), 1)

        # Rasa is down. The person hears from us at once, with the emergency route.
        started = time.monotonic()
        held = live.web_say(session, "what does released under investigation mean")
        assert time.monotonic() - started < 5
        assert [m["text"] for m in held] == [HOLDING]
        assert "999" in HOLDING and "55" in HOLDING
        # A second message waits in line; they already have the holding reply.
        assert live.web_say(session, "what happens at a trial") == []
        sms_before = len(live.twilio.to(number))
        live.sms(number, "what does charged mean")
        assert wait_until(lambda: live.twilio.to(number), sms_before + 1)[-1] == HOLDING
        # An emergency still gets 999 first, from the gateway alone.
        urgent = live.web_say(session, "he's outside my door with a knife")
        assert "999" in urgent[0]["text"]

        health = live.client.get(live.url + "/health")
        assert health.status_code == 200 and health.json()["rasa"] == "down"
        assert live.client.get(live.url + "/ready").status_code == 503
        pending = [i for i in table(live, Inbound) if i.state == "pending"]
        assert len(pending) == 4

        # Rasa is back: every waiting message is answered, in the order it came.
        with rasa_server(rasa):
            done = wait_until(
                lambda: [i for i in table(live, Inbound) if i.note == "answered"], 6, timeout=60
            )
            assert [i.id for i in done] == sorted(i.id for i in done)
            answers = [o for o in table(live, Outbound) if o.source == "bot"]
            for conversation in {o.conversation_id for o in answers}:
                # Each person's replies went out in the order they wrote.
                by_inbound = [o.inbound_id for o in answers if o.conversation_id == conversation]
                assert by_inbound == sorted(by_inbound)
            texts = " ".join(o.text for o in answers).lower()
            assert "investigat" in texts and "trial" in texts and "charge" in texts
            assert live.twilio.to(number)[-1] != HOLDING
            # Nothing was held twice.
            holding = [o for o in table(live, Outbound) if o.source == "holding"]
            assert len(holding) == len({o.inbound_id for o in holding}) == 2


def test_a_slow_rasa_gets_a_holding_reply_then_the_answer(
    rasa_stack: object, tmp_path: Path
) -> None:
    settings = gateway_settings(
        f"sqlite:///{tmp_path / 'gateway.db'}",
        rasa_stack.url,  # type: ignore[attr-defined]
        rasa_stack.token,  # type: ignore[attr-defined]
        rasa_timeout=0.001,  # anything slower than this is "slow"
    )
    with live_gateway_for(settings) as live:
        session = live.web_session()
        first = live.web_say(session, "what does bail mean")
        assert [m["text"] for m in first] == [HOLDING]
        answered = wait_until(
            lambda: [o for o in table(live, Outbound) if o.source == "bot"], 1, timeout=30
        )
        assert "bail" in answered[0].text.lower()


def test_messages_pending_at_shutdown_are_answered_after_a_restart(
    rasa_stack: object, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'gateway.db'}"
    nowhere = f"http://127.0.0.1:{free_port()}"  # no Rasa listens here
    token = rasa_stack.token  # type: ignore[attr-defined]
    down = gateway_settings(database, nowhere, token, rasa_timeout=1.0)
    with live_gateway_for(down) as live:
        session = live.web_session()
        assert [m["text"] for m in live.web_say(session, "what does bail mean")] == [HOLDING]
    # The gateway stopped with the message still waiting; a new one picks it up.
    up = gateway_settings(database, rasa_stack.url, token)  # type: ignore[attr-defined]
    with live_gateway_for(up) as live:
        answered = wait_until(
            lambda: [o for o in table(live, Outbound) if o.source == "bot"], 1, timeout=30
        )
        assert "bail" in answered[0].text.lower()
        # Replies are stored as they are sent; the message is marked answered just after.
        notes = wait_until(lambda: [i.note for i in table(live, Inbound) if i.note], 1, timeout=10)
        assert notes == ["answered"]
