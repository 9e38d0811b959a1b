"""Loading the directory into the database: all or nothing, once per file, retiring what
left the file and keeping what agencies corrected; and the staleness report."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from bot.services import directory as store
from bot.services import schema
from bot.services.models import DirectoryImport, ServiceRow
from bot.services.schema import DirectoryError
from tests.signposting.conftest import entry, write_directory


def rows(sessions: sessionmaker[Session]) -> dict[str, ServiceRow]:
    with sessions() as session:
        return {r.id: r for r in session.scalars(select(ServiceRow))}


def load(sessions: sessionmaker[Session], path: Path, **kwargs: object) -> store.Imported | None:
    with sessions() as session, session.begin():
        return store.import_file(session, path, by="test", **kwargs)  # type: ignore[arg-type]


def test_a_file_is_loaded_once_then_skipped_until_it_changes(
    services_db: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write_directory(tmp_path / "d.yml", entry(), entry(id="second-line", name="Second"))
    first = load(services_db, path)
    assert first == store_imported(added=2)
    assert load(services_db, path) is None  # the same file again: nothing to do
    assert load(services_db, path, force=True) == store_imported(unchanged=2)

    write_directory(path, entry(name="Test Helpline Renamed"))
    changed = load(services_db, path)
    assert changed == store_imported(updated=1, retired=1)
    found = rows(services_db)
    assert found["test-helpline"].name == "Test Helpline Renamed"
    assert found["test-helpline"].entry["name"] == "Test Helpline Renamed"
    assert not found["second-line"].active  # left the file: retired, not deleted
    with services_db() as session:
        assert session.scalar(select(DirectoryImport.services).order_by(DirectoryImport.id.desc()))


def store_imported(**counts: int) -> store.Imported:
    return store.Imported(
        added=counts.get("added", 0),
        updated=counts.get("updated", 0),
        unchanged=counts.get("unchanged", 0),
        retired=counts.get("retired", 0),
    )


def test_one_bad_field_changes_nothing_and_every_problem_is_listed(
    services_db: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write_directory(tmp_path / "d.yml", entry())
    load(services_db, path)
    write_directory(
        path,
        entry(name="Changed"),
        entry(id="no-source", sources=[]),
        entry(
            id="bad-hours",
            contacts=[
                {
                    **entry()["contacts"][0],
                    "hours": [{"days": ["mon"], "opens": "9am", "closes": "17:00"}],
                }
            ],
        ),
    )
    with pytest.raises(DirectoryError) as raised:
        load(services_db, path)
    problems = {(e.service, e.field) for e in raised.value.errors}
    assert ("no-source", "sources") in problems
    assert ("bad-hours", "contacts[0].hours[0].opens") in problems
    assert rows(services_db)["test-helpline"].name == "Test Helpline"  # unchanged
    assert "nothing was changed" in store.describe(raised.value)


def test_an_agency_correction_survives_an_unchanged_file_but_not_a_change_to_it(
    services_db: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write_directory(tmp_path / "d.yml", entry())
    load(services_db, path)
    with services_db() as session, session.begin():
        fixed = schema.validate_entry(entry(name="Corrected By Agency"))
        assert store.put(session, fixed, "api:met") is False
        assert store.put(session, fixed, "api:met") is None  # the same again: no change
        added = schema.validate_entry(entry(id="agency-only", name="Agency Only"))
        assert store.put(session, added, "api:met") is True
    assert load(services_db, path) is None
    found = rows(services_db)
    assert found["test-helpline"].name == "Corrected By Agency"
    assert found["agency-only"].active  # not from the file: never retired by it

    write_directory(path, entry(name="Reviewed Again"))
    load(services_db, path)
    assert rows(services_db)["test-helpline"].name == "Reviewed Again"
    assert rows(services_db)["agency-only"].active


def test_retire_takes_an_entry_out_of_matching(
    services_db: sessionmaker[Session], tmp_path: Path
) -> None:
    load(services_db, write_directory(tmp_path / "d.yml", entry(), entry(id="other-line")))
    with services_db() as session, session.begin():
        assert store.retire(session, "other-line")
        assert not store.retire(session, "other-line")
        assert not store.retire(session, "never-was")
    with services_db() as session:
        assert [s.id for s in store.active(session)] == ["test-helpline"]


def test_the_staleness_report_lists_entries_not_verified_in_six_months(
    services_db: sessionmaker[Session], tmp_path: Path
) -> None:
    path = write_directory(
        tmp_path / "d.yml",
        entry(id="fresh-line", last_verified="2026-10-01"),
        entry(id="old-line", last_verified="2026-04-01"),
        entry(id="older-line", last_verified="2025-01-15"),
    )
    load(services_db, path)
    with services_db() as session:
        stale = store.stale_rows(session, today=date(2026, 11, 26))
        assert [r.id for r in stale] == ["older-line", "old-line"]
        assert [r.id for r in store.stale_rows(session, today=date(2026, 11, 26), months=12)] == [
            "older-line"
        ]


def test_the_real_directory_loads(services_db: sessionmaker[Session]) -> None:
    result = load(services_db, schema.DIRECTORY_FILE)
    assert result is not None and result.added >= 15
    with services_db() as session:
        assert len(store.active(session)) == result.added
