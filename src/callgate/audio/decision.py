"""What a gate says about each frame, and the interface every gate shares."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt


class GateState(enum.Enum):
    """The speech gate's states. The allowed moves between them are in ``state_machine``."""

    SILENCE = "silence"
    MAYBE_SPEECH = "maybe_speech"
    SPEECH = "speech"


SILENCE = GateState.SILENCE
MAYBE_SPEECH = GateState.MAYBE_SPEECH
SPEECH = GateState.SPEECH


@dataclass(slots=True)
class FrameDecision:
    """The gate's verdict on one analysis frame, with the numbers that led to it.

    Read-only by convention, not frozen: building a frozen dataclass of these 17 fields
    costs about 2 us, a tenth of the whole gate's frame.

    ``audio`` holds the PCM16 samples to send *now*: at a speech onset that is the pre-roll
    (``preroll_frames`` earlier frames) followed by this frame; during speech and hangover it
    is this frame; otherwise it is empty. Gain has already been applied. ``sent`` is true
    when this frame is part of ``audio``; the pre-roll frames were decided earlier with
    ``sent=False`` and are sent retroactively, which offline tools mark from
    ``preroll_frames``.
    """

    index: int
    """Frame number since the stream started, from 0."""
    t_ms: int
    """Start time of the frame since the stream started, in milliseconds."""
    state: GateState
    """State after this frame."""
    sent: bool
    """This frame is in ``audio`` (speech or hangover)."""
    preroll_frames: int
    """Earlier frames flushed with this one at a speech onset; 0 otherwise."""
    snr_db: float
    """Pre-AGC level minus the noise floor."""
    level_dbfs: float
    """Pre-AGC level of the band-filtered frame."""
    noise_dbfs: float
    """Noise floor estimate used for this frame."""
    music: bool
    """Music was detected, so the stricter thresholds applied."""
    gain_db: float
    """AGC gain applied to this frame's audio (0 when nothing is sent)."""
    start_threshold_db: float
    """SNR needed to leave SILENCE at this frame."""
    stop_threshold_db: float
    """SNR below which SPEECH starts counting hangover frames."""
    voicing: float
    """Periodicity of the frame, 0..1, as the gate judged it: 0 where it was not computed
    and for a held tone (a horn, a held note), which is periodic but not a voice."""
    reason: str
    """A short, human-readable cause for the state after this frame."""
    audio: npt.NDArray[np.int16]
    """PCM16 samples to send now (empty when nothing is sent)."""
    lookback_frames: int = 0
    """Of ``preroll_frames``, those beyond the fixed pre-roll and the candidate frames:
    sent because the signal showed the speech had begun earlier (onset lookback)."""
    residual_snr_db: float = math.nan
    """While music plays and the gate is not in speech: the SNR of the sound between the
    music's held notes (NaN otherwise). The thresholds then judge the larger of this and
    ``snr_db``."""

    @property
    def onset(self) -> bool:
        """Speech starts at this frame: the pre-roll goes out with it."""
        return self.preroll_frames > 0 or (self.sent and self.reason == "onset")


class FrameGate(Protocol):
    """What the call bridge, the CLI and the benchmark need from a gate (or the legacy VAD)."""

    start_boost_db: float
    """Extra dB the start threshold needs, e.g. while the agent's voice may echo back."""

    @property
    def frame_samples(self) -> int:
        """Samples per analysis frame at 8 kHz."""
        ...

    @property
    def frames_seen(self) -> int:
        """Frames decided since the start of the call."""
        ...

    @property
    def frames_sent(self) -> int:
        """Frames passed on (speech, hangover and pre-roll)."""
        ...

    @property
    def frames_withheld(self) -> int:
        """Frames never passed on."""
        ...

    @property
    def frames_listened(self) -> int:
        """Frames a neural listener (Silero) heard: its CPU cost. 0 when none runs."""
        ...

    def process_pcm16(self, samples: npt.ArrayLike) -> list[FrameDecision]:
        """Feed int16 samples of any length; get one decision per completed frame."""
        ...

    def process_ulaw(self, data: bytes) -> list[FrameDecision]:
        """Feed mu-law bytes of any length; get one decision per completed frame."""
        ...

    def reset(self) -> None:
        """Forget everything, as at the start of a new call."""
        ...


def run_in_frames(gate: FrameGate, samples: npt.NDArray[np.int16]) -> list[FrameDecision]:
    """Feed a whole recording one frame at a time, as a live call would; every decision."""
    step = gate.frame_samples
    decisions: list[FrameDecision] = []
    for start in range(0, samples.size, step):
        decisions.extend(gate.process_pcm16(samples[start : start + step]))
    return decisions


def sent_mask(decisions: list[FrameDecision]) -> npt.NDArray[np.bool_]:
    """Per frame, whether it reached the model: sent live, or flushed as an onset's pre-roll.

    ``decisions`` must be a call's decisions from its first frame, so position = index.
    """
    mask = np.zeros(len(decisions), dtype=np.bool_)
    for d in decisions:
        mark_sent(mask, d)
    return mask


def mark_sent(mask: npt.NDArray[np.bool_], decision: FrameDecision) -> None:
    """Mark in ``mask`` (one entry per frame of the call) what this decision sent: its own
    frame and the pre-roll flushed with it."""
    if decision.sent:
        mask[max(0, decision.index - decision.preroll_frames) : decision.index + 1] = True
