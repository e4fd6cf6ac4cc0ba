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
    """Gain state carried across the utterances of one call.

    The gain and the speech level live in an array that the kernels below work on, so
    that a compiled gate step can apply the very same gain.
    """

    def __init__(self, options: AgcOptions | None = None) -> None:
        self.options = options or AgcOptions()
        o = self.options
        self._alpha = 1.0 - math.exp(-o.frame_ms / o.level_time_ms)
        self.params = np.array(
            [self._alpha, o.target_dbfs, o.max_gain_db, o.max_cut_db, o.max_step_db]
        )
        self.state = np.zeros(2)
        """The gain in dB, and the smoothed speech level in dBFS (NaN before any)."""
        self.reset()

    def reset(self) -> None:
        """Forget the talker's level."""
        self.state[:] = (0.0, math.nan)

    @property
    def gain_db(self) -> float:
        """The gain the last frame ended at, in dB."""
        return float(self.state[_GAIN])

    @gain_db.setter
    def gain_db(self, value: float) -> None:
        self.state[_GAIN] = value

    @property
    def _speech_dbfs(self) -> float | None:
        level = float(self.state[_SPEECH])
        return None if math.isnan(level) else level

    @_speech_dbfs.setter
    def _speech_dbfs(self, value: float | None) -> None:
        self.state[_SPEECH] = math.nan if value is None else value

    def _desired(self) -> float:
        return agc_desired(self.state, self.params)

    def start_utterance(self, level_dbfs: float) -> None:
        """Seed the level at an onset, so the first words already get a fitting gain."""
        agc_start(self.state, self.params, level_dbfs)

    def apply(
        self, frame: npt.NDArray[np.int16], level_dbfs: float, *, speech: bool
    ) -> tuple[npt.NDArray[np.int16], float]:
        """Gain one sent frame. ``speech`` frames update the level; hangover frames do not."""
        out = np.empty(frame.size, dtype=np.int16)
        gain = agc_apply(self.state, self.params, frame, level_dbfs, speech, out)
        return out, gain

    def gained(
        self, frame: npt.NDArray[np.int16], from_db: float, to_db: float
    ) -> npt.NDArray[np.int16]:
        """Apply a gain ramp from ``from_db`` to ``to_db`` across the frame."""
        out = np.empty(frame.size, dtype=np.int16)
        gain_ramp(frame, from_db, to_db, out)
        return out


_GAIN, _SPEECH = range(2)
_ALPHA, _TARGET, _MAX_GAIN, _MAX_CUT, _MAX_STEP = range(5)


@kernel
def agc_desired(state: npt.NDArray[np.float64], params: npt.NDArray[np.float64]) -> float:
    """The gain that brings the speech level to the target, within the bounds."""
    if math.isnan(state[_SPEECH]):
        return 0.0
    target = params[_TARGET] - state[_SPEECH]
    return float(min(params[_MAX_GAIN], max(-params[_MAX_CUT], target)))


@kernel
def agc_start(
    state: npt.NDArray[np.float64], params: npt.NDArray[np.float64], level: float
) -> None:
    """Seed the speech level at the first onset, and jump to its gain."""
    if math.isnan(state[_SPEECH]):
        state[_SPEECH] = level
        state[_GAIN] = agc_desired(state, params)


@kernel
def agc_apply(  # noqa: PLR0917 (a kernel takes its buffers as arguments)
    state: npt.NDArray[np.float64],
    params: npt.NDArray[np.float64],
    frame: npt.NDArray[np.int16],
    level: float,
    speech: bool,
    out: npt.NDArray[np.int16],
) -> float:
    """Gain one sent chunk into ``out`` (its first ``frame.size`` samples); returns the gain.

    The gain moves towards the desired one by at most ``max_step_db``, backs off so the
    chunk's peak stays inside int16, and ramps across the chunk from the previous gain.
    """
    if speech:
        current = level if math.isnan(state[_SPEECH]) else state[_SPEECH]
        state[_SPEECH] = current + (level - current) * params[_ALPHA]
    previous = state[_GAIN]
    limit = params[_MAX_STEP]
    gain = previous + min(limit, max(-limit, agc_desired(state, params) - previous))
    peak = 0
    for sample in frame:
        peak = max(peak, abs(int(sample)))  # in a wider int: -32768 counts as 32768
    if peak:
        gain = min(gain, 20.0 * math.log10(32767.0 / peak))
    gain = min(params[_MAX_GAIN], max(-params[_MAX_CUT], gain))
    state[_GAIN] = gain
    gain_ramp(frame, previous, gain, out)
    return float(gain)


@kernel
def gain_ramp(
    frame: npt.NDArray[np.int16], from_db: float, to_db: float, out: npt.NDArray[np.int16]
) -> None:
    """``out`` = the frame times a gain ramp from ``from_db`` towards ``to_db``
    (``linspace(from_db, to_db, n, endpoint=False)``, by its own arithmetic), rounded half
    to even and clipped to int16."""
    n = frame.size
    if from_db == 0.0 and to_db == 0.0:
        out[:n] = frame
        return
    delta = to_db - from_db
    step = delta / n
    # linspace's own way when the step underflows to zero: i / n * delta.
    underflow = step == 0.0 and delta != 0.0
    for i in range(n):
        ramp = i / n * delta + from_db if underflow else i * step + from_db
        out[i] = min(max(np.rint(frame[i] * 10.0 ** (ramp / 20.0)), -32768.0), 32767.0)
