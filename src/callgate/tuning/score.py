"""How well a sent mask matches labelled speech: what a caller and the bill would notice.

Frame F1 says how well the sent audio matches speech overall. Utterance recall says
whether the caller was heard; a lost first 100 ms is a clipped first word; false triggers
are stretches sent with no speech in them (cost, and transcripts of nothing).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

BoolMask = npt.NDArray[np.bool_]
FrameRange = tuple[int, int]
"""(start, end) frame indices, end exclusive."""

ONSET_MS = 100
"""An utterance whose first this-many ms are not all sent has lost its first word."""
HEARD_SHARE = 0.9
"""An utterance with at least this share of its frames sent counts as heard."""


def runs(mask: npt.ArrayLike) -> list[FrameRange]:
    """Runs of True in ``mask`` as (start, end) frame ranges, end exclusive."""
    flags = np.asarray(mask, dtype=np.int8)
    edges = np.diff(np.concatenate([[0], flags, [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, ends, strict=True)]


def onset_frames(frame_ms: int) -> int:
    """Frames in the first :data:`ONSET_MS` of an utterance (at least one)."""
    return max(1, round(ONSET_MS / frame_ms))


@dataclass
class FrameScore:
    """Frame and utterance tallies that add up across recordings."""

    frame_ms: int = 20
    tp: int = 0
    fp: int = 0
    fn: int = 0
    frames: int = 0
    sent: int = 0
    utterances: int = 0
    utterances_heard: int = 0
    """Utterances with at least :data:`HEARD_SHARE` of their frames sent."""
    first_100ms_lost: int = 0
    """Utterances with any of their first :data:`ONSET_MS` not sent."""
    false_triggers: int = 0
    """Runs of sent frames with no labelled speech in them."""
    false_trigger_frames: int = 0
    onset_delays_ms: list[float] = field(default_factory=list)
    """Per utterance: ms from its start to its first sent frame (its length if missed)."""

    def add(self, sent: npt.ArrayLike, labels: npt.ArrayLike) -> None:
        """Tally one recording's sent mask against its labels."""
        sent = np.asarray(sent, dtype=bool)
        labels = np.asarray(labels, dtype=bool)
        if sent.shape != labels.shape:
            raise ValueError(f"mask shapes differ: {sent.shape} vs {labels.shape}")
        self.tp += int(np.sum(sent & labels))
        self.fp += int(np.sum(sent & ~labels))
        self.fn += int(np.sum(~sent & labels))
        self.frames += int(sent.size)
        self.sent += int(np.sum(sent))
        first = onset_frames(self.frame_ms)
        for a, b in runs(labels):
            seg = sent[a:b]
            self.utterances += 1
            if seg.mean() >= HEARD_SHARE:
                self.utterances_heard += 1
            if not seg[:first].all():
                self.first_100ms_lost += 1
            self.onset_delays_ms.append(float(_first_sent(seg) * self.frame_ms))
        for a, b in false_triggers(sent, labels):
            self.false_triggers += 1
            self.false_trigger_frames += b - a

    def merge(self, other: FrameScore) -> None:
        """Add another tally into this one."""
        if other.frame_ms != self.frame_ms:
            raise ValueError(f"frame sizes differ: {self.frame_ms} vs {other.frame_ms} ms")
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        self.frames += other.frames
        self.sent += other.sent
        self.utterances += other.utterances
        self.utterances_heard += other.utterances_heard
        self.first_100ms_lost += other.first_100ms_lost
        self.false_triggers += other.false_triggers
        self.false_trigger_frames += other.false_trigger_frames
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

    @property
    def false_trigger_s(self) -> float:
        """Seconds sent in false triggers."""
        return self.false_trigger_frames * self.frame_ms / 1000.0

    def onset_clip_ms(self, q: float) -> float:
        """Percentile ``q`` (0-100) of onset clipping in ms across utterances."""
        if not self.onset_delays_ms:
            return float("nan")
        return float(np.percentile(np.asarray(self.onset_delays_ms), q))


def _first_sent(utterance: BoolMask) -> int:
    """Frames from an utterance's start to its first sent frame; a missed utterance counts
    as clipped for its whole length."""
    hits = np.flatnonzero(utterance)
    return int(hits[0]) if hits.size else int(utterance.size)


def false_triggers(sent: npt.ArrayLike, labels: npt.ArrayLike) -> list[FrameRange]:
    """Runs of sent frames that contain no labelled speech at all.

    A run that reaches speech is not one, however much padding it carries: the pre-roll
    and hangover are part of sending that speech.
    """
    labelled = np.asarray(labels, dtype=bool)
    return [(a, b) for a, b in runs(sent) if not labelled[a:b].any()]


@dataclass(frozen=True, slots=True)
class ClippedUtterance:
    """A labelled utterance whose first 100 ms did not all reach the model."""

    start: int
    end: int
    delay_frames: int
    """Frames from its start to its first sent frame; its length when none was sent."""

    @property
    def missed(self) -> bool:
        """Nothing of it was sent."""
        return self.delay_frames >= self.end - self.start


def clipped_utterances(
    sent: npt.ArrayLike, labels: npt.ArrayLike, frame_ms: int
) -> list[ClippedUtterance]:
    """Each utterance that lost any of its first 100 ms, in order: where to look first."""
    sent = np.asarray(sent, dtype=bool)
    first = onset_frames(frame_ms)
    out: list[ClippedUtterance] = []
    for a, b in runs(labels):
        seg = sent[a:b]
        if not seg[:first].all():
            out.append(ClippedUtterance(a, b, _first_sent(seg)))
    return out
