"""`python -m bot run` starts the stack and opens a terminal chat.

`python -m bot chat --url URL` chats with a Rasa server that is already running.
"""

from __future__ import annotations

import argparse
import logging
import sys

from bot.chat import ChatSession, repl
from bot.config import get_settings
from bot.stack import StackError, running_stack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the action server and Rasa, then chat in the terminal")
    chat = sub.add_parser("chat", help="chat with a running Rasa server")
    chat.add_argument("--url", default=None, help="Rasa's URL (default: from settings)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")

    settings = get_settings()
    if args.command == "chat":
        repl(ChatSession(args.url or settings.rasa_url))
        return 0
    print("Starting the assistant (the first start takes a minute)...", flush=True)
    try:
        with running_stack(settings) as rasa_url:
            repl(ChatSession(rasa_url))
    except StackError as error:
        print(f"Could not start: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
