"""The fallback pipeline's speech backends: local models, espeak-ng, and the OpenAI ones
through the official SDK against the local audio peer over real HTTP on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx
import numpy as np
import numpy.typing as npt
import pytest
from openai import AsyncOpenAI

from benchmarks.run_speech_benchmark import word_error_rate
from callgate.audio.codec import ulaw_to_pcm16
from callgate.config import Settings, load_settings
from callgate.conversation.agents.local import stt_prompt_for
from callgate.conversation.extract import phone_runs
from callgate.peers.audio_api import AudioPeer
from callgate.realtime.link import openai_client
from callgate.speech import (
    CachedTTS,
    EspeakTTS,
    LocalWhisperSTT,
    OpenAISTT,
    OpenAITTS,
    PiperTTS,
    SpeechError,
    SpeechInputError,
    SpeechToText,
    TextToSpeech,
    build_stt,
    build_tts,
    split_sentences,
    unsupported_language,
    warm_up,
)
from callgate.synth.channel import telephone_channel
from callgate.synth.speech import espeak_available

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")

T = TypeVar("T")
SENTENCE = "I would like to book a table for Thursday evening."


def run(body: Callable[[], Awaitable[T]]) -> T:
    async def main() -> T:
        return await body()

    return asyncio.run(main())


def settings(**overrides: str) -> Settings:
    return load_settings({"OPENAI_API_KEY": "", **overrides}, env_file=None)


@pytest.fixture(scope="module")
def piper() -> PiperTTS:
    tts = PiperTTS()
    tts.warm_up()
    return tts


@pytest.fixture(scope="module")
def whisper() -> LocalWhisperSTT:
    stt = LocalWhisperSTT(workers=2)
    stt.warm_up()
    return stt


def telephone_speech(piper: PiperTTS, text: str) -> npt.NDArray[np.int16]:
    """Piper's voice as it arrives from a call: band-limited 8 kHz int16 after mu-law."""
    audio = piper.render(text).astype(np.float64) / 32768.0
    pad = np.zeros(piper.sample_rate_hz // 4)
    return telephone_channel(np.concatenate([pad, audio, pad]), piper.sample_rate_hz)


def assert_speech_mulaw(audio: bytes, low_s: float, high_s: float) -> None:
    """Plausible telephone speech: duration in range, audible, not clipped, not constant."""
    assert isinstance(audio, bytes)
    seconds = len(audio) / 8000
    assert low_s <= seconds <= high_s, seconds
    pcm = ulaw_to_pcm16(audio).astype(np.float64)
    rms_dbfs = 20 * np.log10(np.sqrt(np.mean(pcm**2)) / 32768 + 1e-12)
    assert -40 < rms_dbfs < -6, rms_dbfs
    assert np.mean(np.abs(pcm) > 32000) < 0.001  # almost no samples at full scale
    assert np.std(pcm) > 100


# --- TTS ---------------------------------------------------------------------------------


def test_piper_speaks_a_sentence_as_8k_mulaw(piper: PiperTTS) -> None:
    assert isinstance(piper, TextToSpeech)
    assert piper.languages == frozenset({"en"})
    audio = run(lambda: piper.synthesize(SENTENCE, "en-US"))
    # ~10 words at a normal speaking rate: 2-5 s.
    assert_speech_mulaw(audio, 2.0, 5.0)


@needs_espeak
def test_espeak_speaks_english_and_hebrew_as_8k_mulaw() -> None:
    espeak = EspeakTTS()
    assert isinstance(espeak, TextToSpeech)
    assert espeak.voice_for("en") == "en-us"
    assert espeak.voice_for("he-IL") == "he"
    english = run(lambda: espeak.synthesize(SENTENCE, "en"))
    assert_speech_mulaw(english, 2.0, 5.0)
    hebrew = run(lambda: espeak.synthesize("שלום, אני רוצה לקבוע תור ליום חמישי.", "he"))
    assert_speech_mulaw(hebrew, 1.0, 5.0)
    # Text starting with "-" is spoken, not parsed as an option.
    assert len(run(lambda: espeak.synthesize("-5 degrees outside", "en"))) > 4000


def test_espeak_missing_says_how_to_install_it() -> None:
    espeak = EspeakTTS("no-such-espeak-ng-binary")
    with pytest.raises(SpeechError, match=r"espeak-ng.*apt-get install espeak-ng"):
        run(lambda: espeak.synthesize("Hello there.", "en"))
    with pytest.raises(SpeechError, match="espeak-ng"):
        warm_up(espeak)


@needs_espeak
def test_espeak_unknown_language_is_a_clear_error() -> None:
    with pytest.raises(SpeechError, match=r"exit code 1.*voice 'qq'") as info:
        run(lambda: EspeakTTS().synthesize("Hello there.", "qq"))
    assert info.value.backend == "espeak"


def test_tts_rejects_empty_text_and_foreign_language(piper: PiperTTS) -> None:
    with pytest.raises(SpeechInputError, match="empty"):
        run(lambda: piper.synthesize("   ", "en"))
    with pytest.raises(ValueError, match="empty"):  # SpeechInputError is a ValueError too
        run(lambda: EspeakTTS().synthesize("", "en"))
    with pytest.raises(SpeechError, match=r"Hebrew.*TTS_BACKEND=espeak"):
        run(lambda: piper.synthesize("שלום", "he"))


def test_piper_voice_path_that_does_not_exist() -> None:
    with pytest.raises(SpeechError, match=r"not found.*PIPER_VOICE_PATH"):
        build_tts(settings(TTS_BACKEND="piper", PIPER_VOICE_PATH="/nonexistent/voice.onnx"))


class SlowCountingTTS:
    """A backend that takes 50 ms and counts its calls."""

    name = "counting"
    languages: frozenset[str] | None = None

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    async def synthesize(self, text: str, language: str = "en") -> bytes:
        self.calls.append((text, language))
        await asyncio.sleep(0.05)
        if text == "fail":
            raise SpeechError("counting: failed", backend=self.name)
        return f"{language}:{text}".encode()


def test_cached_tts_hits_the_second_time_with_identical_bytes(piper: PiperTTS) -> None:
    cached = CachedTTS(piper)
    assert isinstance(cached, TextToSpeech)

    async def body() -> tuple[bytes, bytes, bytes]:
        first = await cached.synthesize("May I have your full name, please?", "en")
        second = await cached.synthesize("May  I have your full name, please? ", "en")
        again = await piper.synthesize("May I have your full name, please?", "en")
        return first, second, again

    first, second, again = run(body)
    assert (cached.misses, cached.hits) == (1, 1)
    assert second == first
    # Piper's VITS sampling is random, so equal bytes above came from the cache.
    assert again != first


def test_piper_without_sampling_noise_is_deterministic() -> None:
    steady = PiperTTS(noise_scale=0.0, noise_w_scale=0.0)
    first, second = (steady.render("Two one two, five five five.") for _ in range(2))
    assert np.array_equal(first, second)
    assert first.size > steady.sample_rate_hz  # over a second of speech


def test_cached_tts_lru_coalescing_failures_and_prewarm() -> None:
    inner = SlowCountingTTS()
    cached = CachedTTS(inner, maxsize=2)

    async def body() -> None:
        await cached.prewarm([("Hello.", "en"), ("Shalom.", "he")])
        assert (cached.hits, cached.misses, len(inner.calls)) == (0, 0, 2)
        assert await cached.synthesize("Hello.", "en") == b"en:Hello."
        assert await cached.synthesize("Hello.", "he") == b"he:Hello."  # another language
        assert cached.misses == 1
        # Two requests at once for a new sentence synthesize it once.
        a, b = await asyncio.gather(
            cached.synthesize("Bye.", "en"), cached.synthesize("Bye.", "en")
        )
        assert a == b == b"en:Bye."
        assert [c for c in inner.calls if c[0] == "Bye."] == [("Bye.", "en")]
        # maxsize 2: "Hello." (en) was the least recently used and is gone.
        calls = len(inner.calls)
        await cached.synthesize("Hello.", "en")
        assert len(inner.calls) == calls + 1
        # Failures propagate and are not cached.
        for _ in range(2):
            with pytest.raises(SpeechError, match="counting"):
                await cached.synthesize("fail", "en")
        assert inner.calls.count(("fail", "en")) == 2

    run(body)
    assert len(cached) == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Thanks! I have your number. What is your e-mail address?",
            ["Thanks! I have your number.", "What is your e-mail address?"],
        ),
        (
            "Write to dana.cohen@example.com today. The fee is 3.5 dollars per month.",
            ["Write to dana.cohen@example.com today.", "The fee is 3.5 dollars per month."],
        ),
        (
            "Mr. Cohen will call you back. Bring an ID, e.g. a passport or a licence.",
            ["Mr. Cohen will call you back.", "Bring an ID, e.g. a passport or a licence."],
        ),
        ("Sure. I can book that for you.", ["Sure. I can book that for you."]),
        (
            "I can book that for you now. Okay?",
            ["I can book that for you now. Okay?"],
        ),
        (
            "שלום! מה השם המלא שלך? ומה מספר הטלפון שלך?",
            ["שלום! מה השם המלא שלך?", "ומה מספר הטלפון שלך?"],
        ),
        (
            "First line of the reply\nsecond line of the reply",
            ["First line of the reply", "second line of the reply"],
        ),
        (
            "We open at 9 a.m. Tomorrow works well for us!",
            ["We open at 9 a.m.", "Tomorrow works well for us!"],
        ),
        (
            "Really?! You don't say... That is great news.",
            ["Really?! You don't say...", "That is great news."],
        ),
        ("你好，我们明天见。谢谢你的来电！", ["你好，我们明天见。谢谢你的来电！"]),
        ("", []),
        ("   \n  ", []),
    ],
)
def test_split_sentences(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


# --- STT ---------------------------------------------------------------------------------


def test_local_stt_transcribes_telephone_speech(piper: PiperTTS, whisper: LocalWhisperSTT) -> None:
    assert isinstance(whisper, SpeechToText)
    said = [
        "We have a problem with the heating in the kitchen.",
        "I would like to book a table for Thursday evening.",
    ]
    clips = [telephone_speech(piper, text) for text in said]
    heard = run(lambda: asyncio.gather(*(whisper.transcribe(c, "en") for c in clips)))
    for text, transcript in zip(said, heard, strict=True):
        assert transcript == transcript.strip()
        assert word_error_rate(text, transcript) <= 0.25, (text, transcript)


def test_the_phone_prompt_keeps_repeated_digits(whisper: LocalWhisperSTT) -> None:
    """tiny.en writes "718-55-0143" for "seven one eight, five five five, ..." unprompted;
    told that a phone number comes (the local agent's prompt) it keeps all three fives."""
    steady = PiperTTS(noise_scale=0.0, noise_w_scale=0.0)  # the same audio every run
    said = {
        "My number is seven one eight, five five five, zero one four three.": "7185550143",
        "My number is nine one seven, five five five, eight eight two zero.": "9175558820",
    }
    prompt = stt_prompt_for("phone")
    for text, digits in said.items():
        heard = run(lambda: whisper.transcribe(telephone_speech(steady, text), "en", prompt))  # noqa: B023
        assert phone_runs(heard) == (digits,), heard


def test_local_stt_returns_empty_for_silence(whisper: LocalWhisperSTT) -> None:
    rng = np.random.default_rng(5)
    hiss = (rng.standard_normal(16000) * 30).astype(np.int16)  # 2 s of line hiss
    assert run(lambda: whisper.transcribe(hiss)) == ""


def test_local_stt_does_not_block_the_event_loop(piper: PiperTTS, whisper: LocalWhisperSTT) -> None:
    clip = telephone_speech(piper, "Could you repeat that please?")

    async def body() -> float:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        tick = asyncio.create_task(ticker())
        await asyncio.gather(whisper.transcribe(clip), whisper.transcribe(clip))
        done.set()
        await tick
        return max(gaps)

    assert run(body) < 0.15  # each tick is 10 ms; whisper holds the GIL only briefly


def test_local_stt_refuses_hebrew_clearly(whisper: LocalWhisperSTT) -> None:
    pcm = np.zeros(8000, dtype=np.int16)
    with pytest.raises(SpeechError, match=r"English only.*Hebrew.*STT_BACKEND=openai") as info:
        run(lambda: whisper.transcribe(pcm, "he"))
    assert info.value.backend == "local-whisper"
    assert whisper.languages == frozenset({"en"})


@pytest.mark.parametrize(
    ("audio", "message"),
    [
        (np.zeros(0, dtype=np.int16), "empty"),
        (np.zeros(800, dtype=np.float32), "int16"),
        (np.zeros((800, 2), dtype=np.int16), "1-D"),
        ([0, 1, 2], "numpy int16 array"),
    ],
)
def test_stt_rejects_bad_audio(whisper: LocalWhisperSTT, audio: object, message: str) -> None:
    stt = OpenAISTT(AsyncOpenAI(api_key="sk-x", base_url="http://127.0.0.1:9/v1"))
    backends: list[SpeechToText] = [whisper, stt]
    for backend in backends:
        with pytest.raises(SpeechInputError, match=message):
            run(lambda: backend.transcribe(audio))  # type: ignore[arg-type]  # noqa: B023


def test_unsupported_language() -> None:
    message = unsupported_language(settings(STT_BACKEND="local", TRANSCRIPTION_LANGUAGE="he"))
    assert message is not None
    assert "Hebrew" in message
    assert "STT_BACKEND=openai" in message
    assert "\n" not in message
    assert unsupported_language(settings(STT_BACKEND="local", TRANSCRIPTION_LANGUAGE="en")) is None
    assert unsupported_language(settings(STT_BACKEND="local", TRANSCRIPTION_LANGUAGE="")) is None
    cloud = settings(OPENAI_API_KEY="sk-x", STT_BACKEND="openai", TRANSCRIPTION_LANGUAGE="he")
    assert unsupported_language(cloud) is None
    # auto without a key is the local model
    assert unsupported_language(settings(TRANSCRIPTION_LANGUAGE="ar")) is not None


def test_build_backends_from_settings() -> None:
    assert isinstance(build_stt(settings()), LocalWhisperSTT)
    tts = build_tts(settings())
    assert isinstance(tts, CachedTTS)
    assert isinstance(tts.inner, PiperTTS)
    assert isinstance(build_tts(settings(TTS_BACKEND="espeak")).inner, EspeakTTS)
    cloud = settings(OPENAI_API_KEY="sk-x", USE_REALTIME_API="false", TRANSCRIPTION_LANGUAGE="he")
    stt = build_stt(cloud)
    assert isinstance(stt, OpenAISTT)
    assert stt.language == "he"
    assert stt.languages is None
    openai_tts = build_tts(cloud)
    assert isinstance(openai_tts.inner, OpenAITTS)
    assert openai_tts.inner.voice == cloud.tts_voice


# --- the OpenAI backends against the local audio peer -------------------------------------


def client_for(peer: AudioPeer, max_retries: int = 2) -> AsyncOpenAI:
    s = settings(OPENAI_API_KEY="sk-local-test", OPENAI_BASE_URL=peer.url, USE_REALTIME_API="false")
    return openai_client(s).with_options(max_retries=max_retries)


def test_openai_backends_through_the_sdk(piper: PiperTTS, whisper: LocalWhisperSTT) -> None:
    said = "We have a problem with the heating in the kitchen."

    async def body() -> tuple[bytes, str, AudioPeer]:
        async with AudioPeer(stt=whisper, tts=piper, api_key="sk-local-test") as peer:
            client = client_for(peer)
            tts = OpenAITTS(client, model="gpt-4o-mini-tts", voice="coral")
            audio = await tts.synthesize(said, "en")
            stt = OpenAISTT(client, model="gpt-4o-mini-transcribe", language="en")
            text = await stt.transcribe(ulaw_to_pcm16(audio))
            await stt.transcribe(ulaw_to_pcm16(audio), prompt="Phone number:")
            return audio, text, peer

    audio, text, peer = run(body)
    assert_speech_mulaw(audio, 2.0, 5.0)
    assert word_error_rate(said, text) <= 0.25, text
    speech, transcription, prompted = peer.requests
    assert prompted.fields == {
        "model": "gpt-4o-mini-transcribe",
        "language": "en",
        "prompt": "Phone number:",
    }
    assert speech.path == "/v1/audio/speech"
    assert speech.fields == {
        "model": "gpt-4o-mini-tts",
        "voice": "coral",
        "input": said,
        "response_format": "pcm",
    }
    assert transcription.path == "/v1/audio/transcriptions"
    assert transcription.fields == {"model": "gpt-4o-mini-transcribe", "language": "en"}
    assert (transcription.file_name, transcription.file_type) == ("utterance.wav", "audio/wav")
    assert transcription.status == 200
    # 8 kHz 16-bit WAV: 44-byte header + 2 bytes per sample
    assert transcription.file_bytes == 44 + 2 * len(audio)


def test_peer_speech_formats_match_the_documentation(
    piper: PiperTTS, whisper: LocalWhisperSTT
) -> None:
    async def body() -> tuple[bytes, bytes, bytes, str]:
        async with AudioPeer(stt=whisper, tts=piper) as peer:
            client = AsyncOpenAI(api_key="sk-x", base_url=peer.url)
            text = "Hello, how can I help you today?"
            speech = client.audio.speech
            pcm = await speech.create(
                model="tts-1", voice="alloy", input=text, response_format="pcm"
            )
            fast = await speech.create(
                model="tts-1", voice="alloy", input=text, response_format="pcm", speed=2.0
            )
            wav = await speech.create(
                model="tts-1", voice="alloy", input=text, response_format="wav"
            )
            transcript = await client.audio.transcriptions.create(
                model="whisper-1", file=("a.wav", wav.content, "audio/wav"), response_format="text"
            )
            return pcm.content, fast.content, wav.content, transcript

    pcm, fast, wav, transcript = run(body)
    # pcm: raw 24 kHz 16-bit mono; ~2 s of speech; speed 2.0 is about half as long
    assert len(pcm) % 2 == 0
    assert 1.0 < len(pcm) / 2 / 24000 < 4.0
    assert 0.3 < len(fast) / len(pcm) < 0.75
    # wav: RIFF, PCM, mono, 24 kHz, 16-bit, and the same length as pcm within Piper's jitter
    assert wav[:4] == b"RIFF"
    assert wav[8:16] == b"WAVEfmt "
    assert int.from_bytes(wav[20:22], "little") == 1
    assert int.from_bytes(wav[22:24], "little") == 1
    assert int.from_bytes(wav[24:28], "little") == 24000
    assert int.from_bytes(wav[34:36], "little") == 16
    assert 0.8 < (len(wav) - 44) / len(pcm) < 1.25
    # response_format=text: the SDK returns the plain text
    assert isinstance(transcript, str)
    assert word_error_rate("Hello, how can I help you today?", transcript) <= 0.25, transcript


def test_peer_rejects_bad_requests_with_openai_errors(piper: PiperTTS) -> None:
    async def body() -> list[tuple[int, dict[str, object]]]:
        async with AudioPeer(tts=piper) as peer, httpx.AsyncClient(base_url=peer.url) as http:
            auth = {"Authorization": "Bearer sk-x"}
            speech = {
                "model": "tts-1",
                "input": "Hello.",
                "voice": "alloy",
                "response_format": "pcm",
            }
            responses = [
                await http.post(
                    "/audio/transcriptions", files={"model": (None, "whisper-1")}, headers=auth
                ),
                await http.post(
                    "/audio/transcriptions",
                    files={"file": ("a.wav", b"RIFFjunk", "audio/wav"), "model": (None, "m")},
                    headers=auth,
                ),
                await http.post(
                    "/audio/transcriptions",
                    files={"file": ("a.wav", b"x", "audio/wav")},
                    headers=auth,
                ),
                await http.post("/audio/speech", json={**speech, "voice": "bob"}, headers=auth),
                await http.post("/audio/speech", json={**speech, "speed": 9}, headers=auth),
                await http.post(
                    "/audio/speech", json={**speech, "input": "x" * 4097}, headers=auth
                ),
                await http.post("/audio/speech", json={**speech, "pitch": 3}, headers=auth),
                await http.post(
                    "/audio/speech", json={**speech, "response_format": "mp3"}, headers=auth
                ),
                await http.post("/audio/speech", json=speech),
                await http.get("/audio/voices", headers=auth),
            ]
            return [(r.status_code, r.json()) for r in responses]

    results = run(body)
    for _status, body_json in results:
        assert set(body_json) == {"error"}
        error = body_json["error"]
        assert isinstance(error, dict)
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"
    params = [(s, e["error"]["param"], e["error"]["code"]) for s, e in results]  # type: ignore[index]
    assert params == [
        (400, "file", "missing_required_parameter"),
        (400, "file", None),
        (400, "model", "missing_required_parameter"),
        (400, "voice", "invalid_value"),
        (400, "speed", "decimal_out_of_range"),
        (400, "input", "string_above_max_length"),
        (400, "pitch", "unknown_parameter"),
        (400, "response_format", "unsupported_value"),
        (401, None, None),
        (404, None, None),
    ]
    assert "Missing required parameter: 'file'" in results[0][1]["error"]["message"]  # type: ignore[index]


def test_openai_backend_errors_become_speech_errors(piper: PiperTTS) -> None:
    async def body() -> list[SpeechError]:
        errors: list[SpeechError] = []
        async with AudioPeer(tts=piper) as peer:
            client = client_for(peer)
            attempts: list[Callable[[], Awaitable[object]]] = [
                lambda: OpenAISTT(client).transcribe(np.ones(4000, np.int16), "he"),
                lambda: OpenAITTS(client, voice="bob").synthesize("Hello there.", "en"),
                lambda: OpenAITTS(client).synthesize("x" * 5000, "en"),
            ]
            for attempt in attempts:
                with pytest.raises(SpeechError) as info:
                    await attempt()
                errors.append(info.value)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        offline = AsyncOpenAI(api_key="sk-x", base_url=closed)
        with pytest.raises(SpeechError) as info:
            await OpenAISTT(offline, max_retries=0).transcribe(np.ones(4000, np.int16))
        errors.append(info.value)
        return errors

    language, voice, too_long, offline = run(body)
    assert str(language).startswith("openai-stt (gpt-4o-mini-transcribe): HTTP 400")
    assert "English only" in str(language)
    assert "param: language" in str(language)
    assert language.backend == "openai-stt"
    assert str(voice).startswith("openai-tts (gpt-4o-mini-tts, bob): HTTP 400")
    assert "param: voice" in str(voice)
    assert "maximum length 4096" in str(too_long)
    assert "cannot reach the API" in str(offline)


def test_warm_up_loads_the_local_models_once(whisper: LocalWhisperSTT) -> None:
    other = LocalWhisperSTT(workers=2)
    assert other.load() is whisper.load()  # one model per process and options
    started = time.perf_counter()
    warm_up(other, OpenAISTT(AsyncOpenAI(api_key="sk-x", base_url="http://127.0.0.1:9/v1")))
    assert time.perf_counter() - started < 5.0


def test_local_stt_is_busy_until_every_transcription_thread_is_done(
    piper: PiperTTS, whisper: LocalWhisperSTT
) -> None:
    clip = telephone_speech(piper, "Could you repeat that please?")

    async def body() -> list[bool]:
        seen = [whisper.busy]
        task = asyncio.create_task(whisper.transcribe(clip))
        await asyncio.sleep(0.05)
        seen.append(whisper.busy)  # running in its thread
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        seen.append(whisper.busy)  # cancelled, but the thread still runs
        for _ in range(200):
            if not whisper.busy:
                break
            await asyncio.sleep(0.05)
        seen.append(whisper.busy)
        return seen

    assert run(body) == [False, True, True, False]
