"""Fixtures for the directory store: a migrated database (SQLite and PostgreSQL), and a
valid directory entry to vary."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from bot import db
from tests.harness import database
from tests.services.builders import raw


def entry(**overrides: Any) -> dict[str, Any]:
    """A valid entry (the services tests' good one, renamed) with some fields replaced."""
    made = raw(**{"id": "test-helpline", "name": "Test Helpline", **overrides})
    return json.loads(json.dumps(made, default=str))  # as it arrives in JSON or YAML


def write_directory(path: Path, *entries: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "services": list(entries)}), encoding="utf-8")
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def services_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated, empty database, on SQLite and on PostgreSQL."""
    with database(request.param, tmp_path) as url:
        db.migrate(url)
        engine = db.create_sync_engine(url)
        try:
            yield sessionmaker(engine, expire_on_commit=False)
        finally:
            engine.dispose()
