"""Streaming Silero VAD on onnxruntime, without torch.

The ``silero-vad`` wheel ships ``silero_vad.onnx`` but its package ``__init__`` imports torch,
which callgate never loads. This module finds the ONNX file through the import system's
metadata only (no ``silero_vad`` code runs) and reproduces the wheel's ``OnnxWrapper``
streaming contract in numpy: each call takes one window (256 samples at 8 kHz, 512 at
16 kHz) with the previous window's last 32 (64) samples prepended, and carries the
recurrent ``state`` (2, 1, 128) from call to call.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

_MODEL_FILE = "silero_vad.onnx"
_SUPPORTED_RATES = (8000, 16000)


def model_path() -> Path | None:
    """Path of the wheel's ``silero_vad.onnx``, or None; never imports ``silero_vad``.

    ``find_spec`` on a top-level package only reads its location, so the package's
    torch-importing ``__init__`` does not run.
    """
    try:
        spec = importlib.util.find_spec("silero_vad")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "data" / _MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def _onnxruntime_present() -> bool:
    try:
        return importlib.util.find_spec("onnxruntime") is not None
    except (ImportError, ValueError):
        return False


def silero_available() -> bool:
    """True when both onnxruntime and the Silero ONNX model file are installed."""
    return _onnxruntime_present() and model_path() is not None


def missing_message() -> str:
    """What is missing for Silero VAD, and how to install it."""
    missing = []
    if not _onnxruntime_present():
        missing.append("onnxruntime (pip install onnxruntime)")
    if model_path() is None:
        missing.append(
            "the Silero model file silero_vad/data/silero_vad.onnx "
            "(pip install --no-deps silero-vad)"
        )
    return "Silero VAD is not available: missing " + " and ".join(missing)


class SileroVad:
    """One stream's Silero VAD: feed consecutive windows, get speech probabilities.

    Stateful like the model itself: windows must be fed in order, one stream per instance;
    call :meth:`reset` at the start of a new call.
    """

    def __init__(self, sample_rate_hz: int = 8000, threads: int = 1) -> None:
        if sample_rate_hz not in _SUPPORTED_RATES:
            raise ValueError(f"Silero VAD supports {_SUPPORTED_RATES} Hz, got {sample_rate_hz} Hz")
        path = model_path()
        if path is None or not _onnxruntime_present():
            raise RuntimeError(missing_message())
        import onnxruntime  # noqa: PLC0415  (optional dependency, imported on use)

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session: Any = onnxruntime.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._rate = sample_rate_hz
        self._window = 256 if sample_rate_hz == 8000 else 512
        self._context_len = 32 if sample_rate_hz == 8000 else 64
        self._sr = np.array(sample_rate_hz, dtype=np.int64)
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, self._context_len), dtype=np.float32)

    @property
    def sample_rate_hz(self) -> int:
        """The rate the model runs at (8000 or 16000)."""
        return self._rate

    @property
    def window_samples(self) -> int:
        """Samples per window the model accepts: 256 at 8 kHz (32 ms), 512 at 16 kHz."""
        return self._window

    def reset(self) -> None:
        """Forget the recurrent state and context, as at the start of a new stream."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, self._context_len), dtype=np.float32)

    def probability(self, window: npt.ArrayLike) -> float:
        """Speech probability (0..1) of the next window of float audio in [-1, 1]."""
        samples = np.asarray(window, dtype=np.float32).reshape(1, -1)
        if samples.shape[1] != self._window:
            raise ValueError(
                f"Silero VAD at {self._rate} Hz needs {self._window}-sample windows, "
                f"got {samples.shape[1]}"
            )
        model_input = np.concatenate([self._context, samples], axis=1)
        out, state = self._session.run(
            None, {"input": model_input, "state": self._state, "sr": self._sr}
        )
        self._state = np.asarray(state, dtype=np.float32)
        self._context = model_input[:, -self._context_len :]
        return float(np.asarray(out).reshape(-1)[0])
