"""End-of-turn benchmark for the ``client`` turn mode, on the labelled corpus.

    python -m benchmarks.run_turn_benchmark [--quick] [--silence-ms 300 600 ...]
        [--early-ms 160] [--cap-ms 600 1000] [--thresholds 0.5] [--clean-db 3]
        [--model-latency-ms 100] [--no-model] [--out FILE]

Every speech clip is run through the gate once, in 20 ms steps as on a live call, and
its decisions are replayed into one turn controller per configuration:

- silence only, for each END_OF_TURN_SILENCE_MS in ``--silence-ms``;
- an early end after END_OF_TURN_MIN_SILENCE_MS (``--early-ms``), else at
  END_OF_TURN_SILENCE_MS (``--cap-ms``), when the Smart Turn model says "complete"
  (END_OF_TURN_MODEL=smart_turn, each of ``--thresholds``), when the pause is clean
  (END_OF_TURN_CLEAN_PAUSE_SNR_DB, each of ``--clean-db``), or both. The model's answer
  reaches the controller ``--model-latency-ms`` after the request (rounded up to whole
  frames), as it would from the server's worker thread. The frames in between still
  count, so a caller who resumes makes the answer stale.

For each labelled utterance the script finds the first commit after its last labelled
frame and before the next one starts, and measures the delay. A commit that falls inside
a labelled utterance is premature: the caller was still talking. An utterance with no
commit before the next one is merged into it. That is not an error in itself, since the
caller may go on, but it is reported. The model's CPU time per prediction is measured
(process CPU, one onnxruntime thread, features included).
"""

from __future__ import annotations

import argparse
import itertools
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import Progress
from scipy import signal as sps

from benchmarks.corpus import Clip, corpus_specs, load_clip
from benchmarks.metrics import FRAME_MS
from benchmarks.report import command_line, utc_minute, write_section
from callgate.audio.decision import FrameDecision
from callgate.audio.gate import SpeechGate
from callgate.realtime.end_of_turn import SmartTurnModel, TurnEndModel
from callgate.realtime.turns import CommitInput, PredictTurnEnd, TurnController, TurnOptions
from callgate.speech.tts import PiperTTS
from callgate.synth.speech import ENGLISH_SENTENCES, speak
from callgate.tuning.score import runs


@dataclass(frozen=True)
class TurnConfig:
    """One row: silence only (``early_ms`` None), or an early end after ``early_ms`` when
    the model agrees (``threshold`` set) and/or the pause is clean (``clean_db`` set)."""

    silence_ms: int
    early_ms: int | None = None
    threshold: float | None = None
    clean_db: float | None = None

    @property
    def label(self) -> str:
        if self.early_ms is None:
            return f"silence {self.silence_ms}"
        checks = []
        if self.threshold is not None:
            checks.append(f"smart_turn ≥ {self.threshold:g}")
        if self.clean_db is not None:
            checks.append(f"pause < {self.clean_db:g} dB")
        return f"{' and '.join(checks)} at {self.early_ms}, else {self.silence_ms}"

    def options(self) -> TurnOptions:
        return TurnOptions(
            mode="client",
            end_of_turn_silence_ms=self.silence_ms,
            early_end_ms=self.early_ms,
            ask_model=self.threshold is not None,
            model_threshold=self.threshold or 0.0,
            clean_pause_snr_db=self.clean_db,
        )


@dataclass
class TurnScore:
    """Commit timing for one configuration."""

    config: TurnConfig
    delays_ms: list[int] = field(default_factory=list)
    premature: int = 0
    commits: int = 0
    merged: int = 0
    missed: int = 0
    predictions: int = 0
    early: int = 0


class CachedModel:
    """The model behind a cache: configurations share most requests on the same clip."""

    def __init__(self, model: TurnEndModel) -> None:
        self.model = model
        self.cache: dict[tuple[int, int], float] = {}
        self.cpu_ms: list[float] = []

    def predict(self, index: int, pcm16: np.ndarray) -> float:
        """Same frame and same audio length means the same audio on one clip."""
        key = (index, pcm16.size)
        if key not in self.cache:
            start = time.process_time()
            self.cache[key] = self.model.predict(pcm16)
            self.cpu_ms.append((time.process_time() - start) * 1000)
        return self.cache[key]


