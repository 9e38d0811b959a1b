"""The gateway's database: engine, sessions and migrations.

SQLite file by default, PostgreSQL through DATABASE_URL. The schema changes only
through Alembic (bot/alembic/), run at start-up.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, event
from sqlalchemy import create_engine as create_sync_engine_
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

ALEMBIC_DIR = Path(__file__).resolve().parent / "alembic"


def sync_url(url: str) -> URL:
    """The URL for synchronous use (Alembic): sqlite, or PostgreSQL through psycopg 3."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    raise ValueError(
        f"Unsupported database {parsed.get_backend_name()!r}: use SQLite or PostgreSQL"
    )


def async_url(url: str) -> URL:
    parsed = sync_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    return parsed  # psycopg 3 is both sync and async


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets readers go on while one writer commits; wait rather than fail on a lock.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_engine(url: str) -> AsyncEngine:
    target = async_url(url)
    if target.get_backend_name() == "sqlite":
        if target.database:
            Path(target.database).parent.mkdir(parents=True, exist_ok=True)
        # SQLite has one writer at a time, and a writer that finds the file locked
        # sleeps in growing steps. One shared connection makes writers queue in order
        # instead, which keeps webhook acknowledgements fast under load.
        engine = create_async_engine(target, pool_size=1, max_overflow=0, pool_timeout=60)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(target, pool_pre_ping=True)


def _sqlite_manual_begin(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    dbapi_connection.isolation_level = None


def create_sync_engine(url: str) -> Engine:
    """A blocking engine, for commands (bulk import, demo data, reports) and scripts."""
    target = sync_url(url)
    if target.get_backend_name() == "sqlite":
        if target.database:
            Path(target.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_sync_engine_(target)
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite begins transactions lazily, so a SAVEPOINT first thing would commit on
        # release. Let SQLAlchemy emit BEGIN itself (the recipe in SQLAlchemy's SQLite docs).
        # IMMEDIATE takes the write lock at the start: in WAL mode a transaction that reads
        # and then writes fails at once ("database is locked", no busy wait) if the
        # gateway committed in between; taking the lock first makes it wait its turn.
        event.listen(engine, "connect", _sqlite_manual_begin)
        event.listen(engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
        return engine
    return create_sync_engine_(target, pool_pre_ping=True)


def sessionmaker(engine: AsyncEngine) -> async_sessionmaker:
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    # Alembic's config is ConfigParser-based: % must be doubled.
    config.set_main_option(
        "sqlalchemy.url", sync_url(url).render_as_string(hide_password=False).replace("%", "%%")
    )
    return config


def migrate(url: str) -> None:
    """Bring the schema up to date (blocking; call from a thread in async code)."""
    target = sync_url(url)
    if target.get_backend_name() == "sqlite" and target.database:
        Path(target.database).parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(url), "head")
