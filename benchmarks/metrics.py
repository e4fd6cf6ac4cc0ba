"""Benchmark metrics: what the caller and the bill would notice.

Frame F1 says how well sent audio matches speech overall; noise-only and music-only sent
shares are false triggers (cost, invented transcripts); utterance recall and onset
clipping say whether the caller was heard and whether the first word survived.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

FRAME_MS = 20
FIRST_FRAMES = 5  # the first 100 ms of an utterance
BoolMask = npt.NDArray[np.bool_]


def utterances(labels: BoolMask) -> list[tuple[int, int]]:
    """Runs of True in ``labels`` as (start, end) frame ranges, end exclusive."""
    lab = np.asarray(labels, dtype=np.int8)
    edges = np.diff(np.concatenate([[0], lab, [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


@dataclass
class Counts:
    """Frame and utterance tallies that add up across clips."""

    tp: int = 0
    fp: int = 0
    fn: int = 0
    frames: int = 0
    sent: int = 0
    utterances: int = 0
    utterances_heard: int = 0  # >= 90% of frames sent
    first_100ms_lost: int = 0  # any of the first 5 frames not sent
    onset_delays_ms: list[float] = field(default_factory=list)

    def add(self, sent: BoolMask, labels: BoolMask) -> None:
        """Tally one clip's sent mask against its labels."""
        sent = np.asarray(sent, dtype=bool)
        labels = np.asarray(labels, dtype=bool)
        if sent.shape != labels.shape:
            raise ValueError(f"mask shapes differ: {sent.shape} vs {labels.shape}")
        self.tp += int(np.sum(sent & labels))
        self.fp += int(np.sum(sent & ~labels))
        self.fn += int(np.sum(~sent & labels))
        self.frames += int(sent.size)
        self.sent += int(np.sum(sent))
        for a, b in utterances(labels):
            seg = sent[a:b]
            self.utterances += 1
            if seg.mean() >= 0.9:
                self.utterances_heard += 1
            if not seg[:FIRST_FRAMES].all():
                self.first_100ms_lost += 1
            hits = np.flatnonzero(seg)
            # a missed utterance counts as clipped for its whole length
            delay = int(hits[0]) if hits.size else b - a
            self.onset_delays_ms.append(float(delay * FRAME_MS))

    def merge(self, other: Counts) -> None:
        """Add another tally into this one."""
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.frames += other.frames
        self.sent += other.sent
        self.utterances += other.utterances
        self.utterances_heard += other.utterances_heard
        self.first_100ms_lost += other.first_100ms_lost
        self.onset_delays_ms.extend(other.onset_delays_ms)

    @property
    def precision(self) -> float:
        """Share of sent frames that are speech (1.0 when nothing was sent)."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """Share of speech frames that were sent (1.0 when there was no speech)."""
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall (0 when both are 0)."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    @property
    def sent_share(self) -> float:
        """Share of all frames that were sent."""
        return self.sent / self.frames if self.frames else 0.0

    @property
    def utterance_recall(self) -> float:
        """Share of utterances with at least 90% of their frames sent."""
        return self.utterances_heard / self.utterances if self.utterances else float("nan")

    @property
    def first_100ms_lost_share(self) -> float:
        """Share of utterances that lose any of their first 100 ms."""
        return self.first_100ms_lost / self.utterances if self.utterances else float("nan")

    def onset_clip_ms(self, q: float) -> float:
        """Percentile ``q`` (0-100) of onset clipping in ms across utterances."""
        if not self.onset_delays_ms:
            return float("nan")
        return float(np.percentile(np.asarray(self.onset_delays_ms), q))


@dataclass
class DetectorResult:
    """All tallies for one detector over the corpus."""

    name: str
    speech: Counts = field(default_factory=Counts)  # clips with speech
    overall: Counts = field(default_factory=Counts)  # every clip
    noise_only: Counts = field(default_factory=Counts)
    music_only: Counts = field(default_factory=Counts)
    by_family: dict[str, Counts] = field(default_factory=dict)
    by_talker: dict[str, Counts] = field(default_factory=dict)
    no_speech_by_family: dict[str, Counts] = field(default_factory=dict)
    cpu_ns: int = 0
    frames: int = 0

    def add_clip(
        self, kind: str, family: str, talker: str, sent: BoolMask, labels: BoolMask
    ) -> None:
        """Tally one clip into the overall, per-kind, per-family and per-talker buckets."""
        c = Counts()
        c.add(sent, labels)
        self.overall.merge(c)
        if kind in ("noise_only", "music_only"):
            (self.noise_only if kind == "noise_only" else self.music_only).merge(c)
            self.no_speech_by_family.setdefault(family, Counts()).merge(c)
        else:
            self.speech.merge(c)
            self.by_family.setdefault(family, Counts()).merge(c)
            self.by_talker.setdefault(talker, Counts()).merge(c)

    @property
    def cpu_us_per_frame(self) -> float:
        """CPU microseconds per 20 ms frame (single-threaded)."""
        return self.cpu_ns / 1000.0 / self.frames if self.frames else float("nan")
