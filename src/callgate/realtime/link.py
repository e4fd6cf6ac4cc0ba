"""One call's connection to the OpenAI Realtime API: a thin async edge over the ``openai`` SDK.

Call :meth:`RealtimeLink.open` once, then send with the ``append_audio`` / ``commit`` /
``create_response`` / ``cancel_response`` / ``truncate`` / ``clear_input`` /
``add_text_item`` methods and consume :meth:`RealtimeLink.events`, which yields the SDK's
typed server events (dispatch on ``event.type``) plus two markers of the link's own:
:class:`LinkReconnected` and :class:`LinkFailed`. Call :meth:`RealtimeLink.close` at the end.

Reconnection is callgate's own loop, not the SDK's ``on_reconnecting``: a new Realtime
connection is a new, empty session, so after a drop the link must send ``session.update``
and replay the conversation *before* any queued audio. The SDK's built-in retry queues
sends during the outage and flushes them first on the new socket, ahead of the session
configuration, and gives no hook after the new socket is up. Here, instead:

* the drop is seen by the reader (``ConnectionClosed``); up to ``REALTIME_MAX_RECONNECTS``
  attempts follow with exponential backoff;
* each attempt connects, sends ``session.update``, waits for ``session.updated``, then
  replays the history as text items (``conversation.item.create``, original item ids);
* then :class:`LinkReconnected` is yielded; when attempts run out, :class:`LinkFailed` is
  yielded and the iterator ends.

Sends during an outage never raise: they are dropped and counted (``dropped_appends`` for
audio, ``dropped_sends`` for the rest). Caller audio sent during the outage is lost; the
caller's turn is not re-sent. The turn logic sees :class:`LinkReconnected` and decides (e.g.
ask the caller to repeat).

The history holds completed user transcripts
(``conversation.item.input_audio_transcription.completed``), assistant transcripts
(``response.output_audio_transcript.done``) and text items, in conversation order.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import (
    ConversationItemAdded,
    ConversationItemInputAudioTranscriptionCompletedEvent,
    ConversationItemParam,
    InputAudioBufferAppendEventParam,
    RealtimeErrorEvent,
    RealtimeServerEvent,
    ResponseAudioTranscriptDoneEvent,
    SessionUpdatedEvent,
)

from callgate.config import Settings
from callgate.realtime.session import FunctionTool, build_session

__all__ = [
    "HistoryEntry",
    "LinkEvent",
    "LinkFailed",
    "LinkReconnected",
    "RealtimeLink",
    "RealtimeLinkError",
]

logger = logging.getLogger(__name__)

Role = Literal["user", "assistant", "system"]
PLACEHOLDER_API_KEY = "sk-local"
"""Used when ``OPENAI_API_KEY`` is empty: local peers accept any bearer token."""


class RealtimeLinkError(Exception):
    """The first connection or its ``session.update`` failed; the call cannot start."""


@dataclass(frozen=True)
class LinkReconnected:
    """The connection dropped and is back: session re-sent, history replayed."""

    attempt: int
    """Which attempt succeeded (1-based)."""
    replayed_items: int
    """How many history items were replayed as text."""


@dataclass(frozen=True)
class LinkFailed:
    """The connection dropped and every reconnect attempt failed; no more events follow."""

    reason: str


LinkEvent = LinkReconnected | LinkFailed


@dataclass
class HistoryEntry:
    """One conversation item the link can replay: its id, role and text."""

    item_id: str
    role: Role
    text: str = ""


_local_ids = itertools.count(1)


def openai_client(settings: Settings) -> AsyncOpenAI:
    """The SDK client for these settings. Share one across calls: building it costs about
    20 ms of blocking work (TLS context), which would stall every other call's audio."""
    return AsyncOpenAI(
        api_key=settings.openai_api_key.get_secret_value() or PLACEHOLDER_API_KEY,
        base_url=settings.openai_base_url or None,
        websocket_base_url=settings.openai_websocket_base_url or None,
    )


