"""The directory in the database: import the repo's file, correct one entry, retire one,
and the staleness report. Command line: `python -m bot services import|stale|list`.

The file `content/services/directory.yml` is the reviewed source. An import is all or
nothing: one bad field anywhere and nothing changes, with every problem listed. Entries
that came from the file and are no longer in it are retired (kept, because referrals
point at them); entries corrected through the API stay as corrected until the file
changes them.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.services import schema
from bot.services.models import DirectoryImport, ServiceRow
from bot.services.schema import DirectoryError, Service

DIRECTORY_FILE = schema.DIRECTORY_FILE
STALE_MONTHS = 6


@dataclass(frozen=True)
class Imported:
    added: int
    updated: int
    unchanged: int
    retired: int

    @property
    def total(self) -> int:
        return self.added + self.updated + self.unchanged


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def entry_json(service: Service) -> dict:
    """The entry as stored: JSON types only, so it reads back through the same model."""
    return json.loads(service.model_dump_json())


def put(session: Session, service: Service, origin: str) -> bool | None:
    """Add or replace one entry. True: added, False: changed, None: already the same."""
    entry = entry_json(service)
    row = session.get(ServiceRow, service.id)
    if row is None:
        session.add(
            ServiceRow(
                id=service.id,
                name=service.name,
                entry=entry,
                last_verified=service.last_verified,
                origin=origin,
            )
        )
        return True
    if row.entry == entry and row.active and row.origin == origin:
        return None
    row.name, row.entry, row.last_verified = service.name, entry, service.last_verified
    row.active, row.origin = True, origin
    return False


def retire(session: Session, service_id: str) -> bool:
    """Take an entry out of matching; False if there is no such active entry."""
    row = session.get(ServiceRow, service_id)
    if row is None or not row.active:
        return False
    row.active = False
    return True


def import_services(session: Session, services: list[Service]) -> Imported:
    """Load a whole directory file's entries (already validated). Does not commit."""
    counts = {True: 0, False: 0, None: 0}
    for service in services:
        counts[put(session, service, "file")] += 1
    keep = {s.id for s in services}
    retired = 0
    for row in session.scalars(
        select(ServiceRow).where(ServiceRow.origin == "file", ServiceRow.active.is_(True))
    ):
        if row.id not in keep:
            row.active = False
            retired += 1
    return Imported(counts[True], counts[False], counts[None], retired)


def import_file(
    session: Session, path: Path | None = None, *, by: str, force: bool = False
) -> Imported | None:
    """Import the directory file; None when this exact file was imported before (and
    not `force`). Raises DirectoryError (nothing written) for any bad entry."""
    path = path or DIRECTORY_FILE
    file_digest = digest(path)
    if not force and session.scalar(
        select(DirectoryImport.id).where(DirectoryImport.digest == file_digest).limit(1)
    ):
        return None
    services = schema.load_file(path)
    result = import_services(session, services)
    session.add(DirectoryImport(digest=file_digest, services=len(services), by=by))
    session.flush()
    return result


def active(session: Session) -> list[Service]:
    rows = session.scalars(select(ServiceRow).where(ServiceRow.active.is_(True)))
    return [Service.model_validate(row.entry) for row in rows]


def stale_rows(session: Session, *, today: date, months: int = STALE_MONTHS) -> list[ServiceRow]:
    """Active entries not verified in `months` months, the oldest first."""
    services = {s.id for s in schema.stale(active(session), today=today, months=months)}
    rows = session.scalars(
        select(ServiceRow)
        .where(ServiceRow.active.is_(True))
        .order_by(ServiceRow.last_verified, ServiceRow.id)
    )
    return [row for row in rows if row.id in services]


def describe(errors: DirectoryError) -> str:
    lines = [f"{len(errors.errors)} problem(s); nothing was changed:"]
    for error in errors.errors:
        where = f"{error.service}: " if error.service else ""
        lines.append(f"  {where}{error.field}: {error.message}")
    return "\n".join(lines)


# -- command --------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add `services import|stale|list` to the app's command line."""
    parser = sub.add_parser("services", help="the support services directory")
    commands = parser.add_subparsers(dest="services_command", required=True)
    load = commands.add_parser("import", help="check the directory file and load it")
    load.add_argument("file", nargs="?", type=Path, help=f"default: {DIRECTORY_FILE}")
    load.add_argument("--check", action="store_true", help="check the file, write nothing")
    stale = commands.add_parser("stale", help=f"entries not verified in {STALE_MONTHS} months")
    stale.add_argument("--months", type=int, default=STALE_MONTHS)
    commands.add_parser("list", help="every active entry")
    parser.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from sqlalchemy.orm import sessionmaker

    from bot import db
    from bot.config import get_settings

    settings = get_settings()
    path = getattr(args, "file", None) or DIRECTORY_FILE
    if args.services_command == "import" and args.check:
        try:
            services = schema.load_file(path)
        except DirectoryError as error:
            print(describe(error), file=sys.stderr)
            return 1
        except (OSError, yaml.YAMLError) as error:
            print(f"Could not read {path}: {error}", file=sys.stderr)
            return 2
        print(f"{path}: {len(services)} services, all valid.")
        return 0
    db.migrate(settings.database_url)
    engine = db.create_sync_engine(settings.database_url)
    try:
        with sessionmaker(engine)() as session, session.begin():
            return _run(session, args, path)
    finally:
        engine.dispose()


def _run(session: Session, args: argparse.Namespace, path: Path) -> int:
    if args.services_command == "import":
        try:
            result = import_file(session, path, by="command", force=True)
        except DirectoryError as error:
            print(describe(error), file=sys.stderr)
            return 1
        except (OSError, yaml.YAMLError) as error:
            print(f"Could not read {path}: {error}", file=sys.stderr)
            return 2
        assert result is not None
        print(
            f"{result.total} services: {result.added} added, {result.updated} changed,"
            f" {result.unchanged} unchanged; {result.retired} retired."
        )
        return 0
    if args.services_command == "stale":
        today = datetime.now(UTC).date()
        rows = stale_rows(session, today=today, months=args.months)
        if not rows:
            print(f"Every entry was verified in the last {args.months} months.")
            return 0
        print(f"{len(rows)} entries not verified in the last {args.months} months:")
        for row in rows:
            print(f"  {row.last_verified.isoformat()}  {row.id}  ({row.name})")
        return 1
    for row in session.scalars(
        select(ServiceRow).where(ServiceRow.active.is_(True)).order_by(ServiceRow.id)
    ):
        print(f"{row.id:45} {row.last_verified.isoformat()}  {row.origin}")
    return 0