def gate_decisions(clip: Clip) -> list[FrameDecision]:
    """The gate's decisions for a clip fed in 20 ms chunks."""
    gate = SpeechGate()
    decisions: list[FrameDecision] = []
    for start in range(0, clip.pcm16.size, 160):
        decisions.extend(gate.process_pcm16(clip.pcm16[start : start + 160]))
    return decisions


def commit_frames(
    decisions: list[FrameDecision],
    config: TurnConfig,
    model: CachedModel | None = None,
    latency_frames: int = 0,
) -> tuple[list[int], TurnController]:
    """Frame indices at which the controller commits, replaying the gate's decisions."""
    turns = TurnController(config.options())
    commits: list[int] = []
    waiting: list[tuple[int, int, float]] = []  # (due frame, request id, probability)
    for decision in decisions:
        actions = list(turns.on_frame(decision))
        for action in actions:
            if isinstance(action, PredictTurnEnd) and model is not None:
                p = model.predict(decision.index, action.pcm16)
                waiting.append((decision.index + latency_frames, action.request_id, p))
        for _due, request_id, p in [w for w in waiting if w[0] <= decision.index]:
            actions += turns.on_turn_prediction(request_id, p)
        waiting = [w for w in waiting if w[0] > decision.index]
        if any(isinstance(a, CommitInput) for a in actions):
            commits.append(decision.index)
    return commits, turns


def score_clip(
    clip: Clip,
    decisions: list[FrameDecision],
    score: TurnScore,
    model: CachedModel | None,
    latency_frames: int,
) -> None:
    """Add one clip's commits to ``score``."""
    commits, turns = commit_frames(decisions, score.config, model, latency_frames)
    score.commits += len(commits)
    score.predictions += turns.predictions
    score.early += turns.early_commits
    spans = runs(clip.labels)
    for k, (start, end) in enumerate(spans):
        score.premature += sum(start < c < end - 1 for c in commits)
        limit = spans[k + 1][0] if k + 1 < len(spans) else clip.frames + 10_000
        after = [c for c in commits if end - 1 <= c < limit]
        if after:
            score.delays_ms.append((after[0] - (end - 1)) * FRAME_MS)
        elif k + 1 < len(spans):
            score.merged += 1
        else:
            score.missed += 1


def run(
    configs: list[TurnConfig], quick: bool, model: CachedModel | None, latency_frames: int
) -> list[TurnScore]:
    """Score every configuration on the espeak speech clips of the corpus (the published
    run predates the Piper clips; ``--voices`` compares the two voices on the model)."""
    specs = [
        s
        for s in corpus_specs(quick=quick)
        if s.kind in ("speech", "speech_jump") and s.voice == "espeak"
    ]
    scores = [TurnScore(c) for c in configs]
    with Progress() as progress:
        task = progress.add_task("turn benchmark", total=len(specs))
        for spec in specs:
            clip = load_clip(spec)
            decisions = gate_decisions(clip)
            if model is not None:
                model.cache.clear()
            for score in scores:
                score_clip(clip, decisions, score, model, latency_frames)
            progress.advance(task)
    return scores


