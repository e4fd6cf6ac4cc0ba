"""The compiled kernels give numpy's and scipy's numbers, so compiling changed no decision."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numba
import numpy as np
import pytest
from numba.core.caching import NullCache
from scipy.signal import lfilter

from callgate.audio import compiled
from callgate.audio.bandpass import BandpassOptions, SpeechBandFilter
from callgate.audio.compiled import kernel, pairwise_sum


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


@kernel
def _spectrum_and_back(signal: np.ndarray, nfft: int) -> tuple[np.ndarray, np.ndarray]:
    spectrum = np.fft.rfft(signal, nfft)
    power = spectrum.real**2 + spectrum.imag**2
    return spectrum, np.fft.irfft(power, nfft)


@pytest.mark.parametrize("size", [100, 320, 435, 512])
def test_numpy_fft_inside_a_kernel_is_numpys_bit_for_bit(size: int) -> None:
    """The music and voicing kernels take their FFTs inside the kernel (rocket-fft)."""
    signal = np.random.default_rng(size).standard_normal(size)
    spectrum, autocorr = _spectrum_and_back(signal, 512)
    expected = np.fft.rfft(signal, 512)
    assert np.array_equal(spectrum, expected)
    assert np.array_equal(autocorr, np.fft.irfft(expected.real**2 + expected.imag**2, 512))


def test_after_compile_gate_kernels_a_call_compiles_nothing() -> None:
    """The server calls it at start-up so that no call waits for the compiler. In a fresh
    process, a call after it (speech over music, so that every path of the gate runs) must
    not compile any kernel of callgate.audio: a kernel added later and not reached by the
    warm-up signal fails here."""
    script = """
import importlib, pkgutil
import numba
import numpy as np
from numba.core.registry import CPUDispatcher
import callgate.audio as audio
from callgate.audio.gate import SpeechGate, compile_gate_kernels
from callgate.synth.scenes import NOISE_BEDS, mix_at_snr
from callgate.synth.speech import speech_like
names = [m.name for m in pkgutil.iter_modules(audio.__path__)]
modules = [importlib.import_module(f"callgate.audio.{name}") for name in names]
kernels = {f"{m.__name__}.{name}": value for m in modules for name, value in vars(m).items()
           if isinstance(value, CPUDispatcher)}
compile_gate_kernels()
before = {name: len(k.signatures) for name, k in kernels.items()}
rng = np.random.default_rng(1)
bed = NOISE_BEDS["music_loud"](6.0, 8000, rng)
voice = np.concatenate([np.zeros(16000), speech_like(3.0, rng, 8000), np.zeros(8000)])
call = mix_at_snr(voice, bed, 5.0)
SpeechGate().process_pcm16((np.clip(call, -1, 1) * 32767).astype(np.int16))
# A gate with a confirmer takes the frame in two halves.
from callgate.audio.gate_step import gate_analyse, gate_decide
from callgate.audio.state_machine import ASK_CONFIRMER
gate = SpeechGate()
frame = np.zeros(160, dtype=np.int16)
analysis = gate_analyse(frame, *gate._analyse_arrays, 0.0, np.nan)
gate_decide(frame, 1, analysis, 0.0, *gate._decide_arrays, ASK_CONFIRMER)
late = sorted(name for name, k in kernels.items() if len(k.signatures) != before[name])
print(len(kernels), late)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True
    )
    count, compiled_late = done.stdout.strip().split(" ", 1)
    assert int(count) >= 5  # the music, voicing, band-pass and AGC kernels at least
    assert compiled_late == "[]"


def test_a_read_only_install_compiles_without_a_disk_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where numba finds no writable cache folder it refuses ``cache=True`` at import
    (seen with the package on a read-only mount and an unwritable home); the kernels
    must then compile uncached instead of breaking the import."""
    real_njit = numba.njit

    def njit_without_a_cache(*args: Any, cache: bool = False, **kwargs: Any) -> Any:
        if cache:
            raise RuntimeError("cannot cache function 'double': no locator available")
        return real_njit(*args, **kwargs)

    monkeypatch.setattr(numba, "njit", njit_without_a_cache)

    @compiled.kernel
    def double(x: float) -> float:
        return 2.0 * x

    assert double(2.5) == 5.0
    assert isinstance(double._cache, NullCache)  # type: ignore[attr-defined]  # compiled uncached
