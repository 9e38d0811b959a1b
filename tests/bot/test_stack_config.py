"""The per-run Rasa config that bot/stack.py writes: stores, channels and their secrets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bot.stack import (
    LOCK_PASSWORD_ENV,
    TOKEN_ENV,
    TRACKER_PASSWORD_ENV,
    StackError,
    channel_credentials,
    store_endpoints,
)

ROOT = Path("/srv/waymark")


def test_sqlite_tracker_store_gets_an_absolute_path() -> None:
    endpoints, secrets = store_endpoints("sqlite:////data/rasa.db", None, ROOT)
    assert endpoints == {
        "tracker_store": {"type": "SQL", "dialect": "sqlite", "db": "/data/rasa.db"}
    }
    assert secrets == {}


def test_relative_sqlite_path_is_relative_to_the_repo() -> None:
    endpoints, _ = store_endpoints("sqlite:///var/rasa.db", None, ROOT)
    assert endpoints["tracker_store"]["db"] == "/srv/waymark/var/rasa.db"


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "mysql://u@h/db"])
def test_unusable_tracker_store_urls_are_refused(url: str) -> None:
    with pytest.raises(StackError):
        store_endpoints(url, None, ROOT)


def test_postgresql_with_password_takes_it_from_the_environment() -> None:
    endpoints, secrets = store_endpoints(
        "postgresql+psycopg://waymark:s%40cret@db.internal:5433/rasa?sslmode=require", None, ROOT
    )
    assert endpoints["tracker_store"] == {
        "type": "SQL",
        "dialect": "postgresql",
        "url": "db.internal",
        "port": 5433,
        "db": "rasa",
        "username": "waymark",
        "password": f"${{{TRACKER_PASSWORD_ENV}}}",
        "query": {"sslmode": "require"},
    }
    assert secrets == {TRACKER_PASSWORD_ENV: "s@cret"}


def test_postgresql_without_password() -> None:
    endpoints, secrets = store_endpoints("postgresql://postgres@127.0.0.1/test", None, ROOT)
    assert endpoints["tracker_store"] == {
        "type": "SQL",
        "dialect": "postgresql",
        "url": "127.0.0.1",
        "db": "test",
        "username": "postgres",
    }
    assert secrets == {}


def test_redis_lock_store_with_db_and_password() -> None:
    endpoints, secrets = store_endpoints(
        "sqlite:///var/rasa.db", "redis://:p%2Fss@cache:6380/2", ROOT
    )
    assert endpoints["lock_store"] == {
        "type": "redis",
        "url": "cache",
        "port": 6380,
        "db": 2,
        "password": f"${{{LOCK_PASSWORD_ENV}}}",
    }
    assert secrets == {LOCK_PASSWORD_ENV: "p/ss"}


def test_redis_lock_store_defaults() -> None:
    endpoints, secrets = store_endpoints("sqlite:///var/rasa.db", "redis://127.0.0.1", ROOT)
    assert endpoints["lock_store"] == {"type": "redis", "url": "127.0.0.1", "port": 6379, "db": 0}
    assert secrets == {}


def test_rediss_uses_tls_and_secrets_from_both_stores() -> None:
    endpoints, secrets = store_endpoints(
        "postgresql://u:pg@h/db", "rediss://default:rd@cache:6379/1", ROOT
    )
    assert endpoints["lock_store"]["use_ssl"] is True
    assert endpoints["lock_store"]["username"] == "default"
    assert secrets == {TRACKER_PASSWORD_ENV: "pg", LOCK_PASSWORD_ENV: "rd"}


@pytest.mark.parametrize("url", ["http://cache:6379", "redis://cache/abc", "unix:///tmp/r.sock"])
def test_unusable_lock_store_urls_are_refused(url: str) -> None:
    with pytest.raises(StackError):
        store_endpoints("sqlite:///var/rasa.db", url, ROOT)


def test_credentials_have_only_the_gateway_channel_by_default() -> None:
    credentials = channel_credentials(rest_channel=False)
    assert credentials == {
        "connectors.gateway_channel.GatewayInput": {"token": f"${{{TOKEN_ENV}}}"}
    }


def test_credentials_with_the_rest_channel() -> None:
    credentials = channel_credentials(rest_channel=True)
    assert set(credentials) == {"connectors.gateway_channel.GatewayInput", "rest"}
    assert credentials["rest"] is None


def test_secret_references_are_written_as_plain_scalars() -> None:
    # Rasa only expands ${VAR} in unquoted YAML scalars.
    text = yaml.safe_dump(channel_credentials(rest_channel=True), sort_keys=False)
    assert f"token: ${{{TOKEN_ENV}}}\n" in text
