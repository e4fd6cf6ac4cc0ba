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

_max = np.maximum.reduce
_min = np.minimum.reduce


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
        # 0, 1, 2, ... as float64, for the gain ramps (grown when a longer chunk comes).
        self._counts = np.arange(0, 160, dtype=np.float64)
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
        # The largest magnitude, in Python ints so -32768 needs no wider copy of the frame.
        peak = max(int(_max(frame)), -int(_min(frame))) if frame.size else 0
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
        # np.round(x) is np.rint(x), and clip(x, lo, hi) is min(max(x, lo), hi): the same
        # numbers as before, without the wrappers' overhead on every sent frame.
        if from_db == to_db:
            scaled = np.multiply(frame, 10.0 ** (to_db / 20.0))
        else:
            scaled = np.multiply(frame, 10.0 ** (self._ramp_db(from_db, to_db, frame.size) / 20.0))
        np.rint(scaled, out=scaled)
        np.maximum(scaled, -32768.0, out=scaled)
        np.minimum(scaled, 32767.0, out=scaled)
        out: npt.NDArray[np.int16] = scaled.astype(np.int16)
        return out

    def _ramp_db(self, from_db: float, to_db: float, size: int) -> npt.NDArray[np.float64]:
        """``np.linspace(from_db, to_db, size, endpoint=False)``, by its own arithmetic."""
        step = (to_db - from_db) / size
        if step == 0.0:  # a change too small for the step to be represented: linspace's way
            ramp: npt.NDArray[np.float64] = np.linspace(from_db, to_db, size, endpoint=False)
            return ramp
        if self._counts.size < size:
            self._counts = np.arange(0, size, dtype=np.float64)
        ramp = np.multiply(self._counts[:size], step)
        ramp += from_db
        return ramp
