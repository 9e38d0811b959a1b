"""Agency API keys: `python -m bot agency-key create|revoke|list`.

A key is shown once, when it is made; only its SHA-256 digest is stored, so a lost key
is revoked and replaced, never recovered. Scopes limit what a key can do:

- cases:write   create and update cases and victims, reset a victim's secret
- events:write  post case events
- cases:read    read a case's status
- reports:read  the service-wide compliance report
- directory:read   read the support services directory and its staleness report
- directory:write  add, correct and retire directory entries
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cases.credentials import api_key_digest, new_api_key
from bot.cases.models import AgencyKey

SCOPES = (
    "cases:write",
    "events:write",
    "cases:read",
    "reports:read",
    "directory:read",
    "directory:write",
)


def create_key(session: Session, agency: str, name: str, scopes: Iterable[str]) -> str:
    """A new key for `agency`; returns the key itself (the only time it exists).

    Raises ValueError for an empty agency or name, or an unknown scope. Does not commit.
    """
    agency, name = agency.strip(), name.strip()
    wanted = list(dict.fromkeys(scopes))  # unique, in the order given
    if not agency or len(agency) > 64:
        raise ValueError("The agency must be 1 to 64 characters.")
    if not name or len(name) > 120:
        raise ValueError("The key's name must be 1 to 120 characters.")
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown or not wanted:
        raise ValueError(f"Scopes must be some of: {', '.join(SCOPES)}.")
    key = new_api_key()
    session.add(
        AgencyKey(
            agency=agency,
            name=name,
            digest=api_key_digest(key),
            scopes=wanted,
            created_at=datetime.now(UTC),
        )
    )
    session.flush()
    return key


def revoke_key(session: Session, key_id: int) -> AgencyKey | None:
    """Revoke a key at once (idempotent); None if there is no such key. Does not commit."""
    key = session.get(AgencyKey, key_id)
    if key is not None and key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
    return key


def list_keys(session: Session) -> list[AgencyKey]:
    return list(session.scalars(select(AgencyKey).order_by(AgencyKey.agency, AgencyKey.id)))


# -- commands -------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add `agency-key create|revoke|list` to the app's command line."""
    parser = sub.add_parser("agency-key", help="create, revoke or list agency API keys")
    actions = parser.add_subparsers(dest="key_command", required=True)
    create = actions.add_parser("create", help="make a key (shown once)")
    create.add_argument("--agency", required=True, help="the agency, e.g. met")
    create.add_argument("--name", required=True, help="what the key is for, e.g. 'Niche feed'")
    create.add_argument(
        "--scope",
        dest="scopes",
        action="append",
        required=True,
        choices=SCOPES,
        help="repeat for each scope",
    )
    create.set_defaults(func=main_create)
    revoke = actions.add_parser("revoke", help="revoke a key at once")
    revoke.add_argument("--id", dest="key_id", type=int, required=True, help="the key's id")
    revoke.set_defaults(func=main_revoke)
    listing = actions.add_parser("list", help="list keys (never the keys themselves)")
    listing.set_defaults(func=main_list)


def _session() -> Session:
    from bot import db
    from bot.config import get_settings

    url = get_settings().database_url
    db.migrate(url)
    return Session(db.create_sync_engine(url), expire_on_commit=False)


def main_create(args: argparse.Namespace) -> int:
    with _session() as session:
        try:
            key = create_key(session, args.agency, args.name, args.scopes)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
        session.commit()
        row = session.scalar(select(AgencyKey).where(AgencyKey.digest == api_key_digest(key)))
        assert row is not None
        print(f"Key {row.id} for {row.agency} ({row.name}): {', '.join(row.scopes)}")
        print(key)
        print("Copy it now: it is not stored, so it can't be shown again.")
    session.get_bind().dispose()
    return 0


def main_revoke(args: argparse.Namespace) -> int:
    with _session() as session:
        key = revoke_key(session, args.key_id)
        session.commit()
    session.get_bind().dispose()
    if key is None:
        print(f"No key with id {args.key_id}.")
        return 1
    print(f"Key {key.id} ({key.agency}, {key.name}) is revoked.")
    return 0


def main_list(args: argparse.Namespace) -> int:
    with _session() as session:
        keys = list_keys(session)
    session.get_bind().dispose()
    if not keys:
        print("No keys yet: make one with `agency-key create`.")
    for key in keys:
        revoked = f"revoked {key.revoked_at:%Y-%m-%d}" if key.revoked_at else "active"
        print(
            f"{key.id:>4}  {key.agency:<12} {key.name:<30} {','.join(key.scopes):<45}"
            f" created {key.created_at:%Y-%m-%d}  {revoked}"
        )
    return 0
