"""Pre-roll: the audio just before a speech onset, kept so word beginnings are not cut.

Only frames that were *not* sent are kept, so an onset right after a hangover never sends
the same audio twice. Each frame keeps its SNR too: at an onset the gate looks back for
where the evidence of speech began (:meth:`PrerollBuffer.evidence_run`), which for a soft
onset in noise lies further back than the fixed pre-roll reaches.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class OnsetRule:
    """What counts as the start of speech when looking back from an onset."""

    snr_db: float = 4.0
    """SNR a frame needs to belong to the soft start of a word, in dB."""
    dip: int = 1
    """Quieter frames stepped over inside the soft start."""
    gap: int = 20
    """Most frames between two syllables of the same stretch of speech."""


class PrerollBuffer:
    """Ring of the most recent unsent frames, each with the SNR it was judged at."""

    def __init__(self, max_frames: int) -> None:
        if max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        self.max_frames = max_frames
        self._frames: deque[npt.NDArray[np.int16]] = deque(maxlen=max_frames or None)
        self._snr: deque[float] = deque(maxlen=max_frames or None)
        self._voiced: deque[bool] = deque(maxlen=max_frames or None)

    def __len__(self) -> int:
        return len(self._frames)

    def push(
        self,
        frame: npt.NDArray[np.int16],
        snr_db: float = 0.0,
        *,
        voiced: bool = False,
        foreign: bool = False,
    ) -> None:
        """Remember an unsent frame, forgetting the oldest beyond ``max_frames``.

        ``voiced`` marks a syllable of the caller (voiced, above the stop threshold);
        ``foreign`` one of somebody else (far quieter than the caller): no evidence, and
        the lookback never reaches past it.
        """
        if self.max_frames:
            self._frames.append(frame)
            self._snr.append(-math.inf if foreign else snr_db)
            self._voiced.append(voiced)

    def evidence_run(self, skip: int, rule: OnsetRule, limit: int) -> int:
        """How far before the newest ``skip`` frames the speech began, at most ``limit``.

        Two walks back. First over syllables: voiced frames no more than ``rule.gap``
        frames apart (a first syllable whose candidate was rejected before the next one
        confirmed). Then, from the earliest syllable, over the soft start of the word:
        frames at or above ``rule.snr_db``, stepping over dips of at most ``rule.dip``.
        Both stop at another talker's syllable.
        Returns the distance of the earliest frame found, counted from the newest ``skip``;
        0 when nothing before them looks like speech.
        """
        snr, voiced = self._snr, self._voiced
        newest = len(snr) - skip - 1
        limit = min(limit, newest + 1)
        run = 0
        gap = 0
        for reach in range(1, limit + 1):
            if snr[newest - reach + 1] == -math.inf:
                limit = reach - 1
                break
            if voiced[newest - reach + 1]:
                run, gap = reach, 0
            else:
                gap += 1
                if gap > rule.gap:
                    break
        dip = 0
        for reach in range(run + 1, limit + 1):
            level = snr[newest - reach + 1]
            if level >= rule.snr_db:
                run, dip = reach, 0
            elif level == -math.inf:
                break
            else:
                dip += 1
                if dip > rule.dip:
                    break
        return run

    def drain(self, frames: int | None = None) -> list[npt.NDArray[np.int16]]:
        """Return the newest ``frames`` frames (default all), oldest first; empty the ring."""
        kept = list(self._frames)
        self.clear()
        if frames is not None:
            kept = kept[len(kept) - min(frames, len(kept)) :]
        return kept

    def clear(self) -> None:
        """Forget everything, e.g. after the frames were sent."""
        self._frames.clear()
        self._snr.clear()
        self._voiced.clear()
