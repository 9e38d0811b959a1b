"""Settings, read once from the environment (and an optional .env file).

Every setting is documented in `.env.example` and the README.
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from actions.references import DEFAULT_REFERENCE_FORMAT, DEFAULT_REFERENCE_PATTERN

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"


def _local_secret() -> SecretStr:
    """The pseudonym key for a local run: made once, kept in var/ so ids stay stable.

    Production sets WAYMARK_SECRET_KEY instead.
    """
    path = VAR / "secret_key"
    if not path.exists():
        VAR.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return SecretStr(path.read_text().strip())


def _local_data_keys() -> SecretStr:
    """The encryption key for a local run: made once, kept in var/ beside the secret key.

    Production sets WAYMARK_DATA_KEYS instead (see docs/privacy.md for rotation).
    """
    from cryptography.fernet import Fernet

    path = VAR / "data_keys"
    if not path.exists():
        VAR.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(Fernet.generate_key().decode())
    return SecretStr(path.read_text().strip())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WAYMARK_", env_file=".env", extra="ignore")

    # Rasa and the action server listen on loopback only.
    host: str = "127.0.0.1"
    rasa_port: int = 5005
    actions_port: int = 5055
    # Protects Rasa's HTTP API and the gateway's Rasa channel. A fresh random token is
    # used for each run unless one is set.
    rasa_token: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_urlsafe(24)))
    rasa_venv: Path = ROOT / ".venv-rasa"
    models_dir: Path = ROOT / "models"
    startup_timeout: float = 300.0
    # Niceness for Rasa and the action server when `python -m bot` starts them on the
    # same machine as the gateway: the gateway acknowledges webhooks first.
    rasa_nice: int = 5
    # Rasa's tracker store (a SQLAlchemy URL) and lock store (a Redis URL, or none for
    # the in-memory lock store, which is right for a single Rasa instance).
    rasa_tracker_store_url: str = f"sqlite:///{VAR / 'rasa-tracker.db'}"
    rasa_lock_store_url: str | None = None
    # Rasa's unauthenticated REST channel, for the benchmark's direct calls only.
    rasa_rest_channel: bool = False

    # The gateway.
    database_url: str = Field(
        default=f"sqlite:///{VAR / 'waymark.db'}",
        validation_alias=AliasChoices("WAYMARK_DATABASE_URL", "DATABASE_URL"),
    )
    gateway_host: str = "127.0.0.1"
    gateway_port: int = 8000
    # The URL providers reach the gateway at (https://…, no trailing slash). Twilio
    # signs requests against it; Telegram's webhook is registered at it.
    public_base_url: str | None = None
    # Key for pseudonymous conversation ids (HMAC of channel and address).
    secret_key: SecretStr = Field(default_factory=_local_secret)
    # Seconds to wait for Rasa before sending the holding reply.
    rasa_timeout: float = 10.0
    # Seconds between tries while Rasa is unreachable.
    rasa_retry_interval: float = 5.0

    # SMS through Twilio: enabled when the account SID and auth token are set.
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    sms_max_segments: int = 3

    # Telegram: enabled when the bot token is set. Webhook mode needs public_base_url.
    telegram_bot_token: SecretStr | None = None
    telegram_secret_token: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32))
    )
    telegram_mode: Literal["auto", "webhook", "polling"] = "auto"

    # Web chat.
    web_exit_url: str = "https://www.bbc.co.uk/weather"
    web_session_minutes: int = 60

    # Case progress.
    # Crime references: a regex with named groups, and how to write them. The default
    # is the Met's: 7 digits, a slash and a 2-digit year (4301234/26).
    crime_reference_pattern: str = DEFAULT_REFERENCE_PATTERN
    crime_reference_format: str = DEFAULT_REFERENCE_FORMAT
    # A verified look-up lasts this long; then the person gives their details again.
    verification_minutes: int = 30
    # Failed checks allowed per case and per sender in the window, then a lock.
    verification_max_failures: int = 5
    verification_window_hours: int = 24
    # One-time codes (enrolment, web verification) expire after this long.
    code_minutes: int = 15
    # Waymark's local standard for how often a victim hears, unless they agreed another.
    update_every_days: int = 28
    # The notification worker: seconds between looks at the outbox, and how many run.
    notify_interval: float = 2.0
    notify_workers: int = 1
    # The update-deadline watchdog runs this often (minutes).
    watchdog_interval_minutes: int = 60
    # The agency API refuses request bodies larger than this (bytes).
    agency_max_body_bytes: int = 65_536
    # The Telegram bot's username, for /start deep links (t.me/<name>?start=...).
    telegram_bot_username: str | None = None
    # Human handoff. An unclaimed handoff alerts again and escalates to supervisors
    # after these minutes (urgent: danger or risk of self-harm).
    handoff_urgent_minutes: float = 2.0
    handoff_normal_minutes: float = 30.0
    # When nobody is on duty, the conversation goes back to the bot after this many
    # minutes, with a call-back task for the team (0: it stays queued until claimed).
    handoff_return_minutes: float = 15.0
    # How often the handoff timers are checked (seconds).
    handoff_check_seconds: float = 15.0
    # Emergency and self-harm messages also start an urgent handoff.
    handoff_on_safety: bool = True
    # How many of the latest messages a coordinator's packet shows.
    handoff_transcript_messages: int = 30
    # The coordinator console: session length, and the lock after repeated failures.
    console_session_hours: int = 12
    console_max_failures: int = 5
    console_lock_minutes: int = 15
    # Demo mode: one-time codes for addresses no provider can reach (no Twilio or
    # Telegram set up) are written to the gateway log instead.
    demo: bool = False

    # Privacy (issue 7). How long each kind of data is kept (days), enforced by a purge
    # that runs every `retention_interval_minutes` (0: only `python -m bot privacy purge`).
    retention_anonymous_days: int = Field(30, ge=1)  # conversations never linked to a victim
    retention_identified_days: int = Field(365, ge=1)  # conversations linked to a victim
    retention_tracker_days: int = Field(30, ge=1)  # Rasa's tracker events
    retention_audit_days: int = Field(730, ge=1)  # the audit log
    retention_interval_minutes: int = Field(60, ge=0)
    # Keys that encrypt contact addresses and free text at rest: comma separated, newest
    # first. The first encrypts; any listed key decrypts (docs/privacy.md: rotation).
    data_keys: SecretStr = Field(default_factory=_local_data_keys)
    # An installed spaCy model (e.g. en_core_web_sm) adds PERSON detection to redaction.
    spacy_model: str | None = None

    @field_validator("database_url", "rasa_tracker_store_url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        # Hosting platforms hand out postgres:// URLs; SQLAlchemy wants postgresql://.
        if value.startswith("postgres://"):
            value = "postgresql://" + value.removeprefix("postgres://")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else value

    @property
    def rasa_url(self) -> str:
        return f"http://{self.host}:{self.rasa_port}"

    @property
    def actions_url(self) -> str:
        return f"http://{self.host}:{self.actions_port}"

    @property
    def gateway_url(self) -> str:
        return f"http://{self.gateway_host}:{self.gateway_port}"

    @property
    def twilio_enabled(self) -> bool:
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def telegram_enabled(self) -> bool:
        return self.telegram_bot_token is not None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
