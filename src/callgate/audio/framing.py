"""Re-framing: chunks of any size in, fixed analysis frames out."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class Reframer:
    """Buffers samples so callers can push 1 byte or 10 seconds and get whole frames back.

    Twilio sends 20 ms chunks, but files, tests and other carriers do not; keeping this
    separate is what makes the gate's output independent of chunking.
    """

    def __init__(self, frame_samples: int) -> None:
        if frame_samples <= 0:
            raise ValueError(f"frame_samples must be positive, got {frame_samples}")
        self.frame_samples = frame_samples
        self._pending = np.zeros(0, dtype=np.int16)

    @property
    def pending_samples(self) -> int:
        """Samples waiting for the rest of their frame."""
        return int(self._pending.size)

    def push(self, samples: npt.NDArray[np.int16]) -> list[npt.NDArray[np.int16]]:
        """Add samples; return every frame now complete, oldest first."""
        if samples.size == self.frame_samples and not self._pending.size and samples.ndim == 1:
            # The live case: one whole frame per chunk (Twilio's 20 ms), nothing pending.
            return [samples]
        data = np.concatenate((self._pending, samples)) if self._pending.size else samples
        whole = data.size - data.size % self.frame_samples
        self._pending = data[whole:].copy()
        if whole == 0:
            return []
        return list(data[:whole].reshape(-1, self.frame_samples))

    def reset(self) -> None:
        """Drop any partial frame."""
        self._pending = np.zeros(0, dtype=np.int16)
