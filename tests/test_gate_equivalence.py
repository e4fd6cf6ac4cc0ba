"""The gate's fast paths decide exactly what the plain numpy/scipy formulations decided.

The per-frame hot path (music detector, voicing, band-pass, AGC, re-framing) computes in
place, through preallocated buffers, the C core behind numpy.fft, and compiled kernels
(``callgate.audio.compiled``). Here a reference gate runs the straightforward formulations
those replaced (as of 032f824), swapped into the same ``SpeechGate``, over synthesized
calls with music, a horn, a voice and an echo guard that comes and goes. Every decision
of every frame (state, sent, reason, counts, the sent audio) must be identical, and every
float within 1e-12 relative: the kernels take magnitudes with the C library's ``hypot``,
where numpy uses its own SIMD routine on AVX-512 machines, and the two may differ in the
last bit. The whole benchmark corpus is compared by ``python -m benchmarks.gate_equivalence``
(see its docstring).
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import lfilter

from callgate.audio import GateOptions, SpeechGate
from callgate.audio.agc import SpeechAgc
from callgate.audio.bandpass import SpeechBandFilter
from callgate.audio.decision import FrameDecision
from callgate.audio.music import MusicDetector
from callgate.audio.voicing import VoicingAnalyzer

RATE = 8000
FRAME = 160
Float = npt.NDArray[np.float64]


# --- the reference formulations --------------------------------------------------------


class _ReferenceHeldShare:
    """MusicDetector._held_share as plain numpy, with its own run lengths."""

    def __init__(self, det: MusicDetector) -> None:
        self.det = det
        self.runs = np.zeros(det._band.stop - det._band.start, dtype=np.int32)
        self.residual_db: float | None = None

    def __call__(self, window: Float) -> float:
        det = self.det
        spectrum = np.abs(np.fft.rfft(window * det._window, det._nfft))[det._band]
        power_db = 20.0 * np.log10(spectrum + 1e-9)
        n = power_db.size
        padded = np.zeros(n + 8)
        padded[4 : 4 + n] = power_db
        padded[:4] = power_db[0]
        padded[4 + n :] = power_db[-1]
        neighbourhood = np.maximum(padded[:n], padded[8:])
        is_peak = (
            (power_db >= padded[3 : 3 + n])
            & (power_db >= padded[5 : 5 + n])
            & (power_db - neighbourhood >= det._prominence)
        )
        runs = np.zeros(n + 2, dtype=np.int32)
        runs[1:-1] = self.runs
        previous = np.maximum(np.maximum(runs[:-2], runs[1:-1]), runs[2:])
        self.runs = np.where(is_peak, previous + 1, 0).astype(np.int32)
        if det._residual_held:
            held_bins = self.runs >= det._residual_held
            near_held = held_bins.copy()
            near_held[1:] |= held_bins[:-1]
            near_held[:-1] |= held_bins[1:]
            power = spectrum * spectrum
            self.residual_db = 10.0 * float(np.log10(power[~near_held].sum() + 1e-12))
        peak_power = spectrum[is_peak] ** 2
        total = float(peak_power.sum())
        if total <= 0.0:
            return 0.0
        return float(peak_power[self.runs[is_peak] >= det._held_frames].sum()) / total


class _ReferenceMusic:
    """MusicDetector.update as plain Python over deques, with the plain-numpy peaks."""

    def __init__(self, det: MusicDetector) -> None:
        self.det = det
        self.held_share = _ReferenceHeldShare(det)
        self.scores: deque[float] = deque(maxlen=det._on_frames)
        self.active: deque[bool] = deque(maxlen=det._on_frames)
        self.music = False
        self.quiet = 0
        self.frame = 0
        self.held_sum = 0.0
        self.last_held_share = 0.0
        self.last_residual_db: float | None = None

    @property
    def likelihood(self) -> float:
        return self.held_sum / len(self.scores) if self.scores else 0.0

    def update(self, window: Float, level_dbfs: float) -> bool:
        det, o = self.det, self.det.options
        active = level_dbfs >= o.min_level_dbfs
        self.frame += 1
        if not active:
            held = 0.0
            self.last_residual_db = None
        elif self.frame % det._hop_frames == 0:
            held = self.held_share(window)
            self.last_residual_db = self.held_share.residual_db
        else:
            held = self.last_held_share
        self.last_held_share = held
        if len(self.scores) == det._on_frames:
            self.held_sum -= self.scores[0]  # a running sum, as the detector keeps it
        self.scores.append(held)
        self.active.append(active)
        self.held_sum += held
        n = len(self.scores)
        if (
            n == det._on_frames
            and self.held_sum / n >= o.held_share_on
            and sum(self.active) / n >= o.active_share_on
        ):
            self.music, self.quiet = True, 0
        elif self.music:
            self.quiet += 1
            if self.quiet >= det._off_frames:
                self.music, self.quiet = False, 0
        return self.music


def _reference_periodicity(analyzer: VoicingAnalyzer, window: Float) -> float:
    centred = window - window.mean()
    spectrum = np.fft.rfft(centred, analyzer._nfft)
    autocorr = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, analyzer._nfft)
    energy = autocorr[0]
    if energy <= 1e-12:
        return 0.0
    lags = autocorr[analyzer.min_lag : analyzer.max_lag + 1] * analyzer._lag_scale
    return min(1.0, max(0.0, float(np.max(lags)) / float(energy)))


class _ReferenceFilter:
    def __init__(self, band: SpeechBandFilter) -> None:
        self.band = band
        self.zi = np.zeros(band._a.size - 1)

    def __call__(self, signal: Float) -> Float:
        out, self.zi = lfilter(self.band._b, self.band._a, signal, zi=self.zi)
        return np.asarray(out, dtype=np.float64)


def _reference_gained(
    frame: npt.NDArray[np.int16], from_db: float, to_db: float
) -> npt.NDArray[np.int16]:
    if from_db == to_db == 0.0:
        return frame
    if from_db == to_db:
        flat = np.round(frame.astype(np.float64) * 10.0 ** (to_db / 20.0))
        out: npt.NDArray[np.int16] = np.clip(flat, -32768, 32767).astype(np.int16)
        return out
    ramp = 10.0 ** (np.linspace(from_db, to_db, frame.size, endpoint=False) / 20.0)
    return np.clip(np.round(frame.astype(np.float64) * ramp), -32768, 32767).astype(np.int16)


def _reference_apply(agc: SpeechAgc) -> Any:
    def apply(
        frame: npt.NDArray[np.int16], level_dbfs: float, *, speech: bool
    ) -> tuple[npt.NDArray[np.int16], float]:
        o = agc.options
        if speech:
            current = agc._speech_dbfs if agc._speech_dbfs is not None else level_dbfs
            agc._speech_dbfs = current + (level_dbfs - current) * agc._alpha
        previous = agc.gain_db
        step = min(o.max_step_db, max(-o.max_step_db, agc._desired() - previous))
        gain = previous + step
        peak = int(np.max(np.abs(frame.astype(np.int32)))) if frame.size else 0
        if peak:
            gain = min(gain, 20.0 * math.log10(32767.0 / peak))
        gain = min(o.max_gain_db, max(-o.max_cut_db, gain))
        agc.gain_db = gain
        return _reference_gained(frame, previous, gain), gain

    return apply


def reference_gate(options: GateOptions) -> SpeechGate:
    """A gate whose hot-path stages run the plain formulations."""
    gate = SpeechGate(options)
    gate._music = _ReferenceMusic(gate._music)  # type: ignore[assignment]
    voicing = gate._voicing

    def periodicity(window: Float) -> float:
        return _reference_periodicity(voicing, window)

    gate._voicing.periodicity = periodicity  # type: ignore[method-assign]
    gate._filter.process = _ReferenceFilter(gate._filter)  # type: ignore[method-assign]
    gate._agc.apply = _reference_apply(gate._agc)  # type: ignore[method-assign]
    return gate


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


def _run(
    gate: SpeechGate, pcm: npt.NDArray[np.int16], chunks: list[int], boost: bool
) -> list[FrameDecision]:
    decisions: list[FrameDecision] = []
    start = 0
    k = 0
    while start < pcm.size:
        size = chunks[k % len(chunks)]
        k += 1
        if boost:
            # An echo guard for 0.6 s of every 2 s, switched between chunks.
            gate.start_boost_db = 6.0 if (start // FRAME) % 100 >= 70 else 0.0
        decisions.extend(gate.process_pcm16(pcm[start : start + size]))
        start += size
    return decisions


def _same(a: FrameDecision, b: FrameDecision) -> list[str]:
    wrong = []
    for f in dataclasses.fields(FrameDecision):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            same = x.dtype == y.dtype and np.array_equal(x, y)
        elif isinstance(x, float):
            same = math.isclose(x, y, rel_tol=1e-12, abs_tol=1e-12) or (
                math.isnan(x) and math.isnan(y)
            )
        else:
            same = x == y
        if not same:
            wrong.append(f"{f.name}: {x!r} vs {y!r}")
    return wrong


@pytest.mark.parametrize(
    ("name", "overrides", "boost"),
    [
        ("quiet", {}, False),
        ("quiet", {}, True),
        ("music", {}, False),
        ("music", {"music_residual": False}, False),
        ("street", {}, False),
        ("street", {"onset_lookback_ms": 0}, True),
    ],
)
def test_fast_gate_decides_exactly_like_the_reference(
    name: str, overrides: dict[str, Any], boost: bool
) -> None:
    pcm = CALLS[name]
    options = dataclasses.replace(GateOptions(), **overrides)
    # The live server's 20 ms chunks for the fast gate; ragged chunks for the reference
    # (the same frames, as the echo guard switches between chunks, when it is on).
    fast = _run(SpeechGate(options), pcm, [FRAME], boost)
    slow = _run(reference_gate(options), pcm, [FRAME] if boost else [37, 160, 333, 1, 500], boost)
    assert len(fast) == len(slow) == pcm.size // FRAME
    for a, b in zip(fast, slow, strict=True):
        wrong = _same(a, b)
        assert not wrong, f"{name} frame {a.index}: {'; '.join(wrong)}"
    # The calls must reach the paths under test, or the comparison proves little.
    assert any(d.state.value == "speech" for d in fast)
    assert any(d.voicing > 0 for d in fast)
    assert any(d.gain_db not in (0.0,) and d.sent for d in fast)
    if name == "music" and options.music_residual:
        assert any(d.music for d in fast)
        assert any(not math.isnan(d.residual_snr_db) for d in fast)


def test_int16_scaling_is_exact() -> None:
    everything = np.arange(-32768, 32768, dtype=np.int64).astype(np.int16)
    assert np.array_equal(
        np.multiply(everything, 1.0 / 32768.0), everything.astype(np.float64) / 32768.0
    )


def test_band_filter_fast_path_equals_lfilter_in_any_chunking() -> None:
    rng = np.random.default_rng(4)
    signal = rng.standard_normal(4000) * 0.1
    band = SpeechBandFilter()
    reference = _ReferenceFilter(SpeechBandFilter())
    fast = np.concatenate([band.process(signal[i : i + 160]) for i in range(0, 4000, 160)])
    slow = np.concatenate([reference(signal[i : i + 77]) for i in range(0, 4000, 77)])
    assert np.array_equal(fast, slow)


def test_agc_gain_ramps_equal_linspace_round_clip() -> None:
    rng = np.random.default_rng(5)
    agc = SpeechAgc()
    for i in range(2000):
        n = int(rng.choice([160, 320, 1760, 7]))
        noise = np.clip(rng.standard_normal(n) * rng.uniform(10, 40000), -32768, 32767)
        frame = noise.astype(np.int16)
        start = float(rng.uniform(-6, 18))
        end = start + float(rng.choice([0.0, 1.0, -1.0, rng.uniform(-1, 1)]))
        if i % 9 == 0:
            start = end = 0.0
        assert np.array_equal(agc.gained(frame, start, end), _reference_gained(frame, start, end))
