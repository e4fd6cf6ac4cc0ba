"""Benchmark metrics: what the caller and the bill would notice.

The frame and utterance scores are callgate.tuning.score (the operator's `callgate tune`
scores recordings the same way); this file groups them by clip kind, noise family and
talker. Noise-only and music-only sent shares are false triggers (cost, invented
transcripts); utterance recall and onset clipping say whether the caller was heard and
whether the first word survived.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from callgate.tuning.score import FrameScore

FRAME_MS = 20
BoolMask = npt.NDArray[np.bool_]


@dataclass
class DetectorResult:
    """All tallies for one detector over the corpus."""

    name: str
    speech: FrameScore = field(default_factory=FrameScore)  # clips with speech
    overall: FrameScore = field(default_factory=FrameScore)  # every clip
    noise_only: FrameScore = field(default_factory=FrameScore)
    music_only: FrameScore = field(default_factory=FrameScore)
    by_family: dict[str, FrameScore] = field(default_factory=dict)
    by_talker: dict[str, FrameScore] = field(default_factory=dict)
    no_speech_by_family: dict[str, FrameScore] = field(default_factory=dict)
    by_voice_family: dict[tuple[str, str], FrameScore] = field(default_factory=dict)
    cpu_ns: int = 0
    frames: int = 0

    def add_clip(  # noqa: PLR0917 (the clip's attributes, in the spec's order)
        self,
        kind: str,
        family: str,
        talker: str,
        sent: BoolMask,
        labels: BoolMask,
        voice: str = "espeak",
    ) -> None:
        """Tally one clip into the overall, per-kind, per-family, per-talker and per-voice
        buckets."""
        c = FrameScore()
        c.add(sent, labels)
        self.overall.merge(c)
        if kind in ("noise_only", "music_only"):
            (self.noise_only if kind == "noise_only" else self.music_only).merge(c)
            self.no_speech_by_family.setdefault(family, FrameScore()).merge(c)
        else:
            self.speech.merge(c)
            self.by_family.setdefault(family, FrameScore()).merge(c)
            self.by_talker.setdefault(talker, FrameScore()).merge(c)
            self.by_voice_family.setdefault((voice, family), FrameScore()).merge(c)

    @property
    def by_voice(self) -> dict[str, FrameScore]:
        """Speech clips per voice: the sum of that voice's families."""
        out: dict[str, FrameScore] = {}
        for (voice, _), score in self.by_voice_family.items():
            out.setdefault(voice, FrameScore()).merge(score)
        return out

    @property
    def cpu_us_per_frame(self) -> float:
        """CPU microseconds per 20 ms frame (single-threaded)."""
        return self.cpu_ns / 1000.0 / self.frames if self.frames else float("nan")
