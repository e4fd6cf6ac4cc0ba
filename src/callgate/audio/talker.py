"""The caller's own speech level, to tell them apart from a TV or people in the room.

Background talkers carry real speech: voicing, syllables and all. What gives them away
on a phone line is distance. The caller holds the phone; the TV is across the room,
typically 15-25 dB quieter. Once the caller has spoken, a new candidate whose loudest frame
is more than ``margin_db`` below the caller's voiced level is not them. The reference
relaxes slowly while nobody speaks, so a caller who steps back is not locked out for good.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callgate.audio.compiled import kernel


@dataclass(frozen=True, slots=True)
class TalkerOptions:
    """How the caller's level is learned and used."""

    margin_db: float = 14.0
    """A candidate whose loudest frame is further below the caller's level is rejected (0 = off)."""
    continue_margin_db: float = 18.0
    """A candidate that opens right after the caller's speech (the gate's
    ``continuation_ms``) may be this far below: a sentence's soft last word. Between the
    two other margins: 20 dB let a TV that starts right after the caller in too (TV F1
    0.622 -> 0.616, Silero 0.618); 18 dB keeps the same last words (gate ASR benchmark)
    at TV 0.620."""
    hold_margin_db: float = 20.0
    """During speech, frames further below the caller's level stop holding the gate open."""
    learn_frames: int = 25
    """Voiced speech frames needed before the reference is used."""
    attack_time_ms: float = 100.0
    """Time constant for following louder voiced frames, in ms."""
    level_time_ms: float = 4000.0
    """Time constant for following quieter voiced frames, in ms."""
    relax_db_per_s: float = 0.25
    """How fast the reference falls while no speech is confirmed, in dB per second."""
    frame_ms: int = 20
    """Frame duration, in ms."""

    def __post_init__(self) -> None:
        if self.margin_db < 0 or self.learn_frames < 1:
            raise ValueError("margin_db must be >= 0 and learn_frames >= 1")
        if not self.margin_db <= self.continue_margin_db <= self.hold_margin_db:
            raise ValueError(
                "margins must satisfy margin_db <= continue_margin_db <= hold_margin_db: "
                "continuing is easier than starting and harder than holding"
            )
        if self.attack_time_ms <= 0 or self.level_time_ms <= 0:
            raise ValueError("attack_time_ms and level_time_ms must be positive")
        if self.relax_db_per_s < 0:
            raise ValueError(f"relax_db_per_s must be >= 0, got {self.relax_db_per_s}")


class TalkerLevel:
    """Running estimate of the caller's voiced speech level (near its louder syllables).

    The state and the settings are arrays that the kernels below work on, so that a
    compiled gate step can call the same kernels.
    """

    def __init__(self, options: TalkerOptions | None = None) -> None:
        self.options = options or TalkerOptions()
        o = self.options
        self.params = np.array(
            [
                1.0 - math.exp(-o.frame_ms / o.attack_time_ms),
                1.0 - math.exp(-o.frame_ms / o.level_time_ms),
                o.relax_db_per_s * o.frame_ms / 1000.0,
                o.margin_db,
                o.continue_margin_db,
                o.hold_margin_db,
                o.learn_frames,
            ]
        )
        self.state = np.zeros(2)
        """The caller's level in dBFS (NaN until heard) and the voiced frames heard."""
        self.reset()

    def reset(self) -> None:
        """Forget the caller."""
        self.state[:] = (math.nan, 0.0)

    @property
    def level_dbfs(self) -> float | None:
        """The caller's voiced level, in dBFS; ``None`` before any voiced speech."""
        level = float(self.state[_LEVEL])
        return None if math.isnan(level) else level

    @property
    def known(self) -> bool:
        """Enough of the caller has been heard to judge candidates by."""
        return talker_known(self.state, self.params)

    def update(self, level_dbfs: float, *, voiced_speech: bool) -> None:
        """Account for one frame: voiced confirmed speech teaches, anything else relaxes."""
        talker_update(self.state, self.params, level_dbfs, voiced_speech)

    def accepts(self, peak_dbfs: float) -> bool:
        """Could a candidate whose loudest frame is ``peak_dbfs`` be the caller?"""
        return talker_within(self.state, self.params, peak_dbfs, MARGIN)

    def continues(self, peak_dbfs: float) -> bool:
        """Could a candidate right after the caller's speech, peaking at ``peak_dbfs``, be
        the end of their sentence?"""
        return talker_within(self.state, self.params, peak_dbfs, CONTINUE_MARGIN)

    def holds(self, level_dbfs: float) -> bool:
        """Is a frame during speech loud enough to be the caller still talking?"""
        return talker_within(self.state, self.params, level_dbfs, HOLD_MARGIN)


_LEVEL, _VOICED = range(2)
_ATTACK, _RELEASE, _RELAX = range(3)
MARGIN, CONTINUE_MARGIN, HOLD_MARGIN, _LEARN = range(3, 7)
"""Where the three margins sit in the settings: the ``margin`` argument of talker_within."""


@kernel
def talker_update(
    state: npt.NDArray[np.float64], params: npt.NDArray[np.float64], level: float, voiced: bool
) -> None:
    """Voiced confirmed speech teaches the level, fast up and slow down, so that it sits
    near the caller's louder syllables and a quieter background talker confirmed by
    mistake cannot drag it down; any other frame relaxes it."""
    if voiced:
        state[_VOICED] += 1.0
        current = level if math.isnan(state[_LEVEL]) else state[_LEVEL]
        alpha = params[_ATTACK] if level > current else params[_RELEASE]
        state[_LEVEL] = current + (level - current) * alpha
    elif not math.isnan(state[_LEVEL]):
        state[_LEVEL] -= params[_RELAX]


@kernel
def talker_known(state: npt.NDArray[np.float64], params: npt.NDArray[np.float64]) -> bool:
    """Enough voiced frames heard for the level to judge by."""
    return not math.isnan(state[_LEVEL]) and state[_VOICED] >= params[_LEARN]


@kernel
def talker_within(
    state: npt.NDArray[np.float64], params: npt.NDArray[np.float64], level: float, margin: int
) -> bool:
    """Is ``level`` within the margin at index ``margin`` of the caller's level (always,
    while the caller is unknown or the talker rule is off)?"""
    if not talker_known(state, params) or params[MARGIN] == 0.0:
        return True
    return bool(level >= state[_LEVEL] - params[margin])
