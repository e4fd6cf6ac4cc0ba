"""One connection of the local Realtime peer: the GA protocol over WebSocket.

:class:`PeerConnection` answers client events as the OpenAI Realtime API does (GA event
names, GA order) and records everything in a :class:`ConnectionRecord`. The conversation
item handlers are in :mod:`.realtime_items`. Handlers are found
by name from the client event type (``input_audio_buffer.append`` ->
``on_input_audio_buffer_append``).
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

from callgate.peers.realtime_items import ItemHandlers, message_item
from callgate.peers.realtime_records import (
    AudioAppend,
    ConnectionRecord,
    PeerItem,
    PeerOptions,
    ReceivedEvent,
    default_session,
    merge_session,
)
from callgate.peers.realtime_validation import (
    WireError,
    bytes_per_ms,
    check_server_event,
    error_event,
    format_of,
    frame_rms,
    new_id,
    parse_client_event,
)

__all__ = ["PeerConnection"]

VAD_FRAME_MS = 20
MIN_COMMIT_MS = 100
"""The API refuses to commit less than 100 ms of audio (``input_audio_buffer_commit_empty``)."""


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
        """GA order: response.created, output_item.added, conversation.item.added,
        content_part.added, output_audio(.transcript).delta..., *.done, response.done."""
        rid = new_id("resp")
        kind = self._format("output")
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
        text, audio = self.options.responder(tuple(self.record.items))
        previous = self.record.items[-1].id if self.record.items else None
        item = PeerItem(new_id("item"), "assistant")
        self.record.items.append(item)
        where = {"response_id": rid, "item_id": item.id, "output_index": 0, "content_index": 0}
        added = message_item(item, "in_progress", audio=True) | {"content": []}
        await self.send(
            {
                "type": "response.output_item.added",
                "response_id": rid,
                "output_index": 0,
                "item": added,
            }
        )
        await self.send(
            {"type": "conversation.item.added", "item": added, "previous_item_id": previous}
        )
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
        for index, start in enumerate(starts):
            if self.cancel.is_set():
                break
            piece = audio[start : start + chunk]
            item.audio_ms += len(piece) // bytes_per_ms(kind)
            delta = base64.b64encode(piece).decode("ascii")
            await self.send({"type": "response.output_audio.delta", **where, "delta": delta})
            said = words[index * per_chunk : (index + 1) * per_chunk]
            if said:
                spoken = (" " if index else "") + " ".join(said)
                item.text += spoken
                await self.send(
                    {"type": "response.output_audio_transcript.delta", **where, "delta": spoken}
                )
            if self.options.pace > 0:
                pause = self.options.pace * len(piece) / bytes_per_ms(kind) / 1000
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.cancel.wait(), pause)
        cancelled = self.cancel.is_set()
        status = "incomplete" if cancelled else "completed"
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
        done_item = message_item(item, status, audio=True)
        await self.send(
            {
                "type": "response.output_item.done",
                "response_id": rid,
                "output_index": 0,
                "item": done_item,
            }
        )
        await self.send(
            {"type": "conversation.item.done", "item": done_item, "previous_item_id": previous}
        )
        response.update(status="cancelled" if cancelled else "completed", output=[done_item])
        if cancelled:
            response["status_details"] = {"type": "cancelled", "reason": self.cancel_reason}
        await self.send({"type": "response.done", "response": response})
