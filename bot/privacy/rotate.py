"""Data keys: `python -m bot data-key new|rotate`.

`new` prints a fresh key. `rotate` re-seals every sealed column with the first key in
WAYMARK_DATA_KEYS, in batches (one transaction each), and can be run again at any time:
values already under the first key are left alone. Stop the gateway first: it finds
contacts by their sealed address, and while it runs with a new first key it would not
find the ones still under the old key (docs/privacy.md, "Encryption at rest").
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from sqlalchemy import Column, Engine, Table, bindparam, func, select, update
from sqlalchemy import column as plain_column
from sqlalchemy import table as plain_table
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import BigInteger, Text

from bot.privacy import crypto

BATCH = 500


class RotateError(RuntimeError):
    """A re-sealed address collided with a unique key (see the message)."""


@dataclass(frozen=True, slots=True)
class Rotated:
    column: str  # "table.column"
    resealed: int  # moved to the first key (or sealed, if found in clear)
    current: int  # already under the first key when the run ended


def sealed_columns() -> list[tuple[Table, Column[object]]]:
    """Every sealed column of the gateway's tables, in table order."""
    import bot.cases.models
    import bot.handoff.models
    import bot.services.models  # noqa: F401  (registers their tables)
    from bot.models import Base

    return [
        (table, column)
        for table in Base.metadata.sorted_tables
        for column in table.columns
        if isinstance(column.type, crypto.SEALED_TYPES)
    ]


def rotate(engine: Engine, ring: crypto.Keyring, *, batch: int = BATCH) -> list[Rotated]:
    """Re-seal every value not under `ring`'s first key. Idempotent."""
    return [
        _rotate_column(engine, ring, table, column, batch) for table, column in sealed_columns()
    ]


def _rotate_column(
    engine: Engine, ring: crypto.Keyring, table: Table, column: Column[object], batch: int
) -> Rotated:
    kind = crypto.kind_of(column.type)  # type: ignore[arg-type]
    prefix = ring.prefix(kind)
    # The raw strings, without the sealed type (which would open them).
    raw = plain_table(table.name, plain_column("id", BigInteger), plain_column(column.name, Text))
    value, row_id = raw.c[column.name], raw.c.id
    stale = value.is_not(None) & (func.substr(value, 1, len(prefix)) != prefix)
    write = update(raw).where(row_id == bindparam("_id")).values({column.name: bindparam("_v")})
    resealed, last = 0, None
    while True:
        query = select(row_id, value).where(stale).order_by(row_id).limit(batch)
        if last is not None:
            query = query.where(row_id > last)
        with engine.begin() as connection:
            rows = connection.execute(query).all()
            if not rows:
                break
            last = rows[-1][0]
            changes = [{"_id": r[0], "_v": ring.reseal(r[1], kind)} for r in rows]
            try:
                with connection.begin_nested():
                    connection.execute(write, changes)
            except IntegrityError:
                raise RotateError(
                    f"{table.name}.{column.name}: an address under an older key is also stored"
                    " under the newest key, and the two collide on a unique key. The gateway"
                    " ran with the new key before this rotation; merge those rows by hand"
                    " (ids between"
                    f" {rows[0][0]} and {rows[-1][0]}), then run rotate again."
                ) from None
            resealed += len(changes)
    with engine.connect() as connection:
        current = connection.scalar(
            select(func.count()).select_from(raw).where(value.is_not(None), ~stale)
        )
    return Rotated(f"{table.name}.{column.name}", resealed, int(current or 0))


# -- commands -------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add `data-key new|rotate` to the app's command line."""
    parser = sub.add_parser("data-key", help="make a data key, or re-seal data with the first")
    actions = parser.add_subparsers(dest="data_key_command", required=True)
    actions.add_parser("new", help="print a new data key").set_defaults(func=main_new)
    rotating = actions.add_parser(
        "rotate", help="re-seal everything with the first key (stop the gateway first)"
    )
    rotating.add_argument("--batch", type=int, default=BATCH, help="rows per transaction")
    rotating.set_defaults(func=main_rotate)


def main_new(args: argparse.Namespace) -> int:
    print(crypto.new_key())
    print(
        "Put it first in WAYMARK_DATA_KEYS (keep the old keys after it), stop the gateway,"
        " run `python -m bot data-key rotate`, then start the gateway.",
        file=sys.stderr,
    )
    return 0


def main_rotate(args: argparse.Namespace) -> int:
    from bot import db
    from bot.config import get_settings

    settings = get_settings()
    try:
        ring = crypto.use(settings.data_keys)
    except crypto.DataKeyError as error:
        print(error, file=sys.stderr)
        return 2
    db.migrate(settings.database_url)  # seals anything still in clear from before
    engine = db.create_sync_engine(settings.database_url)
    crypto.bind(engine, ring)
    try:
        results = rotate(engine, ring, batch=max(1, args.batch))
    except (RotateError, crypto.SealError) as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    for result in results:
        print(f"{result.column:<34} {result.resealed:>9} re-sealed {result.current:>9} current")
    print(f"Every sealed value now uses key {ring.primary.kid}.", end=" ")
    if len(ring.keys) > 1:
        print("The other keys can leave WAYMARK_DATA_KEYS once no backup that needs them is kept.")
    else:
        print()
    return 0