def table(scores: list[TurnScore]) -> str:
    """The results as a markdown table."""
    rows = [
        "| configuration | commits | end of speech → commit, median ms | p95 ms "
        "| premature commits | utterances merged into the next | no commit at clip end "
        "| model asked / turns ended early |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        delays = np.array(s.delays_ms or [0])
        share = s.premature / s.commits if s.commits else 0.0
        asked = f"{s.predictions} / {s.early}" if s.config.early_ms else "-"
        rows.append(
            f"| {s.config.label} | {s.commits} | {np.median(delays):.0f} | "
            f"{np.percentile(delays, 95):.0f} | {s.premature} ({share:.1%}) | {s.merged} | "
            f"{s.missed} | {asked} |"
        )
    return "\n".join(rows)


def voice_table(model: TurnEndModel, threshold: float) -> str:
    """The model on clean single sentences: espeak-ng (the corpus voice) against Piper.

    Each of the corpus's English sentences is heard whole, then cut at 60% of its audio
    (mid-sentence, as when a caller pauses), each followed by 200 ms of silence. A model
    that hears the end of a turn says "complete" to the first and not to the second.
    """
    piper = PiperTTS()
    pause = np.zeros(1600, dtype=np.int16)
    rows = [
        f"| voice | whole sentences heard as complete (p ≥ {threshold:g}) "
        "| sentences cut at 60% heard as complete | median p whole / cut |",
        "|---|---|---|---|",
    ]
    for voice in ("espeak-ng", "Piper (joe, en_US)"):
        whole: list[float] = []
        cut: list[float] = []
        for text in ENGLISH_SENTENCES:
            if voice == "espeak-ng":
                pcm = (np.clip(speak(text, sample_rate_hz=8000), -1, 1) * 32767).astype(np.int16)
            else:
                audio = piper.render(text).astype(np.float64)
                pcm = sps.resample_poly(audio, 8000, piper.sample_rate_hz).astype(np.int16)
            loud = np.flatnonzero(np.abs(pcm) > 300)
            pcm = pcm[loud[0] : loud[-1]]
            whole.append(model.predict(np.concatenate([pcm, pause])))
            cut.append(model.predict(np.concatenate([pcm[: pcm.size * 6 // 10], pause])))
        w, c = np.array(whole), np.array(cut)
        rows.append(
            f"| {voice} | {np.sum(w >= threshold)} of {w.size} | {np.sum(c >= threshold)} of "
            f"{c.size} | {np.median(w):.2f} / {np.median(c):.2f} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="use the quick corpus subset")
    parser.add_argument("--silence-ms", type=int, nargs="*", default=[300, 600, 1000])
    parser.add_argument(
        "--early-ms", type=int, nargs="*", default=[160], help="END_OF_TURN_MIN_SILENCE_MS"
    )
    parser.add_argument(
        "--cap-ms", type=int, nargs="+", default=[600, 1000], help="END_OF_TURN_SILENCE_MS"
    )
    parser.add_argument(
        "--thresholds", type=float, nargs="*", default=[0.5], help="smart_turn thresholds"
    )
    parser.add_argument(
        "--clean-db",
        type=float,
        nargs="*",
        default=[3.0],
        help="END_OF_TURN_CLEAN_PAUSE_SNR_DB values, alone and with each threshold",
    )
    parser.add_argument(
        "--model-latency-ms",
        type=int,
        default=100,
        help="delay from a request to its answer reaching the controller",
    )
    parser.add_argument("--no-model", action="store_true", help="no smart_turn rows")
    parser.add_argument(
        "--voices", action="store_true", help="also compare the model on espeak-ng and Piper"
    )
    parser.add_argument("--out", type=Path, help="replace the turn section of this file")
    args = parser.parse_args(argv)
    configs = [TurnConfig(ms) for ms in args.silence_ms]
    thresholds: list[float | None] = [None] if args.no_model else [None, *args.thresholds]
    configs += [
        TurnConfig(cap, early, threshold, clean)
        for early, threshold, clean, cap in itertools.product(
            args.early_ms, thresholds, [None, *args.clean_db], args.cap_ms
        )
        if early <= cap and (threshold is not None or clean is not None)
    ]
    asks = any(c.threshold is not None for c in configs)
    model = CachedModel(SmartTurnModel()) if asks else None
    latency_frames = math.ceil(args.model_latency_ms / FRAME_MS)
    scores = run(configs, args.quick, model, latency_frames)
    command = command_line("benchmarks.run_turn_benchmark", argv)
    date = utc_minute()
    body = (
        f"Generated {date} by `{command}` on the shared 2-core machine "
        "(gate defaults, client turn mode, corpus speech clips"
    )
    if model is not None and model.cpu_ms:
        cpu = np.array(model.cpu_ms)
        body += (
            f"; the model's answer arrives {latency_frames * FRAME_MS} ms after the request; "
            f"Smart Turn v3.2 CPU per prediction, features included, one thread: median "
            f"{np.median(cpu):.0f} ms, p95 {np.percentile(cpu, 95):.0f} ms over "
            f"{cpu.size} predictions"
        )
    body += ").\n\n" + table(scores)
    if args.voices:
        threshold = args.thresholds[0] if args.thresholds else 0.5
        body += (
            "\n\nThe model alone on clean speech (each English corpus sentence, whole and "
            "cut at 60% of its audio, then 200 ms of silence):\n\n"
            + voice_table(model.model if model else SmartTurnModel(), threshold)
        )
    print(body)
    if args.out:
        write_section(args.out, "turn-benchmark", body, "End of turn (client mode)")


if __name__ == "__main__":
    main()
