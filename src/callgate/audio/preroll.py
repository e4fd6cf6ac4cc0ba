"""Pre-roll: the audio just before a speech onset, kept so word beginnings are not cut.

Only frames that were *not* sent are kept, so an onset right after a hangover never sends
the same audio twice. Each frame keeps its SNR too: at an onset the gate looks back for
where the evidence of speech began (:meth:`PrerollBuffer.evidence_run`), which for a soft
onset in noise lies further back than the fixed pre-roll reaches.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callgate.audio.compiled import kernel


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
    """Ring of the most recent unsent frames, each with the SNR it was judged at.

    Frames, SNRs and flags live in arrays that the kernels below work on, so that a
    compiled gate step can run the same pre-roll.
    """

    def __init__(self, max_frames: int, frame_samples: int = 160) -> None:
        if max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        self.max_frames = max_frames
        self.frame_samples = frame_samples
        slots = max(max_frames, 1)
        self.frames = np.zeros((slots, frame_samples), dtype=np.int16)
        self.snr = np.zeros(slots)
        """Each frame's SNR; -inf marks another talker's syllable."""
        self.voiced = np.zeros(slots, dtype=np.bool_)
        self.counters = np.zeros(2, dtype=np.int64)
        """How many frames are held, and the slot the next one goes to."""

    def __len__(self) -> int:
        return int(self.counters[_LENGTH])

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
        if frame.size != self.frame_samples:
            raise ValueError(f"pre-roll frames are {self.frame_samples} samples, got {frame.size}")
        if self.max_frames:
            preroll_push(
                self.frames, self.snr, self.voiced, self.counters, frame, snr_db, voiced, foreign
            )

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
        return preroll_evidence(
            self.snr, self.voiced, self.counters, skip, rule.snr_db, rule.dip, rule.gap, limit
        )

    def drain(self, frames: int | None = None) -> list[npt.NDArray[np.int16]]:
        """Return the newest ``frames`` frames (default all), oldest first; empty the ring."""
        wanted = len(self) if frames is None else frames
        out = np.empty(min(wanted, len(self)) * self.frame_samples, dtype=np.int16)
        taken = preroll_take(self.frames, self.counters, wanted, out)
        return list(out.reshape(taken, self.frame_samples))

    def clear(self) -> None:
        """Forget everything, e.g. after the frames were sent."""
        self.counters[:] = 0


_LENGTH, _HEAD = range(2)


@kernel
def preroll_push(  # noqa: PLR0917 (a kernel takes its buffers as arguments)
    frames: npt.NDArray[np.int16],
    snr: npt.NDArray[np.float64],
    voiced: npt.NDArray[np.bool_],
    counters: npt.NDArray[np.int64],
    frame: npt.NDArray[np.int16],
    snr_db: float,
    is_voiced: bool,
    foreign: bool,
) -> None:
    """Write a frame into the ring's next slot."""
    slot = counters[_HEAD]
    frames[slot, :] = frame
    snr[slot] = -np.inf if foreign else snr_db
    voiced[slot] = is_voiced
    counters[_HEAD] = (slot + 1) % snr.size
    counters[_LENGTH] = min(counters[_LENGTH] + 1, snr.size)


@kernel
def preroll_evidence(  # noqa: PLR0917
    snr: npt.NDArray[np.float64],
    voiced: npt.NDArray[np.bool_],
    counters: npt.NDArray[np.int64],
    skip: int,
    rule_snr: float,
    rule_dip: int,
    rule_gap: int,
    limit: int,
) -> int:
    """:meth:`PrerollBuffer.evidence_run` over the ring."""
    size = snr.size
    # The ring slot of the frame ``reach`` frames before the newest ``skip``.
    newest = counters[_HEAD] - 1 - skip
    limit = min(limit, counters[_LENGTH] - skip)
    run = 0
    gap = 0
    for reach in range(1, limit + 1):
        slot = (newest - reach + 1) % size
        if snr[slot] == -np.inf:
            limit = reach - 1
            break
        if voiced[slot]:
            run, gap = reach, 0
        else:
            gap += 1
            if gap > rule_gap:
                break
    dip = 0
    for reach in range(run + 1, limit + 1):
        level = snr[(newest - reach + 1) % size]
        if level >= rule_snr:
            run, dip = reach, 0
        elif level == -np.inf:
            break
        else:
            dip += 1
            if dip > rule_dip:
                break
    return run


@kernel
def preroll_take(
    frames: npt.NDArray[np.int16],
    counters: npt.NDArray[np.int64],
    wanted: int,
    out: npt.NDArray[np.int16],
) -> int:
    """Copy the newest ``wanted`` frames (or all there are), oldest first, to the start
    of ``out``, and empty the ring; returns how many were copied."""
    count = min(wanted, counters[_LENGTH])
    size = frames.shape[1]
    first = counters[_HEAD] - count
    for k in range(count):
        out[k * size : (k + 1) * size] = frames[(first + k) % frames.shape[0]]
    counters[:] = 0
    return int(count)
