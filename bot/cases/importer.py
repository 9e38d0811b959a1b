"""Bulk import of case events: `python -m bot import-events FILE --agency A`.

Rows go through `bot.cases.events.add_events`, the API's write path for many events at
once, so stages move and notifications are queued exactly as for posted events.

- Files: CSV with a header row, or JSON Lines (one object a line). Columns: reference,
  type, occurred_at, external_id, details (a JSON object; in CSV a JSON string), note,
  victim_informed_at. Every row needs an external_id, so running a file twice adds
  nothing the second time (those rows count as replays).
- Speed: rows are checked before the database is touched; then one transaction per
  batch, whose cases are loaded in one query and whose events are added together by
  `add_events` (a few statements a batch, not a few a row). A bad row is reported and
  skipped without losing the rest of its batch; if the database refuses the batch (an
  event id stored by the API meanwhile), it is added again row by row.
- `--dry-run` checks everything, writes nothing (each batch is rolled back).
- Errors: one line per problem (row, external id, field, message) as CSV at
  `--errors`, and a summary on stdout. Exit code 0: every row imported or already
  there; 1: some rows failed; 2: the file could not be read.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tqdm import tqdm

from actions.references import normalise_reference
from bot.cases.events import Added, EventConflict, NewEvent, add_events, as_utc, check_time
from bot.cases.models import Case
from bot.cases.vocabulary import event_type, validate_details
from bot.config import Settings

BATCH = 500
COLUMNS = (
    "reference",
    "type",
    "occurred_at",
    "external_id",
    "details",
    "note",
    "victim_informed_at",
)
REQUIRED = ("reference", "type", "occurred_at", "external_id")
SHOWN_ERRORS = 20  # on stdout; the --errors file has all of them


@dataclass(frozen=True)
class RowError:
    row: int  # the line in the file (a CSV header is line 1), or the position in `rows`
    external_id: str | None
    field: str
    message: str


@dataclass
class ImportResult:
    rows: int = 0
    imported: int = 0
    replayed: int = 0  # already imported: the same external id and the same event
    failed: int = 0  # rows with at least one error
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


class UnreadableRow(dict[str, Any]):
    """A line that isn't a row at all (bad JSON): reported, never imported."""

    def __init__(self, problem: str) -> None:
        super().__init__()
        self.problem = problem


