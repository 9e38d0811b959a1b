"""Handoff benchmark (issue 5), with fake providers and the real model, on PostgreSQL.

1. Handoff request to coordinator alert: a victim texts "I want to talk to a person"
   (signed Twilio webhook); time until the coordinator's Telegram alert reaches the fake
   Bot API. Target p95 < 1 s.
2. Coordinator reply to victim delivery: the coordinator's Telegram message (a webhook
   update) until the SMS reaches the fake Twilio API. Target p95 < 500 ms.
3. The queue with 10,000 open conversations: the desk's queue query and the console's
   `GET /console/api/queue` (signed in). Target p95 < 200 ms.

Each latency is measured by polling the fakes every 2 ms (so up to 2 ms high). Run
from the repo root: `.venv/bin/python bench/handoff.py` (about 4 minutes).
"""

from __future__ import annotations

import argparse
import itertools
import logging
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.orm import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot import db
from bot.handoff.accounts import add_coordinator
from bot.privacy import crypto
from bot.server import free_port
from bot.stack import running_stack
from tests.harness import gateway_settings, live_gateway_for, postgres_schema

ASK = "I want to talk to a person"
PASSWORD = "benchmark-password-1234"
_updates = itertools.count(50_000_000)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(name: str, seconds: list[float], target_ms: float) -> str:
    ms = [s * 1000 for s in seconds]
    p95 = pct(ms, 0.95)
    return (
        f"{name:<38} n={len(ms):<4} p50 {statistics.median(ms):7.1f} ms  p95 {p95:7.1f} ms  "
        f"max {max(ms):7.1f} ms  target {target_ms:.0f} ms: {'met' if p95 < target_ms else 'MISSED'}"
        f" (p95/target {p95 / target_ms:.2f})"
    )


