"""Fixtures for the directory store: a migrated database (SQLite and PostgreSQL), and a
valid directory entry to vary."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from bot import db
from tests.harness import database

ENTRY: dict[str, Any] = {
    "id": "test-helpline",
    "name": "Test Helpline",
    "organisation": "Test Trust",
    "types": ["general"],
    "crime_types": ["any"],
    "for_whom": "anyone affected by crime",
    "eligibility": {
        "age_min": None,
        "age_max": None,
        "genders": "any",
        "specialist_for": [],
        "criteria": None,
    },
    "coverage": {"area": "national", "boroughs": []},
    "contacts": [
        {
            "kind": "phone",
            "value": "0808 000 0000",
            "note": None,
            "hours": "always",
            "bank_holidays": None,
        }
    ],
    "free": True,
    "self_referral": True,
    "referrals": True,
    "police_report_needed": False,
    "languages": ["English"],
    "interpreters": False,
    "commissioned_by": None,
    "summary": None,
    "sources": ["https://example.org/test-helpline"],
    "last_verified": "2026-11-01",
}


def entry(**overrides: Any) -> dict[str, Any]:
    """A valid entry with some fields replaced."""
    raw = copy.deepcopy(ENTRY)
    raw.update(overrides)
    return raw


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
