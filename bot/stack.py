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
from typing import Any
from urllib.parse import unquote, urlsplit

import httpx
import yaml
from sqlalchemy.engine import make_url

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
    # The look-up actions read crime references the way the gateway does.
    env["WAYMARK_CRIME_REFERENCE_PATTERN"] = settings.crime_reference_pattern
    env["WAYMARK_CRIME_REFERENCE_FORMAT"] = settings.crime_reference_format
    return env


@contextmanager
def _process(
    cmd: list[str], log_path: Path, env: dict[str, str], nice: int = 0
) -> Iterator[subprocess.Popen[bytes]]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Lower priority for the heavy NLU work, so the gateway beside it (the
            # front door, which must acknowledge webhooks fast) gets the CPU first.
            preexec_fn=(lambda: os.nice(nice)) if nice else None,
        )
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
    with _process(cmd, log, _env(settings), settings.rasa_nice) as proc:
        _wait_until(
            lambda: httpx.get(f"{settings.actions_url}/health", timeout=2).status_code == 200,
            proc,
            "The action server",
            log,
            settings.startup_timeout,
        )
        yield settings.actions_url


# Secrets reach Rasa through its environment: its YAML reader expands ${VAR} in
# credentials and endpoints files, so the per-run files in var/ hold no secret.
TOKEN_ENV = "WAYMARK_RASA_TOKEN"
TRACKER_PASSWORD_ENV = "WAYMARK_RASA_TRACKER_PASSWORD"
LOCK_PASSWORD_ENV = "WAYMARK_RASA_LOCK_PASSWORD"
GATEWAY_CHANNEL = "connectors.gateway_channel.GatewayInput"


def _env_ref(name: str) -> str:
    return f"${{{name}}}"


def channel_credentials(rest_channel: bool) -> dict[str, Any]:
    """credentials.yml for a run: the gateway channel, and Rasa's REST channel if asked for."""
    credentials: dict[str, Any] = {GATEWAY_CHANNEL: {"token": _env_ref(TOKEN_ENV)}}
    if rest_channel:
        credentials["rest"] = None
    return credentials


def tracker_store_endpoint(url: str, root: Path = ROOT) -> tuple[dict[str, Any], dict[str, str]]:
    """Rasa's `tracker_store` endpoint for a SQLAlchemy URL, and the secrets it needs.

    SQLite (a relative path is relative to `root`, Rasa's working directory) and
    PostgreSQL with any driver; Rasa itself always connects with psycopg2.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise StackError(f"The Rasa tracker store needs a SQLite file, not {url!r}.")
        db = Path(parsed.database)
        return {
            "type": "SQL",
            "dialect": "sqlite",
            "db": str(db if db.is_absolute() else root / db),
        }, {}
    if backend != "postgresql":
        raise StackError(f"The Rasa tracker store must be SQLite or PostgreSQL, not {backend!r}.")
    if not parsed.database:
        raise StackError("The Rasa tracker store URL must name a PostgreSQL database.")
    store: dict[str, Any] = {"type": "SQL", "dialect": "postgresql"}
    if parsed.host:
        store["url"] = parsed.host
    if parsed.port:
        store["port"] = parsed.port
    store["db"] = parsed.database
    if parsed.username:
        store["username"] = parsed.username
    secrets: dict[str, str] = {}
    if parsed.password:
        store["password"] = _env_ref(TRACKER_PASSWORD_ENV)
        secrets[TRACKER_PASSWORD_ENV] = str(parsed.password)
    if parsed.query:
        # e.g. sslmode; a repeated key keeps its last value.
        store["query"] = {k: v[-1] if isinstance(v, tuple) else v for k, v in parsed.query.items()}
    return store, secrets


def lock_store_endpoint(url: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Rasa's `lock_store` endpoint for a Redis URL (redis:// or rediss://), and its secrets.

    The database is the URL's path, 0 when it has none (as for redis-py; Rasa's own
    default would be 1).
    """
    parsed = urlsplit(url)
    if parsed.scheme not in {"redis", "rediss"} or not parsed.hostname:
        raise StackError("The Rasa lock store URL must be redis://host[:port][/db].")
    path = parsed.path.strip("/")
    if path and not path.isdigit():
        raise StackError(
            f"The Redis database in the lock store URL must be a number, not {path!r}."
        )
    store: dict[str, Any] = {
        "type": "redis",
        "url": parsed.hostname,
        "port": parsed.port or 6379,
        "db": int(path or 0),
    }
    if parsed.scheme == "rediss":
        store["use_ssl"] = True
    if parsed.username:
        store["username"] = unquote(parsed.username)
    secrets: dict[str, str] = {}
    if parsed.password:
        store["password"] = _env_ref(LOCK_PASSWORD_ENV)
        secrets[LOCK_PASSWORD_ENV] = unquote(parsed.password)
    return store, secrets


