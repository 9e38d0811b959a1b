"""The bulk import of case events, on SQLite and PostgreSQL, and its command."""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot import db
from bot.cases import events, importer
from bot.cases.importer import ImportResult, import_events
from bot.cases.models import Case, CaseEvent, Notification
from bot.config import Settings, get_settings
from tests.cases.conftest import CaseDb, make_case, make_victim

SETTINGS = Settings(database_url="sqlite://", secret_key="test-key")
WHEN = datetime.now(UTC) - timedelta(days=2)


def row(external_id: str, reference: str = "4301234/26", **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "reference": reference,
        "type": "suspect_arrested",
        "occurred_at": WHEN.isoformat(),
        "external_id": external_id,
        "details": "",
        "note": "",
        "victim_informed_at": "",
    }
    values.update(overrides)
    return values


@pytest.fixture
def cases(case_db: CaseDb) -> CaseDb:
    with case_db.sessions() as session:
        for reference, agency in (("4301234/26", "met"), ("4309999/26", "kent")):
            case = make_case(session, reference, agency=agency)
            make_victim(session, case)
        session.commit()
    return case_db


def run(case_db: CaseDb, rows: list[dict[str, Any]], *, dry_run: bool = False) -> ImportResult:
    return import_events(case_db.sessions, rows, "met", dry_run=dry_run, settings=SETTINGS)


def count(case_db: CaseDb, model: type, *where: Any) -> int:
    with case_db.sessions() as session:
        return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


def stage(case_db: CaseDb, reference: str = "4301234/26") -> str:
    with case_db.sessions() as session:
        return session.scalar(select(Case.stage).where(Case.reference == reference)) or ""


def test_rows_are_imported_and_a_bad_row_is_skipped(cases: CaseDb) -> None:
    later = (WHEN + timedelta(hours=1)).isoformat()
    rows = [
        row("e1"),
        row("e2", type="charged", occurred_at=later, details='{"offences": ["burglary"]}'),
        row("e3", type="charged", details="{}"),  # no offences
        row("e4", reference="4309999/26"),  # another agency's case
        row("e5", reference="not a reference"),
        row("e6", occurred_at="2026-01-01T10:00:00"),  # no time zone
        row("e7", type="arrested_again"),
        row("e8", details="[1, 2]"),
        row("", type="suspect_interviewed"),  # no external id
        row("e9", type="suspect_interviewed", note="Interviewed under caution."),
        row(
            "e10",
            type="officer_changed",
            details=json.dumps({"officer_name": "DC Lee", "officer_contact": "07700 900456"}),
        ),
    ]
    result = run(cases, rows)
    assert (result.rows, result.imported, result.replayed, result.failed) == (11, 3, 0, 8)
    problems = {(e.row, e.field) for e in result.errors}
    assert problems == {
        (3, "details.offences"),
        (4, "reference"),
        (5, "reference"),
        (6, "occurred_at"),
        (7, "type"),
        (8, "details"),
        (9, "external_id"),
        (11, "details.officer_contact"),
    }
    messages = {e.row: e.message for e in result.errors}
    assert "Known types" in messages[7] and "time zone" in messages[6]
    assert all(e.external_id == f"e{e.row}" for e in result.errors if e.row < 9)

    assert stage(cases) == "charge"
    assert count(cases, CaseEvent) == 3
    # Each imported event that notifies queued one notification for the one victim.
    assert count(cases, Notification, Notification.kind == "charged") == 1
    assert count(cases, Notification, Notification.kind == "suspect_arrested") == 1


def test_a_second_run_imports_nothing_new(cases: CaseDb) -> None:
    rows = [row(f"e{n}", occurred_at=(WHEN + timedelta(minutes=n)).isoformat()) for n in range(5)]
    first = run(cases, rows)
    assert (first.imported, first.replayed, first.failed) == (5, 0, 0)
    again = run(cases, [*rows, row("e5")])
    assert (again.imported, again.replayed, again.failed) == (1, 5, 0)
    changed = run(cases, [row("e1", type="suspect_interviewed")])
    assert (changed.imported, changed.failed) == (0, 1)
    assert changed.errors[0].field == "external_id"
    assert "already used" in changed.errors[0].message
    assert count(cases, CaseEvent) == 6
    assert count(cases, Notification) == 6


