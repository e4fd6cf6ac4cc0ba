"""The compiled kernels give numpy's and scipy's numbers, so compiling changed no decision."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from callgate.audio.bandpass import BandpassOptions, SpeechBandFilter
from callgate.audio.compiled import pairwise_sum


@pytest.mark.parametrize("size", [0, 1, 7, 8, 9, 127, 128, 129, 205, 256, 320, 1000, 4099])
def test_pairwise_sum_is_numpys_sum_bit_for_bit(size: int) -> None:
    rng = np.random.default_rng(size)
    # Magnitudes over ten decades, so any other order of additions rounds differently.
    values = rng.standard_normal(size + 5) * 10.0 ** rng.uniform(-5, 5, size + 5)
    assert pairwise_sum(values, 0, size) == np.add.reduce(values[:size])
    assert pairwise_sum(values, 3, size) == np.add.reduce(values[3 : 3 + size])


def test_a_naive_sum_would_differ() -> None:
    """The test above can fail: left-to-right addition gives another number here."""
    # Each 1 alone vanishes next to 1e16 (the spacing there is 2); in blocks it does not.
    values = np.ones(205)
    values[0] = 1e16
    naive = 0.0
    for value in values:
        naive += value
    assert pairwise_sum(values, 0, values.size) == np.add.reduce(values)
    assert naive != np.add.reduce(values)


def test_the_band_filter_kernel_is_lfilter_bit_for_bit() -> None:
    band = SpeechBandFilter()
    assert band.uses_transfer_function
    signal = np.random.default_rng(3).standard_normal(4000) * 0.3
    pieces = [band.process(signal[i : i + 160]) for i in range(0, signal.size, 160)]
    expected = lfilter(band._b, band._a, signal)
    assert np.array_equal(np.concatenate(pieces), expected)


def test_band_edges_without_a_safe_transfer_function_keep_sosfilt() -> None:
    """A narrow low band makes the 8th-order transfer function inexact: no kernel then."""
    band = SpeechBandFilter(BandpassOptions(low_hz=20.0, high_hz=60.0, order=8))
    assert not band.uses_transfer_function
    assert not band._compiled
    out = band.process(np.ones(160))
    assert out.shape == (160,)
    assert np.all(np.isfinite(out))
