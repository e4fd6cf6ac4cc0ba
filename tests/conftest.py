"""Shared fixtures: deterministic synthetic signals at 8 kHz."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from callgate.audio.codec import float_to_pcm16, ulaw_round_trip

RATE = 8000


def tone(freq_hz: float, seconds: float, dbfs: float) -> npt.NDArray[np.float64]:
    """A sine at a given RMS level (dBFS, full scale RMS 1.0)."""
    t = np.arange(int(seconds * RATE)) / RATE
    return np.asarray(np.sqrt(2) * 10 ** (dbfs / 20) * np.sin(2 * np.pi * freq_hz * t))


def white(seconds: float, dbfs: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """White noise at a given RMS level."""
    return np.asarray(10 ** (dbfs / 20) * rng.standard_normal(int(seconds * RATE)))


def voiced(
    seconds: float, dbfs: float, rng: np.random.Generator, pitch_hz: float = 130.0
) -> npt.NDArray[np.float64]:
    """Speech-like sound: a gliding harmonic source, syllable-modulated at ~4 Hz."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    f0 = pitch_hz * (1 + 0.08 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(f0) / RATE
    source = sum(np.sin(k * phase) / k for k in range(1, 25) if k * pitch_hz < 3600)
    syllables = np.clip(np.sin(2 * np.pi * 4.0 * t - np.pi / 2) * 0.6 + 0.6, 0, 1) ** 1.5
    sig = np.asarray(source * syllables, dtype=np.float64)
    sig += 0.02 * rng.standard_normal(n)
    return np.asarray(sig * 10 ** (dbfs / 20) / np.sqrt(np.mean(sig**2)), dtype=np.float64)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


def to_pcm(signal: npt.NDArray[np.float64]) -> npt.NDArray[np.int16]:
    """Float audio as it arrives over a phone line: int16 after a mu-law round trip."""
    return ulaw_round_trip(float_to_pcm16(signal))