def test_a_dry_run_checks_everything_and_writes_nothing(
    cases: CaseDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(importer, "BATCH", 2)  # repeats across batches are judged too
    rows = [
        row("e1"),
        row("e2", type="charged", details='{"offences": ["theft"]}'),
        row("e3", type="charged", details="{}"),
        row("e1"),  # the same again: a replay
        row("e2", type="charged", details='{"offences": ["fraud"]}'),  # a conflict
    ]
    result = run(cases, rows, dry_run=True)
    assert result.dry_run
    assert (result.imported, result.replayed, result.failed) == (2, 1, 2)
    assert {(e.row, e.field) for e in result.errors} == {
        (3, "details.offences"),
        (5, "external_id"),
    }
    assert count(cases, CaseEvent) == 0
    assert count(cases, Notification) == 0
    assert stage(cases) == "investigation"
    # The real run agrees with the dry run.
    real = run(cases, rows)
    assert (real.imported, real.replayed, real.failed) == (2, 1, 2)


def test_a_batch_that_races_another_writer_is_added_row_by_row(
    cases: CaseDb, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(cases, [row("e1")])
    # As if the API stored e1 between the batch's look-up and its insert: the unique key
    # refuses the batch, and row by row e1 is found and counted as a replay.
    lookups: list[set[str]] = []
    stored = events._stored

    def late(session: Session, agency: str, ids: set[str]) -> dict[str, CaseEvent]:
        lookups.append(ids)
        return {} if len(lookups) == 1 else stored(session, agency, ids)

    monkeypatch.setattr(events, "_stored", late)
    later = (WHEN + timedelta(hours=1)).isoformat()
    charged = row("e2", type="charged", occurred_at=later, details='{"offences": ["theft"]}')
    result = run(cases, [row("e1"), charged])
    assert (result.imported, result.replayed, result.failed) == (1, 1, 0)
    assert lookups == [{"e1", "e2"}, {"e1"}, {"e2"}]
    assert count(cases, CaseEvent) == 2
    assert count(cases, Notification) == 2
    assert stage(cases) == "charge"


def test_an_import_can_be_large(cases: CaseDb) -> None:
    rows = [
        row(
            f"bulk-{n}",
            type="suspect_interviewed",
            occurred_at=(WHEN + timedelta(seconds=n)).isoformat(),
        )
        for n in range(1200)
    ]
    result = run(cases, rows)
    assert (result.imported, result.failed) == (1200, 0)
    assert count(cases, CaseEvent) == 1200


# -- the command ----------------------------------------------------------------------------


@pytest.fixture
def command_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'import.db'}"
    monkeypatch.setenv("WAYMARK_DATABASE_URL", url)
    monkeypatch.setenv("WAYMARK_SECRET_KEY", "test-key")
    get_settings.cache_clear()
    db.migrate(url)
    engine = db.create_sync_engine(url)
    try:
        with Session(engine) as session:
            make_victim(session, make_case(session, "4301234/26", agency="met"))
            session.commit()
        yield url
    finally:
        engine.dispose()
        get_settings.cache_clear()


def command(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    importer.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["import-events", *argv])
    return int(args.func(args))


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_the_command_imports_a_csv_and_reports_errors(
    command_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = write_csv(
        tmp_path / "events.csv",
        [
            row("e1"),
            row("e2", type="plea_entered", details=json.dumps({"plea": "perhaps"})),
            row("e3", type="charged", details=json.dumps({"offences": ["burglary"]})),
        ],
    )
    errors = tmp_path / "errors.csv"
    assert command(str(source), "--agency", "met", "--errors", str(errors)) == 1
    captured = capsys.readouterr()
    assert "3 rows" in captured.out and "2 imported" in captured.out
    assert "1 with errors" in captured.out
    assert "row 3 (e2): details.plea" in captured.out
    assert "Importing" in captured.err  # the progress bar
    with errors.open() as handle:
        report = list(csv.DictReader(handle))
    assert [(r["row"], r["external_id"], r["field"]) for r in report] == [
        ("3", "e2", "details.plea")
    ]
    assert report[0]["message"].startswith("Input should be")

    # Again: nothing new, the two imported rows are replays.
    assert command(str(source), "--agency", "met") == 1
    assert "0 imported, 2 already imported" in capsys.readouterr().out


def test_the_command_reads_jsonl_and_a_dry_run_writes_nothing(
    command_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "events.ndjson"
    lines = [
        json.dumps(row("j1", details={}, note=None)),
        "{not json",
        json.dumps(["a list"]),
        "",
        json.dumps(
            row("j2", type="charged", details={"offences": ["burglary"]}, note="From Niche")
        ),
    ]
    source.write_text("\n".join(lines) + "\n")
    assert command(str(source), "--agency", "met", "--dry-run") == 1
    out = capsys.readouterr().out
    assert "2 imported" in out and "2 with errors" in out and "Dry run" in out
    assert "row 2: row: Not valid JSON" in out and "row 3: row: Each line" in out
    engine = db.create_sync_engine(command_db)
    try:
        with engine.connect() as conn:
            assert conn.scalar(select(func.count()).select_from(CaseEvent)) == 0
    finally:
        engine.dispose()
    assert command(str(source), "--agency", "met", "--format", "jsonl") == 1
    assert "2 imported" in capsys.readouterr().out


def test_the_command_refuses_a_file_it_cannot_read(
    command_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = write_csv(tmp_path / "wrong.csv", [{"ref": "4301234/26", "what": "charged"}])
    assert command(str(wrong), "--agency", "met") == 2
    assert "unknown: ref, what" in capsys.readouterr().err
    assert command(str(tmp_path / "events.txt"), "--agency", "met") == 2
    assert "--format" in capsys.readouterr().err
    assert command(str(tmp_path / "missing.csv"), "--agency", "met") == 2
