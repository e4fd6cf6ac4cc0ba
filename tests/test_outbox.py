"""CRM delivery from the outbox: signatures, backoff, parking, outages, restarts, concurrency.

The fake CRM counts deliveries per Idempotency-Key, so "exactly once" is checked directly.
Most tests talk to it through httpx.MockTransport; one goes over a real socket (uvicorn).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import random
import socket
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from callgate.cli.crm import crm_app
from callgate.storage.db import make_engine, make_sessionmaker, migrate
from callgate.storage.models import Outbox
from callgate.storage.outbox import OutboxWorker, outbox_status, retry_now
from callgate.storage.repository import CallRepository
from tests.test_storage import BACKENDS, temp_database

SECRET = "s3cret"
URL = "http://crm.test/calls"


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with temp_database(str(request.param), tmp_path) as url:
        yield url


class FakeCrm:
    """A CRM that can be down, fails every other request, and checks every signature."""

    def __init__(self) -> None:
        self.down = False
        self.fail_every_other = True
        self.requests = 0
        self.bad_signatures = 0
        self.delivered: Counter[str] = Counter()
        self.bodies: dict[str, dict[str, Any]] = {}
        self.by_client: Counter[str] = Counter()

    def handle(self, body: bytes, headers: Mapping[str, str]) -> int:
        self.requests += 1
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(headers.get("x-callgate-signature", ""), expected):
            self.bad_signatures += 1
            return 401
        if self.fail_every_other and self.requests % 2 == 0:
            return 500
        key = headers["idempotency-key"]
        self.delivered[key] += 1
        self.bodies[key] = json.loads(body)
        return 200

    def transport(self, client: str = "") -> httpx.MockTransport:
        async def handler(request: httpx.Request) -> httpx.Response:
            await asyncio.sleep(0.001)  # let concurrent deliveries interleave
            if self.down:
                raise httpx.ConnectError("connection refused", request=request)
            status = self.handle(request.content, request.headers)
            self.by_client[client] += status == 200
            return httpx.Response(status)

        return httpx.MockTransport(handler)

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The same CRM as a bare ASGI app, for the real-socket test."""
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        status = self.handle(body, headers)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})


async def _setup(url: str, calls: int) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    engine = make_engine(url)
    await migrate(engine)
    sessions = make_sessionmaker(engine)
    repo = CallRepository(sessions)
    for i in range(calls):
        sid = f"CA{i:04d}"
        await repo.start_call(sid, from_number="+15550000000")
        await repo.add_turn(sid, "caller", f"call number {i}")
        await repo.finish_call(sid, "completed")
    return engine, sessions


def _worker(
    sessions: async_sessionmaker[AsyncSession], http: httpx.AsyncClient, **kw: Any
) -> OutboxWorker:
    opts: dict[str, Any] = {
        "backoff_initial_s": 0.001,
        "backoff_max_s": 0.01,
        "lease_s": 0.5,
        "timeout_s": 0.4,
        "poll_interval_s": 0.005,
        "rng": random.Random(7),
    }
    url = kw.pop("url", URL)
    opts.update(kw)
    return OutboxWorker(sessions, url, SECRET, http, 1000, **opts)


