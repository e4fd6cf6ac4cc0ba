"""Writes a live call into the call store as it happens.

The repository commits every write, so a crash mid-call keeps what was said. The audio
path never waits on the database: each write is handed to the store writer, which runs
writes in the order they were handed over, on this event loop
(:class:`~callgate.storage.writers.InlineStore`) or in a process of its own
(:class:`~callgate.storage.store_process.StoreProcess`, ``STORE_PROCESS=true``). A store
that fails must not take the call down with it. Each failure is logged with the call SID
and counted, and the call goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from callgate.config import Settings
from callgate.conversation.transcripts import Turn
from callgate.storage.repository import CallStats as StoredStats
from callgate.storage.repository import NewTurn
from callgate.storage.writers import StoreWriter

log = logging.getLogger("callgate.recorder")


class CallRecorder:
    """One call's writer. All methods are safe to call in any order; failures are logged."""

    def __init__(self, store: StoreWriter, settings: Settings) -> None:
        self._store = store
        self._frame_s = settings.audio_frame_size_ms / 1000.0
        self._usd_per_s = (
            settings.realtime_audio_tokens_per_s * settings.realtime_audio_input_usd_per_mtok / 1e6
        )
        self.call_sid: str | None = None
        self.failures = 0
        self._last: asyncio.Future[None] | None = None

    async def _safely(self, what: str, method: str, *args: Any, **kwargs: Any) -> None:
        """Hand a write to the store; returns at once."""
        call_sid = self.call_sid

        def done(future: asyncio.Future[None]) -> None:
            if not future.cancelled() and (exc := future.exception()) is not None:
                self.failures += 1
                log.error("call store: %s of call %s failed: %s", what, call_sid, exc)

        try:
            future = self._store.submit(method, *args, **kwargs)
        except Exception as exc:
            self.failures += 1
            log.error("call store: %s of call %s not written: %s", what, call_sid, exc)
            return
        future.add_done_callback(done)
        self._last = future

    async def started(self, call_sid: str, stream_sid: str, parameters: Mapping[str, str]) -> None:
        """The stream started: create the call row (a reconnecting stream keeps the old one)."""
        self.call_sid = call_sid
        from_number, to_number = parameters.get("From"), parameters.get("To")
        await self._safely(
            "start",
            "start_call",
            call_sid,
            stream_sid=stream_sid,
            from_number=from_number,
            to_number=to_number,
        )

    async def transcript(self, turns: Sequence[Turn]) -> None:
        """The whole transcript as it reads now; the store rewrites only what changed."""
        if (call_sid := self.call_sid) is None:
            return
        rows = [NewTurn(t.speaker, t.text, t.start_ms, t.end_ms, t.interrupted) for t in turns]
        await self._safely("transcript", "sync_turns", call_sid, rows)

    async def field(self, name: str, value: str, *, confirmed: bool = False) -> None:
        """A lead field collected (normalized); a later value for the same field wins."""
        if (call_sid := self.call_sid) is None:
            return
        await self._safely("field", "set_field", call_sid, name, value, confirmed=confirmed)

    async def event(self, kind: str, at_ms: int, detail: Mapping[str, Any]) -> None:
        """A barge-in, reconnect, loop, error, ... with what a reader needs to know."""
        if (call_sid := self.call_sid) is None:
            return
        await self._safely("event", "add_event", call_sid, kind, at_ms, dict(detail))

    async def finished(
        self, end_reason: str, frames_in: int, frames_sent: int, frames_withheld: int
    ) -> None:
        """The call is over: final statistics and the CRM outbox row, in one transaction."""
        if (call_sid := self.call_sid) is None:
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
        await self._safely("finish", "finish_call", call_sid, end_reason, stats)
        await self.flush()

    async def flush(self) -> None:
        """Wait until every queued write is done (the end of the call)."""
        if self._last is not None:
            with contextlib.suppress(Exception):  # logged by the job's callback
                await self._last
