"""How much of the agent's audio the caller has actually heard, from Twilio marks. Sans-I/O.

Twilio plays outbound media in order and echoes each ``mark`` we send once the audio queued
before it has played ("Mark message", https://www.twilio.com/docs/voice/media-streams/
websocket-messages). On ``clear`` it drops unplayed audio and echoes every pending mark at
once, so marks echoed after a clear do not mean "played". Barge-in needs the heard length to
truncate the assistant's message (Realtime ``conversation.item.truncate`` ``audio_end_ms``).

Usage: after sending N ms of agent audio, send a mark named by :meth:`PlaybackTracker.sent`.
Feed every echoed mark to :meth:`PlaybackTracker.mark_received`. When you send ``clear``,
call :meth:`PlaybackTracker.cleared` first. Times (``now_ms``) are passed in; this module
never reads a clock.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class _Segment:
    mark_name: str
    audio_ms: int
    item_id: str | None
    sent_at_ms: int | None


class PlaybackTracker:
    """Queued vs confirmed-played agent audio, in milliseconds."""

    def __init__(self, *, mark_prefix: str = "cg") -> None:
        self._prefix = mark_prefix
        self._counter = 0
        self._pending: deque[_Segment] = deque()
        self._played_ms = 0
        self._played_by_item: dict[str, int] = {}
        self._last_confirm_ms: int | None = None

    @property
    def played_ms(self) -> int:
        """Agent audio the caller has heard, confirmed by marks, since the call began."""
        return self._played_ms

    @property
    def pending_ms(self) -> int:
        """Agent audio queued at Twilio but not yet confirmed played."""
        return sum(s.audio_ms for s in self._pending)

    @property
    def playing(self) -> bool:
        """True while some sent audio is unconfirmed: the agent may be audible."""
        return bool(self._pending)

    def played_ms_of(self, item_id: str) -> int:
        """Confirmed-played ms of one response item (0 if none of it played)."""
        return self._played_by_item.get(item_id, 0)

    def sent(
        self,
        audio_ms: int,
        *,
        mark_name: str | None = None,
        item_id: str | None = None,
        now_ms: int | None = None,
    ) -> str:
        """Register ``audio_ms`` of audio just queued; send a mark with the returned name next.

        ``mark_name`` defaults to a fresh ``<prefix>-<n>``. ``item_id`` attributes the audio
        to a response item for :meth:`played_ms_of`. ``now_ms`` (optional) improves
        :meth:`estimate_played_ms`.
        """
        if audio_ms < 0:
            raise ValueError(f"audio_ms must be >= 0, got {audio_ms}")
        if mark_name is None:
            self._counter += 1
            mark_name = f"{self._prefix}-{self._counter}"
        if any(s.mark_name == mark_name for s in self._pending):
            raise ValueError(f"mark {mark_name!r} is already pending")
        if not self._pending:
            self._last_confirm_ms = None  # playback (re)starts when this audio arrives
        self._pending.append(_Segment(mark_name, audio_ms, item_id, now_ms))
        return mark_name

    def mark_received(self, name: str, *, now_ms: int | None = None) -> int:
        """An echoed mark: it and every earlier pending mark have played. Returns played_ms.

        Unknown names (marks echoed after :meth:`cleared`, or not ours) change nothing.
        """
        if all(s.mark_name != name for s in self._pending):
            return self._played_ms
        while self._pending:
            segment = self._pending.popleft()
            self._played_ms += segment.audio_ms
            if segment.item_id is not None:
                self._played_by_item[segment.item_id] = (
                    self._played_by_item.get(segment.item_id, 0) + segment.audio_ms
                )
            if segment.mark_name == name:
                break
        self._last_confirm_ms = now_ms
        return self._played_ms

    def cleared(self) -> int:
        """We sent ``clear``: drop pending audio (it will never play). Returns ms dropped."""
        dropped = self.pending_ms
        self._pending.clear()
        self._last_confirm_ms = None
        return dropped

    def estimate_played_ms(self, now_ms: int) -> int:
        """Confirmed ms plus the part of the next segment that has likely played by ``now_ms``.

        The next segment starts playing at the later of the last confirmation and its own
        send time. Without times, this is :attr:`played_ms` (a lower bound).
        """
        if not self._pending:
            return self._played_ms
        head = self._pending[0]
        starts = [t for t in (self._last_confirm_ms, head.sent_at_ms) if t is not None]
        if not starts:
            return self._played_ms
        elapsed = max(0, now_ms - max(starts))
        return self._played_ms + min(head.audio_ms, elapsed)
