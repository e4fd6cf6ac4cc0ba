"""The call store on SQLite and (when CALLGATE_TEST_POSTGRES_URL is set) PostgreSQL.

Each test gets an empty database: a temp SQLite file, or a fresh PostgreSQL database created
next to the one in CALLGATE_TEST_POSTGRES_URL (so xdist workers never share tables).
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.engine import make_url

from callgate.storage.db import make_engine, make_sessionmaker, migrate
from callgate.storage.models import Base, Outbox
from callgate.storage.repository import CallRepository, CallStats, NewTurn, UnknownCallError
from callgate.storage.store_process import StoreProcess
from callgate.storage.writers import InlineStore, StoreWriteError

POSTGRES_ENV = "CALLGATE_TEST_POSTGRES_URL"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=pytest.mark.skipif(
            not os.environ.get(POSTGRES_ENV),
            reason=f"{POSTGRES_ENV} is not set (scripts/postgres.sh prints one; CI sets it)",
        ),
    ),
]
TABLES = {"calls", "turns", "fields", "events", "outbox", "alembic_version"}


@contextmanager
def temp_database(backend: str, tmp_path: Path) -> Iterator[str]:
    """An empty database URL for one test; dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'calls.db'}"
        return
    base = make_url(os.environ[POSTGRES_ENV])
    name = f"callgate_t_{uuid.uuid4().hex[:12]}"
    admin_url = base.render_as_string(hide_password=False)
    asyncio.run(_pg_admin(admin_url, f"CREATE DATABASE {name}"))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_pg_admin(admin_url, f"DROP DATABASE {name} WITH (FORCE)"))


async def _pg_admin(url: str, statement: str) -> None:
    engine = make_engine(url, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temp_database(str(request.param), tmp_path) as url:
        yield url


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _migrated_repo(url: str) -> tuple[Any, CallRepository]:
    engine = make_engine(url)
    await migrate(engine)
    return engine, CallRepository(make_sessionmaker(engine))


def test_upgrade_creates_all_tables_and_matches_models(db_url: str) -> None:
    def diffs(conn: Connection) -> list[Any]:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))

    async def scenario() -> tuple[set[str], list[Any]]:
        engine = make_engine(db_url)
        try:
            await migrate(engine)
            await migrate(engine)  # idempotent
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
                return tables, await conn.run_sync(diffs)
        finally:
            await engine.dispose()

    tables, differences = run(scenario())
    assert tables == TABLES
    assert differences == []


def test_call_written_turn_by_turn_survives_a_crash(db_url: str) -> None:
    async def write() -> None:
        engine, repo = await _migrated_repo(db_url)
        await repo.start_call("CA1", stream_sid="MZ1", from_number="+15551230000")
        await repo.add_turn("CA1", "agent", "Hello, how can I help?", start_ms=0, end_ms=1500)
        await repo.add_turn("CA1", "caller", "My boiler is broken.", start_ms=2000)
        await repo.set_field("CA1", "reason", "boiler")
        await repo.add_event("CA1", "barge_in", 1800, {"cut_at_ms": 1400})
        await repo.update_stats("CA1", CallStats(frames_in=100, frames_sent=40))
        await engine.dispose()  # "crash": no finish_call

    async def read() -> Any:
        engine, repo = await _migrated_repo(db_url)
        try:
            return await repo.get_call("CA1"), await repo.list_calls()
        finally:
            await engine.dispose()

    run(write())
    record, listed = run(read())
    assert record is not None
    assert record.call.status == "live"
    assert record.call.started_at.tzinfo is not None
    assert [(t.seq, t.speaker) for t in record.turns] == [(0, "agent"), (1, "caller")]
    assert record.fields[0].value == "boiler"
    assert record.events[0].detail == {"cut_at_ms": 1400}
    assert record.call.stats.frames_sent == 40
    assert [c.call_sid for c in listed] == ["CA1"]


def test_finish_call_writes_exactly_one_outbox_row(db_url: str) -> None:
    async def scenario() -> Any:
        engine, repo = await _migrated_repo(db_url)
        try:
            await repo.start_call("CA2")
            await repo.start_call("CA2")  # a reconnect does not duplicate the call
            await repo.add_turn("CA2", "caller", "Hi")
            await repo.set_field("CA2", "name", "Ana", valid=False)
            await repo.set_field("CA2", "name", "Anna", confirmed=True)
            stats = CallStats(1000, 400, 600, 8.0, 12.0, 0.03)
            assert await repo.finish_call("CA2", "caller_goodbye", stats)
            assert not await repo.finish_call("CA2", "again")
            with pytest.raises(UnknownCallError):
                await repo.finish_call("nope", "x")
            async with make_sessionmaker(engine)() as session:
                rows = list(await session.scalars(select(Outbox)))
            return rows, await repo.get_call("CA2")
        finally:
            await engine.dispose()

    rows, record = run(scenario())
    assert len(rows) == 1
    row = rows[0]
    assert row.idempotency_key == "CA2"
    assert row.delivered_at is None
    assert row.attempts == 0
    assert record.call.status == "ended"
    assert record.call.end_reason == "caller_goodbye"
    assert row.payload == record.to_json()
    assert row.payload["fields"] == [
        {"name": "name", "value": "Anna", "valid": True, "confirmed": True}
    ]
    assert row.payload["call"]["stats"]["audio_withheld_s"] == 12.0