def store_endpoints(
    tracker_store_url: str, lock_store_url: str | None, root: Path = ROOT
) -> tuple[dict[str, Any], dict[str, str]]:
    """The store entries of endpoints.yml, and the environment variables they refer to."""
    tracker_store, secrets = tracker_store_endpoint(tracker_store_url, root)
    endpoints: dict[str, Any] = {"tracker_store": tracker_store}
    if lock_store_url:
        endpoints["lock_store"], lock_secrets = lock_store_endpoint(lock_store_url)
        secrets = {**secrets, **lock_secrets}
    return endpoints, secrets


def _write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = "# Written by bot/stack.py for one run; secrets come from the environment.\n"
    path.write_text(header + yaml.safe_dump(data, sort_keys=False))
    return path


def _rasa_config(settings: Settings) -> tuple[Path, Path, dict[str, str]]:
    """This run's endpoints and credentials files (removed when Rasa stops) and Rasa's secrets."""
    stores, secrets = store_endpoints(settings.rasa_tracker_store_url, settings.rasa_lock_store_url)
    if stores["tracker_store"]["dialect"] == "sqlite":
        Path(stores["tracker_store"]["db"]).parent.mkdir(parents=True, exist_ok=True)
    endpoints = {"action_endpoint": {"url": f"{settings.actions_url}/webhook"}, **stores}
    var = ROOT / "var"
    return (
        _write_yaml(var / f"endpoints-{settings.rasa_port}.yml", endpoints),
        _write_yaml(
            var / f"credentials-{settings.rasa_port}.yml",
            channel_credentials(settings.rasa_rest_channel),
        ),
        {TOKEN_ENV: settings.rasa_token.get_secret_value(), **secrets},
    )


@contextmanager
def rasa_server(settings: Settings, model: Path | None = None) -> Iterator[str]:
    log = ROOT / "var" / "log" / "rasa.log"
    token = settings.rasa_token.get_secret_value()
    endpoints, credentials, secrets = _rasa_config(settings)
    cmd = [
        str(settings.rasa_venv / "bin" / "rasa"),
        "run",
        "--enable-api",
        # One argument: a random token may start with "-", which argparse would take
        # for an option.
        f"--auth-token={token}",
        "--interface",
        settings.host,
        "--port",
        str(settings.rasa_port),
        "--model",
        str(model or latest_model(settings)),
        "--endpoints",
        str(endpoints),
        "--credentials",
        str(credentials),
    ]
    try:
        with _process(cmd, log, {**_env(settings), **secrets}, settings.rasa_nice) as proc:

            def ready() -> bool:
                r = httpx.get(f"{settings.rasa_url}/status", params={"token": token}, timeout=2)
                return r.status_code == 200 and bool(r.json().get("model_file"))

            _wait_until(ready, proc, "The Rasa server", log, settings.startup_timeout)
            yield settings.rasa_url
    finally:
        endpoints.unlink(missing_ok=True)
        credentials.unlink(missing_ok=True)


@contextmanager
def running_stack(settings: Settings) -> Iterator[str]:
    """The action server and Rasa, both up; yields Rasa's URL."""
    with ExitStack() as stack:
        stack.enter_context(action_server(settings))
        yield stack.enter_context(rasa_server(settings))