class ImportRow(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True, coerce_numbers_to_str=True)

    reference: str = Field(min_length=1, max_length=64)
    type: str
    occurred_at: datetime
    external_id: str = Field(min_length=1, max_length=128)
    details: dict[str, Any] = Field(default_factory=dict)
    note: str | None = Field(None, max_length=1000)
    victim_informed_at: datetime | None = None

    @model_validator(mode="before")
    @classmethod
    def _blanks(cls, data: Any) -> Any:
        # An empty CSV cell means "not given".
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if v is not None and v != ""}
        return data

    @field_validator("type")
    @classmethod
    def _known(cls, value: str) -> str:
        event_type(value)
        return value

    @field_validator("details", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError('details must be a JSON object, e.g. {"plea": "guilty"}') from None
        if not isinstance(value, dict):
            raise ValueError('details must be a JSON object, e.g. {"plea": "guilty"}')
        return value

    @field_validator("occurred_at", "victim_informed_at")
    @classmethod
    def _when(cls, value: datetime | None, info: Any) -> datetime | None:
        if value is None:
            return None
        return check_time(value, datetime.now(UTC), info.field_name)


@dataclass(frozen=True)
class _Checked:
    row: int
    data: ImportRow
    reference: str
    details: dict[str, Any]  # normalised, as stored


def _check(
    number: int, raw: dict[str, Any], settings: Settings
) -> tuple[_Checked | None, list[RowError]]:
    """Everything that can be checked without the database."""
    external_id = raw.get("external_id") or None
    external_id = str(external_id) if external_id is not None else None
    if isinstance(raw, UnreadableRow):
        return None, [RowError(number, None, "row", raw.problem)]
    try:
        data = ImportRow.model_validate(raw)
    except ValidationError as error:
        return None, [_error(number, external_id, item) for item in error.errors()]
    reference = normalise_reference(
        data.reference, settings.crime_reference_pattern, settings.crime_reference_format
    )
    if reference is None:
        return None, [
            RowError(
                number, external_id, "reference", "Not a crime reference in the expected format."
            )
        ]
    try:
        details = validate_details(data.type, data.details)
    except ValidationError as error:
        return None, [_error(number, external_id, item, "details") for item in error.errors()]
    if data.victim_informed_at is not None and data.victim_informed_at < data.occurred_at:
        return None, [
            RowError(number, external_id, "victim_informed_at", "It is before occurred_at.")
        ]
    return _Checked(number, data, reference, details), []


def _error(number: int, external_id: str | None, item: Any, prefix: str = "") -> RowError:
    where = ".".join(str(part) for part in item["loc"])
    name = ".".join(part for part in (prefix, where) if part) or "row"
    message = str(item["msg"]).removeprefix("Value error, ")
    return RowError(number, external_id, name, message)


def import_events(
    session_factory: Callable[[], Session],
    rows: Iterable[dict[str, Any]],
    agency: str,
    *,
    dry_run: bool,
    settings: Settings,
    progress: tqdm | None = None,
) -> ImportResult:
    """Import `rows` (dicts with the columns above) as `agency`'s events; rows are
    numbered from 1. See `import_numbered` for rows with their own numbers."""
    return import_numbered(
        session_factory,
        enumerate(rows, 1),
        agency,
        dry_run=dry_run,
        settings=settings,
        progress=progress,
    )


def import_numbered(
    session_factory: Callable[[], Session],
    rows: Iterable[tuple[int, dict[str, Any]]],
    agency: str,
    *,
    dry_run: bool,
    settings: Settings,
    progress: tqdm | None = None,
) -> ImportResult:
    started = time.perf_counter()
    result = ImportResult(dry_run=dry_run)
    # A dry run rolls each batch back, so a repeat of an id from an earlier batch is
    # judged from what that row would have stored.
    seen: dict[str, tuple[Any, ...]] = {}
    iterator = iter(rows)
    while batch := list(islice(iterator, BATCH)):
        _import_batch(session_factory, batch, agency, settings, result, seen if dry_run else None)
        if progress is not None:
            progress.update(len(batch))
    result.seconds = time.perf_counter() - started
    return result


def _import_batch(
    session_factory: Callable[[], Session],
    batch: list[tuple[int, dict[str, Any]]],
    agency: str,
    settings: Settings,
    result: ImportResult,
    seen: dict[str, tuple[Any, ...]] | None,
) -> None:
    result.rows += len(batch)
    checked: list[_Checked] = []
    for number, raw in batch:
        row, errors = _check(number, raw, settings)
        if row is None:
            _fail(result, errors)
        else:
            checked.append(row)
    if not checked:
        return
    with session_factory() as session:
        cases = {
            case.reference: case
            for case in session.scalars(
                select(Case).where(
                    Case.agency == agency, Case.reference.in_({r.reference for r in checked})
                )
            )
        }
        # What to do with each row: add it, refuse it, or (dry run) judge it against
        # what an earlier, rolled-back batch would have stored.
        plan: list[NewEvent | _Refused | tuple[Any, ...]] = []
        for row in checked:
            case = cases.get(row.reference)
            if case is None:
                message = f"No case with this reference for agency {agency}."
                plan.append(_Refused("reference", message))
            elif seen is not None and row.data.external_id in seen:
                plan.append(seen[row.data.external_id])
            else:
                data = row.data
                plan.append(
                    NewEvent(
                        case,
                        data.type,
                        data.occurred_at,
                        data.external_id,
                        data.details,
                        data.note,
                        data.victim_informed_at,
                    )
                )
        outcomes = iter(_add_all(session, [p for p in plan if isinstance(p, NewEvent)], agency))
        for row, step in zip(checked, plan, strict=True):
            if isinstance(step, NewEvent):
                if _tally(result, row, next(outcomes)) and seen is not None:
                    seen[row.data.external_id] = _fingerprint(row, step.case)
            elif isinstance(step, _Refused):
                _fail(result, [RowError(row.row, row.data.external_id, step.field, str(step))])
            else:
                _judge_repeat(result, row, cases[row.reference], step)
        if seen is None:
            session.commit()
        else:
            session.rollback()


class _Refused(Exception):
    """A row the importer itself turns down."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _add_all(session: Session, items: list[NewEvent], agency: str) -> list[Added | Exception]:
    """The batch's events in one go. If the database refuses them (an event id stored
    by someone else, the API, since it was looked up), row by row instead, so that
    only the rows that raced are judged again."""
    if not items:
        return []
    try:
        with session.begin_nested():
            return add_events(session, items, agency=agency)
    except IntegrityError:
        return [_add_one(session, item, agency) for item in items]


def _add_one(session: Session, item: NewEvent, agency: str) -> Added | Exception:
    for _attempt in range(2):
        try:
            with session.begin_nested():
                return add_events(session, [item], agency=agency)[0]
        except IntegrityError:
            continue  # stored by someone else meanwhile: look again
    return _Refused("external_id", "Stored elsewhere at the same time; run the import again.")


def _tally(result: ImportResult, row: _Checked, outcome: Added | Exception) -> bool:
    """Count one row's outcome; False (and the error noted) if it was refused."""
    data = row.data
    if isinstance(outcome, Added):
        if outcome.created:
            result.imported += 1
        else:
            result.replayed += 1
        return True
    if isinstance(outcome, _Refused):
        _fail(result, [RowError(row.row, data.external_id, outcome.field, str(outcome))])
    elif isinstance(outcome, EventConflict):
        _fail(result, [RowError(row.row, data.external_id, "external_id", str(outcome))])
    elif isinstance(outcome, ValidationError):  # before ValueError: it is one
        _fail(result, [_error(row.row, data.external_id, e, "details") for e in outcome.errors()])
    else:
        _fail(result, [RowError(row.row, data.external_id, "row", str(outcome))])
    return False


