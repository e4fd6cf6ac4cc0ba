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
    """Running estimate of the caller's voiced speech level (near its louder syllables)."""

    def __init__(self, options: TalkerOptions | None = None) -> None:
        self.options = options or TalkerOptions()
        o = self.options
        self._attack = 1.0 - math.exp(-o.frame_ms / o.attack_time_ms)
        self._release = 1.0 - math.exp(-o.frame_ms / o.level_time_ms)
        self._relax = o.relax_db_per_s * o.frame_ms / 1000.0
        self.reset()

    def reset(self) -> None:
        """Forget the caller."""
        self.level_dbfs: float | None = None
        self._voiced_frames = 0

    @property
    def known(self) -> bool:
        """Enough of the caller has been heard to judge candidates by."""
        return self.level_dbfs is not None and self._voiced_frames >= self.options.learn_frames

    def update(self, level_dbfs: float, *, voiced_speech: bool) -> None:
        """Account for one frame: voiced confirmed speech teaches, anything else relaxes."""
        if voiced_speech:
            self._voiced_frames += 1
            current = self.level_dbfs if self.level_dbfs is not None else level_dbfs
            # Fast up, slow down: the reference sits near the caller's louder syllables,
            # so a quieter background talker confirmed by mistake cannot drag it down.
            alpha = self._attack if level_dbfs > current else self._release
            self.level_dbfs = current + (level_dbfs - current) * alpha
        elif self.level_dbfs is not None:
            self.level_dbfs -= self._relax

    def accepts(self, peak_dbfs: float) -> bool:
        """Could a candidate whose loudest frame is ``peak_dbfs`` be the caller?"""
        return self._within(peak_dbfs, self.options.margin_db)

    def continues(self, peak_dbfs: float) -> bool:
        """Could a candidate right after the caller's speech, peaking at ``peak_dbfs``, be
        the end of their sentence?"""
        return self._within(peak_dbfs, self.options.continue_margin_db)

    def holds(self, level_dbfs: float) -> bool:
        """Is a frame during speech loud enough to be the caller still talking?"""
        return self._within(level_dbfs, self.options.hold_margin_db)

    def _within(self, level_dbfs: float, margin_db: float) -> bool:
        if not self.known or self.options.margin_db == 0 or self.level_dbfs is None:
            return True
        return level_dbfs >= self.level_dbfs - margin_db
