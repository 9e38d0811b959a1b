"""Fixtures for the case store: a migrated database (SQLite and PostgreSQL) and
small factories for cases and victims."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from bot import db
from bot.cases.models import Case, Victim, VictimContact
from tests.harness import database


@dataclass
class CaseDb:
    url: str
    engine: Engine
    sessions: sessionmaker[Session]
    kind: str  # sqlite or postgres


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def case_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CaseDb]:
    """A migrated, empty database on SQLite and on PostgreSQL (a fresh schema)."""
    with database(request.param, tmp_path) as url:
        db.migrate(url)
        engine = db.create_sync_engine(url)
        try:
            yield CaseDb(url, engine, sessionmaker(engine, expire_on_commit=False), request.param)
        finally:
            engine.dispose()


def make_case(
    session: Session,
    reference: str = "4301234/26",
    *,
    stage: str = "investigation",
    crime_type: str = "burglary",
    enhanced_rights: bool = False,
    agency: str = "met",
    **fields: object,
) -> Case:
    case = Case(
        reference=reference,
        agency=agency,
        crime_type=crime_type,
        stage=stage,
        enhanced_rights=enhanced_rights,
        **fields,
    )
    session.add(case)
    session.flush()
    return case


def make_victim(
    session: Session,
    case: Case,
    *,
    external_id: str = "v1",
    phone: str | None = "+447700900123",
    linked: bool = True,
    **fields: object,
) -> Victim:
    victim = Victim(
        case_id=case.id, external_id=external_id, consent_at=datetime.now(UTC), **fields
    )
    session.add(victim)
    session.flush()
    if phone:
        session.add(
            VictimContact(
                victim_id=victim.id,
                channel="sms",
                address=phone,
                verified_at=datetime.now(UTC) if linked else None,
            )
        )
        session.flush()
    return victim