class RealtimeLink:
    """The Realtime connection of one call, with reconnection and conversation replay."""

    def __init__(
        self,
        settings: Settings,
        *,
        call_sid: str,
        tools: Sequence[FunctionTool] = (),
        instructions: str | None = None,
        session_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 4.0,
        client: AsyncOpenAI | None = None,
    ) -> None:
        self.settings = settings
        self.call_sid = call_sid
        self.session = build_session(settings, tools, instructions=instructions)
        self.session_timeout_s = session_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.dropped_appends = 0
        """Audio appends dropped because the connection was down."""
        self.dropped_sends = 0
        """Other client events dropped because the connection was down."""
        self.reconnects = 0
        """Successful reconnections so far."""
        self.log = logging.LoggerAdapter(logger, {"call_sid": call_sid})
        self._history: dict[str, HistoryEntry] = {}
        self._conn: AsyncRealtimeConnection | None = None
        self._queue: asyncio.Queue[RealtimeServerEvent | LinkEvent | None] = asyncio.Queue()
        """Events for :meth:`events`; ``None`` ends the stream."""
        self._reader: asyncio.Task[None] | None = None
        self._closing = False
        self._client = client or openai_client(settings)

    # --- lifecycle -------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        """True while a configured connection is up (sends go out)."""
        return self._conn is not None

    @property
    def history(self) -> tuple[HistoryEntry, ...]:
        """The conversation so far, in order; entries without text are not replayed."""
        return tuple(self._history.values())

    async def open(self) -> None:
        """Connect, send ``session.update``, wait for ``session.updated``, start reading.

        Raises :class:`RealtimeLinkError` if that fails; the call should not start.
        """
        try:
            self._conn = await self._connect()
        except Exception as exc:
            self.log.error("realtime connect failed: %s", exc)
            await self._client.close()
            raise RealtimeLinkError(f"Realtime connection failed: {exc}") from exc
        self._reader = asyncio.create_task(self._read(), name=f"realtime-link-{self.call_sid}")
        self.log.info("realtime link open")

    async def close(self) -> None:
        """Close the connection and end :meth:`events`. Safe to call twice."""
        self._closing = True
        conn, self._conn = self._conn, None
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
            self._reader = None
        if conn is not None:
            try:
                await conn.close()
            except Exception as exc:  # a dead socket cannot be closed politely
                self.log.debug("realtime close: %s", exc)
        await self._client.close()
        self._queue.put_nowait(None)

    async def events(self) -> AsyncIterator[RealtimeServerEvent | LinkEvent]:
        """Server events (SDK models) and link markers, in order; ends after close or
        :class:`LinkFailed`. One consumer only."""
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    # --- client events -----------------------------------------------------------------
    async def append_audio(self, pcmu: bytes) -> None:
        """``input_audio_buffer.append`` one chunk; during an outage it is dropped and counted."""
        conn = self._conn
        if conn is None:
            self.dropped_appends += 1
            return
        event: InputAudioBufferAppendEventParam = {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(pcmu).decode("ascii"),
        }
        try:
            # The hot path (50 appends a second per call): the event is already in wire
            # form, so skip the SDK's generic TypedDict transform (~150 us per send) and
            # hand the JSON to the same connection.
            await conn.send_raw(json.dumps(event))
        except Exception as exc:
            self.dropped_appends += 1
            self.log.warning("audio append dropped: %s", exc)

    async def commit(self) -> None:
        """``input_audio_buffer.commit``: end the caller's turn (client turn detection)."""
        await self._send("commit", lambda c: c.input_audio_buffer.commit())

    async def create_response(self) -> None:
        """``response.create``: ask the model to answer."""
        await self._send("response.create", lambda c: c.response.create())

    async def cancel_response(self) -> None:
        """``response.cancel``: stop the response in progress (barge-in)."""
        await self._send("response.cancel", lambda c: c.response.cancel())

    async def clear_input(self) -> None:
        """``input_audio_buffer.clear``: drop uncommitted caller audio."""
        await self._send("clear", lambda c: c.input_audio_buffer.clear())

    async def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """``conversation.item.truncate``: cut the assistant item to what the caller heard."""
        await self._send(
            "truncate",
            lambda c: c.conversation.item.truncate(
                item_id=item_id, content_index=content_index, audio_end_ms=audio_end_ms
            ),
        )

    async def add_text_item(self, role: Role, text: str) -> None:
        """``conversation.item.create`` with a text message; it joins the history too."""
        entry = HistoryEntry(f"item_cg{next(_local_ids):08d}", role, text)
        self._history[entry.item_id] = entry
        await self._send(
            "conversation.item.create", lambda c: c.conversation.item.create(item=_text_item(entry))
        )

    def set_history_text(self, item_id: str, text: str) -> None:
        """Replace an item's text in the history, e.g. the assistant's cut transcript
        after barge-in, so a replay holds what the caller really heard."""
        if item_id in self._history:
            self._history[item_id].text = text

    async def _send(
        self, kind: str, action: Callable[[AsyncRealtimeConnection], Awaitable[None]]
    ) -> None:
        conn = self._conn
        if conn is None:
            self.dropped_sends += 1
            self.log.warning("%s dropped: realtime connection is down", kind)
            return
        try:
            await action(conn)
        except Exception as exc:
            self.dropped_sends += 1
            self.log.warning("%s dropped: %s", kind, exc)

    # --- connection and reader ---------------------------------------------------------
    async def _connect(self) -> AsyncRealtimeConnection:
        """One connection, configured: ``session.update`` answered by ``session.updated``."""
        manager = self._client.realtime.connect(
            model=self.settings.openai_realtime_model,
            # Base64 audio barely compresses; permessage-deflate would only cost CPU.
            websocket_connection_options={"compression": None},
        )
        conn = await manager.enter()
        try:
            await conn.session.update(session=self.session)
            async with asyncio.timeout(self.session_timeout_s):
                while True:
                    event = await conn.recv()
                    self._queue.put_nowait(event)
                    if isinstance(event, SessionUpdatedEvent):
                        return conn
                    if isinstance(event, RealtimeErrorEvent):
                        raise RealtimeLinkError(f"session.update refused: {event.error.message}")
        except BaseException:
            try:
                await conn.close()
            except Exception as exc:
                self.log.debug("closing a failed connection: %s", exc)
            raise

    async def _read(self) -> None:
        """Forward server events; on a drop, reconnect or report :class:`LinkFailed`."""
        while not self._closing:
            conn = self._conn
            assert conn is not None
            try:
                event = await conn.recv()
            except Exception as exc:
                if self._closing:
                    return
                self._conn = None
                self.log.warning("realtime connection lost: %r", exc)
                if not await self._reconnect(exc):
                    return
                continue
            self._record(event)
            self._queue.put_nowait(event)

    async def _reconnect(self, cause: Exception) -> bool:
        attempts = self.settings.realtime_max_reconnects
        reason = f"connection lost ({cause!r}) and no reconnects allowed"
        for attempt in range(1, attempts + 1):
            delay = min(self.backoff_initial_s * 2 ** (attempt - 1), self.backoff_max_s)
            self.log.info("realtime reconnect %d/%d in %.2fs", attempt, attempts, delay)
            await asyncio.sleep(delay)
            try:
                conn = await self._connect()
                replayed = await self._replay(conn)
            except Exception as exc:
                reason = f"reconnect {attempt}/{attempts} failed: {exc!r}"
                self.log.warning("%s", reason)
                continue
            self._conn = conn
            self.reconnects += 1
            self.log.info("realtime reconnected (attempt %d, %d items replayed)", attempt, replayed)
            self._queue.put_nowait(LinkReconnected(attempt, replayed))
            return True
        self.log.error("realtime link failed: %s", reason)
        self._queue.put_nowait(LinkFailed(reason))
        self._queue.put_nowait(None)
        return False

    async def _replay(self, conn: AsyncRealtimeConnection) -> int:
        """Re-create the history as text items on a fresh session, original ids kept."""
        entries = [entry for entry in self._history.values() if entry.text]
        for entry in entries:
            await conn.conversation.item.create(item=_text_item(entry))
        return len(entries)

    def _record(self, event: RealtimeServerEvent) -> None:
        """Keep the history: item order from ``conversation.item.added``, text from the
        transcript events."""
        if isinstance(event, ConversationItemAdded):
            item = event.item
            role = getattr(item, "role", None)
            if item.type == "message" and role in ("user", "assistant") and item.id:
                self._history.setdefault(item.id, HistoryEntry(item.id, role))
        elif isinstance(event, ConversationItemInputAudioTranscriptionCompletedEvent):
            entry = self._history.setdefault(event.item_id, HistoryEntry(event.item_id, "user"))
            entry.text = event.transcript
        elif isinstance(event, ResponseAudioTranscriptDoneEvent):
            entry = self._history.setdefault(
                event.item_id, HistoryEntry(event.item_id, "assistant")
            )
            entry.text = event.transcript


def _text_item(entry: HistoryEntry) -> ConversationItemParam:
    """A GA text message item: ``input_text`` for user/system, ``output_text`` for assistant."""
    if entry.role == "assistant":
        return {
            "id": entry.item_id,
            "type": "message",
            "role": "assistant",
            "content": [{"type": "output_text", "text": entry.text}],
        }
    if entry.role == "system":
        return {
            "id": entry.item_id,
            "type": "message",
            "role": "system",
            "content": [{"type": "input_text", "text": entry.text}],
        }
    return {
        "id": entry.item_id,
        "type": "message",
        "role": "user",
        "content": [{"type": "input_text", "text": entry.text}],
    }
