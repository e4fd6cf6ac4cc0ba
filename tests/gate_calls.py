"""Synthesized calls for the gate's golden record, and the record itself.

A few seconds each of a quiet room with a near and a distant talker, music with a voice
over it, and a street with a horn, run through the gate under several option sets (one
with the echo guard switching on and off). ``tests/golden/gate_decisions.npz`` holds
every frame's decision as the gate made them when the record was written; the test
demands the same decisions (exactly) and floats (to 1e-9). A change meant to alter the
gate's behaviour rewrites the record, in the same commit::

    PYTHONPATH=$PWD/src:$PWD python -m tests.gate_calls --write

It was written on 2026-11-26 by the gate of commit 66fba3d, the last whose frame ran as
Python calls between the stages, so the compiled frame (``callgate.audio.gate_step``) is
checked against it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.gate_equivalence import FLOAT_FIELDS
from callgate.audio import GateOptions, SpeechGate
from callgate.audio.decision import FrameDecision

RATE = 8000
FRAME = 160
Float = npt.NDArray[np.float64]
RECORD = Path(__file__).resolve().parent / "golden" / "gate_decisions.npz"
EXACT_FIELDS = ("state", "sent", "reason", "preroll_frames", "lookback_frames", "music", "audio")
CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("quiet", {}, False),
    ("quiet", {}, True),
    ("music", {}, False),
    ("music", {"music_residual": False}, False),
    ("street", {}, False),
    ("street", {"onset_lookback_ms": 0}, True),
]
"""(call, GateOptions overrides, echo guard switching)."""


# --- synthesized calls ------------------------------------------------------------------


def _db(dbfs: float) -> float:
    return float(10.0 ** (dbfs / 20.0))


def _voice(seconds: float, dbfs: float, rng: np.random.Generator, pitch: float = 130.0) -> Float:
    """Syllables: gliding harmonics under a 4 Hz envelope with gaps."""
    t = np.arange(int(seconds * RATE)) / RATE
    f0 = pitch * (1.0 + 0.15 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    tone = sum(np.sin(k * phase) / k for k in range(1, 16))
    envelope = np.clip(np.sin(2 * np.pi * 4.0 * t), 0.0, None) ** 0.7
    signal = np.asarray(tone * envelope, dtype=np.float64)
    return signal * _db(dbfs) / max(1e-9, float(np.sqrt(np.mean(signal**2))))


def _music(seconds: float, dbfs: float, rng: np.random.Generator) -> Float:
    """Held chords that change every 400 ms."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    out = np.zeros(n)
    step = int(0.4 * RATE)
    for start in range(0, n, step):
        root = 220.0 * 2 ** (rng.integers(0, 12) / 12)
        seg = slice(start, min(n, start + step))
        for ratio in (1.0, 1.26, 1.5, 2.0):
            out[seg] += np.sin(2 * np.pi * root * ratio * t[seg])
    return out * _db(dbfs) / float(np.sqrt(np.mean(out**2)))


def _horn(seconds: float, dbfs: float) -> Float:
    t = np.arange(int(seconds * RATE)) / RATE
    tone = sum(np.sin(2 * np.pi * 420.0 * k * t) / k for k in range(1, 6))
    return np.asarray(tone, dtype=np.float64) * _db(dbfs) * 0.6


def _place(bed: Float, part: Float, at_s: float) -> None:
    start = int(at_s * RATE)
    end = min(bed.size, start + part.size)
    bed[start:end] += part[: end - start]


def _pcm(signal: Float) -> npt.NDArray[np.int16]:
    return np.clip(np.round(signal * 32768.0), -32768, 32767).astype(np.int16)


def _calls() -> dict[str, npt.NDArray[np.int16]]:
    rng = np.random.default_rng(20261125)
    quiet = rng.standard_normal(int(7 * RATE)) * _db(-50)
    _place(quiet, _voice(1.6, -24, rng), 1.2)
    _place(quiet, _voice(0.6, -40, rng, pitch=210.0), 3.3)  # a distant talker
    _place(quiet, _voice(2.0, -18, rng), 4.4)  # loud: the AGC cuts and clips back
    music = _music(9.0, -30, rng) + rng.standard_normal(int(9 * RATE)) * _db(-55)
    _place(music, _voice(2.5, -14, rng, pitch=180.0), 4.5)
    street = rng.standard_normal(int(7 * RATE)) * _db(-40)
    _place(street, _horn(0.9, -22), 1.5)
    _place(street, _voice(2.2, -26, rng), 3.4)
    return {"quiet": _pcm(quiet), "music": _pcm(music), "street": _pcm(street)}


CALLS = _calls()


def run(
    gate: SpeechGate, pcm: npt.NDArray[np.int16], chunks: list[int], boost: bool
) -> list[FrameDecision]:
    """Feed ``pcm`` in chunks of the given sizes, in turn; with ``boost``, an echo guard
    for 0.6 s of every 2 s, switched between chunks."""
    decisions: list[FrameDecision] = []
    start = 0
    k = 0
    while start < pcm.size:
        size = chunks[k % len(chunks)]
        k += 1
        if boost:
            gate.start_boost_db = 6.0 if (start // FRAME) % 100 >= 70 else 0.0
        decisions.extend(gate.process_pcm16(pcm[start : start + size]))
        start += size
    return decisions


def case_key(name: str, overrides: dict[str, Any], boost: bool) -> str:
    """The record's name for a case."""
    extra = ",".join(f"{k}={v}" for k, v in sorted(overrides.items()))
    return f"{name}|{extra}|{'boost' if boost else 'plain'}"


def decisions_for(name: str, overrides: dict[str, Any], boost: bool) -> list[FrameDecision]:
    """The gate's decisions for a case, fed in the live server's 20 ms chunks."""
    options = dataclasses.replace(GateOptions(), **overrides)
    return run(SpeechGate(options), CALLS[name], [FRAME], boost)


def exact_row(decision: FrameDecision) -> str:
    """The fields that must match exactly, the sent audio as its digest."""
    parts = [str(getattr(decision, f)) for f in EXACT_FIELDS if f != "audio"]
    parts.append(hashlib.sha1(decision.audio.astype("<i2").tobytes()).hexdigest())
    return "|".join(parts)


def float_row(decision: FrameDecision) -> list[float]:
    """The float fields, in FLOAT_FIELDS order."""
    return [float(getattr(decision, f)) for f in FLOAT_FIELDS]


def write_record(path: Path = RECORD) -> None:
    """Run every case through the gate on PYTHONPATH and write the record."""
    arrays: dict[str, npt.NDArray[Any]] = {}
    for name, overrides, boost in CASES:
        decisions = decisions_for(name, overrides, boost)
        key = case_key(name, overrides, boost)
        arrays[f"{key}|exact"] = np.array([exact_row(d) for d in decisions])
        arrays[f"{key}|floats"] = np.array([float_row(d) for d in decisions])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)  # type: ignore[arg-type]
    print(f"wrote {path}: {len(CASES)} cases")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="rewrite the golden record")
    parser.add_argument("--out", type=Path, default=RECORD)
    if parser.parse_args().write:
        write_record(parser.parse_args().out)
