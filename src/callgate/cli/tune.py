"""Score the gate against labelled recordings, and try settings on them: ``callgate tune``.

The non-UI half of ``callgate analyze --labels`` and ``callgate tune``. An operator labels
where callers speak in a few real calls (an Audacity label track per call), and these
functions say, per recording and in total, what the gate got wrong: clipped first words,
missed utterances, false triggers. ``run_trial`` replays every recording under one
combination of settings, so a sweep compares settings on the same calls.
"""

from __future__ import annotations

import csv
import io
import multiprocessing
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from callgate.audio.codec import SAMPLE_RATE_HZ
from callgate.audio.decision import run_in_frames, sent_mask
from callgate.cli.analyze import Mask, write_atomic
from callgate.cli.recording import Recording
from callgate.config import ConfigError, VadKind, load_settings
from callgate.tuning.grid import Trial
from callgate.tuning.labels import Span, label_mask, labels_for, read_labels
from callgate.tuning.score import FrameScore

OBJECTIVES: tuple[str, ...] = ("f1", "onsets", "false-triggers")
"""How ``callgate tune`` ranks: best F1; fewest clipped first words; fewest false-trigger
seconds. Ties go to the higher F1."""


@dataclass
class LabelledRecording:
    """A recording and the operator's labels for it."""

    recording: Recording
    spans: list[Span]
    label_path: Path
    _masks: dict[float, Mask] = field(default_factory=dict, repr=False)

    def frames(self, frame_ms: float) -> int:
        """Whole frames of ``frame_ms`` in the recording, as the gate decides them."""
        return len(self.recording.pcm) // round(SAMPLE_RATE_HZ * frame_ms / 1000.0)

    def labels(self, frame_ms: float) -> Mask:
        """Per frame of ``frame_ms``: labelled speech (cached per frame size)."""
        if frame_ms not in self._masks:
            self._masks[frame_ms] = label_mask(
                self.spans, self.frames(frame_ms), frame_ms, str(self.label_path)
            )
        return self._masks[frame_ms]


def load_labelled(
    recordings: Sequence[Recording], labels: Path, frame_ms: float
) -> list[LabelledRecording]:
    """Pair each recording with its label file and check the labels fit it.

    Raises :class:`~callgate.tuning.labels.LabelError` naming the file when a label file is
    missing, malformed or belongs to a shorter recording.
    """
    out: list[LabelledRecording] = []
    for recording in recordings:
        path = labels_for(recording.path, labels, single=len(recordings) == 1)
        item = LabelledRecording(recording, read_labels(path), path)
        item.labels(frame_ms)  # fail now, before any output is written
        out.append(item)
    return out


def score_mask(sent: Mask, labels: Mask, frame_ms: float) -> FrameScore:
    """One recording's score."""
    score = FrameScore(frame_ms=round(frame_ms))
    score.add(sent, labels)
    return score


@dataclass
class TrialResult:
    """What one combination of settings did over all recordings."""

    trial: Trial
    score: FrameScore | None = None
    error: str | None = None
    """Why the combination could not run (an invalid setting), else ``None``."""


def run_trial(
    trial: Trial,
    base: Mapping[str, str],
    recordings: Sequence[LabelledRecording],
    kind: VadKind,
    *,
    advance: Callable[[], None] = lambda: None,
    env_file: str | None = ".env",
) -> TrialResult:
    """Replay every recording under ``base`` plus the trial's values, and score it.

    An invalid combination (a start threshold below its stop one) is reported, not fatal:
    the other combinations still run. ``advance`` is called once per recording replayed.
    """
    try:
        settings = load_settings({**base, **trial.values}, env_file=env_file)
        gate = settings.build_gate(kind)
    except (ConfigError, RuntimeError, ValueError) as error:
        for _ in recordings:
            advance()
        return TrialResult(trial, error=str(error))
    frame_ms = float(settings.audio_frame_size_ms)
    total = FrameScore(frame_ms=settings.audio_frame_size_ms)
    for item in recordings:
        gate.reset()
        decisions = run_in_frames(gate, item.recording.pcm)
        total.merge(score_mask(sent_mask(decisions), item.labels(frame_ms), frame_ms))
        advance()
    return TrialResult(trial, score=total)


