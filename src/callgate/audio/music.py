"""Music detection: sustained tonal sound switches the gate to its stricter thresholds.

Music differs from a talker in two ways that survive a phone line. Notes hold their pitch:
spectral peaks stay in the same frequency bin for hundreds of milliseconds, while speech
harmonics glide with intonation and break at every consonant. And music is continuous:
speech leaves syllable gaps several times a second. The detector scores each frame on
held spectral peaks, averages over ``on_ms``, and switches with hysteresis: on after
``on_ms`` of music-like sound, off after ``off_ms`` without it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callgate.audio.compiled import kernel, pairwise_sum


@dataclass(frozen=True, slots=True)
class MusicOptions:
    """When sound counts as music."""

    frame_ms: int = 20
    """Hop between analyses, in ms."""
    on_ms: int = 1500
    """Sustained music needed to switch the MUSIC thresholds on, in ms."""
    off_ms: int = 3000
    """Music-free time needed to switch them off again, in ms."""
    hop_ms: int = 20
    """Time between spectra, in ms (a multiple of the frame). 40 saves ~15 us per frame but
    cost 0.07 F1 under loud music in the benchmark (2026-11-25), so every frame is analysed."""
    held_ms: int = 160
    """A spectral peak that stays in its bin this long counts as a held note, in ms."""
    peak_prominence_db: float = 10.0
    """How far a bin must rise above its neighbourhood to count as a peak, in dB."""
    held_share_on: float = 0.35
    """Average share of peak energy in held notes above which a stretch is music-like."""
    active_share_on: float = 0.85
    """Share of frames with sound present needed for a stretch to be music-like."""
    min_level_dbfs: float = -60.0
    """Frames quieter than this count as no sound at all, in dBFS."""
    sample_rate_hz: int = 8000
    """Rate of the audio analysed."""

    def __post_init__(self) -> None:
        if self.frame_ms <= 0 or self.on_ms < self.frame_ms or self.off_ms < self.frame_ms:
            raise ValueError("frame_ms must be positive and on_ms/off_ms at least one frame")
        if not 0 < self.held_share_on < 1 or not 0 < self.active_share_on <= 1:
            raise ValueError("held_share_on must be in (0, 1) and active_share_on in (0, 1]")


class MusicDetector:
    """Frame-by-frame music flag with hysteresis."""

    def __init__(
        self,
        window_samples: int,
        options: MusicOptions | None = None,
        *,
        residual_held_frames: int = 0,
    ) -> None:
        """``residual_held_frames`` > 0 also measures the power between the notes
        (:attr:`last_residual_db`): peaks that have stayed in their bin this many
        analyses are taken out, so a note is out of it once it has lasted that long."""
        self.options = options or MusicOptions()
        self._residual_held = residual_held_frames
        o = self.options
        self._window = np.hanning(window_samples)
        self._nfft = 1 << int(np.ceil(np.log2(window_samples)))
        low = int(200 * self._nfft / o.sample_rate_hz)
        high = int(3400 * self._nfft / o.sample_rate_hz)
        self._band = slice(low, high)
        self._hop_frames = max(1, o.hop_ms // o.frame_ms)
        self._held_frames = max(1, o.held_ms // (o.frame_ms * self._hop_frames))
        self._prominence = o.peak_prominence_db
        self._on_frames = o.on_ms // o.frame_ms
        self._off_frames = o.off_ms // o.frame_ms
        self.reset()

    def reset(self) -> None:
        """Forget everything, as at the start of a new call."""
        self.music = False
        bins = self._band.stop - self._band.start
        # Work buffers, reused every frame; the peak runs carry over between analyses.
        self._amplitude = np.zeros(bins)
        self._power = np.zeros(bins)
        self._picked = np.zeros(bins)
        self._runs = np.zeros(bins, dtype=np.int32)
        self._dilated_runs = np.zeros(bins, dtype=np.int32)
        self._held_scores: deque[float] = deque(maxlen=self._on_frames)
        self._active: deque[bool] = deque(maxlen=self._on_frames)
        self._held_sum = 0.0
        self._active_count = 0
        self._quiet_frames = 0
        self.last_held_share = 0.0
        self.last_residual_db: float | None = None
        """Power between the held notes (bins within one of a held peak left out), in dB
        on the spectrum's own scale; ``None`` for a silent frame or when not asked for."""
        self._frame = 0

    @property
    def likelihood(self) -> float:
        """Recent average share of held-note energy, 0..1: how music-like the sound is now."""
        return self._held_sum / len(self._held_scores) if self._held_scores else 0.0

    def update(self, window: npt.NDArray[np.float64], level_dbfs: float) -> bool:
        """Analyse the newest window; ``level_dbfs`` is the newest frame's level."""
        active = level_dbfs >= self.options.min_level_dbfs
        self._frame += 1
        if not active:
            held = 0.0
            self.last_residual_db = None
        elif self._frame % self._hop_frames == 0:
            held = self._held_share(window)
        else:
            # Music is judged over seconds: one spectrum every hop_ms is plenty, and
            # in between the last one stands.
            held = self.last_held_share
        self.last_held_share = held
        self._push(held, active)
        n = len(self._held_scores)
        music_like = (
            n == self._on_frames
            and self._held_sum / n >= self.options.held_share_on
            and self._active_count / n >= self.options.active_share_on
        )
        if music_like:
            self.music = True
            self._quiet_frames = 0
        elif self.music:
            self._quiet_frames += 1
            if self._quiet_frames >= self._off_frames:
                self.music = False
                self._quiet_frames = 0
        return self.music

    def _held_share(self, window: npt.NDArray[np.float64]) -> float:
        held, residual_db = _peaks(
            window,
            self._window,
            self._nfft,
            self._band.start,
            self._dilated_runs,
            self._runs,
            self._amplitude,
            self._power,
            self._picked,
            self._prominence,
            self._held_frames,
            self._residual_held,
        )
        if self._residual_held:
            self.last_residual_db = residual_db
        return held

    def _push(self, held: float, active: bool) -> None:
        if len(self._held_scores) == self._held_scores.maxlen:
            self._held_sum -= self._held_scores[0]
            self._active_count -= int(self._active[0])
        self._held_scores.append(held)
        self._active.append(active)
        self._held_sum += held
        self._active_count += int(active)


