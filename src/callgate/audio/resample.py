"""Sample-rate and channel conversion to the telephone format."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import soxr

from callgate.audio.codec import SAMPLE_RATE_HZ

FloatAudio = npt.NDArray[np.float64]


def to_mono(signal: npt.ArrayLike) -> FloatAudio:
    """Average the channels of a (samples, channels) array; 1-D input passes through."""
    audio = np.asarray(signal, dtype=np.float64)
    if audio.ndim == 1:
        return audio
    if audio.ndim != 2:
        raise ValueError(f"audio must be 1-D or (samples, channels), got shape {audio.shape}")
    return np.asarray(audio.mean(axis=1), dtype=np.float64)


def resample(
    signal: npt.ArrayLike, from_rate_hz: int, to_rate_hz: int = SAMPLE_RATE_HZ
) -> FloatAudio:
    """Band-limited resampling (libsoxr, high quality); a no-op when the rates match."""
    audio = np.asarray(signal, dtype=np.float64)
    if from_rate_hz <= 0 or to_rate_hz <= 0:
        raise ValueError(f"sample rates must be positive, got {from_rate_hz} -> {to_rate_hz}")
    if from_rate_hz == to_rate_hz or audio.size == 0:
        return audio
    return np.asarray(
        soxr.resample(audio, from_rate_hz, to_rate_hz, quality="HQ"), dtype=np.float64
    )
