"""The gateway as its own process for bench/channels.py, with Twilio's API redirected to
the benchmark's fake provider (BENCH_TWILIO_URL). Everything else comes from WAYMARK_*."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import Settings
from bot.main import create_app
from tests.fakes.twilio_api import redirected_http_client


def main() -> None:
    settings = Settings()
    provider = os.environ["BENCH_TWILIO_URL"]
    app = create_app(settings, twilio_http=lambda: redirected_http_client(provider))
    uvicorn.run(
        app,
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