async def _wait_for(condition: Any, timeout_s: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_delivery_is_signed_and_keyed(db_url: str) -> None:
    crm = FakeCrm()
    crm.fail_every_other = False
    seen: list[httpx.Request] = []

    async def scenario() -> Any:
        engine, sessions = await _setup(db_url, 1)
        inner = crm.transport()

        async def spy(request: httpx.Request) -> httpx.Response:
            seen.append(request)
            return await inner.handle_async_request(request)

        try:
            async with httpx.AsyncClient(transport=httpx.MockTransport(spy)) as http:
                assert await _worker(sessions, http).run_once() == 1
            record = await CallRepository(sessions).get_call("CA0000")
            async with sessions() as session:
                row = await session.scalar(select(Outbox))
            return record, row
        finally:
            await engine.dispose()

    record, row = asyncio.run(scenario())
    request = seen[0]
    digest = hmac.new(SECRET.encode(), request.content, hashlib.sha256).hexdigest()
    assert request.headers["X-Callgate-Signature"] == f"sha256={digest}"
    assert request.headers["Idempotency-Key"] == "CA0000"
    assert request.headers["Content-Type"] == "application/json"
    assert crm.bad_signatures == 0
    assert crm.bodies["CA0000"] == record.to_json()
    assert row.delivered_at is not None
    assert row.attempts == 1


def test_backoff_parking_and_retry(db_url: str) -> None:
    crm = FakeCrm()
    crm.down = True
    now = [datetime.now(UTC) + timedelta(seconds=1)]

    async def scenario() -> None:
        engine, sessions = await _setup(db_url, 1)
        try:
            async with httpx.AsyncClient(transport=crm.transport()) as http:
                worker = OutboxWorker(sessions, URL, SECRET, http, 3, clock=lambda: now[0])
                assert await worker.run_once() == 1
                assert await worker.run_once() == 0  # backing off
                status = await outbox_status(sessions, now[0])
                assert (status.pending, status.due_now, status.delivered) == (1, 0, 0)
                assert "ConnectError" in status.last_errors[0].error
                for _ in range(2):
                    now[0] += timedelta(seconds=301)
                    assert await worker.run_once() == 1
                now[0] += timedelta(seconds=301)
                assert await worker.run_once() == 0  # parked after 3 attempts
                status = await outbox_status(sessions, now[0])
                assert (status.pending, status.parked) == (0, 1)
                assert status.last_errors[0].parked
                crm.down, crm.fail_every_other = False, False
                assert await retry_now(sessions, "nope", now[0]) == 0
                assert await retry_now(sessions, "CA0000", now[0]) == 1
                assert await worker.run_once() == 1
                status = await outbox_status(sessions, now[0])
                assert (status.pending, status.parked, status.delivered) == (0, 0, 1)
                assert status.oldest_pending_age_s is None
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    assert crm.delivered == {"CA0000": 1}


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    worker = OutboxWorker(
        None,  # type: ignore[arg-type]
        URL,
        SECRET,
        None,  # type: ignore[arg-type]
        backoff_initial_s=1.0,
        backoff_max_s=300.0,
        rng=random.Random(1),
    )
    for attempts in (1, 2, 5, 9, 10, 500):
        ceiling = min(300.0, 2.0 ** (attempts - 1))
        delays = [worker.backoff_s(attempts) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1


def test_outage_and_worker_restart_deliver_200_calls_exactly_once(db_url: str) -> None:
    crm = FakeCrm()
    crm.down = True

    async def scenario() -> None:
        engine, sessions = await _setup(db_url, 200)
        try:
            async with httpx.AsyncClient(transport=crm.transport()) as http:
                first = _worker(sessions, http, rng=random.Random(1))
                for _ in range(3):  # the CRM is down: every attempt fails, nothing is lost
                    await first.run_once()
                assert (await outbox_status(sessions)).pending == 200
                crm.down = False
                stop = asyncio.Event()
                task = asyncio.create_task(first.run_forever(stop))
                await _wait_for(lambda: len(crm.delivered) >= 60)
                stop.set()  # stop the first worker mid-run ...
                await task
                assert len(crm.delivered) < 200
                second = _worker(sessions, http, rng=random.Random(2))  # ... and start another
                stop2 = asyncio.Event()
                task2 = asyncio.create_task(second.run_forever(stop2))
                await _wait_for(lambda: len(crm.delivered) == 200)
                stop2.set()
                await task2
            status = await outbox_status(sessions)
            assert (status.pending, status.delivered, status.parked) == (0, 200, 0)
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    assert set(crm.delivered.values()) == {1}
    assert crm.bad_signatures == 0


def test_a_crashed_workers_rows_come_back_after_the_lease(db_url: str) -> None:
    crm = FakeCrm()

    async def scenario() -> None:
        engine, sessions = await _setup(db_url, 40)
        try:
            async with httpx.AsyncClient(transport=crm.transport()) as http:
                task = asyncio.create_task(_worker(sessions, http).run_forever(asyncio.Event()))
                await _wait_for(lambda: len(crm.delivered) >= 5)
                task.cancel()  # a crash: claimed rows keep their lease
                with pytest.raises(asyncio.CancelledError):
                    await task
                stop = asyncio.Event()
                task = asyncio.create_task(_worker(sessions, http).run_forever(stop))
                await _wait_for(lambda: len(crm.delivered) == 40)
                stop.set()
                await task
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    # Only requests in flight at the crash can repeat; the CRM dedupes by Idempotency-Key.
    assert sum(crm.delivered.values()) - 40 <= 20


def test_two_concurrent_workers_never_deliver_twice(db_url: str) -> None:
    crm = FakeCrm()

    async def scenario() -> None:
        engine, _ = await _setup(db_url, 200)
        engines = [make_engine(db_url) for _ in range(2)]  # as if two processes
        clients = [httpx.AsyncClient(transport=crm.transport(str(i))) for i in range(2)]
        try:
            stop = asyncio.Event()
            tasks = [
                asyncio.create_task(
                    _worker(make_sessionmaker(e), http, batch_size=10, lease_s=3.0).run_forever(
                        stop
                    )
                )
                for e, http in zip(engines, clients, strict=True)
            ]
            await _wait_for(lambda: len(crm.delivered) == 200)
            await asyncio.sleep(0.1)  # give a double delivery the chance to show
            stop.set()
            await asyncio.gather(*tasks)
        finally:
            for http in clients:
                await http.aclose()
            for e in [engine, *engines]:
                await e.dispose()

    asyncio.run(scenario())
    assert set(crm.delivered.values()) == {1}
    assert crm.by_client["0"] > 0
    assert crm.by_client["1"] > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_real_socket_crm_that_comes_up_late(tmp_path: Path) -> None:
    crm = FakeCrm()
    port = _free_port()

    async def scenario() -> None:
        engine, sessions = await _setup(f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", 20)
        server = uvicorn.Server(
            uvicorn.Config(
                crm.asgi, host="127.0.0.1", port=port, log_level="error", interface="asgi3"
            )
        )
        try:
            async with httpx.AsyncClient() as http:
                worker = _worker(sessions, http, url=f"http://127.0.0.1:{port}/calls")
                stop = asyncio.Event()
                task = asyncio.create_task(worker.run_forever(stop))
                await asyncio.sleep(0.2)  # connection refused meanwhile
                assert not crm.requests
                serving = asyncio.create_task(server.serve())
                await _wait_for(lambda: len(crm.delivered) == 20)
                stop.set()
                await task
                server.should_exit = True
                await serving
        finally:
            await engine.dispose()

    asyncio.run(scenario())
    assert set(crm.delivered.values()) == {1}
    assert crm.bad_signatures == 0


def test_cli_status_and_retry(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        engine, _ = await _setup(db_url, 3)
        await engine.dispose()

    asyncio.run(scenario())
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()
    result = runner.invoke(crm_app, ["status"])
    assert result.exit_code == 0, result.output
    assert "pending" in result.output
    assert "3" in result.output
    result = runner.invoke(crm_app, ["retry", "CA0001"])
    assert result.exit_code == 0, result.output
    assert "1 row" in result.output
    result = runner.invoke(crm_app, ["retry", "--all"])
    assert result.exit_code == 0, result.output
    assert "3 rows" in result.output
    assert runner.invoke(crm_app, ["retry"]).exit_code == 2


@pytest.mark.parametrize(
    "url",
    [
        "mysql://nope/db",
        "not a url",
        "postgresql+asyncpg://x@127.0.0.1:1/none",
        "sqlite+aiosqlite:////nonexistent/dir/calls.db",
    ],
)
def test_cli_reports_a_bad_database_in_one_line(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    result = CliRunner().invoke(crm_app, ["status"])
    assert result.exit_code == 2
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert "database" in result.output
