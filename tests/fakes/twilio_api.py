"""A local stand-in for Twilio's REST API, reached by the real `twilio` client over HTTP.

`FakeTwilio.http_client()` is a real `TwilioHttpClient` whose requests go to this
server instead of api.twilio.com. The server records each message it is asked to
send and answers like Twilio does (201 with a Message resource, or an error).
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from twilio.http.response import Response

from bot.channels.sms import TwilioHttp
from bot.server import serve

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
TWILIO_API = "https://api.twilio.com"


def redirected_http_client(base_url: str) -> TwilioHttp:
    """The real Twilio HTTP client, sending to `base_url` instead of api.twilio.com.
    Call it inside the running event loop (aiohttp's rule)."""

    class Redirected(TwilioHttp):
        async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
            url = url.replace(TWILIO_API, base_url)
            return await super().request(method, url, *args, **kwargs)

    return Redirected(timeout=10)


@dataclass
class FakeTwilio:
    url: str = ""
    sent: list[dict[str, str]] = field(default_factory=list)
    # Error codes to return for the next sends, e.g. [21610] or [500]; 0 sends that one.
    fail_next: list[int] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self._arrived = threading.Condition(self._lock)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/2010-04-01/Accounts/{account}/Messages.json")
        async def create(account: str, request: Request) -> JSONResponse:
            form = dict((await request.form()).items())
            with self._arrived:
                code = self.fail_next.pop(0) if self.fail_next else 0
                if code:  # 0 in fail_next: this one goes through
                    status = code if code < 1000 else 400
                    return JSONResponse(
                        {"code": code, "message": f"fake error {code}", "status": status},
                        status_code=status,
                    )
                sid = f"SM{next(self._ids):032x}"
                self.sent.append({"sid": sid, **{k: str(v) for k, v in form.items()}})
                self._arrived.notify_all()
            return JSONResponse(
                {
                    "sid": sid,
                    "account_sid": account,
                    "to": form.get("To"),
                    "from": form.get("From"),
                    "body": form.get("Body"),
                    "status": "queued",
                    "num_segments": "1",
                },
                status_code=201,
            )

        return app

    def http_client(self) -> TwilioHttp:
        return redirected_http_client(self.url)

    def wait_for(self, count: int, timeout: float = 30) -> list[dict[str, str]]:
        """Block until at least `count` messages were sent; returns them all."""
        with self._arrived:
            if not self._arrived.wait_for(lambda: len(self.sent) >= count, timeout):
                raise AssertionError(f"expected {count} SMS, got {len(self.sent)}: {self.sent}")
            return list(self.sent)

    def to(self, number: str) -> list[str]:
        with self._lock:
            return [m["Body"] for m in self.sent if m.get("To") == number]


@contextmanager
def fake_twilio() -> Iterator[FakeTwilio]:
    fake = FakeTwilio()
    with serve(fake.app()) as url:
        fake.url = url
        yield fake
