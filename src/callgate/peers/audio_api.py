"""A local OpenAI-compatible audio REST API that the official ``openai`` SDK talks to.

Two endpoints, with the documented request and response formats of the OpenAI API:

* ``POST /v1/audio/transcriptions`` (multipart/form-data: ``file``, ``model``, optional
  ``language``, ``prompt``, ``temperature``, ``response_format`` ``json`` (default,
  ``{"text": ..., "usage": {"type": "duration", "seconds": N}}``) or ``text``). The text
  comes from the local faster-whisper model, so the upload must be a WAV file in English.
* ``POST /v1/audio/speech`` (JSON: ``model``, ``input`` (1-4096 characters), ``voice`` (a
  built-in name or ``{"id": ...}``), optional ``response_format`` ``pcm`` (raw 24 kHz
  16-bit signed little-endian mono) or ``wav`` (the same in a RIFF header), ``speed``
  0.25-4.0, ``instructions``). The audio is spoken by the local Piper voice.

Requests need ``Authorization: Bearer <key>`` (any key unless ``api_key`` is given). Bad
requests get OpenAI-style errors, ``{"error": {"message", "type", "param", "code"}}`` with
HTTP 400 (401 for the key, 404/405 for unknown routes). Formats that the API documents
but this peer cannot produce (mp3, opus, aac, flac; srt, vtt, verbose_json; streaming)
get a 400 that says so rather than a wrong body.

    async with AudioPeer() as peer:
        client = AsyncOpenAI(api_key="sk-local", base_url=peer.url)
        text = (await client.audio.transcriptions.create(model="whisper-1", file=...)).text
        peer.requests[-1].fields   # what the SDK sent, without the file bytes

``python -m callgate.peers.audio_api --port 8090`` serves it on its own.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from scipy.io import wavfile
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from callgate.audio.codec import float_to_pcm16
from callgate.audio.resample import resample, to_mono
from callgate.peers.uvicorn_peer import UvicornPeer
from callgate.speech.stt import LocalWhisperSTT, SpeechError, pcm16_to_wav, primary_language
from callgate.speech.tts import OPENAI_PCM_RATE_HZ, PiperTTS

__all__ = [
    "BUILTIN_VOICES",
    "AudioPeer",
    "OpenAIHTTPError",
    "PeerRequest",
    "create_audio_app",
    "error_body",
]

BUILTIN_VOICES = frozenset(
    {"alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer",
     "verse", "marin", "cedar"}
)  # fmt: skip
"""The speech endpoint's built-in voice names (all are spoken by the one Piper voice here)."""

SPEECH_FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm")
SPEECH_FORMATS_HERE = ("pcm", "wav")
TRANSCRIPTION_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
TRANSCRIPTION_FORMATS_HERE = ("json", "text")
SPEECH_PARAMS = frozenset(
    {"model", "input", "voice", "instructions", "response_format", "speed", "stream_format"}
)
MAX_INPUT_CHARS = 4096
MAX_UPLOAD_BYTES = 25 * 1024 * 1024
_UNDECODABLE = "The audio file could not be decoded or its format is not supported."


