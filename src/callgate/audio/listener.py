"""Optional neural ear for speech under a loud background: Silero VAD, run only then.

Under loud music or noise the gate's SNR cannot see a caller at 0-5 dB: the background
fills the band, and music's notes are voiced too. Silero VAD hears speech there better
than any level rule (music_loud frame F1 0.735 against the DSP gate's 0.664), but costs
about 120 us per 20 ms frame. A loud background is a small share of most calls, so the
gate asks Silero only while the background is loud next to the caller (under music with
GATE_MUSIC_LISTENER, under any noise with GATE_NOISE_LISTENER): its probability then
opens and confirms candidates alongside the SNR. Otherwise the gate is pure DSP.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class SpeechListener:
    """Streams the frames heard under a loud background through Silero; keeps the latest
    probability."""

    def __init__(self) -> None:
        from callgate.audio.silero import SileroVad  # noqa: PLC0415 (optional extra)

        self._model = SileroVad(sample_rate_hz=8000)
        self._window = self._model.window_samples
        self._pending = np.zeros(0, dtype=np.float32)
        self.probability: float | None = None
        """Speech probability of the newest complete window; None until one is heard."""

    def hear(self, frame: npt.NDArray[np.int16], *, listen: bool) -> float | None:
        """Account for one frame; the probability to judge it by, or None when not asked
        (``listen`` false: the stream restarts the next time it is)."""
        if not listen:
            if self.probability is not None or self._pending.size:
                self.reset()
            return None
        audio = frame.astype(np.float32) / 32768.0
        pending = np.concatenate((self._pending, audio))
        while pending.size >= self._window:
            self.probability = self._model.probability(pending[: self._window])
            pending = pending[self._window :]
        self._pending = pending
        return self.probability

    def reset(self) -> None:
        """Forget the stream: the background quietened, or a new call."""
        self._model.reset()
        self._pending = np.zeros(0, dtype=np.float32)
        self.probability = None
