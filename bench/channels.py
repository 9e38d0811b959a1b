"""Channels benchmark: end-to-end latency through the gateway against direct calls to Rasa.

One run, one model, one Rasa server and action server:
- direct: POST to Rasa's REST channel (/webhooks/rest/webhook), the baseline;
- web:    POST to the gateway's web chat JSON API (stored, safety-checked, sent to Rasa);
- sms:    a signed Twilio webhook to the gateway, timed until the first reply reaches a
          fake Twilio REST API (the real `twilio` client sends it there over HTTP).
Each at 1 and 20 concurrent conversations for --duration seconds in all (default 60, in
interleaved rounds): p50, p95,
errors, throughput, and the gateway/direct p95 ratio. Also the SMS webhook's own
acknowledgement time (store + commit + empty TwiML).

Run from the repo root: `.venv/bin/python bench/channels.py` (or `make bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from twilio.request_validator import RequestValidator

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.config import ROOT, Settings
from bot.server import free_port
from bot.stack import running_stack

PUBLIC_URL = "https://bench.waymark.example"
THINK = 0.5  # seconds a person pauses after an answer, on every path alike
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "bench-auth-token"
# What people ask, in turn; none of them trips the safety check.
QUESTIONS = [
    "what does charged mean",
    "what happens at a trial",
    "they said no further action, can I challenge it",
    "not now",
    "what does released under investigation mean",
    "can I report without giving my name",
    "will I have to see him in court",
    "what does bail mean",
    "how do I complain about the police",
    "thank you",
]


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    acks: list[float] = field(default_factory=list)
    elapsed: float = 0.0


class FakeProvider:
    """Twilio's Messages API, in this process: records when each person's SMS arrives."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}
        self.last: dict[str, float] = {}
        self.ids = itertools.count(1)
        self.app = FastAPI()

        @self.app.post("/2010-04-01/Accounts/{account}/Messages.json")
        async def create(account: str, request: Request) -> JSONResponse:
            form = await request.form()
            to = str(form.get("To"))
            self.last[to] = time.perf_counter()
            future = self.waiting.pop(to, None)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())
            sid = f"SM{next(self.ids):032x}"
            return JSONResponse(
                {"sid": sid, "account_sid": account, "to": to, "status": "queued"}, status_code=201
            )


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def converse(
    ask: Callable[[str], Awaitable[object]], deadline: float, result: Result
) -> None:
    """One person asking the questions in turn until the deadline; times each answer."""
    for text in itertools.cycle(QUESTIONS):
        if time.perf_counter() > deadline:
            return
        start = time.perf_counter()
        try:
            assert await ask(text), "no reply"
            result.latencies.append(time.perf_counter() - start)
        except Exception:
            result.errors += 1
        await asyncio.sleep(THINK)


async def run_direct(
    client: httpx.AsyncClient, rasa_url: str, user: str, deadline: float, result: Result
) -> None:
    async def ask(text: str) -> object:
        r = await client.post(
            f"{rasa_url}/webhooks/rest/webhook", json={"sender": user, "message": text}
        )
        r.raise_for_status()
        return r.json()

    await converse(ask, deadline, result)


async def run_web(
    client: httpx.AsyncClient, gateway_url: str, user: str, deadline: float, result: Result
) -> None:
    created = await client.post(f"{gateway_url}/api/web/sessions")
    session = created.json()["session_id"]

    async def ask(text: str) -> object:
        r = await client.post(
            f"{gateway_url}/api/web/sessions/{session}/messages", json={"text": text}
        )
        r.raise_for_status()
        return r.json()["messages"]

    await converse(ask, deadline, result)


async def run_sms(
    client: httpx.AsyncClient,
    gateway_url: str,
    provider: FakeProvider,
    number: str,
    deadline: float,
    result: Result,
) -> None:
    validator = RequestValidator(AUTH_TOKEN)
    for n, text in enumerate(itertools.cycle(QUESTIONS)):
        if time.perf_counter() > deadline:
            return
        params = {
            "MessageSid": f"SM{number[1:]}{n:08d}{os.getpid()}",
            "AccountSid": ACCOUNT_SID,
            "From": number,
            "To": "+447700900000",
            "Body": text,
            "NumMedia": "0",
        }
        signature = validator.compute_signature(f"{PUBLIC_URL}/sms/inbound", params)
        arrived: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        provider.waiting[number] = arrived
        start = time.perf_counter()
        try:
            r = await client.post(
                f"{gateway_url}/sms/inbound", data=params, headers={"X-Twilio-Signature": signature}
            )
            result.acks.append(time.perf_counter() - start)
            r.raise_for_status()
            first_reply = await asyncio.wait_for(arrived, 60)
            result.latencies.append(first_reply - start)
            # Let the rest of this answer go out before the next question: wait until
            # no SMS has come for this person for the same pause as on the other paths.
            while time.perf_counter() - provider.last.get(number, 0) < THINK:
                await asyncio.sleep(0.1)
        except Exception:
            result.errors += 1
            provider.waiting.pop(number, None)


async def staggered(delay: float, run: Awaitable[None]) -> None:
    """Start users spread over the first seconds, as people arrive, not all at once."""
    await asyncio.sleep(delay)
    await run