def test_finish_call_is_atomic(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """If building the outbox row fails, the call is not marked ended either."""

    def boom(self: Any) -> dict[str, Any]:
        raise RuntimeError("payload failed")

    async def scenario() -> Any:
        engine, repo = await _migrated_repo(db_url)
        try:
            await repo.start_call("CA3")
            monkeypatch.setattr("callgate.storage.repository.CallRecord.to_json", boom)
            with pytest.raises(RuntimeError):
                await repo.finish_call("CA3", "hangup")
            monkeypatch.undo()
            async with make_sessionmaker(engine)() as session:
                count = len(list(await session.scalars(select(Outbox))))
            return count, await repo.get_call("CA3")
        finally:
            await engine.dispose()

    count, record = run(scenario())
    assert count == 0
    assert record.call.status == "live"


def test_list_calls_pages_newest_first(db_url: str) -> None:
    async def scenario() -> list[list[str]]:
        engine, repo = await _migrated_repo(db_url)
        t0 = datetime(2025, 1, 1, tzinfo=UTC)
        try:
            for i in range(5):
                await repo.start_call(f"CA{i}", started_at=t0 + timedelta(minutes=i))
            pages = [await repo.list_calls(limit=2, offset=o) for o in (0, 2, 4)]
            return [[c.call_sid for c in page] for page in pages]
        finally:
            await engine.dispose()

    assert run(scenario()) == [["CA4", "CA3"], ["CA2", "CA1"], ["CA0"]]


def test_unknown_call_and_naive_datetimes_are_rejected(db_url: str) -> None:
    async def scenario() -> None:
        engine, repo = await _migrated_repo(db_url)
        try:
            with pytest.raises(UnknownCallError):
                await repo.add_turn("missing", "caller", "hi")
            assert await repo.get_call("missing") is None
            with pytest.raises(Exception, match="naive datetime"):
                await repo.start_call("CA9", started_at=datetime(2025, 1, 1))
        finally:
            await engine.dispose()

    run(scenario())


def test_sync_turns_rewrites_only_from_the_first_change(db_url: str) -> None:
    async def scenario() -> tuple[list[Any], list[Any], int, int]:
        engine, repo = await _migrated_repo(db_url)
        try:
            await repo.start_call("CA2")
            hello = NewTurn("agent", "Hello, what is your name?", 0, 1500)
            first = [hello, NewTurn("agent", "Thanks. And your phone number?", 3000, 5000)]
            assert await repo.sync_turns("CA2", first) == 2
            before = (await repo.get_call("CA2")).turns  # type: ignore[union-attr]
            # The caller's late transcription goes between; the answer is cut short.
            second = [
                hello,
                NewTurn("caller", "Dana Levi.", 1800, 2900),
                NewTurn("agent", "Thanks. And", 3000, 3800, interrupted=True),
            ]
            written = await repo.sync_turns("CA2", second)
            unchanged = await repo.sync_turns("CA2", second)
            after = (await repo.get_call("CA2")).turns  # type: ignore[union-attr]
            return before, after, written, unchanged
        finally:
            await engine.dispose()

    before, after, written, unchanged = run(scenario())
    assert [t.seq for t in before] == [0, 1]
    assert written == 2
    assert unchanged == 0
    assert [(t.seq, t.speaker, t.text, t.interrupted) for t in after] == [
        (0, "agent", "Hello, what is your name?", False),
        (1, "caller", "Dana Levi.", False),
        (2, "agent", "Thanks. And", True),
    ]
    assert (after[2].start_ms, after[2].end_ms) == (3000, 3800)


def test_store_process_writes_in_order_past_a_failure_and_a_dead_worker(db_url: str) -> None:
    async def scenario() -> tuple[Any, list[str | None], str]:
        engine, repo = await _migrated_repo(db_url)
        store = StoreProcess(db_url)
        await store.start()
        try:
            futures = [store.submit("start_call", "CA3")]
            futures += [store.submit("add_event", "CA3", "tick", n, {"n": n}) for n in (0, 1)]
            futures.append(store.submit("add_event", "CAnope", "tick", 2))  # no such call
            futures += [store.submit("add_event", "CA3", "tick", n, {"n": n}) for n in (3, 4)]
            await asyncio.gather(*futures, return_exceptions=True)
            errors = [str(f.exception()) if f.exception() else None for f in futures]
            # The worker dies (killed, out of memory, ...) with a write in flight: that one
            # fails, and the next write starts a new worker.
            store.kill()
            lost = store.submit("add_event", "CA3", "tick", 5, {})
            with pytest.raises(StoreWriteError) as died:
                await lost
            await store.submit("add_event", "CA3", "tick", 6, {})
        finally:
            await store.stop()
        try:
            return await repo.get_call("CA3"), errors, str(died.value)
        finally:
            await engine.dispose()

    record, errors, died = run(scenario())
    assert errors[:3] == [None, None, None]
    assert errors[3] is not None
    assert "UnknownCallError" in errors[3]
    assert errors[4:] == [None, None]
    assert "exited" in died
    assert [e.at_ms for e in record.events] == [0, 1, 3, 4, 6]


def test_store_process_refuses_an_in_memory_database() -> None:
    with pytest.raises(ValueError, match="in-memory SQLite"):
        StoreProcess("sqlite+aiosqlite:///:memory:")


def test_inline_store_writes_in_order_past_a_failure(db_url: str) -> None:
    async def scenario() -> tuple[Any, list[bool]]:
        engine, repo = await _migrated_repo(db_url)
        store = InlineStore(repo)
        await store.start()
        try:
            futures = [
                store.submit("start_call", "CA4"),
                store.submit("add_event", "CA4", "tick", 0),
                store.submit("add_event", "CAnope", "tick", 1),  # no such call
                store.submit("add_event", "CA4", "tick", 2),
            ]
        finally:
            await store.stop()
        failed = [f.exception() is not None for f in futures]
        try:
            return await repo.get_call("CA4"), failed
        finally:
            await engine.dispose()

    record, failed = run(scenario())
    assert failed == [False, False, True, False]
    assert [e.at_ms for e in record.events] == [0, 2]
