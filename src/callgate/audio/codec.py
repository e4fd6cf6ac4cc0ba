"""G.711 mu-law and PCM16 conversions in numpy.

Twilio Media Streams carry 8 kHz mu-law (ITU-T G.711). ``audioop`` is gone from Python 3.13
and ``audioop-lts`` needs 3.13+, so the codec is a pair of lookup tables: decoding is one
table index, encoding is one table index on the top 14 bits of the sample.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Pcm16 = npt.NDArray[np.int16]

SAMPLE_RATE_HZ = 8000
"""The telephone rate that Twilio Media Streams use for ``audio/x-mulaw``."""

_BIAS = 0x84
_CLIP = 32635


def _build_decode_table() -> Pcm16:
    codes = np.arange(256, dtype=np.int32)
    inverted = ~codes & 0xFF
    sign = inverted & 0x80
    exponent = (inverted >> 4) & 0x07
    mantissa = inverted & 0x0F
    magnitude = (((mantissa << 3) + _BIAS) << exponent) - _BIAS
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _encode_scalar(sample: int) -> int:
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), _CLIP) + _BIAS
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def _build_encode_table() -> npt.NDArray[np.uint8]:
    # Index by the sample's top 14 bits (sample >> 2); the low two bits never change the code.
    samples = (np.arange(-8192, 8192, dtype=np.int32) << 2).tolist()
    return np.array([_encode_scalar(s) for s in samples], dtype=np.uint8)


_DECODE = _build_decode_table()
_ENCODE = _build_encode_table()


def ulaw_to_pcm16(data: bytes | bytearray | memoryview) -> Pcm16:
    """Decode mu-law bytes to int16 samples, one sample per byte."""
    codes = np.frombuffer(data, dtype=np.uint8)
    return _DECODE[codes]


def pcm16_to_ulaw(samples: npt.ArrayLike) -> bytes:
    """Encode int16 samples to mu-law bytes."""
    pcm = np.asarray(samples, dtype=np.int16).astype(np.int32)
    encoded: bytes = _ENCODE[(pcm >> 2) + 8192].tobytes()
    return encoded


def pcm16_from_bytes(data: bytes | bytearray | memoryview) -> Pcm16:
    """Little-endian PCM16 bytes to samples. An odd byte count is a caller bug."""
    if len(data) % 2:
        raise ValueError(f"PCM16 data must have an even number of bytes, got {len(data)}")
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def pcm16_to_bytes(samples: npt.ArrayLike) -> bytes:
    """Samples to little-endian PCM16 bytes, as the Realtime API's ``audio/pcm`` expects."""
    return np.asarray(samples, dtype="<i2").tobytes()


def float_to_pcm16(signal: npt.ArrayLike) -> Pcm16:
    """Float audio in [-1, 1) to int16, clipping anything outside full scale."""
    scaled = np.round(np.asarray(signal, dtype=np.float64) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def pcm16_to_float(samples: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """int16 samples to float audio in [-1, 1)."""
    return np.asarray(samples, dtype=np.float64) / 32768.0


def ulaw_round_trip(samples: npt.ArrayLike) -> Pcm16:
    """What a phone line does to PCM: encode to mu-law and back."""
    return ulaw_to_pcm16(pcm16_to_ulaw(samples))
