"""Turn-taking and barge-in on a gated stream, sans-I/O.

A model-side VAD cannot find the end of speech in audio it never receives, so callgate
decides how a caller's turn ends (``TURN_DETECTION``):

- ``client``: the model's turn detection is off. Once the gate has been silent for
  ``end_of_turn_silence_ms`` after speech was sent, the controller commits the input
  buffer and asks for a response. If the caller goes on before the answer is heard, that
  is a barge-in: the pending response is cancelled, and the next end of turn commits
  again. The fragments then get one answer, not two.
- ``server_vad`` / ``semantic_vad``: the model ends the turn. After each utterance the
  controller appends ``padding_ms`` of true digital silence (mu-law 0xFF) so the model's
  VAD sees the speech stop. Room noise is never sent.

Barge-in: when the gate confirms speech while agent audio is queued or playing, the
controller clears Twilio's playback, cancels the response if one is in progress, and
truncates the assistant item to the audio the caller actually heard. Twilio echoes a
``mark`` when the audio before it has been played, and the controller places one mark
after every 20 ms of agent audio. So "heard" is known to within one frame.

Echo guard: :attr:`TurnController.agent_audible` tells the call to raise the gate's start
threshold while the agent's voice may be leaking back down the line.

Calling protocol: feed every gate decision to :meth:`on_frame`, and every relevant model
event and Twilio mark to the other ``on_*`` methods. Each returns the actions to carry out,
in order. Time is the caller's audio: one frame is ``frame_ms``. The controller never
reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from callgate.audio.codec import pcm16_to_ulaw
from callgate.audio.decision import SILENCE, FrameDecision

TurnMode = Literal["client", "server_vad", "semantic_vad"]

ULAW_SILENCE = b"\xff"
"""Mu-law code of digital silence (G.711: 0xFF decodes to 0)."""


@dataclass(frozen=True, slots=True)
class AppendAudio:
    """``input_audio_buffer.append`` with these mu-law bytes."""

    pcmu: bytes
    padding: bool = False
    """True for the digital silence of the server turn modes, not caller audio."""


@dataclass(frozen=True, slots=True)
class CommitInput:
    """``input_audio_buffer.commit``: the caller's turn is over."""


@dataclass(frozen=True, slots=True)
class CreateResponse:
    """``response.create``: ask the model to answer."""


@dataclass(frozen=True, slots=True)
class CancelResponse:
    """``response.cancel``: the caller interrupted the answer being generated."""


@dataclass(frozen=True, slots=True)
class TruncateItem:
    """``conversation.item.truncate``: the assistant item was heard up to ``audio_end_ms``."""

    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True, slots=True)
class PlayAudio:
    """Send agent audio to Twilio as ``media``, then a ``mark`` named ``mark``."""

    pcmu: bytes
    mark: str


@dataclass(frozen=True, slots=True)
class ClearPlayback:
    """Send Twilio ``clear``: stop the agent's audio at once."""


Action = (
    AppendAudio
    | CommitInput
    | CreateResponse
    | CancelResponse
    | TruncateItem
    | PlayAudio
    | ClearPlayback
)


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """How turns end and how barge-in behaves."""

    mode: TurnMode = "client"
    """Who ends the caller's turn (TURN_DETECTION)."""
    end_of_turn_silence_ms: int = 600
    """Gate silence after speech that ends the turn in client mode, in ms."""
    padding_ms: int = 500
    """Digital silence appended after each utterance in server modes, in ms."""
    frame_ms: int = 20
    """Duration of one gate frame, in ms; also the spacing of playback marks."""

    def __post_init__(self) -> None:
        if self.frame_ms <= 0 or self.end_of_turn_silence_ms < self.frame_ms:
            raise ValueError("frame_ms must be positive and end_of_turn_silence_ms >= frame_ms")
        if self.padding_ms < 0:
            raise ValueError(f"padding_ms must be >= 0, got {self.padding_ms}")


@dataclass(slots=True)
class _Playback:
    """Agent audio of one assistant item on its way to the caller."""

    item_id: str
    content_index: int = 0
    queued_ms: int = 0
    heard_ms: int = 0
    marks: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BargeIn:
    """What a barge-in did, for the call record."""

    frame_index: int
    """The gate frame whose speech confirmation caused it."""
    item_id: str | None
    heard_ms: int
    cancelled: bool
    audio_ms: int = 0
    """Agent audio of the item queued when it was cut (for cutting its transcript)."""


