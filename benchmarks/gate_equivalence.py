"""Frame-by-frame equivalence of two versions of the speech gate over the benchmark corpus.

A speed-up of the gate must not change a single decision. This runs the gate of the
``src`` tree on ``PYTHONPATH`` over every corpus clip (20 ms chunks, as a live call feeds
it) under a few option sets, and records every frame's output. Run it once per version and
compare::

    # the reference, e.g. from an older commit
    git archive 032f824 src | tar -x -C /tmp/gate-ref
    PYTHONPATH=/tmp/gate-ref/src python -m benchmarks.gate_equivalence dump /tmp/ref.npz
    PYTHONPATH=$PWD/src python -m benchmarks.gate_equivalence dump /tmp/new.npz
    python -m benchmarks.gate_equivalence compare /tmp/ref.npz /tmp/new.npz

``compare`` demands exact equality of state, sent, pre-roll/lookback counts, reason and
the sent audio, and equality within ``--tol`` for the floats (SNR, level, noise floor,
gain, thresholds, voicing, residual SNR). It exits 1 on any difference.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

FRAME_SAMPLES = 160
FLOAT_FIELDS = (
    "snr_db",
    "level_dbfs",
    "noise_dbfs",
    "gain_db",
    "start_threshold_db",
    "stop_threshold_db",
    "voicing",
    "residual_snr_db",
)
INT_FIELDS = ("state", "sent", "music", "preroll_frames", "lookback_frames")
STATES = {"silence": 0, "maybe_speech": 1, "speech": 2}

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    # The bridge raises the start threshold while the agent speaks (echo guard).
    "echo-guard": {"boost": True},
    "no-residual": {"music_residual": False},
    "no-lookback": {"onset_lookback_ms": 0},
    "word-end": {"machine.word_end_frames": 4},
    # The second stages, through their Python hooks (Silero; slower).
    "confirmer": {"confirmer": "silero"},
    "noise-listener": {"music_listener": True, "noise_listener": True},
}


def _boost_at(frame: int) -> float:
    """An echo guard that comes and goes: 6 dB for 1.5 s out of every 4 s."""
    return 6.0 if (frame // 75) % 8 in (3, 4) else 0.0


def run_clip(options: Any, pcm16: npt.NDArray[np.int16], *, boost: bool) -> dict[str, Any]:
    """Every frame's outputs for one clip, fed in 20 ms chunks."""
    from callgate.audio.gate import SpeechGate  # noqa: PLC0415

    gate = SpeechGate(options)
    frames = pcm16.size // FRAME_SAMPLES
    ints = np.zeros((frames, len(INT_FIELDS)), dtype=np.int64)
    floats = np.zeros((frames, len(FLOAT_FIELDS)), dtype=np.float64)
    reasons: list[str] = []
    audio = hashlib.sha256()
    k = 0
    for start in range(0, frames * FRAME_SAMPLES, FRAME_SAMPLES):
        if boost:
            gate.start_boost_db = _boost_at(start // FRAME_SAMPLES)
        for d in gate.process_pcm16(pcm16[start : start + FRAME_SAMPLES]):
            ints[k] = (
                STATES[d.state.value],
                d.sent,
                d.music,
                d.preroll_frames,
                d.lookback_frames,
            )
            floats[k] = [getattr(d, name) for name in FLOAT_FIELDS]
            reasons.append(d.reason)
            audio.update(d.index.to_bytes(4, "little"))
            audio.update(np.asarray(d.audio, dtype="<i2").tobytes())
            k += 1
    return {
        "ints": ints,
        "floats": floats,
        "reasons": np.array(reasons),
        "audio": np.array([audio.hexdigest()]),
    }


def dump(out: Path, *, quick: bool, variants: list[str]) -> None:
    """Run this ``PYTHONPATH``'s gate over the corpus and store every frame's outputs."""
    from benchmarks.corpus import corpus_specs, load_clip  # noqa: PLC0415
    from benchmarks.detectors import with_overrides  # noqa: PLC0415
    from callgate.audio import GateOptions  # noqa: PLC0415

    clips = [load_clip(spec) for spec in corpus_specs(quick=quick)]
    arrays: dict[str, npt.NDArray[Any]] = {}
    t0 = time.process_time()
    for variant in variants:
        overrides = dict(VARIANTS[variant])
        boost = bool(overrides.pop("boost", False))
        options = with_overrides(GateOptions(), overrides)
        for clip in clips:
            result = run_clip(options, clip.pcm16, boost=boost)
            for key, value in result.items():
                arrays[f"{variant}/{clip.spec.name}/{key}"] = value
    elapsed = time.process_time() - t0
    np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
    print(f"{out}: {len(clips)} clips x {len(variants)} variants, {elapsed:.1f} s CPU")


def compare(ref_path: Path, new_path: Path, tol: float) -> int:
    """Print every difference; 0 when the two dumps agree."""
    ref = np.load(ref_path)
    new = np.load(new_path)
    bad = 0
    frames = 0
    clips = 0
    worst = 0.0
    keys = sorted({k.rsplit("/", 1)[0] for k in ref.files})
    missing = sorted({k.rsplit("/", 1)[0] for k in new.files} ^ set(keys))
    for key in missing:
        print(f"{key}: only in one dump")
        bad += 1
    for key in keys:
        if f"{key}/ints" not in new.files:
            continue
        clips += 1
        ri, ni = ref[f"{key}/ints"], new[f"{key}/ints"]
        frames += ri.shape[0]
        if ri.shape != ni.shape:
            print(f"{key}: {ri.shape[0]} frames vs {ni.shape[0]}")
            bad += 1
            continue
        rows = np.flatnonzero((ri != ni).any(axis=1))
        if rows.size:
            f = rows[0]
            diff = {n: (int(ri[f, j]), int(ni[f, j])) for j, n in enumerate(INT_FIELDS)}
            print(f"{key}: {rows.size} frames differ, first {f}: {diff}")
            bad += 1
        if not np.array_equal(ref[f"{key}/reasons"], new[f"{key}/reasons"]):
            print(f"{key}: reasons differ")
            bad += 1
        if ref[f"{key}/audio"][0] != new[f"{key}/audio"][0]:
            print(f"{key}: sent audio differs")
            bad += 1
        rf, nf = ref[f"{key}/floats"], new[f"{key}/floats"]
        same_nan = np.isnan(rf) == np.isnan(nf)
        delta = np.where(np.isnan(rf) | np.isnan(nf), 0.0, np.abs(rf - nf))
        worst = max(worst, float(delta.max(initial=0.0)))
        off = ~same_nan | (delta > tol)
        if off.any():
            f, j = np.argwhere(off)[0]
            print(f"{key}: {FLOAT_FIELDS[j]} differs at frame {f}: {rf[f, j]!r} vs {nf[f, j]!r}")
            bad += 1
    status = "IDENTICAL" if not bad else f"{bad} DIFFERENCES"
    print(f"{clips} clip runs, {frames} frames compared: {status}; largest float delta {worst:.3g}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = ap.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="record this PYTHONPATH's gate over the corpus")
    d.add_argument("out", type=Path)
    d.add_argument("--quick", action="store_true", help="the benchmark's quick subset")
    d.add_argument("--variant", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    c = sub.add_parser("compare", help="compare two dumps")
    c.add_argument("reference", type=Path)
    c.add_argument("candidate", type=Path)
    c.add_argument("--tol", type=float, default=1e-9, help="largest float difference")
    args = ap.parse_args(argv)
    if args.command == "dump":
        dump(args.out, quick=args.quick, variants=args.variant)
        return 0
    return compare(args.reference, args.candidate, args.tol)


if __name__ == "__main__":
    sys.exit(main())