@kernel
def _peaks(  # noqa: PLR0917 (a kernel takes its buffers as arguments)
    window: npt.NDArray[np.float64],
    taper: npt.NDArray[np.float64],
    nfft: int,
    low: int,
    dilated: npt.NDArray[np.int32],
    runs: npt.NDArray[np.int32],
    amplitude: npt.NDArray[np.float64],
    power: npt.NDArray[np.float64],
    picked: npt.NDArray[np.float64],
    prominence: float,
    held_frames: int,
    residual_held: int,
) -> tuple[float, float]:
    """Held-note share of the peak power, and the power between the notes in dB (NaN
    unless ``residual_held``), for one window of audio: the spectrum of ``window * taper``
    over ``dilated.size`` bins from ``low``. ``dilated`` carries the peak runs from the
    previous analysis and is updated in place.

    A peak is a local maximum that stands out by ``prominence`` dB from the bins four
    either side (edge bins are compared with copies of themselves). A held note may wobble
    by one bin, so a peak's run extends the previous runs dilated by one bin.
    """
    # numpy.fft inside a kernel is rocket-fft: the same pocketfft, the same numbers.
    band = np.fft.rfft(window * taper, nfft)[low : low + dilated.size]
    bins = band.size
    # Compared as amplitudes, not dB: x >= y exactly when 20 log10(x) >= 20 log10(y), and
    # a rise of ``prominence`` dB is a factor of 10 ** (prominence / 20).
    factor = 10.0 ** (prominence / 20.0)
    for i in range(bins):
        magnitude = math.hypot(band[i].real, band[i].imag)
        power[i] = magnitude * magnitude
        amplitude[i] = magnitude + 1e-9
    last = bins - 1
    for i in range(bins):
        level = amplitude[i]
        neighbourhood = max(amplitude[max(i - 4, 0)], amplitude[min(i + 4, last)])
        closest = max(amplitude[max(i - 1, 0)], amplitude[min(i + 1, last)])
        peak = level >= closest and level >= neighbourhood * factor
        runs[i] = dilated[i] + 1 if peak else 0
    for i in range(bins):
        widest = runs[i]
        if i > 0:
            widest = max(widest, runs[i - 1])
        if i < last:
            widest = max(widest, runs[i + 1])
        dilated[i] = widest
    residual_db = np.nan
    if residual_held:
        # Bins within one of a held peak are out: the dilated runs say which.
        count = 0
        for i in range(bins):
            if dilated[i] < residual_held:
                picked[count] = power[i]
                count += 1
        residual_db = 10.0 * np.log10(pairwise_sum(picked, 0, count) + 1e-12)
    # Runs are non-zero at peaks only, so peak power is the power where runs >= 1.
    count = 0
    for i in range(bins):
        if runs[i] > 0:
            picked[count] = power[i]
            count += 1
    total = pairwise_sum(picked, 0, count)
    if total <= 0.0:
        return 0.0, residual_db
    count = 0
    for i in range(bins):
        if runs[i] >= held_frames:
            picked[count] = power[i]
            count += 1
    return pairwise_sum(picked, 0, count) / total, residual_db