def error_body(
    message: str,
    *,
    type: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """The OpenAI error envelope."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


class OpenAIHTTPError(Exception):
    """Raised inside a handler; becomes an OpenAI-style JSON error response."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = error_body(message, type=type, param=param, code=code)


def _missing(param: str) -> OpenAIHTTPError:
    return OpenAIHTTPError(
        400,
        f"Missing required parameter: '{param}'.",
        param=param,
        code="missing_required_parameter",
    )


def _invalid(param: str, value: object, allowed: tuple[str, ...]) -> OpenAIHTTPError:
    choices = ", ".join(f"'{a}'" for a in allowed)
    return OpenAIHTTPError(
        400,
        f"Invalid value: '{value}'. Supported values are: {choices}.",
        param=param,
        code="invalid_value",
    )


def _not_here(param: str, value: object, supported: tuple[str, ...], what: str) -> OpenAIHTTPError:
    return OpenAIHTTPError(
        400,
        f"The local audio peer cannot produce {param}='{value}' ({what}); it supports "
        + ", ".join(f"'{s}'" for s in supported)
        + ".",
        param=param,
        code="unsupported_value",
    )


@dataclass
class PeerRequest:
    """One request as the peer saw it (file bytes are counted, not kept)."""

    path: str
    fields: dict[str, Any]
    file_name: str | None = None
    file_type: str | None = None
    file_bytes: int = 0
    status: int = 0
    error: dict[str, Any] | None = None
    seconds: float = 0.0


def _wav_to_float(data: bytes) -> tuple[npt.NDArray[np.float64], int]:
    """(mono float audio, rate) of a WAV file; ValueError when it is not one."""
    try:
        rate, samples = wavfile.read(io.BytesIO(data))
    except Exception as exc:  # scipy raises ValueError, struct.error, EOFError...
        raise ValueError(str(exc)) from exc
    samples = np.asarray(samples)
    if samples.dtype == np.uint8:
        audio = (samples.astype(np.float64) - 128.0) / 128.0
    elif samples.dtype.kind == "i":
        audio = samples.astype(np.float64) / float(2 ** (8 * samples.dtype.itemsize - 1))
    elif samples.dtype.kind == "f":
        audio = samples.astype(np.float64)
    else:
        raise ValueError(f"unsupported sample type {samples.dtype}")
    mono = to_mono(audio)
    if mono.size == 0 or int(rate) <= 0:
        raise ValueError("no audio")
    return mono, int(rate)


def _form_text(form: Any, name: str) -> str | None:
    value = form.get(name)
    if value is None:
        return None
    if isinstance(value, UploadFile):
        raise OpenAIHTTPError(400, f"Invalid type for '{name}': expected a string.", param=name)
    return str(value)


def create_audio_app(
    *,
    stt: LocalWhisperSTT | None = None,
    tts: PiperTTS | None = None,
    api_key: str | None = None,
    requests: list[PeerRequest] | None = None,
) -> FastAPI:
    """The ASGI app. ``stt``/``tts`` default to the local whisper model and Piper voice
    (loaded on the first request); ``requests`` (if given) receives a record per request.
    """
    stt = stt or LocalWhisperSTT(workers=1)
    tts = tts or PiperTTS()
    log = requests if requests is not None else []
    app = FastAPI(title="callgate local audio API", docs_url=None, redoc_url=None)

    def finish(record: PeerRequest, response: Response, started: float) -> Response:
        record.status = response.status_code
        record.seconds = time.perf_counter() - started
        log.append(record)
        return response

    def fail(record: PeerRequest, error: OpenAIHTTPError, started: float) -> Response:
        record.error = error.body["error"]
        return finish(record, JSONResponse(error.body, status_code=error.status), started)

    def check_key(request: Request) -> None:
        auth = request.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise OpenAIHTTPError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if api_key is not None and token.strip() != api_key:
            raise OpenAIHTTPError(401, "Incorrect API key provided.", code="invalid_api_key")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        message = (
            f"Invalid URL ({request.method} {request.url.path})"
            if exc.status_code in (404, 405)
            else str(exc.detail)
        )
        return JSONResponse(error_body(message), status_code=exc.status_code)

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        started = time.perf_counter()
        record = PeerRequest(path=request.url.path, fields={})
        try:
            check_key(request)
            ctype = request.headers.get("content-type", "")
            if not ctype.startswith("multipart/form-data"):
                raise OpenAIHTTPError(
                    400,
                    f"Invalid Content-Type header ({ctype or 'none'}), expected "
                    "multipart/form-data.",
                )
            form = await request.form()
            record.fields = {k: v for k, v in form.multi_items() if not isinstance(v, UploadFile)}
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise _missing("file")
            model = _form_text(form, "model")
            if not model:
                raise _missing("model")
            response_format = _form_text(form, "response_format") or "json"
            if response_format not in TRANSCRIPTION_FORMATS:
                raise _invalid("response_format", response_format, TRANSCRIPTION_FORMATS)
            if response_format not in TRANSCRIPTION_FORMATS_HERE:
                raise _not_here(
                    "response_format", response_format, TRANSCRIPTION_FORMATS_HERE, "no timings"
                )
            if (_form_text(form, "stream") or "false").lower() == "true":
                raise _not_here("stream", "true", ("false",), "no streaming")
            language = _form_text(form, "language") or None
            if language is not None and not (len(language) == 2 and language.isalpha()):
                raise OpenAIHTTPError(
                    400,
                    f"Invalid language '{language}'. Language parameter must be specified in "
                    "ISO-639-1 format.",
                    param="language",
                    code="invalid_language_format",
                )
            if language is not None and primary_language(language) not in (stt.languages or {}):
                raise OpenAIHTTPError(
                    400,
                    f"The local audio peer transcribes with faster-whisper tiny.en, English "
                    f"only; language '{language}' is not supported.",
                    param="language",
                    code="unsupported_language",
                )
            temperature = _form_text(form, "temperature")
            if temperature is not None:
                try:
                    value = float(temperature)
                except ValueError:
                    value = math.nan
                if not 0.0 <= value <= 1.0:
                    raise OpenAIHTTPError(
                        400,
                        f"Invalid 'temperature': expected a number between 0 and 1, "
                        f"got '{temperature}'.",
                        param="temperature",
                    )
            record.file_name = upload.filename
            record.file_type = upload.content_type
            data = await upload.read()
            record.file_bytes = len(data)
            if len(data) > MAX_UPLOAD_BYTES:
                raise OpenAIHTTPError(
                    413, f"Maximum content size limit ({MAX_UPLOAD_BYTES}) exceeded."
                )
            try:
                audio, rate = _wav_to_float(data)
            except ValueError as exc:
                raise OpenAIHTTPError(400, _UNDECODABLE, param="file") from exc
            try:
                text = await stt.transcribe_audio(
                    audio, rate, language, _form_text(form, "prompt") or None
                )
            except SpeechError as exc:
                raise OpenAIHTTPError(500, str(exc), type="server_error") from exc
        except OpenAIHTTPError as error:
            return fail(record, error, started)
        if response_format == "text":
            return finish(record, PlainTextResponse(text), started)
        usage = {"type": "duration", "seconds": max(1, math.ceil(audio.size / rate))}
        return finish(record, JSONResponse({"text": text, "usage": usage}), started)

    @app.post("/v1/audio/speech")
    async def speech(request: Request) -> Response:
        started = time.perf_counter()
        record = PeerRequest(path=request.url.path, fields={})
        try:
            check_key(request)
            try:
                body = json.loads(await request.body())
            except ValueError as exc:
                raise OpenAIHTTPError(
                    400,
                    "We could not parse the JSON body of your request. (HINT: This likely "
                    "means you aren't using your HTTP library correctly.)",
                ) from exc
            if not isinstance(body, dict):
                raise OpenAIHTTPError(400, "The request body must be a JSON object.")
            record.fields = dict(body)
            unknown = sorted(set(body) - SPEECH_PARAMS)
            if unknown:
                raise OpenAIHTTPError(
                    400,
                    f"Unrecognized request argument supplied: {unknown[0]}",
                    param=unknown[0],
                    code="unknown_parameter",
                )
            model = body.get("model")
            if not model or not isinstance(model, str):
                raise _missing("model")
            text = body.get("input")
            if text is None:
                raise _missing("input")
            if not isinstance(text, str):
                raise OpenAIHTTPError(
                    400, "Invalid type for 'input': expected a string.", param="input"
                )
            if not text.strip():
                raise OpenAIHTTPError(
                    400,
                    "Invalid 'input': empty string. Expected a string with minimum length 1.",
                    param="input",
                    code="empty_string",
                )
            if len(text) > MAX_INPUT_CHARS:
                raise OpenAIHTTPError(
                    400,
                    f"Invalid 'input': string too long. Expected a string with maximum length "
                    f"{MAX_INPUT_CHARS}, but got a string with length {len(text)} instead.",
                    param="input",
                    code="string_above_max_length",
                )
            voice = body.get("voice")
            if voice is None:
                raise _missing("voice")
            if isinstance(voice, dict):
                if not isinstance(voice.get("id"), str) or not voice["id"]:
                    raise OpenAIHTTPError(
                        400, "Invalid 'voice': a custom voice needs an 'id'.", param="voice"
                    )
            elif voice not in BUILTIN_VOICES:
                raise _invalid("voice", voice, tuple(sorted(BUILTIN_VOICES)))
            response_format = body.get("response_format", "mp3")
            if response_format not in SPEECH_FORMATS:
                raise _invalid("response_format", response_format, SPEECH_FORMATS)
            if response_format not in SPEECH_FORMATS_HERE:
                raise _not_here(
                    "response_format", response_format, SPEECH_FORMATS_HERE, "no encoder"
                )
            stream_format = body.get("stream_format", "audio")
            if stream_format not in ("audio", "sse"):
                raise _invalid("stream_format", stream_format, ("sse", "audio"))
            if stream_format == "sse":
                raise _not_here("stream_format", "sse", ("audio",), "no event stream")
            speed = body.get("speed", 1.0)
            if isinstance(speed, bool) or not isinstance(speed, int | float):
                raise OpenAIHTTPError(
                    400, "Invalid type for 'speed': expected a number.", param="speed"
                )
            if not 0.25 <= float(speed) <= 4.0:
                raise OpenAIHTTPError(
                    400,
                    f"Invalid 'speed': expected a value between 0.25 and 4.0, got {speed}.",
                    param="speed",
                    code="decimal_out_of_range",
                )
            if not isinstance(body.get("instructions", ""), str):
                raise OpenAIHTTPError(
                    400, "Invalid type for 'instructions': expected a string.",
                    param="instructions",
                )  # fmt: skip
            try:
                pcm = await asyncio.to_thread(tts.render, text, 1.0 / float(speed))
                rate = tts.sample_rate_hz
            except SpeechError as exc:
                raise OpenAIHTTPError(500, str(exc), type="server_error") from exc
        except OpenAIHTTPError as error:
            return fail(record, error, started)
        audio = float_to_pcm16(resample(pcm.astype(np.float64) / 32768.0, rate, OPENAI_PCM_RATE_HZ))
        if response_format == "wav":
            return finish(
                record,
                Response(pcm16_to_wav(audio, OPENAI_PCM_RATE_HZ), media_type="audio/wav"),
                started,
            )
        return finish(
            record, Response(audio.astype("<i2").tobytes(), media_type="audio/pcm"), started
        )

    return app


class AudioPeer(UvicornPeer):
    """The app under uvicorn on ``host`` (127.0.0.1), in the current event loop.

    ``port=0`` picks a free port; :attr:`url` is the ``base_url`` for ``AsyncOpenAI``.
    With ``warm=True`` the local models load before :meth:`start` returns.
    """

    def __init__(
        self,
        *,
        stt: LocalWhisperSTT | None = None,
        tts: PiperTTS | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        warm: bool = False,
    ) -> None:
        self.stt = stt or LocalWhisperSTT(workers=1)
        self.tts = tts or PiperTTS()
        self.host = host
        self.port = port
        self.warm = warm
        self.requests: list[PeerRequest] = []
        """One record per request to the audio endpoints, in order."""
        self.app = create_audio_app(
            stt=self.stt, tts=self.tts, api_key=api_key, requests=self.requests
        )

    async def start(self, timeout_s: float = 10.0) -> Self:
        """Serve (after loading the local models, with ``warm``); returns once listening."""
        if self.warm:
            await asyncio.to_thread(self.stt.warm_up)
            await asyncio.to_thread(self.tts.warm_up)
        return await super().start(timeout_s)


def main(argv: list[str] | None = None) -> None:
    """Serve the audio API until Ctrl-C: ``python -m callgate.peers.audio_api``."""
    parser = argparse.ArgumentParser(description="Local OpenAI-compatible audio API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--api-key", default=None, help="accept only this bearer token")
    args = parser.parse_args(argv)
    uvicorn.run(create_audio_app(api_key=args.api_key), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
