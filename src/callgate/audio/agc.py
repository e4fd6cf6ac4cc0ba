"""Automatic gain control for sent speech only.

AGC runs after the gate's decision and touches only frames that are sent, so noise is
never amplified into something that looks like speech. The gain follows a smoothed speech
level towards a target, stays within bounds, and changes by at most ``max_step_db`` per
frame, ramped across the frame's samples so there are no clicks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callgate.audio.compiled import kernel


@dataclass(frozen=True, slots=True)
class AgcOptions:
    """Target and bounds of the speech AGC."""

    target_dbfs: float = -20.0
    """Level sent speech is brought towards, in dBFS."""
    max_gain_db: float = 18.0
    """Largest boost, in dB."""
    max_cut_db: float = 6.0
    """Largest attenuation, in dB."""
    max_step_db: float = 1.0
    """Largest gain change between consecutive frames, in dB."""
    level_time_ms: float = 400.0
    """Time constant of the speech level estimate, in ms."""
    frame_ms: int = 20
    """Frame duration, in ms."""

    def __post_init__(self) -> None:
        if self.max_gain_db < 0 or self.max_cut_db < 0:
            raise ValueError("max_gain_db and max_cut_db must be >= 0")
        if self.max_step_db <= 0 or self.level_time_ms <= 0 or self.frame_ms <= 0:
            raise ValueError("max_step_db, level_time_ms and frame_ms must be positive")


class SpeechAgc:
    """Gain state carried across the utterances of one call."""

    def __init__(self, options: AgcOptions | None = None) -> None:
        self.options = options or AgcOptions()
        self._alpha = 1.0 - math.exp(-self.options.frame_ms / self.options.level_time_ms)
        self.reset()

    def reset(self) -> None:
        """Forget the talker's level."""
        self.gain_db = 0.0
        self._speech_dbfs: float | None = None

    def _desired(self) -> float:
        o = self.options
        if self._speech_dbfs is None:
            return 0.0
        return min(o.max_gain_db, max(-o.max_cut_db, o.target_dbfs - self._speech_dbfs))

    def start_utterance(self, level_dbfs: float) -> None:
        """Seed the level at an onset, so the first words already get a fitting gain."""
        if self._speech_dbfs is None:
            self._speech_dbfs = level_dbfs
            self.gain_db = self._desired()

    def apply(
        self, frame: npt.NDArray[np.int16], level_dbfs: float, *, speech: bool
    ) -> tuple[npt.NDArray[np.int16], float]:
        """Gain one sent frame. ``speech`` frames update the level; hangover frames do not."""
        o = self.options
        if speech:
            current = self._speech_dbfs if self._speech_dbfs is not None else level_dbfs
            self._speech_dbfs = current + (level_dbfs - current) * self._alpha
        previous = self.gain_db
        step = min(o.max_step_db, max(-o.max_step_db, self._desired() - previous))
        gain = previous + step
        # Never clip: back the gain off so the frame's peak stays inside int16.
        peak = _peak_magnitude(frame) if frame.size else 0
        if peak:
            gain = min(gain, 20.0 * math.log10(32767.0 / peak))
        gain = min(o.max_gain_db, max(-o.max_cut_db, gain))
        self.gain_db = gain
        return self.gained(frame, previous, gain), gain

    def gained(
        self, frame: npt.NDArray[np.int16], from_db: float, to_db: float
    ) -> npt.NDArray[np.int16]:
        """Apply a gain ramp from ``from_db`` to ``to_db`` across the frame."""
        if from_db == to_db == 0.0:
            return frame
        out = np.empty(frame.size, dtype=np.int16)
        step = (to_db - from_db) / frame.size if frame.size else 0.0
        if from_db != to_db and step == 0.0:
            # A change too small for the step to be represented: linspace's way.
            ramp = np.linspace(from_db, to_db, frame.size, endpoint=False)
            scaled = np.rint(frame * 10.0 ** (ramp / 20.0))
            out[:] = np.minimum(np.maximum(scaled, -32768.0), 32767.0)
        else:
            _ramp_gain(frame, from_db, step, out)
        return out


@kernel
def _peak_magnitude(frame: npt.NDArray[np.int16]) -> int:
    """The largest sample magnitude, in a wider int so -32768 counts as 32768."""
    peak = 0
    for sample in frame:
        peak = max(peak, abs(int(sample)))
    return peak


@kernel
def _ramp_gain(
    frame: npt.NDArray[np.int16], from_db: float, step_db: float, out: npt.NDArray[np.int16]
) -> None:
    """``out`` = the frame times a gain rising by ``step_db`` per sample from ``from_db``
    (``linspace(from_db, to_db, n, endpoint=False)``, by its own arithmetic), rounded
    half to even and clipped to int16."""
    for i in range(frame.size):
        gain = 10.0 ** ((i * step_db + from_db) / 20.0)
        out[i] = min(max(np.rint(frame[i] * gain), -32768.0), 32767.0)
