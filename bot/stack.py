"""Starts and stops the local stack: the action server and the Rasa server, on loopback.

One way to run them, used by `python -m bot run`, the tests and the benchmarks.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from bot.config import ROOT, Settings

logger = logging.getLogger(__name__)


class StackError(RuntimeError):
    pass


def latest_model(settings: Settings) -> Path:
    models = sorted(settings.models_dir.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not models:
        raise StackError(f"No trained model in {settings.models_dir}. Run `make train` first.")
    return models[-1]


def _env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["SANIC_HOST"] = settings.host  # rasa-sdk binds to this
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["HF_HUB_OFFLINE"] = env["TRANSFORMERS_OFFLINE"] = "1"  # the weights ship in a package
    return env


@contextmanager
def _process(
    cmd: list[str], log_path: Path, env: dict[str, str]
) -> Iterator[subprocess.Popen[bytes]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_until(
    ready: Callable[[], bool], proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise StackError(f"{what} exited with code {proc.returncode}; see {log}")
        try:
            if ready():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise StackError(f"{what} did not start within {timeout:.0f}s; see {log}")


@contextmanager
def action_server(settings: Settings) -> Iterator[str]:
    log = ROOT / "var" / "log" / "actions.log"
    cmd = [
        sys.executable,
        "-m",
        "rasa_sdk",
        "--actions",
        "actions",
        "-p",
        str(settings.actions_port),
    ]
    with _process(cmd, log, _env(settings)) as proc:
        _wait_until(
            lambda: httpx.get(f"{settings.actions_url}/health", timeout=2).status_code == 200,
            proc,
            "The action server",
            log,
            settings.startup_timeout,
        )
        yield settings.actions_url


def _endpoints_file(settings: Settings) -> Path:
    """endpoints.yml pointing at this run's action server port."""
    path = ROOT / "var" / f"endpoints-{settings.rasa_port}.yml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'action_endpoint:\n  url: "{settings.actions_url}/webhook"\n')
    return path


@contextmanager
def rasa_server(settings: Settings, model: Path | None = None) -> Iterator[str]:
    log = ROOT / "var" / "log" / "rasa.log"
    token = settings.rasa_token.get_secret_value()
    cmd = [
        str(settings.rasa_venv / "bin" / "rasa"),
        "run",
        "--enable-api",
        "--auth-token",
        token,
        "--interface",
        settings.host,
        "--port",
        str(settings.rasa_port),
        "--model",
        str(model or latest_model(settings)),
        "--endpoints",
        str(_endpoints_file(settings)),
        "--credentials",
        "credentials.yml",
    ]
    with _process(cmd, log, _env(settings)) as proc:

        def ready() -> bool:
            r = httpx.get(f"{settings.rasa_url}/status", params={"token": token}, timeout=2)
            return r.status_code == 200 and bool(r.json().get("model_file"))

        _wait_until(ready, proc, "The Rasa server", log, settings.startup_timeout)
        yield settings.rasa_url


@contextmanager
def running_stack(settings: Settings) -> Iterator[str]:
    """The action server and Rasa, both up; yields Rasa's URL."""
    with ExitStack() as stack:
        stack.enter_context(action_server(settings))
        yield stack.enter_context(rasa_server(settings))
