from __future__ import annotations

import numpy as np
import pytest

from callgate.audio.codec import (
    pcm16_from_bytes,
    pcm16_to_bytes,
    pcm16_to_ulaw,
    ulaw_round_trip,
    ulaw_to_pcm16,
)


def test_decode_known_g711_codes() -> None:
    # G.711: 0xFF and 0x7F are the two zeros, 0x00 / 0x80 the extremes.
    decoded = ulaw_to_pcm16(bytes([0xFF, 0x7F, 0x00, 0x80]))
    assert decoded.tolist() == [0, 0, -32124, 32124]


def test_every_code_survives_decode_encode() -> None:
    codes = bytes(range(256))
    again = pcm16_to_ulaw(ulaw_to_pcm16(codes))
    # 0x7F (negative zero) legitimately re-encodes as 0xFF (positive zero).
    assert [a for a, b in zip(again, codes, strict=True) if a != b] == [0xFF]


def test_round_trip_error_is_within_the_quantiser_step() -> None:
    samples = np.arange(-32124, 32125, 7, dtype=np.int32)
    error = np.abs(ulaw_round_trip(samples.astype(np.int16)).astype(np.int32) - samples)
    # Mu-law is logarithmic: in G.711 segment e the step is 2**(e+3); the encoder drops the
    # two low bits first, which can add up to 4 more.
    segment = np.floor(np.log2((np.abs(samples) + 4 + 132) / 128)).clip(0, 7)
    assert np.all(error <= 2 ** (segment + 3) / 2 + 4)
    # Beyond the largest code (32124) the codec clips.
    assert ulaw_round_trip(np.array([32767], dtype=np.int16))[0] == 32124


def test_round_trip_is_idempotent() -> None:
    once = ulaw_round_trip(np.arange(-32768, 32768, 13, dtype=np.int32).astype(np.int16))
    assert np.array_equal(ulaw_round_trip(once), once)


def test_pcm_bytes_round_trip_and_odd_length_error() -> None:
    samples = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    assert np.array_equal(pcm16_from_bytes(pcm16_to_bytes(samples)), samples)
    with pytest.raises(ValueError, match="even number of bytes"):
        pcm16_from_bytes(b"\x00\x01\x02")
