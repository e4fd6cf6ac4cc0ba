"""TwiML for callgate's voice webhook. Pure functions; no I/O.

``<Connect><Stream>`` opens a bidirectional media stream (https://www.twilio.com/docs/voice/
twiml/stream): Twilio sends the caller's audio and plays what we send back. Nested
``<Parameter>`` values arrive in the ``start`` message's ``customParameters``, which is how
the WebSocket learns the caller's number without trusting the query string.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from twilio.twiml.voice_response import (  # type: ignore[import-untyped]
    Connect,
    VoiceResponse,
)

MEDIA_STREAM_PATH = "/twilio/media"
"""Where the server accepts Twilio's media WebSocket."""

WEBHOOK_STREAM_PARAMETERS = ("From", "To", "CallSid")
"""Voice webhook form fields passed on to the stream as ``<Parameter>``."""

_WS_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}


def media_stream_url(public_url: str, path: str = MEDIA_STREAM_PATH) -> str:
    """``https://host[/prefix]`` -> ``wss://host[/prefix]/twilio/media`` (http -> ws).

    Raises ValueError for a URL without a host or with another scheme: a misconfigured
    PUBLIC_URL should fail at startup, not on the first call.
    """
    parts = urlsplit(public_url.strip())
    scheme = _WS_SCHEMES.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise ValueError(f"public URL must be http(s)://host[/prefix], got {public_url!r}")
    full_path = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit((scheme, parts.netloc, full_path, "", ""))


def stream_parameters(
    webhook_form: Mapping[str, str], extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The ``<Parameter>`` set: From, To, CallSid from the webhook form, then ``extra``."""
    params = {k: webhook_form[k] for k in WEBHOOK_STREAM_PARAMETERS if webhook_form.get(k)}
    params.update(extra or {})
    return params


def connect_stream_twiml(stream_url: str, parameters: Mapping[str, str]) -> str:
    """``<Response><Connect><Stream url=…><Parameter …/>…</Stream></Connect></Response>``."""
    if not stream_url.startswith(("wss://", "ws://")):
        raise ValueError(f"a media stream URL must be ws:// or wss://, got {stream_url!r}")
    response = VoiceResponse()
    connect = Connect()
    stream = connect.stream(url=stream_url)
    for name, value in parameters.items():
        stream.parameter(name=name, value=value)
    response.append(connect)
    return str(response.to_xml())


def hangup_twiml() -> str:
    """``<Response><Hangup/></Response>``: refuse a call (e.g. we are at capacity)."""
    response = VoiceResponse()
    response.hangup()
    return str(response.to_xml())


def say_and_hangup_twiml(
    text: str, *, language: str | None = None, voice: str | None = None
) -> str:
    """Apologise with ``<Say>`` (Twilio's TTS), then hang up."""
    response = VoiceResponse()
    options = {k: v for k, v in (("language", language), ("voice", voice)) if v}
    response.say(text, **options)
    response.hangup()
    return str(response.to_xml())


def dial_twiml(number: str, *, say: str | None = None) -> str:
    """Optionally say something, then connect the caller to ``number`` (a transfer)."""
    response = VoiceResponse()
    if say:
        response.say(say)
    response.dial(number)
    return str(response.to_xml())
