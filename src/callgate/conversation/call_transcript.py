"""The live call's transcript on the call clock, sans-I/O.

:class:`~callgate.conversation.transcripts.Transcript` orders, merges and cuts turns by
their times. The events that carry the words do not carry those times, so this class
puts them on the call's clock (ms of caller audio, the gate's frame count):

- a caller item spans from the first audio appended after the previous commit to its
  commit. The Realtime API names the item in ``input_audio_buffer.committed``; the
  fallback pipeline names it only in its transcription, which then takes every commit
  not yet named (a cancelled answer carries its audio over into the next utterance);
- an agent item starts where its first audio joins the playback queue (now, plus the
  agent audio still queued ahead of it) and lasts as long as its audio;
- a barge-in cuts an agent item at the audio the caller heard, whether its transcript
  has arrived yet or not.

The stored record is rewritten from the first turn that changed (:meth:`changed`), so
the record reads like what happened on the line even when a barge-in comes after the
agent's text was stored, or a caller's transcription arrives after the agent answered.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from callgate.conversation.transcripts import Transcript, TranscriptOptions, Turn


@dataclass(slots=True)
class _AgentAudio:
    start_ms: int
    audio_ms: int = 0
    text: str | None = None
    fed_audio_ms: int = -1
    """``audio_ms`` when the item was last given to the transcript (-1: never)."""


class CallTranscript:
    """Feeds one call's events into a :class:`Transcript` with times on the call clock."""

    def __init__(self, options: TranscriptOptions | None = None) -> None:
        self.transcript = Transcript(options or TranscriptOptions())
        self._speech_start_ms: int | None = None
        self._unnamed: deque[tuple[int, int]] = deque()
        """Committed caller audio (start, end ms) whose item id is not known yet."""
        self._caller_times: dict[str, tuple[int, int]] = {}
        self._agent: dict[str, _AgentAudio] = {}
        self._last: list[Turn] = []

    # --- caller -------------------------------------------------------------------------

    def caller_audio(self, now_ms: int, audio_ms: int) -> None:
        """Caller audio was appended; it ends at ``now_ms`` (pre-roll reaches back)."""
        if self._speech_start_ms is None:
            self._speech_start_ms = max(0, now_ms - audio_ms)

    def caller_committed(self, now_ms: int) -> None:
        """callgate committed the caller's audio (client turn mode)."""
        start = self._speech_start_ms if self._speech_start_ms is not None else now_ms
        self._unnamed.append((start, now_ms))
        self._speech_start_ms = None

    def caller_item(self, item_id: str, now_ms: int) -> None:
        """The model named a committed input item (``input_audio_buffer.committed``).

        In the server turn modes the model commits by itself, so there is no commit of
        ours waiting: the item is the speech appended since the last one.
        """
        if item_id in self._caller_times:
            return
        if self._unnamed:
            self._caller_times[item_id] = self._unnamed.popleft()
        else:
            start = self._speech_start_ms if self._speech_start_ms is not None else now_ms
            self._caller_times[item_id] = (start, now_ms)
            self._speech_start_ms = None

    def caller_text(self, item_id: str, text: str, now_ms: int) -> None:
        """The caller's transcription of one item."""
        times = self._caller_times.get(item_id)
        if times is None:
            if self._unnamed:
                times = (self._unnamed[0][0], self._unnamed[-1][1])
                self._unnamed.clear()
            else:
                times = (now_ms, now_ms)
            self._caller_times[item_id] = times
        self.transcript.caller_fragment(item_id, text, *times)

    # --- agent --------------------------------------------------------------------------

    def agent_audio(self, item_id: str, audio_ms: int, now_ms: int, queued_ms: int) -> None:
        """Agent audio joined the playback queue, behind ``queued_ms`` not yet played."""
        item = self._agent.get(item_id)
        if item is None:
            item = self._agent[item_id] = _AgentAudio(start_ms=now_ms + max(0, queued_ms))
        item.audio_ms += audio_ms

    def agent_text(self, item_id: str, text: str, now_ms: int) -> None:
        """The agent's transcript of one item (it may come before all its audio)."""
        item = self._agent.setdefault(item_id, _AgentAudio(start_ms=now_ms))
        item.text = text
        item.fed_audio_ms = -1

    def interrupted(self, item_id: str, heard_ms: int) -> None:
        """A barge-in stopped this agent item after ``heard_ms`` of it had played."""
        self.transcript.agent_interrupted(item_id, heard_ms)

    # --- reading ------------------------------------------------------------------------

    def turns(self) -> list[Turn]:
        """The transcript as it reads now."""
        for item_id, item in self._agent.items():
            if item.text is not None and item.fed_audio_ms != item.audio_ms:
                self.transcript.agent_turn(item_id, item.text, item.start_ms, item.audio_ms)
                item.fed_audio_ms = item.audio_ms
        return self.transcript.turns()

    def changed(self) -> list[Turn] | None:
        """The whole transcript if it differs from the last time this returned it."""
        turns = self.turns()
        if turns == self._last:
            return None
        self._last = turns
        return turns
