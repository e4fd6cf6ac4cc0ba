"""Writes a live call into the call store as it happens.

The repository commits every write, so a crash mid-call keeps what was said. Writes go
through a per-call queue with one writer task, in order. The audio path never waits on
the database: under load a SQLite or PostgreSQL write can take tens of milliseconds, and
that would delay the caller's frames. A store that fails must not take the call down with
it. Each failure is logged with the call SID and counted, and the call goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
from typing import Any

from callgate.config import Settings
from callgate.storage.repository import CallRepository
from callgate.storage.repository import CallStats as StoredStats

log = logging.getLogger("callgate.recorder")


class CallRecorder:
    """One call's writer. All methods are safe to call in any order; failures are logged."""

    def __init__(self, repository: CallRepository, settings: Settings) -> None:
        self._repo = repository
        self._frame_s = settings.audio_frame_size_ms / 1000.0
        self._usd_per_s = (
            settings.realtime_audio_tokens_per_s * settings.realtime_audio_input_usd_per_mtok / 1e6
        )
        self.call_sid: str | None = None
        self.failures = 0
        self._queue: asyncio.Queue[tuple[str, Awaitable[Any]] | None] = asyncio.Queue()
        self._writer: asyncio.Task[None] | None = None

    async def _safely(self, what: str, write: Awaitable[Any]) -> None:
        """Queue a write for the writer task; returns at once. Callers check ``call_sid``."""
        if self._writer is None:
            self._writer = asyncio.create_task(self._write_all())
        self._queue.put_nowait((what, write))

    async def _write_all(self) -> None:
        while (job := await self._queue.get()) is not None:
            what, write = job
            try:
                await write
            except Exception as exc:
                self.failures += 1
                log.error("call store: %s failed: %s", what, exc)

    async def started(self, call_sid: str, stream_sid: str, parameters: Mapping[str, str]) -> None:
        """The stream started: create the call row (a reconnecting stream keeps the old one)."""
        self.call_sid = call_sid
        await self._safely(
            "start",
            self._repo.start_call(
                call_sid,
                stream_sid=stream_sid,
                from_number=parameters.get("From"),
                to_number=parameters.get("To"),
            ),
        )

    async def turn(self, speaker: str, text: str, *, interrupted: bool = False) -> None:
        """A finished turn of the transcript."""
        if self.call_sid is None or not text.strip():
            return
        await self._safely(
            "turn", self._repo.add_turn(self.call_sid, speaker, text, interrupted=interrupted)
        )

    async def field(self, name: str, value: str) -> None:
        """A lead field collected (normalized); a later value for the same field wins."""
        if self.call_sid is None:
            return
        await self._safely("field", self._repo.set_field(self.call_sid, name, value))

    async def event(self, kind: str, at_ms: int, detail: Mapping[str, Any]) -> None:
        """A barge-in, reconnect, loop, error, ... with what a reader needs to know."""
        if self.call_sid is None:
            return
        await self._safely("event", self._repo.add_event(self.call_sid, kind, at_ms, dict(detail)))

    async def finished(
        self, end_reason: str, frames_in: int, frames_sent: int, frames_withheld: int
    ) -> None:
        """The call is over: final statistics and the CRM outbox row, in one transaction."""
        if self.call_sid is None:
            return
        withheld_s = frames_withheld * self._frame_s
        stats = StoredStats(
            frames_in=frames_in,
            frames_sent=frames_sent,
            frames_withheld=frames_withheld,
            audio_sent_s=frames_sent * self._frame_s,
            audio_withheld_s=withheld_s,
            est_cost_saved_usd=withheld_s * self._usd_per_s,
        )
        await self._safely("finish", self._repo.finish_call(self.call_sid, end_reason, stats))
        await self.flush()

    async def flush(self) -> None:
        """Wait until every queued write is done (the end of the call)."""
        if self._writer is not None:
            self._queue.put_nowait(None)
            await self._writer
            self._writer = None
