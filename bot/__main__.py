"""`python -m bot run` starts everything and opens a terminal chat through the gateway.

- `run`: the action server, Rasa and the gateway (web chat at http://127.0.0.1:8000,
  and SMS/Telegram when their settings are there), then a terminal chat.
- `serve`: the same, without the terminal chat, until Ctrl-C.
- `chat --url URL`: a terminal chat with a gateway that is already running.
- Case progress: `seed-demo`, `agency-key`, `import-events`, `watchdog`, `report`
  (see docs/cases.md). Handoff: `coordinator add|set|duty|list` (docs/handoff.md).
- Signposting: `services import|stale|list` (docs/signposting.md).
- Privacy: `privacy purge [--dry-run]`, `privacy forget --channel --address`
  (docs/privacy.md).
- Encryption at rest: `data-key new|rotate` (docs/privacy.md).

With WAYMARK_DEMO=true (`make run` sets it), `run` and `serve` add the demo cases
first and write one-time codes to the log.
"""

from __future__ import annotations

import argparse
import logging
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from bot.cases import demo, importer, keys, watchdog
from bot.chat import GatewayChat, repl
from bot.config import Settings, get_settings
from bot.handoff import accounts
from bot.main import create_app
from bot.privacy import logs, retention, rotate
from bot.server import serve
from bot.services import directory
from bot.stack import StackError, running_stack


@contextmanager
def everything(settings: Settings) -> Iterator[str]:
    """Rasa, the action server and the gateway; yields the gateway's URL."""
    with (
        running_stack(settings),
        serve(create_app(settings), settings.gateway_port, host=settings.gateway_host) as url,
    ):
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start everything, then chat in the terminal")
    sub.add_parser("serve", help="start everything and keep serving until Ctrl-C")
    chat = sub.add_parser("chat", help="chat with a running gateway")
    chat.add_argument("--url", default=None, help="the gateway's URL (default: from settings)")
    demo.register(sub)
    keys.register(sub)
    importer.register(sub)
    watchdog.register(sub)
    accounts.register(sub)
    directory.register(sub)
    rotate.register(sub)
    retention.register(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logs.install()  # personal details are redacted from every log line

    if hasattr(args, "func"):  # the case-progress commands
        return int(args.func(args))
    settings = get_settings()
    if args.command == "chat":
        repl(GatewayChat(args.url or settings.gateway_url))
        return 0
    if settings.demo:
        demo.main_seed(args)
    print("Starting the assistant (the first start takes a minute)...", flush=True)
    try:
        with everything(settings) as url:
            channels = ["web chat"]
            if settings.twilio_enabled:
                channels.append(f"SMS (webhook {settings.public_base_url or url}/sms/inbound)")
            if settings.telegram_enabled:
                channels.append("Telegram")
            print(f"Waymark is running: {', '.join(channels)}.")
            print(f"Web chat: {url}/   API docs: {url}/docs\n", flush=True)
            if args.command == "serve":
                with suppress(KeyboardInterrupt):
                    threading.Event().wait()
                return 0
            repl(GatewayChat(url))
    except (StackError, RuntimeError) as error:
        print(f"Could not start: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
