"""Frame level in RMS and dBFS, measured before any gain.

The SNR must be computed on the level before AGC: after AGC, amplified noise looks like
speech, which was the bug this project exists to fix.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from callgate.audio.compiled import kernel

DBFS_FLOOR = -100.0
"""Level reported for digital silence, in dBFS (full scale = RMS 1.0)."""


@kernel
def frame_rms(signal: npt.NDArray[np.float64]) -> float:
    """Root mean square of a float frame (full scale 1.0)."""
    if signal.size == 0:
        return 0.0
    return math.sqrt(float(np.dot(signal, signal)) / signal.size)


@kernel
def rms_to_dbfs(rms: float) -> float:
    """RMS (full scale 1.0) to dBFS, floored at :data:`DBFS_FLOOR`."""
    if rms <= 0.0:
        return DBFS_FLOOR
    return max(DBFS_FLOOR, 20.0 * math.log10(rms))


def dbfs_to_rms(dbfs: float) -> float:
    """dBFS to RMS (full scale 1.0)."""
    return float(10.0 ** (dbfs / 20.0))
