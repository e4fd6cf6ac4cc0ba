"""Alembic environment for callgate's call store.

At run time ``callgate.storage.db.migrate`` passes an open connection in
``config.attributes["connection"]`` (async engines run this through ``run_sync``). Without
one (e.g. ``alembic revision --autogenerate`` with ``sqlalchemy.url`` set), an async engine
is created from the URL.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import Connection

from callgate.storage.db import make_engine
from callgate.storage.models import Base

target_metadata = Base.metadata


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_from_url(url: str) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def main() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("no connection and no sqlalchemy.url given to the migrations")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_from_url(url))


main()
