"""``callgate crm status|retry``: look at and nudge the CRM outbox.

Reads ``DATABASE_URL`` through the normal settings. A bad URL or an unreachable database is
one line on stderr and exit code 2, like every other user error of the CLI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callgate.cli.common import fail
from callgate.config import ConfigError, load_settings
from callgate.storage.db import DatabaseUrlError, check_url, make_engine, make_sessionmaker
from callgate.storage.outbox import OutboxStatus, outbox_status, retry_now

T = TypeVar("T")

crm_app = typer.Typer(
    name="crm",
    help="Inspect and retry deliveries of finished calls to the CRM.",
    no_args_is_help=True,
    add_completion=False,
)


def _database_url() -> str:
    try:
        url = load_settings().database_url
        check_url(url)
    except (ConfigError, DatabaseUrlError) as exc:
        fail(f"database: {exc}")
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database
        if not path or path == ":memory:" or not Path(path).is_file():
            fail(f"database: no SQLite file at {path!r} (DATABASE_URL)")
    return url


def _run(action: Callable[[async_sessionmaker[AsyncSession]], Awaitable[T]]) -> T:
    """Run ``action`` against the configured database; connection trouble is a user error."""
    url = _database_url()

    async def go() -> T:
        engine = make_engine(url)
        try:
            return await action(make_sessionmaker(engine))
        finally:
            await engine.dispose()

    shown = make_url(url).render_as_string(hide_password=True)
    try:
        return asyncio.run(go())
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        fail(f"database {shown} is unreachable or not migrated: {reason}")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


@crm_app.command("status")
def status() -> None:
    """Outbox counts, the oldest undelivered call and the latest delivery errors."""
    result: OutboxStatus = _run(outbox_status)
    console = Console(highlight=False)
    counts = Table(title="CRM outbox")
    for column in ("pending", "due now", "delivered", "parked", "oldest pending"):
        counts.add_column(column, justify="right")
    counts.add_row(
        str(result.pending),
        str(result.due_now),
        str(result.delivered),
        str(result.parked),
        _age(result.oldest_pending_age_s),
    )
    console.print(counts)
    if result.last_errors:
        errors = Table(title="Last errors")
        for column in ("call", "attempts", "state", "at", "error"):
            errors.add_column(column)
        for e in result.last_errors:
            at = e.at.strftime("%Y-%m-%d %H:%M:%S") if e.at else "-"
            state = "parked" if e.parked else "retrying"
            errors.add_row(e.call_sid, str(e.attempts), state, at, e.error)
        console.print(errors)


@crm_app.command("retry")
def retry(
    call_sid: Annotated[
        str | None, typer.Argument(help="Call SID whose delivery to retry now.")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Retry every undelivered call.")] = False,
) -> None:
    """Make parked or waiting deliveries due now, with a fresh attempt budget."""
    if (call_sid is None) == (not all_):
        fail("give either a CALL_SID or --all")
    count = _run(lambda sessions: retry_now(sessions, None if all_ else call_sid))
    if call_sid is not None and count == 0:
        fail(f"no undelivered outbox row for call {call_sid}")
    typer.echo(f"{count} row{'s' if count != 1 else ''} due now")
