"""Synthesized speech, noise scenes, the phone channel and the Silero wrapper."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from scipy import signal as sps

from callgate.audio.silero import SileroVad, silero_available
from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import (
    NOISE_BEDS,
    active_level_dbfs,
    mix_at_snr,
    noise_gain_for_snr,
    rms_dbfs,
)
from callgate.synth.speech import espeak_available, speak, speech_like

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")
needs_silero = pytest.mark.skipif(not silero_available(), reason="onnxruntime/silero missing")


def _speech(rng: np.random.Generator, rate: int = 8000) -> np.ndarray:
    if espeak_available():
        return speak("Hello, I would like to book an appointment.", sample_rate_hz=rate)
    return speech_like(3.0, rng, rate)


@pytest.mark.parametrize("name", sorted(NOISE_BEDS))
def test_noise_beds_are_deterministic_and_at_nominal_level(name: str) -> None:
    a = NOISE_BEDS[name](3.0, 8000, np.random.default_rng(7))
    b = NOISE_BEDS[name](3.0, 8000, np.random.default_rng(7))
    assert a.dtype == np.float64
    assert a.size == 24000
    assert np.array_equal(a, b)
    assert rms_dbfs(a) == pytest.approx(-20.0, abs=0.01)
    assert np.all(np.isfinite(a))


def test_speech_like_is_bounded_and_seeded() -> None:
    a = speech_like(2.0, np.random.default_rng(1))
    assert a.size == 16000
    assert np.max(np.abs(a)) <= 0.5 + 1e-9
    assert np.array_equal(a, speech_like(2.0, np.random.default_rng(1)))


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_mix_at_snr_hits_the_requested_snr(snr_db: float) -> None:
    rng = np.random.default_rng(3)
    speech = np.concatenate([np.zeros(8000), _speech(rng), np.zeros(8000)])
    noise = NOISE_BEDS["fan"](speech.size / 8000 + 0.1, 8000, rng)[: speech.size]
    mixed = mix_at_snr(speech, noise, snr_db)
    scaled_noise = mixed - speech
    measured = active_level_dbfs(speech, 8000) - rms_dbfs(scaled_noise)
    assert measured == pytest.approx(snr_db, abs=0.5)
    assert noise_gain_for_snr(speech, noise, snr_db) > 0


def test_telephone_channel_is_8k_int16_and_band_limited() -> None:
    rng = np.random.default_rng(5)
    rate = 16000
    x = 0.1 * rng.standard_normal(rate * 2)  # 2 s of white noise at 16 kHz
    y = telephone_channel(x, rate)
    assert y.dtype == np.int16
    assert y.size == pytest.approx(16000, abs=2)
    f, p = sps.welch(y.astype(np.float64), fs=8000, nperseg=1024)
    low = p[f < 200].sum()
    band = p[(f > 500) & (f < 3000)].sum()
    assert low / band < 1e-3


def test_telephone_channel_removes_mains_hum() -> None:
    t = np.arange(8000) / 8000
    y = telephone_channel(0.3 * np.sin(2 * np.pi * 50 * t), 8000)
    assert np.sqrt(np.mean(y[800:-800].astype(np.float64) ** 2)) < 0.003 * 32768 * 0.3


@needs_espeak
def test_espeak_voices_differ_and_resample() -> None:
    a = speak("Can you hear me?", voice="en-us", sample_rate_hz=8000)
    b = speak("Can you hear me?", voice="en-us+f3", sample_rate_hz=8000)
    c = speak("Can you hear me?", voice="en-us", sample_rate_hz=16000)
    assert a.dtype == np.float64
    assert 0.5 < a.size / 8000 < 3.0
    assert c.size == pytest.approx(2 * a.size, rel=0.01)
    assert not np.array_equal(a[: min(a.size, b.size)], b[: min(a.size, b.size)])


@needs_espeak
def test_espeak_hebrew() -> None:
    h = speak("שלום, מה שלומך?", voice="he")
    assert h.size > 4000
    assert rms_dbfs(h) > -40.0


@needs_silero
def test_silero_tells_speech_from_silence() -> None:
    rng = np.random.default_rng(11)
    vad = SileroVad(8000)
    assert vad.window_samples == 256
    speech = _speech(rng).astype(np.float32)
    silence = (1e-4 * rng.standard_normal(8000)).astype(np.float32)
    p_sil = [vad.probability(silence[i : i + 256]) for i in range(0, 7936, 256)]
    vad.reset()
    p_sp = [vad.probability(speech[i : i + 256]) for i in range(0, speech.size - 256, 256)]
    assert max(p_sil) < 0.3
    assert float(np.mean(np.asarray(p_sp) > 0.5)) > 0.5
    assert "torch" not in sys.modules


@needs_silero
def test_silero_rejects_wrong_window() -> None:
    vad = SileroVad(8000)
    with pytest.raises(ValueError, match="256"):
        vad.probability(np.zeros(160, dtype=np.float32))
    with pytest.raises(ValueError, match="supports"):
        SileroVad(11025)