class TurnController:
    """One call's turn state: what to append, when to commit, when to interrupt the agent."""

    def __init__(self, options: TurnOptions | None = None) -> None:
        self.options = options or TurnOptions()
        o = self.options
        self._frame_bytes = o.frame_ms * 8
        self._silence_frames_to_commit = o.end_of_turn_silence_ms // o.frame_ms
        self._padding = ULAW_SILENCE * (o.padding_ms * 8)
        self._uncommitted_frames = 0
        self._silent_frames = 0
        self._was_speaking = False
        self._response_active = False
        self._playback: _Playback | None = None
        self._mark_counter = 0
        self.appended_frames = 0
        self.commits = 0
        self.barge_ins: list[BargeIn] = []

    @property
    def agent_audible(self) -> bool:
        """Agent audio is queued at Twilio or still playing: the echo guard should be on."""
        p = self._playback
        return p is not None and p.queued_ms > p.heard_ms

    @property
    def unheard_ms(self) -> int:
        """Agent audio queued at Twilio and not yet confirmed played by a mark."""
        p = self._playback
        return 0 if p is None else p.queued_ms - p.heard_ms

    @property
    def response_active(self) -> bool:
        """A response was requested or is being generated and has not finished."""
        return self._response_active

    def on_frame(self, decision: FrameDecision) -> list[Action]:
        """Account for one gate decision; returns appends, commits and barge-in actions."""
        actions: list[Action] = []
        if decision.onset and (self._response_active or self.agent_audible):
            actions.extend(self._barge_in(decision.index))
        if decision.audio.size:
            actions.append(AppendAudio(pcm16_to_ulaw(decision.audio)))
            frames = decision.audio.size * 1000 // (8000 * self.options.frame_ms)
            self._uncommitted_frames += frames
            self.appended_frames += frames
        speaking = decision.state is not SILENCE
        if speaking:
            self._silent_frames = 0
        elif self._was_speaking:
            self._silent_frames = 1
            if self.options.mode != "client" and self._padding:
                actions.append(AppendAudio(self._padding, padding=True))
        elif self._silent_frames:
            self._silent_frames += 1
        self._was_speaking = speaking
        if (
            self.options.mode == "client"
            and self._uncommitted_frames
            and self._silent_frames >= self._silence_frames_to_commit
        ):
            actions.extend(self._end_turn())
        return actions

    def _end_turn(self) -> list[Action]:
        self._uncommitted_frames = 0
        self._silent_frames = 0
        self.commits += 1
        self._response_active = True
        return [CommitInput(), CreateResponse()]

    def _barge_in(self, frame_index: int) -> list[Action]:
        actions: list[Action] = []
        cancelled = self._response_active
        if cancelled:
            actions.append(CancelResponse())
            self._response_active = False
        p = self._playback
        if p is not None and p.queued_ms > p.heard_ms:
            actions.append(ClearPlayback())
        if p is not None and p.queued_ms > 0:
            actions.append(TruncateItem(p.item_id, p.content_index, p.heard_ms))
        self.barge_ins.append(
            BargeIn(
                frame_index,
                p.item_id if p else None,
                p.heard_ms if p else 0,
                cancelled,
                p.queued_ms if p else 0,
            )
        )
        self._playback = None
        return actions

    def on_response_created(self) -> None:
        """``response.created``: also covers responses the model started on its own."""
        self._response_active = True

    def on_response_done(self) -> None:
        """``response.done``: generation is over; its audio may still be playing."""
        self._response_active = False

    def on_agent_audio(self, item_id: str, content_index: int, pcmu: bytes) -> list[Action]:
        """``response.output_audio.delta``: queue it to Twilio, a mark after every frame."""
        if self._playback is None or self._playback.item_id != item_id:
            self._playback = _Playback(item_id, content_index)
        p = self._playback
        actions: list[Action] = []
        for start in range(0, len(pcmu), self._frame_bytes):
            chunk = pcmu[start : start + self._frame_bytes]
            p.queued_ms += len(chunk) // 8
            self._mark_counter += 1
            name = f"a{self._mark_counter}"
            p.marks[name] = p.queued_ms
            actions.append(PlayAudio(chunk, name))
        return actions

    def on_mark(self, name: str) -> list[Action]:
        """Twilio echoed a mark: the audio before it has been played to the caller."""
        p = self._playback
        if p is not None and name in p.marks:
            p.heard_ms = max(p.heard_ms, p.marks.pop(name))
        return []

    def on_playback_cleared(self) -> None:
        """Playback was cleared for another reason (e.g. the call is ending)."""
        self._playback = None
