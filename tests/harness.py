"""A real gateway on a loopback port, wired to the real Rasa model and to local fakes
of Twilio and Telegram, and the databases it can run on (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy.orm import Session
from twilio.request_validator import RequestValidator

from bot import db
from bot.config import Settings
from bot.gateway import Gateway
from bot.main import create_app
from bot.server import free_port, serve
from tests.fakes import telegram_api, twilio_api
from tests.fakes.telegram_api import RecordingRequest
from tests.fakes.twilio_api import FakeTwilio

T = TypeVar("T")
PUBLIC_URL = "https://waymark.example.org"  # what providers see; the proxy's address
FROM_NUMBER = "+447700900000"
POSTGRES = "postgresql://postgres@127.0.0.1:5432/test"
TELEGRAM_SECRET = "telegram-secret-token-for-tests"

# Counters, not random numbers: a random phone once matched a demo victim's
# (+4477009001NN) and a test read that victim's conversation.
_numbers = itertools.count(1)
_references = itertools.count(1)


def fresh_number() -> str:
    """A phone number no other test in this run uses (outside the demo range)."""
    return f"+44770098{next(_numbers):04d}"


def fresh_reference() -> str:
    """A crime reference no other test in this run uses (outside the demo range)."""
    return f"88{next(_references):05d}/26"


@dataclass
class LiveGateway:
    url: str
    settings: Settings
    app: FastAPI
    twilio: FakeTwilio
    telegram: RecordingRequest
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    @property
    def gateway(self) -> Gateway:
        return self.app.state.gateway

    @contextmanager
    def db(self) -> Iterator[Session]:
        """A sync session on the gateway's database (its own engine, disposed after)."""
        engine = db.create_sync_engine(self.settings.database_url)
        try:
            with Session(engine, expire_on_commit=False) as session:
                yield session
        finally:
            engine.dispose()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run a coroutine on the gateway's own event loop (it serves in a thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.app.state.loop).result(timeout)

    # -- SMS ------------------------------------------------------------------------

    def signed_post(
        self, path: str, params: dict[str, str], *, sign_url: str | None = None
    ) -> httpx.Response:
        """POST a form as Twilio would, signed for the public URL (or `sign_url`)."""
        validator = RequestValidator(twilio_api.AUTH_TOKEN)
        signature = validator.compute_signature(sign_url or PUBLIC_URL + path, params)
        return self.client.post(
            self.url + path, data=params, headers={"X-Twilio-Signature": signature}
        )

    def sms(
        self, sender: str, body: str, *, sid: str | None = None, **extra: str
    ) -> httpx.Response:
        params = {
            "MessageSid": sid or f"SM{uuid.uuid4().hex}",
            "AccountSid": twilio_api.ACCOUNT_SID,
            "From": sender,
            "To": FROM_NUMBER,
            "Body": body,
            "NumMedia": "0",
            **extra,
        }
        return self.signed_post("/sms/inbound", params)

    def sms_status(self, sid: str, state: str, error_code: str | None = None) -> httpx.Response:
        params = {"MessageSid": sid, "MessageStatus": state, "AccountSid": twilio_api.ACCOUNT_SID}
        if error_code:
            params["ErrorCode"] = error_code
        return self.signed_post("/sms/status", params)

    # -- Telegram -------------------------------------------------------------------

    def telegram_update(
        self, update: dict[str, Any], *, secret: str | None = TELEGRAM_SECRET
    ) -> httpx.Response:
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        return self.client.post(self.url + "/telegram/webhook", json=update, headers=headers)

    def telegram_replies(
        self, chat_id: int, count: int, timeout: float = 30
    ) -> list[dict[str, Any]]:
        return wait_until(lambda: self.telegram.sent(chat_id), count, timeout)

    # -- web --------------------------------------------------------------------------

    def web_session(self) -> str:
        response = self.client.post(self.url + "/api/web/sessions")
        response.raise_for_status()
        return str(response.json()["session_id"])

    def web_say(self, session_id: str, text: str, **extra: Any) -> list[dict[str, Any]]:
        response = self.client.post(
            f"{self.url}/api/web/sessions/{session_id}/messages", json={"text": text, **extra}
        )
        response.raise_for_status()
        return list(response.json()["messages"])


def wait_until(read: Callable[[], list[Any]], count: int, timeout: float = 30) -> list[Any]:
    """Poll until `read()` has at least `count` items; returns them."""
    deadline = time.monotonic() + timeout
    while True:
        items = read()
        if len(items) >= count or time.monotonic() > deadline:
            if len(items) < count:
                raise AssertionError(f"expected {count}, got {len(items)}: {items}")
            return items
        time.sleep(0.05)


def gateway_settings(
    database_url: str, rasa_url: str, rasa_token: str, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "rasa_port": int(rasa_url.rsplit(":", 1)[1]),
        "rasa_token": rasa_token,
        "public_base_url": PUBLIC_URL,
        "secret_key": "pseudonym-key-for-tests",
        "twilio_account_sid": twilio_api.ACCOUNT_SID,
        "twilio_auth_token": twilio_api.AUTH_TOKEN,
        "twilio_from_number": FROM_NUMBER,
        "telegram_bot_token": telegram_api.BOT_TOKEN,
        "telegram_secret_token": TELEGRAM_SECRET,
        "telegram_mode": "webhook",
        "rasa_timeout": 20.0,
        "rasa_retry_interval": 1.0,
        # No scheduled purge in the background of other tests (tests/privacy runs it).
        "retention_interval_minutes": 0,
    }
    values.update(overrides)
    return Settings(**values)


@contextmanager
def live_gateway_for(settings: Settings) -> Iterator[LiveGateway]:
    with twilio_api.fake_twilio() as twilio:
        telegram = RecordingRequest()
        app = create_app(settings, twilio_http=twilio.http_client, telegram_request=telegram)
        with serve(app, port=free_port()) as url:
            live = LiveGateway(url, settings, app, twilio, telegram)
            yield live
            live.client.close()


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A fresh schema in the `test` database; yields a URL whose search_path is it."""
    schema = f"waymark_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES}: {error}")
    try:
        yield f"{POSTGRES}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


@contextmanager
def database(kind: str, tmp_path: Any) -> Iterator[str]:
    if kind == "postgres":
        with postgres_schema() as url:
            yield url
    else:
        yield f"sqlite:///{tmp_path / 'gateway.db'}"


def tracker_of(rasa_stack: Any) -> dict[str, str]:
    """The test Rasa's own tracker store: forget-me and the purge delete from it."""
    return {"rasa_tracker_store_url": f"sqlite:///{rasa_stack.tracker_store_path}"}


# -- fixtures (imported by tests/conftest.py) ------------------------------------------


@pytest.fixture(scope="session")
def live_gateway(
    rasa_stack: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveGateway]:
    """One gateway for the session: SQLite, the real model, fake Twilio and Telegram."""
    path = tmp_path_factory.mktemp("gateway") / "gateway.db"
    settings = gateway_settings(
        f"sqlite:///{path}", rasa_stack.url, rasa_stack.token, **tracker_of(rasa_stack)
    )
    with live_gateway_for(settings) as live:
        yield live


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def gateway_on(
    request: pytest.FixtureRequest, rasa_stack: Any, tmp_path: Any
) -> Iterator[LiveGateway]:
    """A fresh gateway per test, on SQLite and on PostgreSQL."""
    with database(request.param, tmp_path) as url:
        settings = gateway_settings(url, rasa_stack.url, rasa_stack.token, **tracker_of(rasa_stack))
        with live_gateway_for(settings) as live:
            yield live
