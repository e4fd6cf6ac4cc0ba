"""Smart Turn v3.2: an end-of-turn model that hears whether the caller has finished.

Silence alone cannot tell "My name is Daniel Cohen." from "My name is ... uh" followed by
a pause, so the ``client`` turn mode can ask a model after a short pause. Smart Turn v3.2
(BSD-2, by Daily) is a Whisper-tiny encoder with a classifier head, run with onnxruntime.
It reads the last 8 s of 16 kHz mono audio as Whisper log-mel features and gives the
probability that the turn is complete.

The ONNX file ships inside the ``pipecat-ai`` wheel on PyPI. callgate installs that wheel
without its dependencies (``scripts/bootstrap.sh``) and only reads the file: the package is
located with :func:`importlib.util.find_spec`, which does not import it. Nothing is
downloaded at run time.

:meth:`SmartTurnModel.predict` is a plain blocking call (about 50-100 ms of one core).
:class:`TurnModelRunner` is the thin asyncio edge the call server uses: one model session
for the whole process, on one worker thread, so the event loop never waits for it and
concurrent calls queue instead of oversubscribing the cores.
"""

from __future__ import annotations

import asyncio
import importlib.util
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
MODEL_PACKAGE = "pipecat-ai==1.14.0"
"""The wheel that ships :data:`MODEL_FILE`; installed with ``--no-deps``."""

SAMPLE_RATE_HZ = 16_000
WINDOW_S = 8
"""The model reads the last 8 s; shorter audio is zero-padded at the start."""
N_FFT = 400
HOP = 160
N_MELS = 80


class EndOfTurnModelError(RuntimeError):
    """The end-of-turn model cannot be loaded (package missing, file unreadable)."""


class TurnEndModel(Protocol):
    """What the turn code needs from an end-of-turn model."""

    def predict(self, pcm16_8k: npt.NDArray[np.int16]) -> float:
        """Probability (0..1) that the caller's turn is complete, given 8 kHz PCM16."""
        ...


def model_path() -> Path:
    """Where the installed ``pipecat-ai`` wheel keeps the Smart Turn ONNX file.

    ``find_spec`` on the top-level package reads no code of it, so pipecat's own (heavy)
    dependencies are never needed.
    """
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        raise EndOfTurnModelError(
            f"END_OF_TURN_MODEL=smart_turn needs the {MODEL_FILE} file from the pipecat-ai "
            f"wheel: pip install --no-deps '{MODEL_PACKAGE}'"
        )
    for root in spec.submodule_search_locations:
        path = Path(root) / "audio" / "turn" / "smart_turn" / "data" / MODEL_FILE
        if path.is_file():
            return path
    raise EndOfTurnModelError(
        f"the installed pipecat package has no {MODEL_FILE}; install '{MODEL_PACKAGE}'"
    )


def missing() -> str:
    """Why Smart Turn cannot run here ('' when it can): for a start-up check."""
    if importlib.util.find_spec("onnxruntime") is None:
        return "END_OF_TURN_MODEL=smart_turn needs onnxruntime (pip install onnxruntime)"
    try:
        model_path()
    except EndOfTurnModelError as error:
        return str(error)
    return ""


