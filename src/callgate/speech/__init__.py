"""Speech backends of the fallback pipeline: speech-to-text and text-to-speech.

    stt = build_stt(settings)          # LocalWhisperSTT or OpenAISTT
    tts = build_tts(settings)          # CachedTTS around PiperTTS, EspeakTTS or OpenAITTS
    await asyncio.to_thread(warm_up, stt, tts)   # load the local models before the first call
    text = await stt.transcribe(pcm16_8k)        # "" when nothing was said
    for sentence in split_sentences(reply):
        ulaw = await tts.synthesize(sentence, "en")  # G.711 mu-law, 8 kHz, for Twilio

Failures raise :class:`SpeechError` naming the backend; see :mod:`.stt` and :mod:`.tts`.
"""

from __future__ import annotations

from callgate.speech.stt import (
    LocalWhisperSTT,
    OpenAISTT,
    SpeechError,
    SpeechInputError,
    SpeechToText,
    WhisperOptions,
    build_stt,
    unsupported_language,
)
from callgate.speech.tts import (
    CachedTTS,
    EspeakTTS,
    OpenAITTS,
    PiperTTS,
    TextToSpeech,
    build_tts,
    split_sentences,
)

__all__ = [
    "CachedTTS",
    "EspeakTTS",
    "LocalWhisperSTT",
    "OpenAISTT",
    "OpenAITTS",
    "PiperTTS",
    "SpeechError",
    "SpeechInputError",
    "SpeechToText",
    "TextToSpeech",
    "WhisperOptions",
    "build_stt",
    "build_tts",
    "split_sentences",
    "unsupported_language",
    "warm_up",
]


def warm_up(*backends: object) -> None:
    """Call ``warm_up()`` on each backend that has one (blocking: local models load here).

    The protocols do not require ``warm_up``; every backend in this package has it
    (a no-op for the OpenAI ones). Raises :class:`SpeechError` if a model cannot load or
    espeak-ng is missing, so a broken set-up fails at start-up rather than on a call.
    """
    for backend in backends:
        method = getattr(backend, "warm_up", None)
        if callable(method):
            method()
