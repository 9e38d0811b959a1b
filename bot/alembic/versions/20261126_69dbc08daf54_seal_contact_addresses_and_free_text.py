"""seal contact addresses and free text at rest

Revision ID: 69dbc08daf54
Revises: 8c6a4f7bc47f
Create Date: 2026-11-26 17:40:00.000000

Widens the sealed columns (a JSON column becomes Text: it holds a sealed string) and
seals every value already there, in place, with the first data key (bot.privacy.crypto,
docs/privacy.md). Downgrade opens them again: it needs every key that sealed them.
"""

import json
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import context, op

from bot.privacy import crypto

# revision identifiers, used by Alembic.
revision: str = "69dbc08daf54"
down_revision: str | Sequence[str] | None = "8c6a4f7bc47f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LOOKUP, TEXT, JSON = "lookup", "text", "json"
# table -> (column, how it is sealed, its type before, nullable). Written out here, not
# read from the models: a migration must keep doing what it did when it was written.
COLUMNS: dict[str, list[tuple[str, str, sa.types.TypeEngine[Any], bool]]] = {
    "contacts": [("address", LOOKUP, sa.String(128), False)],
    "victim_contacts": [("address", LOOKUP, sa.String(128), False)],
    "victims": [("advocate_phone", TEXT, sa.String(32), True)],
    "conversations": [("referral_offer", JSON, sa.JSON(), True)],
    "inbound_messages": [("text", TEXT, sa.Text(), True)],
    "outbound_messages": [("text", TEXT, sa.Text(), False)],
    "feedback": [("comment", TEXT, sa.Text(), True)],
    "handoff_events": [("text", TEXT, sa.Text(), True)],
    "referral_events": [("note", TEXT, sa.String(200), True)],
    "needs_assessments": [("answers", JSON, sa.JSON(), False)],
    "referrals": [("needs", JSON, sa.JSON(), False), ("contact", JSON, sa.JSON(), False)],
}
SEALED_TYPE = {LOOKUP: sa.String(crypto.LOOKUP_LENGTH), TEXT: sa.Text(), JSON: sa.Text()}
BATCH = 1000


def _keyring() -> crypto.Keyring:
    # Tests (and the gateway) may pass their keys; otherwise the process's.
    return context.config.attributes.get("keyring") or crypto.keyring()


def _alter(upgrading: bool) -> None:
    for table, columns in COLUMNS.items():
        # Text stays Text; the rest change type (on SQLite, batch mode copies the table).
        changes = [c for c in columns if not (c[1] == TEXT and isinstance(c[2], sa.Text))]
        if not changes:
            continue
        with op.batch_alter_table(table) as batch:
            for column, kind, before, nullable in changes:
                old, new = (before, SEALED_TYPE[kind]) if upgrading else (SEALED_TYPE[kind], before)
                using = f"{column}::{'text' if upgrading else 'json'}" if kind == JSON else None
                batch.alter_column(
                    column,
                    type_=new,
                    existing_type=old,
                    existing_nullable=nullable,
                    postgresql_using=using,
                )


def _batches(table: sa.TableClause, column: str) -> Iterator[list[sa.Row[Any]]]:
    last: int | None = None
    while True:
        query = (
            sa.select(table.c.id, table.c[column])
            .where(table.c[column].is_not(None))
            .order_by(table.c.id)
            .limit(BATCH)
        )
        if last is not None:
            query = query.where(table.c.id > last)
        rows = op.get_bind().execute(query).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _rewrite(name: str, column: str, change: Callable[[Any], str | None]) -> None:
    table = sa.table(name, sa.column("id", sa.BigInteger), sa.column(column, sa.Text))
    update = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("_id"))
        .values({column: sa.bindparam("_value")})
    )
    for rows in _batches(table, column):
        changed = [
            {"_id": row[0], "_value": new} for row in rows if (new := change(row[1])) != row[1]
        ]
        if changed:
            op.get_bind().execute(update, changed)


def _sealer(ring: crypto.Keyring, kind: str, nullable: bool) -> Callable[[Any], str | None]:
    def seal(value: Any) -> str | None:
        text = value if isinstance(value, str) else json.dumps(value)
        if crypto.is_sealed(text):  # a run that stopped half way: already done
            return text
        if kind == LOOKUP:
            return ring.seal_lookup(text)
        if kind == TEXT:
            return ring.seal(text)
        parsed = json.loads(text)
        if parsed is None and nullable:
            return None  # a JSON null: SealedJSON keeps None as SQL NULL
        return ring.seal(json.dumps(parsed, ensure_ascii=False, separators=(",", ":")))

    return seal


def _opener(ring: crypto.Keyring) -> Callable[[Any], str | None]:
    def open_(value: Any) -> str | None:
        return ring.open(value) if isinstance(value, str) and crypto.is_sealed(value) else value

    return open_


def upgrade() -> None:
    """Upgrade schema."""
    if context.is_offline_mode():
        raise RuntimeError("Sealing values needs the database: run this migration online.")
    _alter(upgrading=True)
    ring = _keyring()
    for table, columns in COLUMNS.items():
        for column, kind, _, nullable in columns:
            _rewrite(table, column, _sealer(ring, kind, nullable))


def downgrade() -> None:
    """Downgrade schema."""
    if context.is_offline_mode():
        raise RuntimeError("Opening sealed values needs the database: run this online.")
    ring = _keyring()
    for table, columns in COLUMNS.items():
        for column, _, _, _ in columns:
            _rewrite(table, column, _opener(ring))
    _alter(upgrading=False)
