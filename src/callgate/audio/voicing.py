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

from callgate.audio.compiled import kernel, pairwise_sum


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
        self._fft_in = np.zeros(self._nfft)
        """The centred window, zero-padded to the FFT's length (the tail stays zero)."""

    def periodicity(self, window: npt.NDArray[np.float64]) -> float:
        """0 (noise-like) to about 1 (strictly periodic) for one window of filtered audio."""
        if window.size != self.window_samples:
            return self._any_size_periodicity(window)
        return voicing_periodicity(window, self._fft_in, self.min_lag, self._lag_scale)

    def _any_size_periodicity(self, window: npt.NDArray[np.float64]) -> float:
        centred = window - window.mean()
        spectrum = np.fft.rfft(centred, self._nfft)
        autocorr = np.fft.irfft(spectrum.real**2 + spectrum.imag**2, self._nfft)
        energy = autocorr[0]
        if energy <= 1e-12:
            return 0.0
        peak = float(np.max(autocorr[self.min_lag : self.max_lag + 1] * self._lag_scale))
        return min(1.0, max(0.0, peak / float(energy)))


@kernel
def voicing_periodicity(
    window: npt.NDArray[np.float64],
    fft_in: npt.NDArray[np.float64],
    min_lag: int,
    lag_scale: npt.NDArray[np.float64],
) -> float:
    """The largest scaled autocorrelation over the pitch lags, over the energy, in 0..1.

    The autocorrelation is the inverse FFT of the power spectrum of the centred window
    (numpy.fft inside a kernel is rocket-fft: the same pocketfft, the same numbers); the
    mean is numpy's, with its pairwise sum.
    """
    mean = pairwise_sum(window, 0, window.size) / window.size
    for i in range(window.size):
        fft_in[i] = window[i] - mean
    nfft = fft_in.size
    spectrum = np.fft.rfft(fft_in)
    power = np.empty(spectrum.size)
    for i in range(spectrum.size):
        value = spectrum[i]
        power[i] = value.real * value.real + value.imag * value.imag
    autocorr = np.fft.irfft(power, nfft)
    energy = float(autocorr[0])
    if energy <= 1e-12:
        return 0.0
    peak = -np.inf
    for j in range(lag_scale.size):
        peak = max(peak, autocorr[min_lag + j] * lag_scale[j])
    return min(1.0, max(0.0, peak / energy))
