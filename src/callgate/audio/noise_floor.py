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
from collections import deque
from dataclasses import dataclass


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
        self._calibration_frames = o.calibration_ms // o.frame_ms
        self._fall = _smoothing(o.frame_ms, o.fall_time_ms)
        self._music_fall = _smoothing(o.frame_ms, o.music_fall_time_ms)
        self._rise = _smoothing(o.frame_ms, o.rise_time_ms)
        self._steady_rise = _smoothing(o.frame_ms, o.steady_rise_time_ms)
        self._steady_frames = o.steady_window_ms // o.frame_ms
        self._steady_variance = o.steady_spread_db**2
        self.reset()

    def reset(self) -> None:
        """Forget the room, as at the start of a new call."""
        self.floor_dbfs = self.options.initial_floor_dbfs
        self.frames_seen = 0
        self._calibration: list[float] = []
        self._recent: deque[float] = deque(maxlen=self._steady_frames)
        self._sum = 0.0
        self._sum_sq = 0.0

    @property
    def calibrating(self) -> bool:
        """Still inside the initial calibration period."""
        return self.frames_seen < self._calibration_frames

    def steady(self) -> bool:
        """The level has stayed within ``steady_spread_db`` for the whole steady window."""
        return self._steady(len(self._recent))

    def _steady(self, n: int) -> bool:
        if n < self._steady_frames:
            return False
        mean = self._sum / n
        variance = max(0.0, self._sum_sq / n - mean * mean)
        return variance <= self._steady_variance

    def update(self, level_dbfs: float, *, speech: bool, music: bool = False) -> float:
        """Account for one frame's level and return the floor to judge the *next* frame by.

        ``speech`` is the gate's verdict on the frame (MAYBE_SPEECH, SPEECH or hangover);
        such frames can lower the floor but not raise it, unless the sound is steady.
        ``music`` slows the fall, so the floor sits under the music rather than its gaps.
        """
        self.frames_seen += 1
        # The steady window's running sums, inline: this runs twice per frame of every call.
        recent = self._recent
        if len(recent) == self._steady_frames:
            oldest = recent[0]
            self._sum -= oldest
            self._sum_sq -= oldest * oldest
        recent.append(level_dbfs)
        self._sum += level_dbfs
        self._sum_sq += level_dbfs * level_dbfs
        if self.frames_seen <= self._calibration_frames:
            self._calibration.append(level_dbfs)
            ordered = sorted(self._calibration)
            rank = self.options.calibration_percentile / 100 * (len(ordered) - 1)
            self.floor_dbfs = ordered[round(rank)]
            return self.floor_dbfs
        if level_dbfs < self.floor_dbfs:
            fall = self._music_fall if music else self._fall
            self.floor_dbfs += (level_dbfs - self.floor_dbfs) * fall
        elif self._steady(len(recent)):
            self.floor_dbfs += (self._sum / len(recent) - self.floor_dbfs) * self._steady_rise
        elif not speech:
            self.floor_dbfs += (level_dbfs - self.floor_dbfs) * self._rise
        return self.floor_dbfs

    def rebase(self) -> float:
        """Lift the floor to the quietest level of the last ``steady_window_ms``, at once.

        Called when the room changes in a way the gate recognises (music starts): the
        new sound's quiet moments are the new floor, not the old room's silence.
        """
        if self._recent:
            self.floor_dbfs = max(self.floor_dbfs, min(self._recent))
        return self.floor_dbfs