def wait_for(read: Callable[[], int], above: int, timeout: float = 30) -> float:
    """Poll until read() > above; the moment it was seen (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while True:
        if read() > above:
            return time.perf_counter()
        if time.perf_counter() > deadline:
            raise TimeoutError("nothing arrived")
        time.sleep(0.002)


def telegram_text(chat: int, text: str) -> dict[str, Any]:
    update = next(_updates)
    return {
        "update_id": update,
        "message": {
            "message_id": update,
            "date": int(time.time()),
            "chat": {"id": chat, "type": "private", "first_name": "Sam"},
            "from": {"id": chat, "is_bot": False, "first_name": "Sam"},
            "text": text,
        },
    }


def fill_queue(url: str, count: int) -> None:
    """`count` open handoffs (contacts, conversations, handoffs) by COPY."""
    base, _, options = url.partition("?options=")
    schema = options.split("%3D", 1)[1]
    now = datetime.now(UTC)
    with psycopg.connect(base) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        start = conn.execute("SELECT coalesce(max(id), 0) FROM contacts").fetchone()[0] + 1
        ids = range(start, start + count)
        with conn.cursor().copy(
            "COPY contacts (id, channel, address, opted_out, created_at, last_seen_at) FROM STDIN"
        ) as copy:
            for i in ids:
                address = crypto.keyring().seal_lookup(f"+4479{i:09d}")  # as the app stores it
                copy.write_row((i, "sms", address, False, now, now))
        with conn.cursor().copy(
            "COPY conversations (id, contact_id, rasa_sender, owner, rasa_paused, created_at, "
            "updated_at) FROM STDIN"
        ) as copy:
            for i in ids:
                copy.write_row((i, i, f"bench-{i}", "queued", True, now, now))
        with conn.cursor().copy(
            "COPY handoffs (conversation_id, state, reason, priority, created_at) FROM STDIN"
        ) as copy:
            for n, i in enumerate(ids):
                urgent = n % 20 == 0
                copy.write_row(
                    (
                        i,
                        "queued",
                        "emergency" if urgent else "request_human",
                        0 if urgent else 1,
                        now - timedelta(seconds=count - n),
                    )
                )
        for table in ("contacts", "conversations", "handoffs"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT max(id) FROM {table}))"
            )
        conn.commit()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE contacts, conversations, handoffs")


def console_sign_in(live: Any) -> dict[str, str]:
    """Sign in to the console; the session cookie as a header. The cookies are Secure
    (the public URL is https), so they are sent by hand over the loopback's http."""
    page = live.client.get(f"{live.url}/console/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    login = page.cookies.get("waymark_console_login")
    if page.status_code != 200 or not match or not login:
        return {}
    signed = live.client.post(
        f"{live.url}/console/login",
        data={"username": "bench", "password": PASSWORD, "csrf_token": match.group(1)},
        headers={"Cookie": f"waymark_console_login={login}"},
    )
    session = signed.cookies.get("waymark_console")
    return {"Cookie": f"waymark_console={session}"} if signed.status_code == 303 and session else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--handoffs", type=int, default=40, help="handoffs for steps 1-2")
    parser.add_argument("--queue", type=int, default=10_000, help="open handoffs for step 3")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    with tempfile.TemporaryDirectory() as tmp, postgres_schema() as url:
        stack_settings = gateway_settings(url, "http://127.0.0.1:1", "x")
        stack_settings = stack_settings.model_copy(
            update={
                "rasa_port": free_port(),
                "actions_port": free_port(),
                "rasa_tracker_store_url": f"sqlite:///{tmp}/tracker.db",
            }
        )
        print("Starting Rasa and the action server...", flush=True)
        with running_stack(stack_settings) as rasa_url:
            settings = gateway_settings(
                url, rasa_url, stack_settings.rasa_token.get_secret_value()
            ).model_copy(update={"handoff_check_seconds": 3600.0})
            with live_gateway_for(settings) as live:
                run(live, args, url)


def run(live: Any, args: argparse.Namespace, url: str) -> None:
    engine = db.create_sync_engine(url)
    with Session(engine) as session, session.begin():
        coordinator = add_coordinator(
            session,
            "bench",
            display_name="Sam",
            password=PASSWORD,
            telegram_chat_id="424242",
            on_duty=True,
            role="supervisor",
        )
        session.expunge(coordinator)
    engine.dispose()
    chat = 424242
    desk = live.gateway.handoffs

    # Warm up: the first message loads the model's caches.
    live.sms("+447700955000", "hello")
    wait_for(lambda: len(live.twilio.to("+447700955000")), 0, timeout=120)

    alerts: list[float] = []
    replies: list[float] = []
    for n in range(args.handoffs):
        number = f"+4477009{56000 + n:05d}"
        seen = len(live.telegram.sent(chat))
        started = time.perf_counter()
        live.sms(number, ASK)
        alerts.append(wait_for(lambda: len(live.telegram.sent(chat)), seen) - started)
        text = live.telegram.sent(chat)[-1]["text"]
        handoff_id = int(text.split("#", 1)[1].split(" ", 1)[0])
        live.run(desk.claim(handoff_id, coordinator))
        wait_for(lambda number=number: len(live.twilio.to(number)), 0)
        time.sleep(0.2)  # the "you are talking to Sam" message has gone out
        before = len(live.twilio.to(number))
        started = time.perf_counter()
        response = live.telegram_update(telegram_text(chat, f"Hello, I'm Sam ({n})."))
        response.raise_for_status()
        replies.append(
            wait_for(lambda number=number: len(live.twilio.to(number)), before) - started
        )
        live.run(desk.close(handoff_id, coordinator, "resolved"))

    print(f"\nFilling the queue with {args.queue:,} open handoffs...", flush=True)
    fill_queue(url, args.queue)
    desk_times = []
    for _ in range(30):
        started = time.perf_counter()
        items = live.run(desk.queue())
        desk_times.append(time.perf_counter() - started)
    assert items and items[0].urgent
    http_times = []
    cookies = console_sign_in(live)
    if cookies:
        for _ in range(30):
            started = time.perf_counter()
            response = live.client.get(f"{live.url}/console/api/queue", headers=cookies)
            response.raise_for_status()
            http_times.append(time.perf_counter() - started)
        assert response.json()

    print("\nHandoff benchmark (PostgreSQL, fake Twilio and Telegram, the real model)")
    print(summary("request -> coordinator alert", alerts, 1000))
    print(summary("coordinator reply -> victim SMS", replies, 500))
    print(summary(f"desk queue ({args.queue:,} open)", desk_times, 200))
    if http_times:
        print(summary(f"GET /console/api/queue ({args.queue:,} open)", http_times, 200))
    else:
        print("GET /console/api/queue: could not sign in to the console")


if __name__ == "__main__":
    main()
