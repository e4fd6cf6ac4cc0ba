"""Pre-roll: the audio just before a speech onset, kept so word beginnings are not cut.

Only frames that were *not* sent are kept, so an onset right after a hangover never sends
the same audio twice.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import numpy.typing as npt


class PrerollBuffer:
    """Ring of the most recent unsent frames."""

    def __init__(self, max_frames: int) -> None:
        if max_frames < 0:
            raise ValueError(f"max_frames must be >= 0, got {max_frames}")
        self.max_frames = max_frames
        self._frames: deque[npt.NDArray[np.int16]] = deque(maxlen=max_frames or None)

    def __len__(self) -> int:
        return len(self._frames)

    def push(self, frame: npt.NDArray[np.int16]) -> None:
        """Remember an unsent frame, forgetting the oldest beyond ``max_frames``."""
        if self.max_frames:
            self._frames.append(frame)

    def drain(self, frames: int | None = None) -> list[npt.NDArray[np.int16]]:
        """Return the newest ``frames`` frames (default all), oldest first; empty the ring."""
        kept = list(self._frames)
        self._frames.clear()
        if frames is not None:
            kept = kept[len(kept) - min(frames, len(kept)) :]
        return kept

    def clear(self) -> None:
        """Forget everything, e.g. after the frames were sent."""
        self._frames.clear()
