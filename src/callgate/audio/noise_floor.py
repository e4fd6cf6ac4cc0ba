"""Dynamic noise floor: calibrated at call start, then tracked for the rest of the call.

Rules, in order:
1. Calibration: over the first ``calibration_ms`` the floor is a low percentile of the
   levels seen so far, so a caller who speaks at once is not taken for noise.
2. Falling noise is followed quickly: a level below the floor pulls it down with a short
   time constant.
3. Rising noise is learned slowly, and only from frames the gate has judged not to be
   speech. The caller's speech is never averaged into the floor.
4. Steady sound is noise whatever the gate thought: when the level has stayed within a
   narrow spread for ``steady_window_ms`` (a fan switched on, a window opened), the floor
   moves up to it quickly. Speech is never this steady, because syllables rise and fall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callgate.audio.compiled import kernel


@dataclass(frozen=True, slots=True)
class NoiseFloorOptions:
    """How the noise floor is calibrated and tracked."""

    frame_ms: int = 20
    """Duration of one level measurement, in ms."""
    calibration_ms: int = 600
    """Initial calibration period, in ms (0 skips it)."""
    calibration_percentile: float = 25.0
    """Percentile of the calibration levels taken as the floor."""
    fall_time_ms: float = 100.0
    """Time constant for following a falling floor, in ms."""
    music_fall_time_ms: float = 1500.0
    """Time constant for following a falling floor while music plays, in ms: the short
    gaps between notes must not drag the floor down, or every note would start a candidate."""
    rise_time_ms: float = 1500.0
    """Time constant for learning a rising floor from non-speech frames, in ms."""
    steady_window_ms: int = 400
    """How long sound must stay steady before it is taken for noise, in ms. 400 rather
    than 600 lets the floor catch a passing car before it holds the gate open (street
    noise-only false triggers 7.1% -> 2.8%, gate benchmark 2026-11-25)."""
    steady_spread_db: float = 3.0
    """Largest standard deviation of the level, in dB, that still counts as steady."""
    steady_rise_time_ms: float = 300.0
    """Time constant for adopting a steady level as the floor, in ms."""
    initial_floor_dbfs: float = -70.0
    """Floor before the first frame arrives, in dBFS."""

    def __post_init__(self) -> None:
        for name in (
            "frame_ms",
            "fall_time_ms",
            "music_fall_time_ms",
            "rise_time_ms",
            "steady_rise_time_ms",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.calibration_ms < 0:
            raise ValueError(f"calibration_ms must be >= 0, got {self.calibration_ms}")
        if not 0 <= self.calibration_percentile <= 100:
            raise ValueError(
                f"calibration_percentile must be 0-100, got {self.calibration_percentile}"
            )
        if self.steady_window_ms < 2 * self.frame_ms:
            raise ValueError("steady_window_ms must cover at least two frames")


def _smoothing(frame_ms: float, time_constant_ms: float) -> float:
    return 1.0 - math.exp(-frame_ms / time_constant_ms)


class NoiseFloorTracker:
    """Tracks the background level in dBFS, one frame at a time."""

    def __init__(self, options: NoiseFloorOptions | None = None) -> None:
        self.options = options or NoiseFloorOptions()
        o = self.options
        calibration_frames = o.calibration_ms // o.frame_ms
        self.params = np.array(
            [
                calibration_frames,
                _smoothing(o.frame_ms, o.fall_time_ms),
                _smoothing(o.frame_ms, o.music_fall_time_ms),
                _smoothing(o.frame_ms, o.rise_time_ms),
                _smoothing(o.frame_ms, o.steady_rise_time_ms),
                o.steady_window_ms // o.frame_ms,
                o.steady_spread_db**2,
                o.calibration_percentile,
                o.initial_floor_dbfs,
            ]
        )
        self.state = np.zeros(6)
        """Floor (dBFS), frames seen, the steady window's sum and sum of squares, its
        length and the next slot of its ring."""
        self.recent = np.zeros(o.steady_window_ms // o.frame_ms)
        """The steady window: the latest levels, as a ring."""
        self.calibration = np.zeros(max(calibration_frames, 1))
        """The levels of the calibration period."""
        self.reset()

    def reset(self) -> None:
        """Forget the room, as at the start of a new call."""
        self.state[:] = 0.0
        self.state[_FLOOR] = self.options.initial_floor_dbfs

    @property
    def floor_dbfs(self) -> float:
        """The current noise floor, in dBFS."""
        return floor_level(self.state)

    @property
    def frames_seen(self) -> int:
        """Levels accounted for since the reset."""
        return int(self.state[_SEEN])

    @property
    def calibrating(self) -> bool:
        """Still inside the initial calibration period."""
        return floor_calibrating(self.state, self.params)

    def steady(self) -> bool:
        """Has the level stayed within ``steady_spread_db`` for ``steady_window_ms``?"""
        return floor_steady(self.state, self.params)

    def update(self, level_dbfs: float, *, speech: bool, music: bool = False) -> float:
        """Account for one frame's level; returns the new floor.

        ``speech`` is the gate's verdict on the frame (MAYBE_SPEECH, SPEECH or hangover);
        such frames can lower the floor but not raise it, unless the sound is steady.
        ``music`` slows the fall, so the floor sits under the music rather than its gaps.
        """
        return floor_update(
            self.state, self.params, self.recent, self.calibration, level_dbfs, speech, music
        )

    def rebase(self) -> float:
        """Lift the floor to the quietest level of the steady window.

        Called when the room changes in a way the gate recognises (music starts): the
        new sound's quiet moments are the new floor, not the old room's silence.
        """
        return floor_rebase(self.state, self.recent)


_FLOOR, _SEEN, _SUM, _SUM_SQ, _LENGTH, _HEAD = range(6)
(
    _CALIBRATION_FRAMES,
    _FALL,
    _MUSIC_FALL,
    _RISE,
    _STEADY_RISE,
    _STEADY_FRAMES,
    _STEADY_VARIANCE,
    _PERCENTILE,
) = range(8)


@kernel
def floor_steady(state: npt.NDArray[np.float64], params: npt.NDArray[np.float64]) -> bool:
    """Is the steady window full and its spread within ``steady_spread_db``?"""
    n = state[_LENGTH]
    if n < params[_STEADY_FRAMES]:
        return False
    mean = state[_SUM] / n
    variance = max(0.0, state[_SUM_SQ] / n - mean * mean)
    return bool(variance <= params[_STEADY_VARIANCE])


@kernel
def floor_update(  # noqa: PLR0917 (a kernel takes its buffers as arguments)
    state: npt.NDArray[np.float64],
    params: npt.NDArray[np.float64],
    recent: npt.NDArray[np.float64],
    calibration: npt.NDArray[np.float64],
    level: float,
    speech: bool,
    music: bool,
) -> float:
    """One frame of :meth:`NoiseFloorTracker.update`, by the rules in the module doc."""
    state[_SEEN] += 1.0
    # The steady window's running sums.
    head = int(state[_HEAD])
    if state[_LENGTH] == recent.size:
        oldest = recent[head]
        state[_SUM] -= oldest
        state[_SUM_SQ] -= oldest * oldest
    recent[head] = level
    state[_HEAD] = (head + 1) % recent.size
    state[_LENGTH] = min(state[_LENGTH] + 1.0, recent.size)
    state[_SUM] += level
    state[_SUM_SQ] += level * level
    seen = int(state[_SEEN])
    if seen <= params[_CALIBRATION_FRAMES]:
        calibration[seen - 1] = level
        ordered = np.sort(calibration[:seen])
        rank = params[_PERCENTILE] / 100 * (seen - 1)
        state[_FLOOR] = ordered[int(np.rint(rank))]
        return float(state[_FLOOR])
    floor = state[_FLOOR]
    if level < floor:
        fall = params[_MUSIC_FALL] if music else params[_FALL]
        floor += (level - floor) * fall
    elif floor_steady(state, params):
        floor += (state[_SUM] / state[_LENGTH] - floor) * params[_STEADY_RISE]
    elif not speech:
        floor += (level - floor) * params[_RISE]
    state[_FLOOR] = floor
    return float(floor)


@kernel
def floor_rebase(state: npt.NDArray[np.float64], recent: npt.NDArray[np.float64]) -> float:
    """Lift the floor to the quietest level in the steady window."""
    n = int(state[_LENGTH])
    if n:
        state[_FLOOR] = max(state[_FLOOR], recent[:n].min())
    return float(state[_FLOOR])


@kernel
def floor_level(state: npt.NDArray[np.float64]) -> float:
    """The current noise floor, in dBFS."""
    return float(state[_FLOOR])


@kernel
def floor_heard(state: npt.NDArray[np.float64]) -> bool:
    """Has any level been accounted for (so that an SNR against the floor means
    something)?"""
    return bool(state[_SEEN] > 0)


@kernel
def floor_calibrating(state: npt.NDArray[np.float64], params: npt.NDArray[np.float64]) -> bool:
    """Still inside the initial calibration period."""
    return bool(state[_SEEN] < params[_CALIBRATION_FRAMES])
