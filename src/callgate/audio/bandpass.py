"""Streaming speech-band filter.

Telephone speech lives between ~300 and 3400 Hz. Mains hum, handling thumps and fan rumble
sit below it, and cutting them before measuring level keeps them out of the SNR. The filter
state is carried across frames, so filtering 20 ms at a time equals filtering the whole call.

The filter is designed as second-order sections, the numerically safe form. At run time
it uses the equivalent transfer function through ``lfilter`` when that is exact to 1e-9 on
the impulse response (true for telephone band edges at 8 kHz): per 20 ms frame the call
overhead of ``sosfilt`` is about four times that of ``lfilter``, and this runs every frame
of every call. Band edges that make the transfer function unsafe keep ``sosfilt``.

Even ``lfilter`` spends most of a 20 ms frame's filtering in argument checks.
:meth:`SpeechBandFilter.process` runs the transfer function in a compiled kernel that
repeats the arithmetic of ``lfilter``'s C core in its order, so the output is bit for bit
``lfilter``'s; each filter checks that on a probe once, and uses ``lfilter`` where it does
not hold.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from scipy.signal import butter, lfilter, sos2tf, sosfilt

from callgate.audio.compiled import kernel

FloatFrame = npt.NDArray[np.float64]
_FLOAT64 = np.dtype(np.float64)


@dataclass(frozen=True, slots=True)
class BandpassOptions:
    """Speech-band filter design."""

    low_hz: float = 250.0
    """Lower -3 dB edge, in Hz."""
    high_hz: float = 3400.0
    """Upper -3 dB edge, in Hz; must stay below half the sample rate."""
    order: int = 4
    """Butterworth order per edge (the band-pass has twice as many poles)."""
    sample_rate_hz: int = 8000
    """Rate of the audio being filtered."""

    def __post_init__(self) -> None:
        nyquist = self.sample_rate_hz / 2
        if not 0 < self.low_hz < self.high_hz < nyquist:
            raise ValueError(
                f"band edges must satisfy 0 < low_hz < high_hz < {nyquist:g} Hz, "
                f"got {self.low_hz:g}-{self.high_hz:g}"
            )
        if not 1 <= self.order <= 8:
            raise ValueError(f"order must be 1-8, got {self.order}")


class SpeechBandFilter:
    """Butterworth band-pass as second-order sections, with state kept between calls."""

    def __init__(self, options: BandpassOptions | None = None) -> None:
        self.options = options or BandpassOptions()
        design = _design(self.options)
        self._sos, self._b, self._a = design.sos, design.b, design.a
        self.uses_transfer_function = design.uses_transfer_function
        # lfilter's own normalisation, done once.
        self._b_norm, self._a_norm = design.b_norm, design.a_norm
        self._compiled = design.compiled
        self._zi_sos: FloatFrame = np.zeros((self._sos.shape[0], 2))
        self._zi_tf: FloatFrame = np.zeros(self._a.size - 1)

    def process(self, signal: FloatFrame) -> FloatFrame:
        """Filter the next piece of the stream."""
        if self._compiled and signal.dtype == _FLOAT64 and signal.ndim == 1:
            out = np.empty(signal.size)
            transfer_filter(self._b_norm, self._a_norm, signal, self._zi_tf, out)
            return out
        if self.uses_transfer_function:
            out, final = lfilter(self._b, self._a, signal, zi=self._zi_tf)
            self._zi_tf[:] = final
        else:
            out, self._zi_sos = sosfilt(self._sos, signal, zi=self._zi_sos)
        return np.asarray(out, dtype=np.float64)

    def reset(self) -> None:
        """Start again from rest, as for a new call (the transfer function's state in
        place: a compiled gate step holds it)."""
        self._zi_sos = np.zeros((self._sos.shape[0], 2))
        self._zi_tf[:] = 0.0


@kernel
def transfer_filter(
    b: FloatFrame, a: FloatFrame, signal: FloatFrame, state: FloatFrame, out: FloatFrame
) -> None:
    """``lfilter`` (direct form II transposed) with ``b`` and ``a`` already divided by
    ``a[0]``, in its C core's order of operations; ``state`` is updated in place."""
    last = b.size - 1
    if last == 8:  # the default band's order (4 per edge): the state in registers
        _transfer_filter_8(b, a, signal, state, out)
        return
    for k in range(signal.size):
        x = signal[k]
        y = state[0] + b[0] * x
        for n in range(1, last):
            state[n - 1] = state[n] + x * b[n] - y * a[n]
        state[last - 1] = x * b[last] - y * a[last]
        out[k] = y


