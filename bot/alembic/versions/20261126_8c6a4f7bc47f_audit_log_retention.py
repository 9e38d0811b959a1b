"""audit log retention: unlink and expire entries

Revision ID: 8c6a4f7bc47f
Revises: 7f5dccc77978
Create Date: 2026-11-26 17:18:30.000000

The audit log stays append-only on PostgreSQL with two narrow exceptions, both needed
by retention (bot/privacy): an update that only clears `conversation_id` and/or
`handoff_id` (a person asked us to forget them: the entry is kept, unlinked), and a
delete of an entry older than the cut-off the purge sets for its own transaction
(`SET LOCAL waymark.audit_purge_before`). Any other change is still refused.
"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "8c6a4f7bc47f"
down_revision: str | Sequence[str] | None = "7f5dccc77978"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RETENTION = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'UPDATE'
        AND NEW.id = OLD.id
        AND NEW.at = OLD.at
        AND NEW.coordinator_id IS NOT DISTINCT FROM OLD.coordinator_id
        AND NEW.actor = OLD.actor
        AND NEW.action = OLD.action
        AND NEW.case_id IS NOT DISTINCT FROM OLD.case_id
        AND NEW.detail::text IS NOT DISTINCT FROM OLD.detail::text
        AND (NEW.conversation_id IS NULL OR NEW.conversation_id = OLD.conversation_id)
        AND (NEW.handoff_id IS NULL OR NEW.handoff_id = OLD.handoff_id)
    THEN
        RETURN NEW;  -- unlinking only
    END IF;
    IF TG_OP = 'DELETE'
        AND OLD.at < NULLIF(current_setting('waymark.audit_purge_before', true), '')::timestamptz
    THEN
        RETURN OLD;  -- expired, deleted by the retention purge
    END IF;
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$ LANGUAGE plpgsql
"""

_STRICT = """
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    """Upgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_RETENTION)


def downgrade() -> None:
    """Downgrade schema."""
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_STRICT)
