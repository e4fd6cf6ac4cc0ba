"""The call store's writes on a thread of their own, away from the audio event loop.

Each write is ORM work in Python: building rows, flushing, committing, and for a finished
call the whole record as CRM JSON. On the event loop that carries every call's 20 ms
frames, a burst of such writes (fifty calls starting or ending in the same second) delays
every frame behind it by hundreds of milliseconds. On a thread, the interpreter switches
back to the event loop every few milliseconds (``sys.getswitchinterval``), so a burst
costs the frames a few milliseconds instead.

The thread runs its own asyncio loop with its own engine on the same database URL: async
drivers (aiosqlite, asyncpg) bind connections to the loop that opened them. Writes are
submitted as functions of the thread's :class:`CallRepository` and run in the order each
caller submitted them when it chains them (see :class:`~callgate.server.recorder.CallRecorder`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from callgate.storage.db import make_engine, make_sessionmaker
from callgate.storage.repository import CallRepository

T = TypeVar("T")

Job = Callable[[CallRepository], Awaitable[T]]


class StoreThread:
    """A thread with an event loop and a repository; jobs are submitted from any thread."""

    def __init__(self, database_url: str) -> None:
        url = make_url(database_url)
        if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
            raise ValueError(
                "DATABASE_URL: an in-memory SQLite database cannot be shared by the store "
                "thread and the API; use a file (sqlite+aiosqlite:///calls.db)"
            )
        self._url = database_url
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="callgate-store", daemon=True)
        self._engine: AsyncEngine | None = None
        self._repository: CallRepository | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        """Start the thread and open the engine; raises what opening it raised."""
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._engine = make_engine(self._url)
            self._repository = CallRepository(make_sessionmaker(self._engine))
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()

    def submit(
        self, job: Job[T], after: concurrent.futures.Future[Any] | None = None
    ) -> concurrent.futures.Future[T]:
        """Run ``job(repository)`` on the store thread, after ``after`` has finished.

        ``after`` orders one writer's jobs: a job runs once the one before it is done,
        whether that one succeeded or failed.
        """
        return asyncio.run_coroutine_threadsafe(self._call(job, after), self._loop)

    async def _call(self, job: Job[T], after: concurrent.futures.Future[Any] | None) -> T:
        if after is not None:
            await asyncio.wait([asyncio.wrap_future(after)])
        assert self._repository is not None
        return await job(self._repository)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Finish the jobs already submitted, close the engine and end the thread."""
        if not self._thread.is_alive():
            return

        async def close() -> None:
            pending = [t for t in asyncio.all_tasks(self._loop) if t is not asyncio.current_task()]
            if pending:
                await asyncio.wait(pending, timeout=timeout_s)
            if self._engine is not None:
                await self._engine.dispose()

        done = asyncio.run_coroutine_threadsafe(close(), self._loop)
        try:
            done.result(timeout=timeout_s + 5)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=timeout_s)
