"""Small synthesis building blocks: colored noise, filters, tones, envelopes, reverb.

Kept apart from the scene recipes so each scene reads as a recipe, not as DSP plumbing.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

FloatAudio = npt.NDArray[np.float64]


def colored_noise(n: int, rng: np.random.Generator, exponent: float) -> FloatAudio:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / f ** (exponent / 2.0), n)
    return np.asarray(x / (np.sqrt(np.mean(x**2)) + 1e-20), dtype=np.float64)


def band(
    x: FloatAudio, low: float | None, high: float | None, rate: int, order: int = 2
) -> FloatAudio:
    """Butterworth band/high/low-pass (causal); an edge at Nyquist is dropped."""
    nyq = rate / 2.0
    if high is not None and high >= nyq * 0.98:
        high = None
    if low is not None and high is not None:
        sos = sps.butter(order, [low, high], "bandpass", fs=rate, output="sos")
    elif low is not None:
        sos = sps.butter(order, low, "highpass", fs=rate, output="sos")
    elif high is not None:
        sos = sps.butter(order, high, "lowpass", fs=rate, output="sos")
    else:
        return x
    return np.asarray(sps.sosfilt(sos, x), dtype=np.float64)


def smooth_random(n: int, rng: np.random.Generator, rate: int, rate_hz: float) -> FloatAudio:
    """A slow random curve in [0, 1]: interpolated random points ``rate_hz`` apart."""
    points = max(2, int(n / rate * rate_hz) + 2)
    knots = rng.random(points)
    x = np.linspace(0, points - 1, n)
    curve = np.interp(x, np.arange(points), knots)
    return np.asarray(curve, dtype=np.float64)


def hum(n: int, rate: int, rng: np.random.Generator, mains_hz: float | None = None) -> FloatAudio:
    """Mains hum: a fundamental and odd harmonics with slight random phases; unit-ish RMS."""
    base = mains_hz if mains_hz is not None else float(rng.choice([50.0, 60.0]))
    t = np.arange(n) / rate
    out = np.zeros(n)
    for h, amp in ((1, 1.0), (2, 0.3), (3, 0.5), (5, 0.25), (7, 0.12)):
        if base * h < rate / 2:
            out += amp * np.sin(2 * np.pi * base * h * t + rng.uniform(0, 2 * np.pi))
    return out


def tone(freq: float, dur_n: int, rate: int, harmonics: int, decay: float) -> FloatAudio:
    """A harmonic tone with 1/h^decay harmonics, all below Nyquist."""
    t = np.arange(dur_n) / rate
    out = np.zeros(dur_n)
    for h in range(1, harmonics + 1):
        if freq * h >= rate / 2 * 0.95:
            break
        out += np.sin(2 * np.pi * freq * h * t) / h**decay
    return out


def adsr(
    n: int, rate: int, attack: float, decay: float, *, sustain: float, release: float
) -> FloatAudio:
    """Attack-decay-sustain-release envelope of ``n`` samples, so notes start and stop softly."""
    a = max(1, int(attack * rate))
    d = max(1, int(decay * rate))
    r = max(1, int(release * rate))
    s = max(0, n - a - d - r)
    env = np.concatenate(
        [
            np.linspace(0, 1, a),
            np.linspace(1, sustain, d),
            np.full(s, sustain),
            np.linspace(sustain, 0, r),
        ]
    )
    return env[:n] if env.size >= n else np.pad(env, (0, n - env.size))


def add_at(out: FloatAudio, start: int, seg: FloatAudio) -> None:
    """Add ``seg`` into ``out`` at ``start``, cut at the end of ``out``."""
    if start >= out.size:
        return
    end = min(out.size, start + seg.size)
    out[start:end] += seg[: end - start]


def reverb(x: FloatAudio, rate: int, rng: np.random.Generator, rt60_s: float = 0.5) -> FloatAudio:
    """Room reverb: convolution with exponentially decaying noise (a synthetic RIR)."""
    n = int(rt60_s * rate)
    t = np.arange(n) / rate
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    ir[0] = 3.0  # the direct path
    y = sps.fftconvolve(x, ir)[: x.size]
    return np.asarray(y, dtype=np.float64)
