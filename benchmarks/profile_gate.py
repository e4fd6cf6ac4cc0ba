"""Where the speech gate's time goes per 20 ms frame, now that the frame is one kernel.

Feeds corpus clips to the gate in 20 ms chunks, as the live server does, and splits a
frame's CPU time (process time, best of ``--repeats`` runs) into:

- ``compute``: the compiled step's own work (``gate_frame`` called from a numba loop, so
  no Python at all);
- ``dispatch``: numba's call overhead for the step's ~40 arguments (an empty kernel
  called with the same arguments);
- ``python``: the rest, the gate's Python around the kernel (re-framing, the decision
  object, the sent audio's copy).

The stage-by-stage profile of the Python-glued gate (up to commit 66fba3d) is in
docs/benchmarks.md::

    PYTHONPATH=$PWD/src:$PWD python -m benchmarks.profile_gate --quick
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from benchmarks.corpus import corpus_specs, load_clip
from callgate.audio.gate import SpeechGate, compile_gate_kernels
from callgate.audio.gate_step import gate_frame

FRAME_SAMPLES = 160
Frames = npt.NDArray[np.int16]


@numba.njit
def _compute_only(frames: Frames, arrays: Any) -> None:  # pragma: no cover - compiled
    for i in range(frames.shape[0]):
        gate_frame(frames[i], i, 0.0, np.nan, *arrays)


@numba.njit
def _nothing(*args: Any) -> int:  # pragma: no cover - compiled
    return 0


def _clips(quick: bool, limit: int | None) -> list[Frames]:
    specs = corpus_specs(quick=quick)[:limit]
    out = []
    for spec in specs:
        pcm = load_clip(spec).pcm16
        out.append(pcm[: pcm.size // FRAME_SAMPLES * FRAME_SAMPLES].reshape(-1, FRAME_SAMPLES))
    return out


def _best(run: Callable[[], None], frames: int, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.process_time_ns()
        run()
        best = min(best, (time.process_time_ns() - t0) / frames / 1000)
    return best


def main(argv: list[str] | None = None) -> int:
    """Print the split; returns 0."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="the benchmark's quick subset")
    ap.add_argument("--clips", type=int, default=None, help="at most this many clips")
    ap.add_argument("--repeats", type=int, default=3, help="runs per measurement (best)")
    args = ap.parse_args(argv)
    compile_gate_kernels()
    clips = _clips(args.quick, args.clips)
    frames = sum(c.shape[0] for c in clips)
    gates = [SpeechGate() for _ in clips]
    _compute_only(clips[0][:2].copy(), gates[0]._frame_arrays)
    _nothing(clips[0][0], 0, 0.0, math.nan, *gates[0]._frame_arrays)

    def whole() -> None:
        for gate, clip in zip(gates, clips, strict=True):
            gate.reset()
            for frame in clip:
                gate.process_pcm16(frame)

    def compute() -> None:
        for gate, clip in zip(gates, clips, strict=True):
            gate.reset()
            _compute_only(clip, gate._frame_arrays)

    def dispatch() -> None:
        for gate, clip in zip(gates, clips, strict=True):
            arrays = gate._frame_arrays
            for index, frame in enumerate(clip):
                _nothing(frame, index, 0.0, math.nan, *arrays)

    total = _best(whole, frames, args.repeats)
    inside = _best(compute, frames, args.repeats)
    calling = _best(dispatch, frames, args.repeats)
    print(f"{len(clips)} clips, {frames} frames, 20 ms chunks; CPU us per frame")
    for name, value in (
        ("compute", inside),
        ("dispatch", calling),
        ("python", total - inside - calling),
        ("total", total),
    ):
        print(f"  {name:<10} {value:6.1f}  {100 * value / total:4.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
