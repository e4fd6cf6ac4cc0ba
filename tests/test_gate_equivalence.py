"""The gate's compiled paths decide exactly what the plain formulations decided.

Two checks. Stage by stage: the compiled music detector, voicing, band-pass and AGC
against the straightforward numpy/scipy formulations they replaced (as of 032f824), on
synthesized calls (``tests/gate_calls.py``). And the whole gate, whose frame now runs as
one compiled step, against a record of every decision the gate made on those calls before
it was compiled (``tests/golden/gate_decisions.npz``): state, sent, reason, counts and
the sent audio exactly, floats within 1e-9. The kernels take magnitudes with the C
library's functions where numpy uses its own SIMD routines on AVX-512 machines, so the
last bit of a float may differ. The whole benchmark corpus is compared by
``python -m benchmarks.gate_equivalence`` (see its docstring).
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import lfilter

from callgate.audio import SpeechGate
from callgate.audio.agc import SpeechAgc
from callgate.audio.bandpass import SpeechBandFilter
from callgate.audio.music import MusicDetector
from callgate.audio.voicing import VoicingAnalyzer
from tests.gate_calls import (
    CALLS,
    CASES,
    FRAME,
    RECORD,
    case_key,
    decisions_for,
    exact_row,
    float_row,
    run,
)

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


def _windows(pcm: npt.NDArray[np.int16]) -> list[Float]:
    """The gate's 40 ms analysis windows of the band-passed call, one per frame."""
    filtered = lfilter(*_filter_coefficients(), pcm.astype(np.float64) / 32768.0)
    history = np.concatenate([np.zeros(2 * FRAME), filtered])
    return [history[k : k + 2 * FRAME] for k in range(FRAME, filtered.size + 1, FRAME)]


def _filter_coefficients() -> tuple[Float, Float]:
    band = SpeechBandFilter()
    return band._b, band._a


@pytest.mark.parametrize("name", sorted(CALLS))
def test_music_and_voicing_compute_what_the_plain_formulations_compute(name: str) -> None:
    fast = MusicDetector(2 * FRAME, residual_held_frames=3)
    slow = _ReferenceMusic(MusicDetector(2 * FRAME, residual_held_frames=3))
    voicing = VoicingAnalyzer(2 * FRAME)
    music_frames = voiced = 0
    for window in _windows(CALLS[name]):
        level = 20.0 * math.log10(max(1e-5, float(np.sqrt(np.mean(window[FRAME:] ** 2)))))
        assert fast.update(window, level) == slow.update(window, level)
        assert fast.likelihood == pytest.approx(slow.likelihood, rel=1e-12, abs=1e-12)
        assert fast.last_held_share == pytest.approx(slow.last_held_share, rel=1e-12, abs=1e-12)
        if slow.last_residual_db is None:
            assert fast.last_residual_db is None
        else:
            assert fast.last_residual_db == pytest.approx(slow.last_residual_db, rel=1e-12)
        periodicity = voicing.periodicity(window)
        assert periodicity == pytest.approx(_reference_periodicity(voicing, window), abs=1e-12)
        music_frames += fast.music
        voiced += periodicity >= 0.45
    # The calls must reach the paths under test, or the comparison proves little.
    assert voiced > 10
    assert music_frames > 0 if name == "music" else True


@pytest.mark.parametrize(("name", "overrides", "boost"), CASES)
def test_the_gate_decides_as_its_record_says(
    name: str, overrides: dict[str, Any], boost: bool
) -> None:
    key = case_key(name, overrides, boost)
    with np.load(RECORD) as record:
        exact, floats = record[f"{key}|exact"], record[f"{key}|floats"]
    decisions = decisions_for(name, overrides, boost)
    assert len(decisions) == len(exact) == CALLS[name].size // FRAME
    for decision, row, values in zip(decisions, exact, floats, strict=True):
        assert exact_row(decision) == row, f"{key} frame {decision.index}"
        np.testing.assert_allclose(
            float_row(decision), values, rtol=1e-9, atol=1e-9, err_msg=f"{key} {decision.index}"
        )
    # The calls must reach the paths under test, or the comparison proves little.
    assert any(d.state.value == "speech" for d in decisions)
    assert any(d.voicing > 0 for d in decisions)
    assert any(d.gain_db != 0.0 and d.sent for d in decisions)


def test_agc_computes_what_the_plain_formulation_computes() -> None:
    fast, slow = SpeechAgc(), SpeechAgc()
    reference = _reference_apply(slow)
    pcm = CALLS["quiet"]
    rng = np.random.default_rng(4)
    for k in range(pcm.size // FRAME):
        frame = pcm[k * FRAME : (k + 1) * FRAME]
        level, speech = float(rng.uniform(-45, -10)), bool(rng.random() < 0.8)
        if k % 50 == 0:
            fast.start_utterance(level)
            slow.start_utterance(level)
        audio, gain = fast.apply(frame, level, speech=speech)
        expected, expected_gain = reference(frame, level, speech=speech)
        assert np.array_equal(audio, expected), f"frame {k}"
        assert gain == pytest.approx(expected_gain, rel=1e-12, abs=1e-12)


def test_the_gate_decides_the_same_in_any_chunking() -> None:
    """Ragged chunks give the 20 ms chunks' decisions (the record is made in 20 ms)."""
    pcm = CALLS["street"]
    steady = run(SpeechGate(), pcm, [FRAME], boost=False)
    ragged = run(SpeechGate(), pcm, [37, 160, 333, 1, 500], boost=False)
    assert [exact_row(d) for d in ragged] == [exact_row(d) for d in steady]


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