_WORKER_RECORDINGS: list[LabelledRecording] = []
"""In a worker process of :func:`run_trials`: the recordings, received once."""


def _init_worker(recordings: list[LabelledRecording]) -> None:
    global _WORKER_RECORDINGS  # noqa: PLW0603 (one copy per worker, not one per trial)
    _WORKER_RECORDINGS = recordings


def _trial_in_worker(
    trial: Trial, base: Mapping[str, str], kind: VadKind, env_file: str | None
) -> TrialResult:
    return run_trial(trial, base, _WORKER_RECORDINGS, kind, env_file=env_file)


def run_trials(
    trials: Sequence[Trial],
    base: Mapping[str, str],
    recordings: Sequence[LabelledRecording],
    kind: VadKind,
    *,
    jobs: int = 1,
    env_file: str | None = ".env",
) -> Iterator[tuple[int, TrialResult]]:
    """Each trial's result with its index, as they finish; ``jobs`` > 1 runs that many
    trials at once in worker processes (each gets the recordings once, at start).

    The results do not depend on ``jobs``: every trial builds its own gate and replays the
    same recordings in the same order.
    """
    if jobs <= 1 or len(trials) <= 1:
        for index, trial in enumerate(trials):
            yield index, run_trial(trial, base, recordings, kind, env_file=env_file)
        return
    # spawn, not fork: a forked ONNX runtime (Silero) is not safe to use in the child.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=min(jobs, len(trials)),
        mp_context=context,
        initializer=_init_worker,
        initargs=(list(recordings),),
    ) as pool:
        futures = {
            pool.submit(_trial_in_worker, trial, dict(base), kind, env_file): index
            for index, trial in enumerate(trials)
        }
        for future in as_completed(futures):
            yield futures[future], future.result()


def _sort_key(objective: str) -> Callable[[TrialResult], tuple[float, ...]]:
    def key(result: TrialResult) -> tuple[float, ...]:
        score = result.score
        if score is None:
            return (float("inf"),)
        if objective == "onsets":
            return (score.first_100ms_lost, -score.f1)
        if objective == "false-triggers":
            return (score.false_trigger_frames, -score.f1)
        return (-score.f1,)

    if objective not in OBJECTIVES:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
    return key


def rank(results: Sequence[TrialResult], objective: str = "f1") -> list[TrialResult]:
    """Best first by ``objective``; combinations that could not run come last."""
    return sorted(results, key=_sort_key(objective))


TUNE_CSV_COLUMNS: tuple[str, ...] = (
    "settings",
    "f1",
    "precision",
    "recall",
    "utterances",
    "heard",
    "first_100ms_lost",
    "false_triggers",
    "false_trigger_s",
    "sent_share",
    "error",
)


def results_csv_text(results: Sequence[TrialResult]) -> str:
    """``callgate tune --csv``: one row per combination, in the order given."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TUNE_CSV_COLUMNS)
    for result in results:
        s = result.score
        if s is None:
            writer.writerow((result.trial.label, *[""] * 9, result.error or ""))
            continue
        writer.writerow(
            (
                result.trial.label,
                f"{s.f1:.4f}",
                f"{s.precision:.4f}",
                f"{s.recall:.4f}",
                s.utterances,
                s.utterances_heard,
                s.first_100ms_lost,
                s.false_triggers,
                f"{s.false_trigger_s:.2f}",
                f"{s.sent_share:.4f}",
                "",
            )
        )
    return buffer.getvalue()


def write_results_csv(path: Path, results: Sequence[TrialResult]) -> None:
    """Write the sweep's CSV atomically."""
    text = results_csv_text(results)
    write_atomic(path, lambda temp: temp.write_text(text, encoding="utf-8"))
