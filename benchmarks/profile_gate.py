"""Where the speech gate's time goes, stage by stage, per 20 ms frame.

Feeds corpus clips to the gate in 20 ms chunks, as the live server does, and times each
stage by wrapping the stage objects' methods with a ``perf_counter_ns`` timer (the timer's
own cost, measured on an empty function, is subtracted), and the whole run on the same
clock. "glue" is what is left of the whole run: the gate's own per-frame code, the decision
object, the calls between stages and the feeding loop. The shares come from that wall-clock
run; the microseconds are those shares of the CPU time (process time) of separate,
unwrapped runs, so that other jobs on a shared machine do not inflate the stages::

    PYTHONPATH=$PWD/src python -m benchmarks.profile_gate --quick
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.corpus import corpus_specs, load_clip

FRAME_SAMPLES = 160

STAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    # stage: (gate attribute, methods)
    "reframe": ("_reframer", ("push",)),
    "bandpass": ("_filter", ("process",)),
    "music+residual": ("_music", ("update",)),
    "voicing": ("_voicing", ("periodicity",)),
    "noise floors": ("_floor", ("update", "rebase")),
    "residual floor": ("_residual_floor", ("update",)),
    "state machine": ("_machine", ("step", "recheck")),
    "talker": ("_talker", ("update", "holds", "accepts")),
    "agc": ("_agc", ("apply", "start_utterance")),
    "preroll": ("_preroll", ("push", "drain", "evidence_run")),
}


def _timer(fn: Callable[..., Any], sink: list[int], counts: list[int]) -> Callable[..., Any]:
    clock = time.perf_counter_ns

    def timed(*args: Any, **kwargs: Any) -> Any:
        t0 = clock()
        result = fn(*args, **kwargs)
        sink[0] += clock() - t0
        counts[0] += 1
        return result

    return timed


def _overhead_ns() -> tuple[float, float]:
    """What one timed call of an empty function costs beyond the function itself: the part
    its own clock counts, and the part outside it."""
    sink, counts = [0], [0]

    def empty() -> None:
        return None

    timed = _timer(empty, sink, counts)
    n = 200_000
    t0 = time.perf_counter_ns()
    for _ in range(n):
        timed()
    outer = (time.perf_counter_ns() - t0) / n
    t0 = time.perf_counter_ns()
    for _ in range(n):
        empty()
    bare = (time.perf_counter_ns() - t0) / n
    inside = sink[0] / counts[0] - bare
    return inside, outer - bare - inside


def _clips(quick: bool, limit: int | None) -> list[npt.NDArray[np.int16]]:
    specs = corpus_specs(quick=quick)
    if limit:
        specs = specs[:: max(1, len(specs) // limit)][:limit]
    return [load_clip(spec).pcm16 for spec in specs]


def _feed(gate: Any, pcm: npt.NDArray[np.int16]) -> int:
    frames = pcm.size // FRAME_SAMPLES
    push = gate.process_pcm16
    for start in range(0, frames * FRAME_SAMPLES, FRAME_SAMPLES):
        push(pcm[start : start + FRAME_SAMPLES])
    return frames


def total_us_per_frame(clips: list[npt.NDArray[np.int16]], repeats: int) -> float:
    """Best of ``repeats`` unwrapped runs, CPU microseconds per frame."""
    from callgate.audio.gate import SpeechGate  # noqa: PLC0415

    best = float("inf")
    for _ in range(repeats):
        frames = 0
        t0 = time.process_time_ns()
        for pcm in clips:
            frames += _feed(SpeechGate(), pcm)
        best = min(best, (time.process_time_ns() - t0) / frames / 1000)
    return best


def stage_shares(clips: list[npt.NDArray[np.int16]]) -> tuple[dict[str, float], int]:
    """Each wrapped stage's share of the whole run (timer cost taken out), and the frames."""
    from callgate.audio.gate import SpeechGate  # noqa: PLC0415

    inside, outside = _overhead_ns()
    sinks: dict[str, list[int]] = defaultdict(lambda: [0])
    counts: dict[str, list[int]] = defaultdict(lambda: [0])
    frames = 0
    t0 = time.perf_counter_ns()
    for pcm in clips:
        gate = SpeechGate()
        for stage, (attr, methods) in STAGES.items():
            obj = getattr(gate, attr, None)
            for method in methods:
                fn = getattr(obj, method, None)
                if fn is not None:
                    setattr(obj, method, _timer(fn, sinks[stage], counts[stage]))
        frames += _feed(gate, pcm)
    calls = sum(c[0] for c in counts.values())
    whole = time.perf_counter_ns() - t0 - calls * (inside + outside)
    return {
        stage: max(0.0, sinks[stage][0] - counts[stage][0] * inside) / whole for stage in STAGES
    }, frames


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="the benchmark's quick subset")
    ap.add_argument("--clips", type=int, default=None, help="at most this many clips")
    ap.add_argument("--repeats", type=int, default=3, help="runs of each kind; the best counts")
    args = ap.parse_args(argv)
    clips = _clips(args.quick, args.clips)
    # Shared machines are noisy: interleave the runs; the best total, the median shares.
    total = float("inf")
    runs: list[dict[str, float]] = []
    frames = 0
    for _ in range(args.repeats):
        total = min(total, total_us_per_frame(clips, 1))
        shares, frames = stage_shares(clips)
        runs.append(shares)
    stages = {k: float(np.median([r[k] for r in runs])) for k in STAGES}
    stages["glue (gate code, decision)"] = max(0.0, 1.0 - sum(stages.values()))
    print(f"{len(clips)} clips, {frames} frames, 20 ms chunks; CPU us per frame")
    for stage, share in stages.items():
        print(f"  {stage:28s} {share * total:6.1f}  {100 * share:4.0f}%")
    print(f"  {'total (unwrapped)':28s} {total:6.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
