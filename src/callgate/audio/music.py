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
        self._settings = np.array(
            [
                o.min_level_dbfs,
                self._hop_frames,
                self._prominence,
                self._held_frames,
                self._residual_held,
                self._on_frames,
                self._off_frames,
                o.held_share_on,
                o.active_share_on,
            ],
            dtype=np.float64,
        )
        bins = self._band.stop - self._band.start
        # Work buffers, reused every frame; the peak runs carry over between analyses.
        self._amplitude = np.zeros(bins)
        self._power = np.zeros(bins)
        self._picked = np.zeros(bins)
        self._runs = np.zeros(bins, dtype=np.int32)
        self._dilated_runs = np.zeros(bins, dtype=np.int32)
        # The last on_ms of held shares and activity, as rings, and the running counts:
        # held sum, active count, quiet frames, frames seen, ring length, ring head, music,
        # the newest held share, the newest residual and whether there is one.
        self._scores = np.zeros(self._on_frames)
        self._actives = np.zeros(self._on_frames)
        self._counts = np.zeros(10)
        self._fft_in = np.zeros(self._nfft)
        self.reset()

    def reset(self) -> None:
        """Forget everything, as at the start of a new call (in place: a compiled gate
        step holds these arrays)."""
        for buffer in (self._runs, self._dilated_runs, self._scores, self._actives, self._counts):
            buffer[:] = 0

    @property
    def likelihood(self) -> float:
        """Recent average share of held-note energy, 0..1: how music-like the sound is now."""
        return music_likelihood(self._counts)

    def update(self, window: npt.NDArray[np.float64], level_dbfs: float) -> bool:
        """Analyse the newest window; ``level_dbfs`` is the newest frame's level."""
        return music_update(
            window,
            level_dbfs,
            self._window,
            self._fft_in,
            self._band.start,
            self._dilated_runs,
            self._runs,
            self._amplitude,
            self._power,
            self._picked,
            self._scores,
            self._actives,
            self._counts,
            self._settings,
        )

    @property
    def music(self) -> bool:
        """Music is on: the stricter thresholds apply."""
        return music_on(self._counts)

    @property
    def last_held_share(self) -> float:
        """The newest frame's share of peak power in held notes."""
        return music_held_share(self._counts)

    @property
    def last_residual_db(self) -> float | None:
        """Power between the held notes (bins within one of a held peak left out), in dB
        on the spectrum's own scale; ``None`` for a silent frame or when not asked for."""
        residual = music_residual_db(self._counts)
        return None if math.isnan(residual) else residual


