"""The call store's writes in a process of their own, away from the audio event loop.

Each write is ORM work in Python: building rows, flushing, committing, and for a finished
call the whole record as CRM JSON. On the event loop that carries every call's 20 ms
frames, a burst of writes (fifty calls starting or ending in the same second) delays every
frame behind it. A thread does not help: it holds the same interpreter lock, and an event
loop that must win the lock back after every ``epoll`` wait falls far behind (measured in
docs/benchmarks.md: 3 of 50 calls held). So the writes go down a pipe to one worker
process (:mod:`callgate.storage.store_worker`) with its own engine on the same database
URL. The pipe is driven by this event loop itself: no helper thread competes with the
audio for the interpreter lock.

The worker runs jobs in the order they were submitted, so a call's writes stay in order.
A job that fails resolves its future with :class:`StoreWriteError`; the next job runs
anyway. If the worker dies, the jobs in flight fail and the next one starts a new worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import sys
from typing import Any

from sqlalchemy.engine import make_url

from callgate.storage.store_worker import CLOSE, HEADER
from callgate.storage.writers import StoreWriteError

log = logging.getLogger("callgate.store")

START_TIMEOUT_S = 60.0


class StoreProcess:
    """One worker process holding a ``CallRepository``; submit from the event loop."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            raise ValueError(
                "DATABASE_URL: an in-memory SQLite database cannot be shared by the store "
                "process and the API; use a file (sqlite+aiosqlite:///calls.db)"
            )
        self._url = database_url
        self._process: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[None]] = {}
        self._next_id = 1
        self._backlog: list[bytes] | None = None
        """Frames submitted while a new worker starts (None: no restart under way)."""
        self._stopping = False

    async def start(self) -> None:
        """Start the worker and wait until its engine is open; raises if it cannot."""
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "callgate.storage.store_worker",
            self._url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        try:
            ready = await asyncio.wait_for(_read_frame(process.stdout), START_TIMEOUT_S)
        except (TimeoutError, asyncio.IncompleteReadError) as exc:
            process.kill()
            await process.wait()
            raise StoreWriteError(f"the store process did not start ({exc!r})") from exc
        if ready != (0, None):
            raise StoreWriteError(f"the store process said {ready!r} at start")
        self._process = process
        self._reader = asyncio.create_task(self._read(process))

    def submit(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        """Queue ``CallRepository.<method>(*args, **kwargs)``; the future says how it went."""
        job_id, self._next_id = self._next_id, self._next_id + 1
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._pending[job_id] = future
        data = pickle.dumps((job_id, method, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        self._send(HEADER.pack(len(data)) + data)
        return future

    def _send(self, frame: bytes) -> None:
        if self._backlog is not None:
            self._backlog.append(frame)
            return
        process = self._process
        if process is None or process.stdin is None or process.stdin.is_closing():
            self._backlog = [frame]
            asyncio.get_running_loop().create_task(self._restart())
            return
        process.stdin.write(frame)  # buffered: the audio path never waits on the store

    async def _read(self, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        try:
            while True:
                job_id, error = await _read_frame(process.stdout)
                future = self._pending.pop(job_id, None)
                if future is None or future.done():
                    continue
                if error is None:
                    future.set_result(None)
                else:
                    future.set_exception(StoreWriteError(error))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the worker exited
        if self._process is process:
            self._process = None
        lost = list(self._pending.items())
        self._pending.clear()
        for _, future in lost:
            if not future.done():
                future.set_exception(StoreWriteError("the store process exited"))
        if lost and not self._stopping:
            log.error("the store process exited with %d write(s) in flight", len(lost))

    async def _restart(self) -> None:
        log.warning("starting a new store process")
        try:
            await self.start()
        except Exception as exc:
            log.error("the store process cannot start: %s", exc)
        backlog, self._backlog = self._backlog or [], None
        for frame in backlog:
            self._send(frame)

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Finish the jobs already submitted, close the engine and end the worker."""
        self._stopping = True
        process = self._process
        if process is None:
            return
        with contextlib.suppress(Exception):
            data = pickle.dumps((0, CLOSE, (), {}))
            assert process.stdin is not None
            process.stdin.write(HEADER.pack(len(data)) + data)
            await process.stdin.drain()
            process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            log.error("the store process did not finish in %.0f s; killing it", timeout_s)
            process.kill()
            await process.wait()
        if self._reader is not None:
            await asyncio.gather(self._reader, return_exceptions=True)

    def kill(self) -> None:
        """Kill the worker (for tests of a dying store)."""
        if self._process is not None:
            self._process.kill()


async def _read_frame(stream: asyncio.StreamReader) -> Any:
    header = await stream.readexactly(HEADER.size)
    (size,) = HEADER.unpack(header)
    return pickle.loads(await stream.readexactly(size))
