"""Settings, read once from the environment (and an optional .env file)."""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WAYMARK_", env_file=".env", extra="ignore")

    # Rasa and the action server listen on loopback only.
    host: str = "127.0.0.1"
    rasa_port: int = 5005
    actions_port: int = 5055
    # Protects Rasa's HTTP API (/model/parse, trackers). A fresh random token is used
    # for each run unless one is set.
    rasa_token: SecretStr = Field(default_factory=lambda: SecretStr(secrets.token_urlsafe(24)))
    rasa_venv: Path = ROOT / ".venv-rasa"
    models_dir: Path = ROOT / "models"
    startup_timeout: float = 300.0

    @property
    def rasa_url(self) -> str:
        return f"http://{self.host}:{self.rasa_port}"

    @property
    def actions_url(self) -> str:
        return f"http://{self.host}:{self.actions_port}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
