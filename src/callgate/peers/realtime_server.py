"""A local OpenAI Realtime API (GA, WebSocket) that the official ``openai`` SDK connects to.

Tests and local runs point ``AsyncOpenAI(websocket_base_url=peer.url)`` here; the SDK then
opens ``ws://127.0.0.1:PORT/v1/realtime?model=...`` with an ``Authorization: Bearer``
header, as it would against OpenAI. Nothing leaves the machine.

    async with RealtimePeer(options=PeerOptions(pace=0.1)) as peer:
        client = AsyncOpenAI(api_key="sk-local", websocket_base_url=peer.url)
        async with client.realtime.connect(model="gpt-realtime") as conn: ...
        peer.connections[0].audio  # every appended byte, in order

A scripted model that calls function tools: ``PeerOptions(responder=scripted_responder(
[[Say("One moment."), CallFunction("save_field", {"name": "phone", "value": "..."})]]))``
(see :mod:`.realtime_records`).

The protocol lives in :mod:`.realtime_protocol`, the records in :mod:`.realtime_records`,
the wire checks in :mod:`.realtime_validation`. Test hooks: :meth:`RealtimePeer.drop_connections`
(abort the TCP transports, as a network drop does) and :meth:`RealtimePeer.refuse_next`
(answer the next handshakes with HTTP 503).
"""

from __future__ import annotations

import asyncio
import time
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from callgate.peers.realtime_protocol import PeerConnection
from callgate.peers.realtime_records import (
    AudioAppend,
    CallFunction,
    ConnectionRecord,
    PeerItem,
    PeerOptions,
    PeerReply,
    ReceivedEvent,
    Responder,
    Say,
    ScriptedResponder,
    Transcriber,
    default_responder,
    default_transcriber,
    scripted_responder,
)
from callgate.peers.realtime_validation import tone

__all__ = [
    "AudioAppend",
    "CallFunction",
    "ConnectionRecord",
    "PeerItem",
    "PeerOptions",
    "PeerReply",
    "RealtimePeer",
    "ReceivedEvent",
    "Responder",
    "Say",
    "ScriptedResponder",
    "Transcriber",
    "default_responder",
    "default_transcriber",
    "scripted_responder",
    "tone",
]

REALTIME_PATH = "/v1/realtime"


class RealtimePeer:
    """The local Realtime server. Use as ``async with RealtimePeer() as peer``."""

    def __init__(
        self, options: PeerOptions | None = None, *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.options = options or PeerOptions()
        self.host = host
        self.port = port
        self.connections: list[ConnectionRecord] = []
        """One record per accepted connection, in order."""
        self.refused: list[float] = []
        """Monotonic times of refused or rejected handshakes."""
        self._refuse = 0
        self._server: Server | None = None
        self._live: dict[ServerConnection, PeerConnection] = {}

    @property
    def url(self) -> str:
        """The ``websocket_base_url`` for ``AsyncOpenAI``: ``ws://host:port/v1``."""
        return f"ws://{self.host}:{self.port}/v1"

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Every ``error`` event sent, over all connections."""
        return [error for record in self.connections for error in record.errors]

    def refuse_next(self, n: int = 1) -> None:
        """Answer the next ``n`` handshakes with HTTP 503 (the SDK's connect then fails)."""
        self._refuse += n

    async def drop_connections(self) -> None:
        """Abort every live connection's transport: no close frame, as in a network drop."""
        for ws in list(self._live):
            ws.transport.abort()
        await asyncio.sleep(0)

    async def wait_for_connections(self, n: int, timeout_s: float = 2.0) -> ConnectionRecord:
        """Wait until ``n`` connections have been accepted; return the ``n``-th record."""
        async with asyncio.timeout(timeout_s):
            while len(self.connections) < n:
                await asyncio.sleep(0.005)
        return self.connections[n - 1]

    async def wait_for(
        self, kind: str, *, count: int = 1, connection: int = -1, timeout_s: float = 2.0
    ) -> list[dict[str, Any]]:
        """Wait until one connection has sent ``count`` server events of type ``kind``."""
        async with asyncio.timeout(timeout_s):
            while True:
                if self.connections:
                    sent = [e for e in self.connections[connection].sent if e["type"] == kind]
                    if len(sent) >= count:
                        return sent
                await asyncio.sleep(0.005)

    def _process_request(self, ws: ServerConnection, request: Request) -> Response | None:
        """Check the handshake the way the API does: path, ``model`` query, bearer token."""
        if self._refuse > 0:
            self._refuse -= 1
            self.refused.append(time.monotonic())
            return ws.respond(HTTPStatus.SERVICE_UNAVAILABLE, "refused by test hook\n")
        url = urlsplit(request.path)
        if url.path.rstrip("/") != REALTIME_PATH:
            self.refused.append(time.monotonic())
            return ws.respond(HTTPStatus.NOT_FOUND, f"no route {url.path}\n")
        if not request.headers.get("Authorization", "").startswith("Bearer "):
            self.refused.append(time.monotonic())
            return ws.respond(HTTPStatus.UNAUTHORIZED, "missing bearer token\n")
        if not parse_qs(url.query).get("model"):
            self.refused.append(time.monotonic())
            return ws.respond(HTTPStatus.BAD_REQUEST, "missing model query parameter\n")
        return None

    async def _handler(self, ws: ServerConnection) -> None:
        request = ws.request
        assert request is not None
        model = parse_qs(urlsplit(request.path).query)["model"][0]
        record = ConnectionRecord(
            path=request.path, headers={k.lower(): v for k, v in request.headers.raw_items()},
            model=model,
        )  # fmt: skip
        self.connections.append(record)
        connection = PeerConnection(ws, record, self.options)
        self._live[ws] = connection
        try:
            await connection.run()
        finally:
            self._live.pop(ws, None)

    async def start(self) -> Self:
        """Listen; with ``port=0`` the OS picks a free port, then ``self.port`` holds it."""
        self._server = await serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=None,
            compression=None,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
