"""Engines, sessions and migrations from one database URL.

``callgate`` migrates its own database at start-up (``await migrate(engine)``): the Alembic
scripts ship inside the package and the Alembic configuration is built in code, so neither
the repository nor an ``alembic.ini`` is needed at run time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseUrlError(ValueError):
    """The database URL is malformed or names an unsupported driver."""


def check_url(url: str) -> str:
    """Validate an async SQLAlchemy URL early, with a message a user can act on."""
    try:
        parsed = make_url(url)
    except Exception as exc:
        raise DatabaseUrlError(f"malformed database URL {url!r}") from exc
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise DatabaseUrlError(
            f"unsupported database driver {parsed.drivername!r}: use "
            "sqlite+aiosqlite:///path.db or postgresql+asyncpg://user@host/db"
        )
    return url


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; on SQLite, foreign keys on, WAL, and a generous busy timeout.

    WAL lets the API read while the bridge writes; ``synchronous=NORMAL`` keeps each commit
    cheap (a commit survives a process crash; only an OS crash can lose the last ones).
    """
    check_url(url)
    if make_url(url).get_backend_name() != "sqlite":
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, **kwargs)
    kwargs.setdefault("connect_args", {"timeout": 30})
    engine = create_async_engine(url, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return engine


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit (we hand out plain copies anyway)."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config pointing at the packaged scripts (no alembic.ini needed)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _upgrade(connection: Connection, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def migrate(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (idempotent: a current database is left alone)."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, revision)
