"""Periodicity: how strongly a stretch of audio repeats at a voice pitch.

Voiced speech repeats every pitch period (70-400 Hz). Fans, street rumble, wind and most
transients do not. The gate uses this to tell a talker's syllables from noise bursts that
are just as loud. Telephone band-limiting removes the fundamental but keeps its harmonics,
and the autocorrelation still peaks at the period.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callgate.audio.fastfft import irfft_into, rfft_into

_max = np.maximum.reduce
_sum = np.add.reduce


@dataclass(frozen=True, slots=True)
class VoicingOptions:
    """Pitch search range for the autocorrelation."""

    min_pitch_hz: float = 70.0
    """Lowest voice pitch considered, in Hz."""
    max_pitch_hz: float = 400.0
    """Highest voice pitch considered, in Hz."""
    sample_rate_hz: int = 8000
    """Rate of the audio analysed."""

    def __post_init__(self) -> None:
        if not 0 < self.min_pitch_hz < self.max_pitch_hz < self.sample_rate_hz / 4:
            raise ValueError(
                f"pitch range must satisfy 0 < min < max < {self.sample_rate_hz / 4:g} Hz, "
                f"got {self.min_pitch_hz:g}-{self.max_pitch_hz:g}"
            )


class VoicingAnalyzer:
    """Normalised autocorrelation peak over the pitch-lag range, via one real FFT."""

    def __init__(self, window_samples: int, options: VoicingOptions | None = None) -> None:
        self.options = options or VoicingOptions()
        o = self.options
        self.min_lag = int(o.sample_rate_hz / o.max_pitch_hz)
        self.max_lag = int(np.ceil(o.sample_rate_hz / o.min_pitch_hz))
        if window_samples <= self.max_lag * 2:
            raise ValueError(
                f"window of {window_samples} samples is too short for a {o.min_pitch_hz:g} Hz pitch"
            )
        self.window_samples = window_samples
        # Circular autocorrelation equals the linear one for every lag we read as long as
        # nfft >= window + max_lag: wrapped products land at lags beyond the window.
        self._nfft = 1 << int(np.ceil(np.log2(window_samples + self.max_lag + 1)))
        lags = np.arange(self.min_lag, self.max_lag + 1)
        # Unbiased normalisation: fewer products overlap at longer lags.
        self._lag_scale = window_samples / (window_samples - lags)
        # Work buffers reused every call; the arithmetic is that of numpy.fft, in place.
        self._centred = np.zeros(window_samples)
        self._spectrum = np.zeros(self._nfft // 2 + 1, dtype=np.complex128)
        self._real = self._spectrum.real
        self._imag = self._spectrum.imag
        self._power = np.zeros(self._nfft // 2 + 1)
        self._imag_power = np.zeros(self._nfft // 2 + 1)
        self._autocorr = np.zeros(self._nfft)
        self._lags = self._autocorr[self.min_lag : self.max_lag + 1]
        self._scaled = np.zeros(lags.size)

    def periodicity(self, window: npt.NDArray[np.float64]) -> float:
        """0 (noise-like) to about 1 (strictly periodic) for one window of filtered audio."""
        if window.size != self.window_samples:
            return self._periodicity(window)
        # window.mean(), without its Python wrapper: the sum over the count.
        centred = np.subtract(window, _sum(window) / window.size, out=self._centred)
        rfft_into(centred, self._spectrum)
        real, imag = self._real, self._imag
        power = np.multiply(real, real, out=self._power)
        np.add(power, np.multiply(imag, imag, out=self._imag_power), out=power)
        autocorr = irfft_into(power, self._autocorr)
        energy = autocorr[0]
        if energy <= 1e-12:
            return 0.0
        peak = float(_max(np.multiply(self._lags, self._lag_scale, out=self._scaled)))
        return min(1.0, max(0.0, peak / float(energy)))

    def _periodicity(self, window: npt.NDArray[np.float64]) -> float:
        centred = window - window.mean()
        spectrum = np.fft.rfft(centred, self._nfft)
        autocorr = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, self._nfft)
        energy = autocorr[0]
        if energy <= 1e-12:
            return 0.0
        peak = float(np.max(autocorr[self.min_lag : self.max_lag + 1] * self._lag_scale))
        return min(1.0, max(0.0, peak / float(energy)))