@kernel
def _peaks(  # noqa: PLR0917 (a kernel takes its buffers as arguments)
    window: npt.NDArray[np.float64],
    taper: npt.NDArray[np.float64],
    fft_in: npt.NDArray[np.float64],
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
    zero-padded to ``fft_in.size`` (whose tail stays zero), over ``dilated.size`` bins
    from ``low``. ``dilated`` carries the peak runs from the
    previous analysis and is updated in place.

    A peak is a local maximum that stands out by ``prominence`` dB from the bins four
    either side (edge bins are compared with copies of themselves). A held note may wobble
    by one bin, so a peak's run extends the previous runs dilated by one bin.
    """
    # numpy.fft inside a kernel is rocket-fft: the same pocketfft, the same numbers.
    # The tapered window, zero-padded to the FFT's length in a buffer kept for it.
    for i in range(window.size):
        fft_in[i] = window[i] * taper[i]
    band = np.fft.rfft(fft_in)[low : low + dilated.size]
    bins = band.size
    # Compared as amplitudes, not dB: x >= y exactly when 20 log10(x) >= 20 log10(y), and
    # a rise of ``prominence`` dB is a factor of 10 ** (prominence / 20).
    factor = 10.0 ** (prominence / 20.0)
    for i in range(bins):
        value = band[i]
        power[i] = value.real * value.real + value.imag * value.imag
        amplitude[i] = math.sqrt(power[i]) + 1e-9
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


# Where update's running counts sit in their array.
(_HELD_SUM, _ACTIVE, _QUIET, _FRAME, _LENGTH, _HEAD) = range(6)
(_MUSIC, _HELD, _RESIDUAL, _RESIDUAL_VALID) = range(6, 10)


@kernel
def music_update(  # noqa: PLR0917 (a kernel takes its buffers as arguments)
    window: npt.NDArray[np.float64],
    level_dbfs: float,
    taper: npt.NDArray[np.float64],
    fft_in: npt.NDArray[np.float64],
    low: int,
    dilated: npt.NDArray[np.int32],
    runs: npt.NDArray[np.int32],
    amplitude: npt.NDArray[np.float64],
    power: npt.NDArray[np.float64],
    picked: npt.NDArray[np.float64],
    scores: npt.NDArray[np.float64],
    actives: npt.NDArray[np.float64],
    counts: npt.NDArray[np.float64],
    settings: npt.NDArray[np.float64],
) -> bool:
    """One frame of :meth:`MusicDetector.update`: is music on? ``counts`` and the rings
    carry the state, the newest held share and residual included."""
    min_level, hop, prominence, held_frames, residual_held = settings[:5]
    on_frames, off_frames, held_share_on, active_share_on = settings[5:9]
    active = level_dbfs >= min_level
    counts[_FRAME] += 1.0
    held = 0.0
    if not active:
        counts[_RESIDUAL_VALID] = 0.0
    elif counts[_FRAME] % hop == 0:
        held, residual_db = _peaks(
            window,
            taper,
            fft_in,
            low,
            dilated,
            runs,
            amplitude,
            power,
            picked,
            prominence,
            int(held_frames),
            int(residual_held),
        )
        if residual_held:
            counts[_RESIDUAL] = residual_db
            counts[_RESIDUAL_VALID] = 1.0
    else:
        # Music is judged over seconds: one spectrum every hop_ms is plenty, and in
        # between the last one stands.
        held = scores[(int(counts[_HEAD]) - 1) % scores.size]
    size = scores.size
    head = int(counts[_HEAD]) % size
    if counts[_LENGTH] == size:
        counts[_HELD_SUM] -= scores[head]
        counts[_ACTIVE] -= actives[head]
    scores[head] = held
    actives[head] = 1.0 if active else 0.0
    counts[_HEAD] = head + 1
    counts[_LENGTH] = min(counts[_LENGTH] + 1.0, size)
    counts[_HELD_SUM] += held
    counts[_ACTIVE] += actives[head]
    n = counts[_LENGTH]
    music_like = (
        n == on_frames
        and counts[_HELD_SUM] / n >= held_share_on
        and counts[_ACTIVE] / n >= active_share_on
    )
    if music_like:
        counts[_MUSIC] = 1.0
        counts[_QUIET] = 0.0
    elif counts[_MUSIC]:
        counts[_QUIET] += 1.0
        if counts[_QUIET] >= off_frames:
            counts[_MUSIC] = 0.0
            counts[_QUIET] = 0.0
    counts[_HELD] = held
    return music_on(counts)


# What the rest of the gate reads of the detector's counts, for its compiled step.


@kernel
def music_on(counts: npt.NDArray[np.float64]) -> bool:
    """Music is on: the stricter thresholds apply."""
    return bool(counts[_MUSIC] == 1.0)


@kernel
def music_likelihood(counts: npt.NDArray[np.float64]) -> float:
    """The recent average share of held-note energy, 0..1."""
    return float(counts[_HELD_SUM] / counts[_LENGTH]) if counts[_LENGTH] else 0.0


@kernel
def music_held_share(counts: npt.NDArray[np.float64]) -> float:
    """The newest frame's share of peak power in held notes."""
    return float(counts[_HELD])


@kernel
def music_residual_db(counts: npt.NDArray[np.float64]) -> float:
    """The newest power between the held notes, in dB; NaN when there is none."""
    return float(counts[_RESIDUAL]) if counts[_RESIDUAL_VALID] else math.nan
