"""One connection of the local Realtime peer: the GA protocol over WebSocket.

:class:`PeerConnection` answers client events as the OpenAI Realtime API does (GA event
names, GA order) and records everything in a :class:`ConnectionRecord`. The conversation
item handlers are in :mod:`.realtime_items`. Handlers are found
by name from the client event type (``input_audio_buffer.append`` ->
``on_input_audio_buffer_append``).

A response streams the responder's output items in order (``output_index`` 0, 1, ...):
an audio message as ``response.output_item.added``, ``conversation.item.added``,
``response.content_part.added``, ``response.output_audio(_transcript).delta``...,
``*.done``, ``response.output_item.done``, ``conversation.item.done``; a function call
as ``response.output_item.added`` (status ``in_progress``, empty arguments),
``conversation.item.added``, ``response.function_call_arguments.delta``...,
``response.function_call_arguments.done``, ``response.output_item.done``,
``conversation.item.done``. ``response.done`` lists every item in ``response.output``.
A cancel stops the item in progress (status ``incomplete``; a function call still gets
its ``arguments.done``, as the API sends it) and starts no further item.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import time
from collections.abc import Coroutine
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from callgate.peers.realtime_items import ItemHandlers, function_call_item, message_item
from callgate.peers.realtime_records import (
    AudioAppend,
    CallFunction,
    ConnectionRecord,
    PeerItem,
    PeerOptions,
    ReceivedEvent,
    Say,
    default_session,
    merge_session,
    reply_outputs,
)
from callgate.peers.realtime_validation import (
    WireError,
    bytes_per_ms,
    check_server_event,
    check_tools,
    error_event,
    format_of,
    frame_rms,
    new_id,
    parse_client_event,
    tone,
)

__all__ = ["PeerConnection"]

VAD_FRAME_MS = 20
MIN_COMMIT_MS = 100
"""The API refuses to commit less than 100 ms of audio (``input_audio_buffer_commit_empty``)."""
ARGUMENTS_DELTA_CHARS = 16
"""Characters of function call arguments per ``response.function_call_arguments.delta``."""


class PeerConnection(ItemHandlers):
    """Serves one client; the server calls :meth:`run` and awaits it."""

    def __init__(
        self, ws: ServerConnection, record: ConnectionRecord, options: PeerOptions
    ) -> None:
        self.ws = ws
        self.record = record
        self.options = options
        self.session = default_session(record.model)
        record.session = self.session
        self.buffer = bytearray()
        self.response: asyncio.Task[None] | None = None
        self.cancel = asyncio.Event()
        self.cancel_reason = "client_cancelled"
        self.tasks: set[asyncio.Task[None]] = set()
        # Server VAD: positions in ms of all audio appended this session (audio_start_ms).
        self.position_ms = 0
        self.carry = b""
        self.speech_item: str | None = None
        self.silence_ms = 0

    # --- plumbing --------------------------------------------------------------------
    async def send(self, event: dict[str, Any]) -> None:
        """Send one server event, checked against the SDK's server-event models first."""
        event.setdefault("event_id", new_id("event"))
        if self.options.check_own_events:
            check_server_event(event)
        self.record.sent.append(event)
        if event["type"] == "error":
            self.record.errors.append(event)
        await self.ws.send(json.dumps(event))

    async def fail(self, message: str, code: str, param: str | None, event_id: object) -> None:
        """Answer a bad client event with ``error``; the session goes on, as in the API."""
        ref = event_id if isinstance(event_id, str) else None
        await self.send(error_event(WireError(message, code, param, ref)))

    async def _tools_refused(self, update: dict[str, Any], prefix: str, event_id: object) -> bool:
        """Answer bad ``tools`` / ``tool_choice`` in an update with ``error``; True if so."""
        error = check_tools(
            update.get("tools"), update.get("tool_choice"), self.session["tools"], prefix
        )
        if error is not None:
            await self.fail(error.message, error.code, error.param, event_id)
        return error is not None

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def _format(self, direction: str) -> str:
        return format_of(self.session["audio"][direction].get("format"))

    def _turn_detection(self) -> dict[str, Any] | None:
        detection = self.session["audio"]["input"].get("turn_detection")
        return detection if isinstance(detection, dict) else None

    async def run(self) -> None:
        """Send ``session.created``, then answer client events until the socket closes."""
        try:
            await self.send({"type": "session.created", "session": self.session})
            async for message in self.ws:
                await self.handle(message)
        except ConnectionClosed:
            pass
        finally:
            self.record.closed = True
            for task in [*self.tasks, *([self.response] if self.response else [])]:
                task.cancel()

    async def handle(self, message: str | bytes) -> None:
        """Validate one client event and dispatch it on its GA ``type``."""
        parsed = parse_client_event(message)
        now = time.monotonic()
        if isinstance(parsed, WireError):
            self.record.events.append(ReceivedEvent("<invalid>", {"raw": message}, now))
            await self.send(error_event(parsed))
            return
        self.record.events.append(ReceivedEvent(parsed.type, parsed.payload, now))
        handler = getattr(self, "on_" + parsed.type.replace(".", "_"))
        await handler(parsed.payload)

    # --- session ---------------------------------------------------------------------
    async def on_session_update(self, event: dict[str, Any]) -> None:
        """``session.update`` -> ``session.updated`` with the full effective session."""
        update = event["session"]
        if update.get("type") != "realtime":
            await self.fail(
                f"This peer serves realtime sessions; got session.type {update.get('type')!r}.",
                "invalid_value",
                "session.type",
                event.get("event_id"),
            )
            return
        if "model" in update and update["model"] != self.session["model"]:
            await self.fail(
                f"Cannot change the model of a session from {self.session['model']!r} "
                f"to {update['model']!r}.",
                "invalid_value",
                "session.model",
                event.get("event_id"),
            )
            return
        if await self._tools_refused(update, "session", event.get("event_id")):
            return
        merge_session(self.session, update)
        await self.send({"type": "session.updated", "session": self.session})

    # --- input audio -----------------------------------------------------------------
    async def on_input_audio_buffer_append(self, event: dict[str, Any]) -> None:
        """``input_audio_buffer.append``: decode, record, buffer, run server VAD if on."""
        try:
            audio = base64.b64decode(event["audio"], validate=True)
        except (binascii.Error, ValueError):
            await self.fail(
                "Invalid 'audio'. Expected base64-encoded audio bytes.",
                "invalid_value",
                "audio",
                event.get("event_id"),
            )
            return
        if self._format("input") == "audio/pcm" and len(audio) % 2:
            await self.fail(
                "Invalid 'audio': PCM16 audio must have an even number of bytes.",
                "invalid_value",
                "audio",
                event.get("event_id"),
            )
            return
        self.record.appends.append(AudioAppend(audio, time.monotonic()))
        self.buffer += audio
        if self._turn_detection() is not None:
            await self._vad(audio)

    async def on_input_audio_buffer_commit(self, event: dict[str, Any]) -> None:
        """``input_audio_buffer.commit`` -> ``committed`` + the user item, or the API's error."""
        have_ms = len(self.buffer) / bytes_per_ms(self._format("input"))
        if have_ms < MIN_COMMIT_MS:
            await self.fail(
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{MIN_COMMIT_MS}ms of audio, but buffer only has {have_ms:.2f}ms of audio.",
                "input_audio_buffer_commit_empty",
                None,
                event.get("event_id"),
            )
            return
        await self._commit(self.speech_item or new_id("item"))

    async def _commit(self, item_id: str) -> None:
        audio, self.buffer = bytes(self.buffer), bytearray()
        self.speech_item = None
        previous = self.record.items[-1].id if self.record.items else None
        item = PeerItem(item_id, "user")
        self.record.items.append(item)
        await self.send(
            {
                "type": "input_audio_buffer.committed",
                "item_id": item_id,
                "previous_item_id": previous,
            }
        )
        # GA: conversation.item.added then .done for the user's audio message.
        for kind in ("conversation.item.added", "conversation.item.done"):
            await self.send(
                {"type": kind, "item": message_item(item, audio=True), "previous_item_id": previous}
            )
        if self.session["audio"]["input"].get("transcription"):
            self.spawn(self._transcribe(item, audio))

    async def _transcribe(self, item: PeerItem, audio: bytes) -> None:
        await asyncio.sleep(self.options.transcription_delay_s)
        item.text = self.options.transcriber(audio)
        seconds = len(audio) / bytes_per_ms(self._format("input")) / 1000
        await self.send(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item.id,
                "content_index": 0,
                "transcript": item.text,
                "usage": {"type": "duration", "seconds": seconds},
            }
        )

    async def on_input_audio_buffer_clear(self, _event: dict[str, Any]) -> None:
        """``input_audio_buffer.clear`` -> ``input_audio_buffer.cleared``."""
        self.buffer = bytearray()
        await self.send({"type": "input_audio_buffer.cleared"})

    async def on_output_audio_buffer_clear(self, event: dict[str, Any]) -> None:
        """``output_audio_buffer.clear`` exists for WebRTC only; over WebSocket it is an error."""
        await self.fail(
            "output_audio_buffer.clear is only supported for WebRTC sessions.",
            "invalid_value",
            "type",
            event.get("event_id"),
        )

    async def _vad(self, audio: bytes) -> None:
        """Energy VAD on 20 ms frames: ``speech_started`` / ``speech_stopped`` / commit."""
        detection = self._turn_detection()
        assert detection is not None
        kind = self._format("input")
        frame_bytes = VAD_FRAME_MS * bytes_per_ms(kind)
        if detection["type"] == "server_vad":
            stop_ms = int(detection.get("silence_duration_ms") or 500)
        else:
            stop_ms = self.options.semantic_silence_ms
        data = self.carry + audio
        whole = len(data) - len(data) % frame_bytes
        self.carry = data[whole:]
        for start in range(0, whole, frame_bytes):
            self.position_ms += VAD_FRAME_MS
            speech = (
                frame_rms(data[start : start + frame_bytes], kind) > self.options.vad_threshold_rms
            )
            if speech and self.speech_item is None:
                self.speech_item, self.silence_ms = new_id("item"), 0
                if self.response is not None and detection.get("interrupt_response", True):
                    await self._stop_response("turn_detected")
                padding = int(detection.get("prefix_padding_ms") or 300)
                await self.send(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "item_id": self.speech_item,
                        "audio_start_ms": max(0, self.position_ms - VAD_FRAME_MS - padding),
                    }
                )
            elif self.speech_item is not None:
                self.silence_ms = 0 if speech else self.silence_ms + VAD_FRAME_MS
                if self.silence_ms >= stop_ms:
                    item_id = self.speech_item
                    await self.send(
                        {
                            "type": "input_audio_buffer.speech_stopped",
                            "item_id": item_id,
                            "audio_end_ms": self.position_ms,
                        }
                    )
                    await self._commit(item_id)
                    if detection.get("create_response", True) and self.response is None:
                        await self.on_response_create({})

    # --- responses -------------------------------------------------------------------
    async def on_response_create(self, event: dict[str, Any]) -> None:
        """``response.create`` -> ``response.created`` and the streamed assistant message."""
        if self.response is not None:
            await self.fail(
                "Conversation already has an active response in progress.",
                "conversation_already_has_active_response",
                None,
                event.get("event_id"),
            )
            return
        overrides = event.get("response") or {}
        if await self._tools_refused(overrides, "response", event.get("event_id")):
            return
        self.cancel.clear()
        self.response = asyncio.create_task(self._respond())

    async def on_response_cancel(self, event: dict[str, Any]) -> None:
        """``response.cancel`` -> streaming stops, ``response.done`` with status cancelled."""
        if self.response is None:
            await self.fail(
                "Cancellation failed: no active response found",
                "response_cancel_not_active",
                None,
                event.get("event_id"),
            )
            return
        await self._stop_response("client_cancelled")

    async def _stop_response(self, reason: str) -> None:
        self.cancel_reason = reason
        self.cancel.set()
        if self.response is not None:
            await asyncio.wait([self.response])

    async def _respond(self) -> None:
        try:
            await self._stream_response()
        finally:
            self.response = None

    async def _stream_response(self) -> None:
        """``response.created``, each output item in order, ``response.done``."""
        rid = new_id("resp")
        voice = self.session["audio"]["output"].get("voice", "alloy")
        response: dict[str, Any] = {
            "id": rid,
            "object": "realtime.response",
            "status": "in_progress",
            "output": [],
            "output_modalities": ["audio"],
            "audio": {
                "output": {"format": self.session["audio"]["output"]["format"], "voice": voice}
            },
        }
        await self.send({"type": "response.created", "response": dict(response)})
        outputs = reply_outputs(self.options.responder(tuple(self.record.items)))
        done_items: list[dict[str, Any]] = []
        for index, output in enumerate(outputs):
            if index and self.cancel.is_set():
                break  # a cancelled response starts no further item
            if isinstance(output, CallFunction):
                done_items.append(await self._stream_call(rid, index, output))
            else:
                done_items.append(await self._stream_speech(rid, index, output))
        cancelled = self.cancel.is_set()
        response.update(status="cancelled" if cancelled else "completed", output=done_items)
        if cancelled:
            response["status_details"] = {"type": "cancelled", "reason": self.cancel_reason}
        await self.send({"type": "response.done", "response": response})

    async def _added(self, rid: str, index: int, added: dict[str, Any]) -> str | None:
        """Append the new item's ``PeerItem`` first; send ``output_item.added`` and
        ``conversation.item.added``; return the previous item's id."""
        items = self.record.items
        previous = items[-2].id if len(items) > 1 else None
        await self.send(
            {"type": "response.output_item.added", "response_id": rid, "output_index": index,
             "item": added}
        )  # fmt: skip
        await self.send(
            {"type": "conversation.item.added", "item": added, "previous_item_id": previous}
        )
        return previous

    async def _done(
        self, rid: str, index: int, done_item: dict[str, Any], previous: str | None
    ) -> dict[str, Any]:
        await self.send(
            {"type": "response.output_item.done", "response_id": rid, "output_index": index,
             "item": done_item}
        )  # fmt: skip
        await self.send(
            {"type": "conversation.item.done", "item": done_item, "previous_item_id": previous}
        )
        return done_item

    async def _stream_call(self, rid: str, index: int, call: CallFunction) -> dict[str, Any]:
        """One ``function_call`` item: added, arguments deltas, arguments done, done."""
        item = PeerItem(
            new_id("item"), "function_call", type="function_call",
            call_id=call.call_id or new_id("call"), name=call.name,
        )  # fmt: skip
        self.record.items.append(item)
        previous = await self._added(rid, index, function_call_item(item, "in_progress"))
        where = {"response_id": rid, "item_id": item.id, "output_index": index,
                 "call_id": item.call_id}  # fmt: skip
        arguments = call.arguments_json
        for start in range(0, len(arguments), ARGUMENTS_DELTA_CHARS):
            if self.cancel.is_set():
                break
            delta = arguments[start : start + ARGUMENTS_DELTA_CHARS]
            item.arguments += delta
            await self.send({"type": "response.function_call_arguments.delta", **where,
                             "delta": delta})  # fmt: skip
            if self.options.pace > 0:  # one delta per 20 ms at real time
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.cancel.wait(), self.options.pace * 0.02)
            else:
                await asyncio.sleep(0)  # let a cancel in between, as a streaming model would
        status = "incomplete" if self.cancel.is_set() else "completed"
        await self.send(
            {"type": "response.function_call_arguments.done", **where, "name": item.name,
             "arguments": item.arguments}
        )  # fmt: skip
        return await self._done(rid, index, function_call_item(item, status), previous)

    async def _stream_speech(self, rid: str, index: int, say: Say) -> dict[str, Any]:
        """One audio message: GA order output_item.added, conversation.item.added,
        content_part.added, output_audio(.transcript).delta..., *.done."""
        kind = self._format("output")
        text = say.text
        audio = say.audio
        if audio is None:
            audio = tone(min(3.0, max(0.3, 0.05 * len(text))), kind)
        item = PeerItem(new_id("item"), "assistant")
        self.record.items.append(item)
        where = {"response_id": rid, "item_id": item.id, "output_index": index, "content_index": 0}
        added = message_item(item, "in_progress", audio=True) | {"content": []}
        previous = await self._added(rid, index, added)
        await self.send(
            {
                "type": "response.content_part.added",
                **where,
                "part": {"type": "audio", "transcript": ""},
            }
        )
        chunk = self.options.chunk_ms * bytes_per_ms(kind)
        starts = list(range(0, len(audio), chunk))
        words = text.split(" ")
        per_chunk = max(1, -(-len(words) // max(1, len(starts))))
        for n, start in enumerate(starts):
            if self.cancel.is_set():
                break
            piece = audio[start : start + chunk]
            item.audio_ms += len(piece) // bytes_per_ms(kind)
            delta = base64.b64encode(piece).decode("ascii")
            await self.send({"type": "response.output_audio.delta", **where, "delta": delta})
            said = words[n * per_chunk : (n + 1) * per_chunk]
            if said:
                spoken = (" " if n else "") + " ".join(said)
                item.text += spoken
                await self.send(
                    {"type": "response.output_audio_transcript.delta", **where, "delta": spoken}
                )
            if self.options.pace > 0:
                pause = self.options.pace * len(piece) / bytes_per_ms(kind) / 1000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.cancel.wait(), pause)
        status = "incomplete" if self.cancel.is_set() else "completed"
        await self.send({"type": "response.output_audio.done", **where})
        await self.send(
            {"type": "response.output_audio_transcript.done", **where, "transcript": item.text}
        )
        await self.send(
            {
                "type": "response.content_part.done",
                **where,
                "part": {"type": "audio", "transcript": item.text},
            }
        )
        return await self._done(rid, index, message_item(item, status, audio=True), previous)
