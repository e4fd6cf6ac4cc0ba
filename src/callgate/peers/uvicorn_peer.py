"""An ASGI app served by uvicorn inside the running event loop: the local HTTP peers' base.

The Chat Completions and audio peers differ in their routes only; listening, finding the
port the OS picked, and stopping are the same, so they live here once.
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any, Self

import uvicorn


class UvicornPeer:
    """Serves :attr:`app` on ``host``:``port``; ``port=0`` lets the OS pick a free port."""

    app: Any
    host: str
    port: int
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        """The ``base_url`` for ``AsyncOpenAI``: ``http://host:port/v1``."""
        return f"http://{self.host}:{self.port}/v1"

    async def start(self, timeout_s: float = 10.0) -> Self:
        """Listen; returns once the socket is open, with :attr:`port` the real one."""
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
        )
        self._server = server = uvicorn.Server(config)
        self._task = task = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(timeout_s):
                while not server.started:
                    if task.done():
                        task.result()  # re-raise the bind error
                        raise RuntimeError(f"{type(self).__name__} stopped before it started")
                    await asyncio.sleep(0.005)
        except TimeoutError:
            await self.stop()
            raise TimeoutError(
                f"{type(self).__name__} did not start within {timeout_s} s"
            ) from None
        self.port = next(
            s.getsockname()[1] for srv in server.servers for s in srv.sockets if s is not None
        )
        return self

    async def stop(self) -> None:
        """Stop listening and wait for the server task."""
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await asyncio.wait_for(self._task, timeout=10)
        self._server = self._task = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