def _hz_to_mel(hz: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Slaney mel scale (linear below 1 kHz, logarithmic above), as Whisper uses."""
    mel = 3.0 * hz / 200.0
    log = hz >= 1000.0
    mel[log] = 15.0 + np.log(hz[log] / 1000.0) * (27.0 / np.log(6.4))
    return mel


def _mel_to_hz(mel: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    hz = 200.0 * mel / 3.0
    log = mel >= 15.0
    hz[log] = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel[log] - 15.0))
    return hz


@cache
def mel_filters() -> npt.NDArray[np.float64]:
    """Whisper's 80 Slaney-normalized triangular filters over the 201 FFT bins."""
    edges = _mel_to_hz(
        np.linspace(0.0, _hz_to_mel(np.array([SAMPLE_RATE_HZ / 2.0]))[0], N_MELS + 2)
    )
    bins = np.linspace(0.0, SAMPLE_RATE_HZ // 2, N_FFT // 2 + 1)
    slopes = edges[None, :] - bins[:, None]
    widths = np.diff(edges)
    down = -slopes[:, :-2] / widths[:-1]
    up = slopes[:, 2:] / widths[1:]
    filters = np.maximum(0.0, np.minimum(down, up))
    filters *= 2.0 / (edges[2:] - edges[:-2])[None, :]
    return filters  # (201, 80)


def log_mel(audio_16k: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
    """Whisper log-mel features of exactly 8 s of 16 kHz audio: shape (80, 800).

    Same steps as ``transformers.WhisperFeatureExtractor(chunk_length=8)`` with
    ``do_normalize=True``: zero-mean unit-variance waveform, centred 400-point STFT with a
    periodic Hann window and hop 160, power spectrum, mel, log10, clamp to 8 below the
    peak, scale to about [-1, 1]. Checked against pipecat's copy in the tests.
    """
    n = SAMPLE_RATE_HZ * WINDOW_S
    x = np.asarray(audio_16k, dtype=np.float32)[:n]
    x = np.pad(x, (0, n - x.size))
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x.astype(np.float64), N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    window = np.hanning(N_FFT + 1)[:-1]
    power = np.abs(np.fft.rfft(frames * window, axis=-1)) ** 2  # (801, 201)
    mel: npt.NDArray[np.float64] = np.log10(np.maximum(power @ mel_filters(), 1e-10)).T[:, :-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    features: npt.NDArray[np.float32] = ((mel + 4.0) / 4.0).astype(np.float32)
    return features


def prepare(pcm16_8k: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """8 kHz PCM16 → the last 8 s at 16 kHz as floats, zero-padded at the start."""
    x = np.asarray(pcm16_8k, dtype=np.float32)[-8000 * WINDOW_S :] / 32768.0
    up = sps.resample_poly(x, 2, 1).astype(np.float32) if x.size else x
    n = SAMPLE_RATE_HZ * WINDOW_S
    return np.pad(up, (n - up.size, 0))


class TurnAudio:
    """The caller audio of the open turn, as the model should hear it.

    The sent audio, with digital silence for the frames the gate did not send, so pauses
    keep their real length but carry no room noise. At an onset the gate's pre-roll
    re-sends frames that were already counted as silence; those placeholders are
    replaced, so each moment is heard once. Only the last ``max_frames`` frames are kept.
    """

    def __init__(self, frame_samples: int, max_frames: int) -> None:
        self._frames: deque[npt.NDArray[np.int16]] = deque(maxlen=max(1, max_frames))
        self._quiet = np.zeros(frame_samples, dtype=np.int16)
        self._trailing_quiet = 0

    def add(self, audio: npt.NDArray[np.int16], *, in_turn: bool) -> None:
        """One gate decision's audio; an empty one is a pause frame if a turn is open."""
        step = self._quiet.size
        if audio.size:
            frames = [audio[i : i + step] for i in range(0, audio.size, step)]
            for _ in range(min(self._trailing_quiet, len(frames) - 1)):
                self._frames.pop()
            self._frames.extend(frames)
            self._trailing_quiet = 0
        elif in_turn:
            self._frames.append(self._quiet)
            self._trailing_quiet = min(self._trailing_quiet + 1, len(self._frames))

    def pcm16(self) -> npt.NDArray[np.int16]:
        """The kept audio as one array (empty when nothing was sent)."""
        if not self._frames:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self._frames)

    def clear(self) -> None:
        """The turn was committed: the next one starts from nothing."""
        self._frames.clear()
        self._trailing_quiet = 0


class SmartTurnModel:
    """One onnxruntime session of Smart Turn v3.2, on one thread; safe to share.

    onnxruntime sessions accept concurrent ``run`` calls; a lock keeps them one at a time
    so a burst of pauses on many calls queues instead of oversubscribing the cores.
    """

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        import onnxruntime as ort  # noqa: PLC0415  (optional dependency, imported on use)

        self.path = path or model_path()
        options = ort.SessionOptions()
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self._session = ort.InferenceSession(
                str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:
            raise EndOfTurnModelError(f"cannot load {self.path}: {exc}") from exc
        self._input = self._session.get_inputs()[0].name
        self._lock = threading.Lock()

    def predict(self, pcm16_8k: npt.NDArray[np.int16]) -> float:
        """Probability that the turn is complete, for the caller audio that ends now."""
        features = log_mel(prepare(pcm16_8k))[None, :, :]
        with self._lock:
            out = self._session.run(None, {self._input: features})
        return float(np.clip(np.asarray(out[0]).reshape(-1)[0], 0.0, 1.0))


class TurnModelRunner:
    """Runs an end-of-turn model off the event loop: one session, one worker thread.

    The model is loaded on the worker the first time it is needed. A request whose answer
    is no longer wanted when its turn in the queue comes (the caller went on, or the
    silence timeout already ended the turn) is skipped without inference.
    """

    def __init__(self, load: Callable[[], TurnEndModel] = SmartTurnModel) -> None:
        self._load = load
        self._model: TurnEndModel | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="end-of-turn")

    def _run(self, pcm16: npt.NDArray[np.int16], wanted: Callable[[], bool]) -> float | None:
        if not wanted():
            return None
        if self._model is None:
            self._model = self._load()
        return self._model.predict(pcm16)

    async def predict(
        self, pcm16: npt.NDArray[np.int16], wanted: Callable[[], bool]
    ) -> float | None:
        """The probability of "complete", or None when the request was skipped."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._run, pcm16, wanted)


@cache
def shared_runner() -> TurnModelRunner:
    """The process's one Smart Turn runner, shared by every call."""
    return TurnModelRunner()