@kernel
def _transfer_filter_8(
    b: FloatFrame, a: FloatFrame, signal: FloatFrame, state: FloatFrame, out: FloatFrame
) -> None:
    """:func:`transfer_filter` for 9 coefficients, the same operations in the same order,
    with the state in local variables (``signal`` and ``out`` may be one array, which
    otherwise makes every state access go through memory)."""
    b0, b1, b2, b3, b4, b5, b6, b7, b8 = b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8]
    a1, a2, a3, a4, a5, a6, a7, a8 = a[1], a[2], a[3], a[4], a[5], a[6], a[7], a[8]
    z0, z1, z2, z3, z4, z5, z6, z7 = (
        state[0],
        state[1],
        state[2],
        state[3],
        state[4],
        state[5],
        state[6],
        state[7],
    )
    for k in range(signal.size):
        x = signal[k]
        y = z0 + b0 * x
        z0 = z1 + x * b1 - y * a1
        z1 = z2 + x * b2 - y * a2
        z2 = z3 + x * b3 - y * a3
        z3 = z4 + x * b4 - y * a4
        z4 = z5 + x * b5 - y * a5
        z5 = z6 + x * b6 - y * a6
        z6 = z7 + x * b7 - y * a7
        z7 = x * b8 - y * a8
        out[k] = y
    state[0], state[1], state[2], state[3] = z0, z1, z2, z3
    state[4], state[5], state[6], state[7] = z4, z5, z6, z7


class _Design(NamedTuple):
    sos: FloatFrame
    b: FloatFrame
    a: FloatFrame
    b_norm: FloatFrame
    a_norm: FloatFrame
    uses_transfer_function: bool
    compiled: bool


@functools.lru_cache(maxsize=16)
def _design(options: BandpassOptions) -> _Design:
    """The filter for these options, designed and checked once per process (a millisecond
    of scipy's design code, which every call's gate would otherwise repeat). Its arrays
    are shared: nothing may write to them."""
    o = options
    sos = np.asarray(
        butter(o.order, [o.low_hz, o.high_hz], btype="bandpass", fs=o.sample_rate_hz, output="sos"),
        dtype=np.float64,
    )
    b, a = (np.asarray(c, dtype=np.float64) for c in sos2tf(sos))
    impulse = np.zeros(4096)
    impulse[0] = 1.0
    exact = bool(np.max(np.abs(lfilter(b, a, impulse) - sosfilt(sos, impulse))) < 1e-9)
    b_norm, a_norm = b / a[0], a / a[0]
    compiled = exact and _kernel_matches(b, a, b_norm, a_norm, impulse[:160])
    return _Design(sos, b, a, b_norm, a_norm, exact, compiled)


def _kernel_matches(
    b: FloatFrame, a: FloatFrame, b_norm: FloatFrame, a_norm: FloatFrame, probe: FloatFrame
) -> bool:
    """Does the compiled kernel give exactly what lfilter gives, output and state?"""
    zi = np.linspace(-0.5, 0.5, a.size - 1)
    signal = np.sin(np.arange(probe.size) * 0.3) + probe
    ref_out, ref_zf = lfilter(b, a, signal, zi=zi)
    out = np.empty(signal.size)
    transfer_filter(b_norm, a_norm, signal, zi, out)
    return bool(np.array_equal(out, ref_out) and np.array_equal(zi, ref_zf))
