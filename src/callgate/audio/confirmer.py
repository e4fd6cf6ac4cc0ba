"""Optional second stage: a neural check on candidates the DSP rules would confirm.

Loud music and babble contain real voicing, so pure DSP can mistake them for a talker.
The confirmer runs Silero VAD (ONNX) on the recent audio, and only when the state machine
is about to confirm a candidate: a few milliseconds per candidate rather than per frame.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

import numpy as np
import numpy.typing as npt


class CandidateConfirmer(Protocol):
    """What the gate needs from a second stage."""

    def observe(self, frame: npt.NDArray[np.int16]) -> None:
        """See every frame, so the recent audio is at hand when a candidate comes."""
        ...

    def confirm(self) -> bool:
        """Is the candidate that just passed the DSP rules really speech?"""
        ...

    def reset(self) -> None:
        """Forget everything, as at the start of a new call."""
        ...


class SileroConfirmer:
    """Runs Silero VAD from a cold state over the last ``context_ms`` of audio."""

    def __init__(self, threshold: float, frame_samples: int, context_ms: int = 400) -> None:
        from callgate.audio.silero import SileroVad  # noqa: PLC0415 (optional extra)

        self.threshold = threshold
        self._model = SileroVad(sample_rate_hz=8000)
        frames = max(1, context_ms * 8 // frame_samples)
        self._recent: deque[npt.NDArray[np.int16]] = deque(maxlen=frames)
        self.last_probability = 0.0

    def observe(self, frame: npt.NDArray[np.int16]) -> None:
        self._recent.append(frame)

    def confirm(self) -> bool:
        audio = np.concatenate(list(self._recent)).astype(np.float32) / 32768.0
        window = self._model.window_samples
        self._model.reset()
        start = audio.size % window
        probabilities = [
            self._model.probability(audio[i : i + window]) for i in range(start, audio.size, window)
        ]
        # The onset is at the end of the context; judge by the newest windows.
        self.last_probability = max(probabilities[-3:], default=0.0)
        return self.last_probability >= self.threshold

    def reset(self) -> None:
        self._recent.clear()
        self._model.reset()


def make_confirmer(kind: str, threshold: float, frame_samples: int) -> CandidateConfirmer | None:
    """Build the configured second stage, or ``None`` for the DSP-only gate."""
    if kind == "none":
        return None
    if kind == "silero":
        return SileroConfirmer(threshold, frame_samples)
    raise ValueError(f"unknown confirmer {kind!r}; expected 'none' or 'silero'")
