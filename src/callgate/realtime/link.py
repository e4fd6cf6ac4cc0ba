"""One call's connection to the OpenAI Realtime API: a thin async edge over the ``openai`` SDK.

Call :meth:`RealtimeLink.open` once, then send with the ``append_audio`` / ``commit`` /
``create_response`` / ``cancel_response`` / ``truncate`` / ``clear_input`` /
``add_text_item`` / ``send_function_output`` methods and consume
:meth:`RealtimeLink.events`, which yields the SDK's typed server events (dispatch on
``event.type``) plus two markers of the link's own:
:class:`LinkReconnected` and :class:`LinkFailed`. Call :meth:`RealtimeLink.close` at the end.

Reconnection is callgate's own loop, not the SDK's ``on_reconnecting``: a new Realtime
connection is a new, empty session, so after a drop the link must send ``session.update``
and replay the conversation *before* any queued audio. The SDK's built-in retry queues
sends during the outage and flushes them first on the new socket, ahead of the session
configuration, and gives no hook after the new socket is up. Here, instead:

* the drop is seen by the reader (``ConnectionClosed``); up to ``REALTIME_MAX_RECONNECTS``
  attempts follow with exponential backoff;
* each attempt connects, sends ``session.update``, waits for ``session.updated``, then
  replays the history (``conversation.item.create``, original item ids): messages as text
  items, then function calls and their outputs as below;
* then :class:`LinkReconnected` is yielded; when attempts run out, :class:`LinkFailed` is
  yielded and the iterator ends.

Sends during an outage never raise: they are dropped and counted (``dropped_appends`` for
audio, ``dropped_sends`` for the rest). Caller audio sent during the outage is lost; the
caller's turn is not re-sent. The turn logic sees :class:`LinkReconnected` and decides (e.g.
ask the caller to repeat).

The history holds completed user transcripts
(``conversation.item.input_audio_transcription.completed``), assistant transcripts
(``response.output_audio_transcript.done``), text items, the model's function calls and
the outputs sent for them, in conversation order.

Function tools (the Realtime-native agent, see :mod:`callgate.realtime.session`):

* **Which event runs a tool**: ``response.output_item.done`` whose ``item.type`` is
  ``"function_call"`` *and* whose ``item.status`` is ``"completed"``
  (:func:`function_call_request` does that check and returns call_id, name, arguments).
  Not ``response.function_call_arguments.done``: the API reference says it is "also
  emitted when a Response is interrupted, incomplete, or cancelled" and it carries no
  status, so after a barge-in (``response.cancel``) it can hand over arguments the model
  never finished; ``response.output_item.done`` has the same call_id/name/arguments in
  its item plus the status that tells a finished call from a cut one.
* Send the result at once with :meth:`RealtimeLink.send_function_output`. Adding it does
  not make the model answer. Ask with ``response.create`` only after that response's
  ``response.done`` (the response may still be streaming audio or more calls, and a
  ``response.create`` during an active response is refused with
  ``conversation_already_has_active_response``), once per response however many calls
  it had, and not after an accepted ``end_call``.

Replay of function items after a reconnect: a ``function_call`` is replayed (original
item id, call_id, name, arguments) only if it completed; a ``function_call_output`` only
if its ``function_call`` is replayed before it. So a replay never holds an output whose
call is missing (the API refuses that) and never holds half-streamed arguments. An
output sent during the outage is dropped on the wire but kept in the history, so the
replay delivers it; an output sent after the reconnect finds its call already replayed.
A completed call with no output yet is replayed as it is; its output may follow.
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
    RealtimeConversationItemFunctionCall,
    RealtimeConversationItemFunctionCallOutputParam,
    RealtimeErrorEvent,
    RealtimeServerEvent,
    ResponseAudioTranscriptDoneEvent,
    ResponseOutputItemDoneEvent,
    SessionUpdatedEvent,
)

from callgate.config import Settings
from callgate.conversation.form import Form
from callgate.realtime.session import FunctionTool, build_session

__all__ = [
    "FunctionCallRequest",
    "HistoryEntry",
    "LinkEvent",
    "LinkFailed",
    "LinkReconnected",
    "RealtimeLink",
    "RealtimeLinkError",
    "function_call_request",
]

logger = logging.getLogger(__name__)

Role = Literal["user", "assistant", "system"]
ItemType = Literal["message", "function_call", "function_call_output"]
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
    """One conversation item the link can replay.

    ``text`` is a message's text, a function call's arguments (JSON) or a function call
    output. Function calls have role ``assistant`` (the model made them), their outputs
    role ``user`` (the client's side of the conversation).
    """

    item_id: str
    role: Role
    text: str = ""
    type: ItemType = "message"
    call_id: str = ""
    """``function_call`` / ``function_call_output`` only: the call they belong to."""
    name: str = ""
    """``function_call`` only: the function's name."""
    status: str = ""
    """``function_call`` only: ``""`` while streaming, then the item's final status."""


@dataclass(frozen=True)
class FunctionCallRequest:
    """A finished function call of the model: run ``name(arguments)``, answer ``call_id``."""

    call_id: str
    name: str
    arguments: str
    """The arguments as the model wrote them: JSON text, not yet parsed or checked."""
    item_id: str
    response_id: str


def function_call_request(event: object) -> FunctionCallRequest | None:
    """The function call to run if ``event`` finishes one, else ``None``.

    Only ``response.output_item.done`` with a ``function_call`` item of status
    ``completed`` counts: a call cut by a cancelled or interrupted response (status
    ``incomplete``) must not run.
    """
    if not isinstance(event, ResponseOutputItemDoneEvent):
        return None
    item = event.item
    if not isinstance(item, RealtimeConversationItemFunctionCall):
        return None
    if item.status != "completed" or not item.call_id:
        return None
    return FunctionCallRequest(
        item.call_id, item.name, item.arguments, item.id or "", event.response_id
    )


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
        form: Form | None = None,
        session_timeout_s: float = 5.0,
        backoff_initial_s: float = 0.25,
        backoff_max_s: float = 4.0,
        client: AsyncOpenAI | None = None,
    ) -> None:
        self.settings = settings
        self.call_sid = call_sid
        self.session = build_session(settings, tools, instructions=instructions, form=form)
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
        """The conversation so far, in order (see :meth:`replay_items` for what a replay
        re-creates)."""
        return tuple(self._history.values())

    def replay_items(self) -> list[ConversationItemParam]:
        """The items a reconnect re-creates, in order: messages with text, completed
        function calls, and outputs of those calls (never an output whose call is absent)."""
        items: list[ConversationItemParam] = []
        calls: set[str] = set()
        for entry in self._history.values():
            if entry.type == "message":
                if entry.text:
                    items.append(_text_item(entry))
            elif entry.type == "function_call":
                if entry.status == "completed" and entry.call_id:
                    calls.add(entry.call_id)
                    items.append(
                        {
                            "id": entry.item_id,
                            "type": "function_call",
                            "call_id": entry.call_id,
                            "name": entry.name,
                            "arguments": entry.text,
                        }
                    )
            elif entry.call_id in calls:
                items.append(_output_item(entry))
        return items

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

    async def send_function_output(self, call_id: str, output: str) -> None:
        """``conversation.item.create`` with a ``function_call_output`` for ``call_id``.

        It joins the history (so a replay after a reconnect delivers it, even if this send
        was dropped during the outage). It does not ask the model to answer: send
        :meth:`create_response` after the response that made the call is done.
        """
        entry = HistoryEntry(
            f"item_cg{next(_local_ids):08d}",
            "user",
            output,
            type="function_call_output",
            call_id=call_id,
        )
        self._history[entry.item_id] = entry
        await self._send(
            "function_call_output",
            lambda c: c.conversation.item.create(item=_output_item(entry)),
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
        """Re-create the history on a fresh session (:meth:`replay_items`), original ids
        kept."""
        items = self.replay_items()
        for item in items:
            await conn.conversation.item.create(item=item)
        return len(items)

    def _record(self, event: RealtimeServerEvent) -> None:
        """Keep the history: item order from ``conversation.item.added``, text from the
        transcript events."""
        if isinstance(event, ConversationItemAdded):
            item = event.item
            role = getattr(item, "role", None)
            if item.type == "message" and role in ("user", "assistant") and item.id:
                self._history.setdefault(item.id, HistoryEntry(item.id, role))
            elif isinstance(item, RealtimeConversationItemFunctionCall) and item.id:
                self._history.setdefault(item.id, _call_entry(item.id, item))
        elif isinstance(event, ResponseOutputItemDoneEvent):
            item = event.item
            if isinstance(item, RealtimeConversationItemFunctionCall) and item.id:
                entry = self._history.setdefault(item.id, _call_entry(item.id, item))
                entry.call_id = item.call_id or entry.call_id
                entry.name = item.name
                entry.text = item.arguments
                entry.status = item.status or "completed"
        elif isinstance(event, ConversationItemInputAudioTranscriptionCompletedEvent):
            entry = self._history.setdefault(event.item_id, HistoryEntry(event.item_id, "user"))
            entry.text = event.transcript
        elif isinstance(event, ResponseAudioTranscriptDoneEvent):
            entry = self._history.setdefault(
                event.item_id, HistoryEntry(event.item_id, "assistant")
            )
            entry.text = event.transcript


def _call_entry(item_id: str, item: RealtimeConversationItemFunctionCall) -> HistoryEntry:
    return HistoryEntry(
        item_id, "assistant", type="function_call", call_id=item.call_id or "", name=item.name
    )


def _output_item(entry: HistoryEntry) -> RealtimeConversationItemFunctionCallOutputParam:
    return {
        "id": entry.item_id,
        "type": "function_call_output",
        "call_id": entry.call_id,
        "output": entry.text,
    }


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
