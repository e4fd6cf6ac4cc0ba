"""Compiled per-frame arithmetic: numba kernels and the summation they share with numpy.

The gate's numbers live in 20 ms frames of a few hundred values, where numpy spends more
time dispatching each call than computing (about 0.5 us per call, and a stage makes
twenty). A numba kernel does a whole stage's arithmetic in one call. Kernels must give
numpy's results: the same operations in the same order, and sums in numpy's own pairwise
order (:func:`pairwise_sum`), so that compiling a stage changes no decision.

Kernels are compiled on first use and cached on disk (numba's ``cache=True``: beside the
module, or in the user's cache folder where that is not writable); the server compiles
them at start-up (``callgate.audio.gate.compile_gate_kernels``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import numpy.typing as npt

F = TypeVar("F", bound=Callable[..., Any])

_PAIRWISE_BLOCK = 128
"""numpy's PW_BLOCKSIZE: runs up to this long are summed with eight accumulators."""


def kernel(function: F) -> F:
    """Compile ``function`` with numba (no fast-math: IEEE order, as numpy computes).

    Cached on disk where numba finds a writable place (beside the module, the user's cache
    folder, or ``NUMBA_CACHE_DIR``); a read-only install without one compiles in every
    process instead of failing at import.
    """
    try:
        return cast("F", numba.njit(cache=True, nogil=True)(function))
    except RuntimeError:  # numba: "cannot cache function ...: no locator available"
        return cast("F", numba.njit(nogil=True)(function))


@kernel
def _block_sum(values: npt.NDArray[np.float64], start: int, count: int) -> float:
    """numpy's sum of a run of at most ``_PAIRWISE_BLOCK`` values."""
    if count < 8:
        total = 0.0
        for i in range(start, start + count):
            total += values[i]
        return total
    r0 = values[start]
    r1 = values[start + 1]
    r2 = values[start + 2]
    r3 = values[start + 3]
    r4 = values[start + 4]
    r5 = values[start + 5]
    r6 = values[start + 6]
    r7 = values[start + 7]
    whole = count - count % 8
    i = start + 8
    while i < start + whole:
        r0 += values[i]
        r1 += values[i + 1]
        r2 += values[i + 2]
        r3 += values[i + 3]
        r4 += values[i + 4]
        r5 += values[i + 5]
        r6 += values[i + 6]
        r7 += values[i + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < start + count:
        total += values[i]
        i += 1
    return float(total)


@kernel
def pairwise_sum(values: npt.NDArray[np.float64], start: int, count: int) -> float:
    """``np.add.reduce(values[start:start + count])``, bit for bit: numpy's pairwise sum.

    numpy halves a longer run (at a multiple of eight) and adds the halves' sums. The
    halving is walked with an explicit stack: numba cannot cache a recursive kernel that
    other kernels call.
    """
    if count <= _PAIRWISE_BLOCK:
        return _block_sum(values, start, count)
    starts = np.empty(64, dtype=np.int64)
    counts = np.empty(64, dtype=np.int64)
    stages = np.zeros(64, dtype=np.int64)
    sums = np.empty(64)
    depth = 1
    done = 0
    starts[0] = start
    counts[0] = count
    while depth:
        top = depth - 1
        first, length = starts[top], counts[top]
        half = length // 2
        half -= half % 8
        if length <= _PAIRWISE_BLOCK:
            sums[done] = _block_sum(values, first, length)
            done += 1
            depth -= 1
        elif stages[top] == 0:
            stages[top] = 1
            starts[depth], counts[depth], stages[depth] = first, half, 0
            depth += 1
        elif stages[top] == 1:
            stages[top] = 2
            starts[depth], counts[depth], stages[depth] = first + half, length - half, 0
            depth += 1
        else:
            done -= 1
            sums[done - 1] += sums[done]
            depth -= 1
    return float(sums[0])
