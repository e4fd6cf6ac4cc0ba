"""Where a call's store writes run: one interface, two writers.

The recorder submits each write (a repository method and its arguments) and gets a future;
writes run one at a time in the order submitted, so a call's writes stay in order, and a
failed write resolves its future with :class:`StoreWriteError` without stopping the rest.
:class:`InlineStore` runs them on this event loop (``STORE_PROCESS=false``, the default);
:class:`~callgate.storage.store_process.StoreProcess` in a process of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from callgate.storage.repository import CallRepository

Job = tuple[asyncio.Future[None], str, tuple[Any, ...], dict[str, Any]]
"""A submitted write: its future, the repository method's name, its arguments."""


class StoreWriteError(RuntimeError):
    """A write failed (its error, as text), or the store process died."""


class StoreWriter(Protocol):
    """What the recorder needs from a writer."""

    async def start(self) -> None: ...

    def submit(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[None]: ...

    async def stop(self) -> None: ...


class InlineStore:
    """The same interface on this event loop: one write at a time, in order.

    For ``STORE_PROCESS=false``: no extra process competes for the cores, and a write's
    ORM work runs between the audio's events; the audio path still never waits on it.
    """

    def __init__(self, repository: CallRepository) -> None:
        self._repository = repository
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._worker = asyncio.create_task(self._run())

    def submit(self, method: str, *args: Any, **kwargs: Any) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait((future, method, args, kwargs))
        return future

    async def _run(self) -> None:
        while (job := await self._queue.get()) is not None:
            future, method, args, kwargs = job
            try:
                await getattr(self._repository, method)(*args, **kwargs)
            except Exception as exc:
                future.set_exception(StoreWriteError(f"{type(exc).__name__}: {exc}"))
            else:
                future.set_result(None)

    async def stop(self) -> None:
        """Finish the writes already submitted."""
        if self._worker is not None:
            self._queue.put_nowait(None)
            await self._worker
            self._worker = None