async def measure(
    mode: str, users: int, duration: float, rasa_url: str, gateway_url: str, provider: FakeProvider
) -> Result:
    result = Result()
    limits = httpx.Limits(max_connections=users + 5)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:
        deadline = time.perf_counter() + duration
        run_id = f"{mode}{users}{int(time.time())}"
        start = time.perf_counter()
        if mode == "direct":
            tasks = [
                run_direct(client, rasa_url, f"bench-{run_id}-{i}", deadline, result)
                for i in range(users)
            ]
        elif mode == "web":
            tasks = [
                run_web(client, gateway_url, deadline=deadline, result=result, user=str(i))
                for i in range(users)
            ]
        else:
            base = int(time.time()) % 10_000
            tasks = [
                run_sms(
                    client,
                    gateway_url,
                    provider,
                    f"+4477{base:04d}{users:02d}{i:03d}",
                    deadline,
                    result,
                )
                for i in range(users)
            ]
        ramp = min(2.0, duration / 10)
        await asyncio.gather(*(staggered(i * ramp / users, t) for i, t in enumerate(tasks)))
        result.elapsed = time.perf_counter() - start
    return result


async def bench(
    args: argparse.Namespace, rasa_url: str, gateway_url: str, provider: FakeProvider
) -> None:
    # Warm up every path so the first measurements aren't model loading.
    await measure("direct", 2, 5, rasa_url, gateway_url, provider)
    await measure("web", 2, 5, rasa_url, gateway_url, provider)
    await measure("sms", 2, 5, rasa_url, gateway_url, provider)

    # Rounds interleave the paths, so drift over the run (a busy neighbour, Rasa's
    # trackers growing) falls on all of them alike.
    table: dict[tuple[str, int], Result] = defaultdict(Result)
    for users in args.users:
        for round_ in range(1, args.rounds + 1):
            for mode in ["direct", "web", "sms"]:
                part = await measure(
                    mode, users, args.duration / args.rounds, rasa_url, gateway_url, provider
                )
                total = table[mode, users]
                total.latencies += part.latencies
                total.acks += part.acks
                total.errors += part.errors
                total.elapsed += part.elapsed
            print(f"  {users:2} concurrent, round {round_}/{args.rounds} done", flush=True)

    print(f"\nEnd-to-end latency, {args.duration:.0f} s per row (seconds):")
    print(
        f"{'path':8} {'users':>5} {'p50':>7} {'p95':>7} {'errors':>6} {'msg/s':>6} {'p95 vs direct':>14}"
    )
    ratios: dict[tuple[str, int], float] = defaultdict(float)
    for (mode, users), r in table.items():
        p95 = pct(r.latencies, 0.95)
        direct = pct(table["direct", users].latencies, 0.95)
        ratio = p95 / direct if direct else float("nan")
        ratios[mode, users] = ratio
        print(
            f"{mode:8} {users:5d} {statistics.median(r.latencies) if r.latencies else float('nan'):7.3f} "
            f"{p95:7.3f} {r.errors:6d} {len(r.latencies) / r.elapsed:6.2f} "
            f"{'' if mode == 'direct' else f'{ratio:.2f}x':>14}"
        )
    print()
    for users in args.users:
        acks = table["sms", users].acks
        print(
            f"SMS webhook acknowledgement at {users:2} concurrent: p50 {pct(acks, 0.5) * 1000:.1f} ms, "
            f"p95 {pct(acks, 0.95) * 1000:.1f} ms ({len(acks)} webhooks; target p95 < 50 ms)"
        )
    top = max(args.users)
    print(
        f"Gateway p95 / direct p95 at {top} concurrent: web {ratios['web', top]:.2f}, "
        f"sms {ratios['sms', top]:.2f} (target <= 1.3); "
        f"errors: {sum(r.errors for r in table.values())} (target 0)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--users", type=int, nargs="+", default=[1, 20])
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per level")
    parser.add_argument(
        "--database-url",
        default=None,
        help="the gateway's database (default: a fresh SQLite file); e.g. postgresql://...",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        settings = Settings(
            rasa_port=free_port(),
            actions_port=free_port(),
            gateway_port=free_port(),
            rasa_rest_channel=True,
            rasa_tracker_store_url=f"sqlite:///{tmp}/tracker.db",
            database_url=args.database_url or f"sqlite:///{tmp}/gateway.db",
        )
        print("Starting Rasa and the action server...", flush=True)
        rasa_url = stack.enter_context(running_stack(settings))

        provider = FakeProvider()
        provider_port = free_port()

        async def go() -> None:
            server = uvicorn.Server(
                uvicorn.Config(
                    provider.app, host="127.0.0.1", port=provider_port, log_level="warning"
                )
            )
            serving = asyncio.create_task(server.serve())
            try:
                await bench(args, rasa_url, settings.gateway_url, provider)
            finally:
                server.should_exit = True
                await serving

        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "BENCH_TWILIO_URL": f"http://127.0.0.1:{provider_port}",
            "WAYMARK_DATABASE_URL": settings.database_url,
            "WAYMARK_GATEWAY_PORT": str(settings.gateway_port),
            "WAYMARK_RASA_PORT": str(settings.rasa_port),
            "WAYMARK_RASA_TOKEN": settings.rasa_token.get_secret_value(),
            "WAYMARK_PUBLIC_BASE_URL": PUBLIC_URL,
            "WAYMARK_SECRET_KEY": "bench",
            "WAYMARK_TWILIO_ACCOUNT_SID": ACCOUNT_SID,
            "WAYMARK_TWILIO_AUTH_TOKEN": AUTH_TOKEN,
            "WAYMARK_TWILIO_FROM_NUMBER": "+447700900000",
            "WAYMARK_RASA_TIMEOUT": "120",  # measure the answer, not the holding reply
        }
        log = open(ROOT / "var" / "log" / "bench-gateway.log", "wb")  # noqa: SIM115
        gateway = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "gateway_process.py")],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{settings.gateway_url}/ready", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if gateway.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the gateway did not start: see var/log/bench-gateway.log")
                time.sleep(0.2)
            print("Gateway up. Measuring...", flush=True)
            asyncio.run(go())
        finally:
            gateway.terminate()
            gateway.wait(timeout=20)
            log.close()


if __name__ == "__main__":
    main()