def _fingerprint(row: _Checked, case: Case) -> tuple[Any, ...]:
    # What add_events compares to tell a replay from a conflict.
    return (case.id, row.data.type, as_utc(row.data.occurred_at), row.details)


def _judge_repeat(result: ImportResult, row: _Checked, case: Case, stored: tuple[Any, ...]) -> None:
    if stored == _fingerprint(row, case):
        result.replayed += 1
    else:
        message = f"Event id {row.data.external_id!r} was already used for a different event."
        _fail(result, [RowError(row.row, row.data.external_id, "external_id", message)])


def _fail(result: ImportResult, errors: list[RowError]) -> None:
    result.failed += 1
    result.errors.extend(errors)


# -- files ----------------------------------------------------------------------------------


class FileProblem(Exception):
    """The file can't be imported at all (format, header)."""


def file_format(path: Path, given: str | None) -> str:
    if given:
        return given
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    raise FileProblem(f"Can't tell the format of {path.name}: give --format csv or jsonl.")


def read_rows(path: Path, fmt: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, row) for each row; bad JSON lines come as UnreadableRow."""
    if fmt == "csv":
        yield from _csv_rows(path)
    else:
        yield from _jsonl_rows(path)


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        unknown = [name for name in header if name not in COLUMNS]
        missing = [name for name in REQUIRED if name not in header]
        if unknown or missing:
            raise FileProblem(
                "The header must name the columns "
                + ", ".join(COLUMNS)
                + (f"; unknown: {', '.join(unknown)}" if unknown else "")
                + (f"; missing: {', '.join(missing)}" if missing else "")
            )
        reader.fieldnames = header
        line = reader.line_num + 1
        for record in reader:
            if None in record:
                yield line, UnreadableRow("This row has more cells than the header.")
            else:
                yield line, record
            line = reader.line_num + 1


def _jsonl_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, text in enumerate(handle, 1):
            if not text.strip():
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as error:
                yield number, UnreadableRow(f"Not valid JSON: {error.msg}.")
                continue
            if isinstance(value, dict):
                yield number, value
            else:
                yield number, UnreadableRow("Each line must be a JSON object.")


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def write_errors(path: Path, errors: Iterable[RowError]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["row", "external_id", "field", "message"])
        for error in errors:
            writer.writerow([error.row, error.external_id or "", error.field, error.message])


def summary(result: ImportResult, errors_path: Path | None) -> str:
    lines = [
        f"{result.rows} rows in {result.seconds:.1f} s ({result.rate:.0f} rows/s):"
        f" {result.imported} imported, {result.replayed} already imported,"
        f" {result.failed} with errors."
    ]
    if result.dry_run:
        lines.append("Dry run: nothing was written.")
    for error in result.errors[:SHOWN_ERRORS]:
        who = f" ({error.external_id})" if error.external_id else ""
        lines.append(f"  row {error.row}{who}: {error.field}: {error.message}")
    more = len(result.errors) - SHOWN_ERRORS
    if more > 0:
        where = f"all of them in {errors_path}" if errors_path else "use --errors FILE for all"
        lines.append(f"  ... and {more} more ({where}).")
    return "\n".join(lines)


# -- command --------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add `import-events` to the app's command line."""
    parser = sub.add_parser("import-events", help="import case events from a CSV or JSONL file")
    parser.add_argument("file", type=Path, help="the file (.csv, or .jsonl with one event a line)")
    parser.add_argument("--format", choices=("csv", "jsonl"), help="default: from the extension")
    parser.add_argument("--agency", required=True, help="the agency the events come from")
    parser.add_argument("--dry-run", action="store_true", help="check everything, write nothing")
    parser.add_argument("--errors", type=Path, help="write every problem to this CSV file")
    parser.set_defaults(func=main_import)


def main_import(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import sessionmaker

    from bot import db
    from bot.config import get_settings

    settings = get_settings()
    try:
        fmt = file_format(args.file, args.format)
        total = max(count_lines(args.file) - (fmt == "csv"), 0)
        db.migrate(settings.database_url)
        engine = db.create_sync_engine(settings.database_url)
        try:
            with tqdm(total=total, unit="row", file=sys.stderr, desc="Importing") as bar:
                result = import_numbered(
                    sessionmaker(engine, expire_on_commit=False),
                    read_rows(args.file, fmt),
                    args.agency,
                    dry_run=args.dry_run,
                    settings=settings,
                    progress=bar,
                )
        finally:
            engine.dispose()
    except (FileProblem, OSError, UnicodeDecodeError, csv.Error) as error:
        print(f"Could not import {args.file}: {error}", file=sys.stderr)
        return 2
    if args.errors:
        write_errors(args.errors, result.errors)
    print(summary(result, args.errors))
    return 1 if result.failed else 0
