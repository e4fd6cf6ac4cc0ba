"""What a phone line does to audio: 8 kHz, 300-3400 Hz, G.711 mu-law.

Benchmarks and tests must feed the gate what Twilio delivers, not studio audio, or low
rumble and fine quantization would make results look better than they are.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from callgate.audio.codec import SAMPLE_RATE_HZ, float_to_pcm16, ulaw_round_trip
from callgate.audio.resample import resample

BAND_LOW_HZ = 300.0
BAND_HIGH_HZ = 3400.0

_SOS = sps.butter(4, [BAND_LOW_HZ, BAND_HIGH_HZ], "bandpass", fs=SAMPLE_RATE_HZ, output="sos")


def band_limit(signal: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """300-3400 Hz band-pass at 8 kHz, zero-phase so frame labels stay aligned."""
    x = np.asarray(signal, dtype=np.float64)
    if x.size <= 3 * 2 * _SOS.shape[0] * 2:  # too short for filtfilt's padding
        return np.asarray(sps.sosfilt(_SOS, x), dtype=np.float64)
    return np.asarray(sps.sosfiltfilt(_SOS, x), dtype=np.float64)


def telephone_channel(signal: npt.ArrayLike, sample_rate_hz: int) -> npt.NDArray[np.int16]:
    """Float audio at any rate -> int16 at 8 kHz as it arrives from a Twilio call."""
    x = resample(np.asarray(signal, dtype=np.float64), sample_rate_hz, SAMPLE_RATE_HZ)
    return ulaw_round_trip(float_to_pcm16(band_limit(x)))
