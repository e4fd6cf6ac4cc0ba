"""Turn-taking and barge-in on a gated stream, sans-I/O.

A model-side VAD cannot find the end of speech in audio it never receives, so callgate
decides how a caller's turn ends (``TURN_DETECTION``):

- ``client``: the model's turn detection is off. Once the gate has been silent for
  ``end_of_turn_silence_ms`` after speech was sent, the controller commits the input
  buffer and asks for a response. If the caller goes on before the answer is heard, that
  is a barge-in: the pending response is cancelled, and the next end of turn commits
  again. The fragments then get one answer, not two.
  An early end (``early_end_ms`` set) looks again after a short pause. It commits then
  if the pause is clean (the gate's SNR stayed low, ``clean_pause_snr_db``) and, with
  ``ask_model``, the end-of-turn model hears a finished turn: :class:`PredictTurnEnd`
  carries the turn's caller audio, and :meth:`TurnController.on_turn_prediction` takes
  the answer whenever it comes. Otherwise the turn still ends after
  ``end_of_turn_silence_ms``. An answer that arrives after the caller went on, or after
  that commit, is ignored.
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

import numpy as np
import numpy.typing as npt

from callgate.audio.codec import pcm16_to_ulaw
from callgate.audio.decision import SILENCE, FrameDecision
from callgate.realtime.end_of_turn import TurnAudio

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


@dataclass(frozen=True, slots=True, eq=False)
class PredictTurnEnd:
    """Ask the end-of-turn model whether the caller has finished; answer with
    :meth:`TurnController.on_turn_prediction` and this ``request_id``, whenever it is ready.
    """

    request_id: int
    pcm16: npt.NDArray[np.int16]
    """The turn's caller audio as sent (8 kHz), the last ``model_window_ms`` of it. Pauses
    between sent stretches, including the one going on now, are digital silence of their
    real length, so the model hears the rhythm without the room noise."""


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
    | PredictTurnEnd
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
    early_end_ms: int | None = None
    """Client mode: gate silence after which the turn may end early
    (END_OF_TURN_MIN_SILENCE_MS), if the checks below agree. None: silence alone."""
    ask_model: bool = False
    """An early end needs the end-of-turn model's "complete" (END_OF_TURN_MODEL)."""
    model_threshold: float = 0.5
    """Probability of "complete" at or above which the model agrees."""
    model_window_ms: int = 8000
    """Caller audio handed to the model, in ms (Smart Turn reads the last 8 s)."""
    clean_pause_snr_db: float | None = None
    """An early end needs a clean pause: no frame of it at or above this SNR, in dB
    (END_OF_TURN_CLEAN_PAUSE_SNR_DB). Weak speech that the gate dropped still shows there.
    None: no such check."""

    def __post_init__(self) -> None:
        if self.frame_ms <= 0 or self.end_of_turn_silence_ms < self.frame_ms:
            raise ValueError("frame_ms must be positive and end_of_turn_silence_ms >= frame_ms")
        if self.padding_ms < 0:
            raise ValueError(f"padding_ms must be >= 0, got {self.padding_ms}")
        if self.early_end_ms is not None and not (
            self.frame_ms <= self.early_end_ms <= self.end_of_turn_silence_ms
        ):
            raise ValueError(
                "early_end_ms must be between frame_ms and end_of_turn_silence_ms, "
                f"got {self.early_end_ms}"
            )
        if not 0.0 <= self.model_threshold <= 1.0:
            raise ValueError(f"model_threshold must be in [0, 1], got {self.model_threshold}")
        if self.model_window_ms < self.frame_ms:
            raise ValueError(f"model_window_ms must be >= frame_ms, got {self.model_window_ms}")

    @property
    def ends_early(self) -> bool:
        """Turns may end before ``end_of_turn_silence_ms`` (client mode only)."""
        return self.mode == "client" and self.early_end_ms is not None

    @property
    def uses_model(self) -> bool:
        """The controller asks an end-of-turn model."""
        return self.ends_early and self.ask_model


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
        # The early end: the turn's audio for the model, the open request, the pause's SNR.
        self._early_frames = o.early_end_ms // o.frame_ms if o.ends_early and o.early_end_ms else 0
        self._turn_audio = TurnAudio(o.frame_ms * 8, o.model_window_ms // o.frame_ms)
        self._request_id = 0
        self._pending: int | None = None
        self._pause_peak_snr = -np.inf
        self.predictions = 0
        """Requests made to the end-of-turn model."""
        self.early_commits = 0
        """Turns ended before ``end_of_turn_silence_ms`` (by the model or a clean pause)."""

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
        o = self.options
        actions: list[Action] = []
        if decision.onset and (self._response_active or self.agent_audible):
            actions.extend(self._barge_in(decision.index))
        if o.uses_model:
            self._turn_audio.add(decision.audio, in_turn=self._uncommitted_frames > 0)
        if decision.audio.size:
            actions.append(AppendAudio(pcm16_to_ulaw(decision.audio)))
            frames = decision.audio.size * 1000 // (8000 * self.options.frame_ms)
            self._uncommitted_frames += frames
            self.appended_frames += frames
        speaking = decision.state is not SILENCE
        if speaking:
            self._silent_frames = 0
            self._pending = None  # the caller went on: an answer now is about old audio
            self._pause_peak_snr = -np.inf
        elif self._was_speaking:
            self._silent_frames = 1
            if self.options.mode != "client" and self._padding:
                actions.append(AppendAudio(self._padding, padding=True))
        elif self._silent_frames:
            self._silent_frames += 1
        self._was_speaking = speaking
        if not speaking:
            self._pause_peak_snr = max(self._pause_peak_snr, decision.snr_db)
        if (
            self.options.mode == "client"
            and self._uncommitted_frames
            and self._silent_frames >= self._silence_frames_to_commit
        ):
            actions.extend(self._end_turn())
        elif (
            self._early_frames
            and self._uncommitted_frames
            and self._silent_frames == self._early_frames
        ):
            if o.uses_model:
                actions.append(self._predict())
            elif self._clean_pause():
                self.early_commits += 1
                actions.extend(self._end_turn())
        return actions

    def _clean_pause(self) -> bool:
        limit = self.options.clean_pause_snr_db
        return limit is None or self._pause_peak_snr < limit

    def _predict(self) -> PredictTurnEnd:
        self._request_id += 1
        self._pending = self._request_id
        self.predictions += 1
        return PredictTurnEnd(self._request_id, self._turn_audio.pcm16())

    def prediction_wanted(self, request_id: int) -> bool:
        """The answer to this request could still end the turn (else skip the inference)."""
        return self._pending == request_id

    def on_turn_prediction(self, request_id: int, probability: float) -> list[Action]:
        """The end-of-turn model's answer to :class:`PredictTurnEnd`.

        Commits now if the turn is still open, the caller has been silent since the
        request, ``probability`` reaches the threshold, and the pause is clean (see
        ``clean_pause_snr_db``). Anything else is ignored: the silence timeout still ends
        the turn.
        """
        if request_id != self._pending:
            return []
        self._pending = None
        threshold = self.options.model_threshold
        if probability >= threshold and self._clean_pause() and self._uncommitted_frames:
            self.early_commits += 1
            return self._end_turn()
        return []

    def _end_turn(self) -> list[Action]:
        self._uncommitted_frames = 0
        self._silent_frames = 0
        self._pending = None
        self._turn_audio.clear()
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
