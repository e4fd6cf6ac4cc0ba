"""Twilio Media Streams wire messages: one frozen dataclass per kind, parse and serialize
side by side. Sans-I/O.

Formats follow Twilio's "Media Streams - WebSocket Messages" page
(https://www.twilio.com/docs/voice/media-streams/websocket-messages). Every message is one
JSON text frame. Twilio sends ``connected``, ``start``, ``media``, ``dtmf``, ``mark`` and
``stop``; on a bidirectional ``<Connect><Stream>`` we may send ``media``, ``mark`` and
``clear`` back. Per-call state lives in :mod:`callgate.telephony.media_streams`.

``parse`` classmethods take the decoded JSON object and raise :class:`ParseError` (a
ValueError); :func:`parse_inbound` / :func:`parse_outbound` take text and never raise.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

ViolationKind = Literal[
    "malformed_json",  # not JSON, or not a JSON object
    "unknown_event",  # an "event" value we do not know; the message is ignored
    "missing_field",  # a field the Twilio docs define is absent
    "bad_field",  # a field has the wrong type or an impossible value
    "bad_base64",  # media.payload is not valid base64
    "bad_media_format",  # start.mediaFormat is not mu-law 8000 Hz mono; the call can't be served
    "oversized",  # longer than max_message_bytes; dropped unparsed
    "media_before_start",  # media before a valid start; dropped
    "before_start",  # mark or dtmf before a valid start; dropped
    "duplicate_start",  # a second start; ignored
    "wrong_stream_sid",  # streamSid differs from the one start gave; dropped
    "after_stop",  # anything after stop; dropped
]

EXPECTED_ENCODING = "audio/x-mulaw"
EXPECTED_SAMPLE_RATE_HZ = 8000
EXPECTED_CHANNELS = 1
ULAW_BYTES_PER_MS = 8
"""8 kHz mu-law: one byte per sample, 8 samples per millisecond."""


@dataclass(frozen=True, slots=True)
class ProtocolViolation:
    """The peer sent something we could not accept. The message was dropped."""

    kind: ViolationKind
    detail: str


class ParseError(ValueError):
    """A message failed to parse; ``kind`` and ``detail`` become a :class:`ProtocolViolation`."""

    def __init__(self, kind: ViolationKind, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind: ViolationKind = kind
        self.detail = detail

    def violation(self) -> ProtocolViolation:
        return ProtocolViolation(self.kind, self.detail)


# --- field helpers: every failure names the JSON path ----------------------------------------


def _get(obj: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in obj:
        raise ParseError("missing_field", f"{where}.{key} is missing")
    return obj[key]


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = _get(obj, key, where)
    if not isinstance(value, str):
        raise ParseError("bad_field", f"{where}.{key} must be a string, got {value!r:.40}")
    return value


def _int(obj: Mapping[str, Any], key: str, where: str) -> int:
    # Twilio sends sequenceNumber, chunk and timestamp as decimal strings ("1", "20").
    value = _get(obj, key, where)
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ParseError("bad_field", f"{where}.{key} must be an integer, got {value!r:.40}")
    if isinstance(value, str) and not (value.isascii() and value.isdigit() and len(value) < 19):
        raise ParseError("bad_field", f"{where}.{key} must be a decimal integer, got {value!r:.40}")
    return int(value)


def _obj(obj: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = _get(obj, key, where)
    if not isinstance(value, dict):
        raise ParseError("bad_field", f"{where}.{key} must be an object")
    return value


def _non_empty(name: str, value: str) -> None:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def _non_negative(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


def _dumps(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False)


def _b64decode(text: str, where: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ParseError("bad_base64", f"{where} is not valid base64: {exc}") from None


# --- messages from Twilio --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Connected:
    """First message on the socket ("Connected message"): names the protocol."""

    event: ClassVar[str] = "connected"
    protocol: str = "Call"
    version: str = "1.0.0"

    @classmethod
    def parse(cls, message: Mapping[str, Any]) -> Connected:
        return cls(
            protocol=_str(message, "protocol", "connected"),
            version=_str(message, "version", "connected"),
        )

    def serialize(self) -> str:
        return _dumps({"event": "connected", "protocol": self.protocol, "version": self.version})


@dataclass(frozen=True, slots=True, kw_only=True)
class Start:
    """Stream metadata ("Start message"); sent once, right after ``connected``.

    ``custom_parameters`` are the ``<Parameter>`` values from the TwiML. The dataclass keeps
    whatever media format Twilio announced; :class:`TwilioStream` rejects anything but
    mu-law 8000 Hz mono.
    """

    event: ClassVar[str] = "start"
    sequence_number: int = 1
    stream_sid: str
    account_sid: str
    call_sid: str
    tracks: tuple[str, ...] = ("inbound",)
    custom_parameters: Mapping[str, str] = field(default_factory=dict)
    encoding: str = EXPECTED_ENCODING
    sample_rate_hz: int = EXPECTED_SAMPLE_RATE_HZ
    channels: int = EXPECTED_CHANNELS

    def __post_init__(self) -> None:
        _non_negative("sequence_number", self.sequence_number)
        for name in ("stream_sid", "account_sid", "call_sid", "encoding"):
            _non_empty(name, getattr(self, name))
        _non_negative("sample_rate_hz", self.sample_rate_hz)
        _non_negative("channels", self.channels)
        if not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.custom_parameters.items()
        ):
            raise ValueError("custom_parameters must map str to str")

    @property
    def format_ok(self) -> bool:
        """True for the only format Twilio Media Streams use: mu-law, 8000 Hz, mono."""
        return (
            self.encoding == EXPECTED_ENCODING
            and self.sample_rate_hz == EXPECTED_SAMPLE_RATE_HZ
            and self.channels == EXPECTED_CHANNELS
        )

    @classmethod
    def parse(cls, message: Mapping[str, Any]) -> Start:
        start = _obj(message, "start", "start")
        fmt = _obj(start, "mediaFormat", "start.start")
        tracks = _get(start, "tracks", "start.start")
        if not isinstance(tracks, list) or not all(isinstance(t, str) for t in tracks):
            raise ParseError("bad_field", "start.start.tracks must be a list of strings")
        params = start.get("customParameters", {})
        if not isinstance(params, dict):
            raise ParseError("bad_field", "start.start.customParameters must be an object")
        # Twilio's example carries streamSid both at the top level and inside "start".
        sid = message.get("streamSid", start.get("streamSid"))
        if not isinstance(sid, str):
            raise ParseError("missing_field", "start.streamSid is missing")
        return cls(
            sequence_number=_int(message, "sequenceNumber", "start"),
            stream_sid=sid,
            account_sid=_str(start, "accountSid", "start.start"),
            call_sid=_str(start, "callSid", "start.start"),
            tracks=tuple(tracks),
            custom_parameters={str(k): str(v) for k, v in params.items()},
            encoding=_str(fmt, "encoding", "start.start.mediaFormat"),
            sample_rate_hz=_int(fmt, "sampleRate", "start.start.mediaFormat"),
            channels=_int(fmt, "channels", "start.start.mediaFormat"),
        )

    def serialize(self) -> str:
        return _dumps(
            {
                "event": "start",
                "sequenceNumber": str(self.sequence_number),
                "start": {
                    "accountSid": self.account_sid,
                    "streamSid": self.stream_sid,
                    "callSid": self.call_sid,
                    "tracks": list(self.tracks),
                    "customParameters": dict(self.custom_parameters),
                    "mediaFormat": {
                        "encoding": self.encoding,
                        "sampleRate": self.sample_rate_hz,
                        "channels": self.channels,
                    },
                },
                "streamSid": self.stream_sid,
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Media:
    """Caller audio ("Media message"): ``payload`` is decoded mu-law, 20 ms = 160 bytes.

    ``chunk`` counts from 1; ``timestamp_ms`` is milliseconds since the stream started.
    """

    event: ClassVar[str] = "media"
    sequence_number: int
    stream_sid: str
    payload: bytes
    chunk: int
    timestamp_ms: int
    track: str = "inbound"

    def __post_init__(self) -> None:
        _non_negative("sequence_number", self.sequence_number)
        _non_empty("stream_sid", self.stream_sid)
        _non_negative("chunk", self.chunk)
        _non_negative("timestamp_ms", self.timestamp_ms)
        _non_empty("track", self.track)
        if not isinstance(self.payload, bytes):
            raise ValueError("payload must be bytes")

    @classmethod
    def parse(cls, message: Mapping[str, Any]) -> Media:
        media = _obj(message, "media", "media")
        return cls(
            sequence_number=_int(message, "sequenceNumber", "media"),
            stream_sid=_str(message, "streamSid", "media"),
            payload=_b64decode(_str(media, "payload", "media.media"), "media.media.payload"),
            chunk=_int(media, "chunk", "media.media"),
            timestamp_ms=_int(media, "timestamp", "media.media"),
            track=_str(media, "track", "media.media"),
        )

    def serialize(self) -> str:
        return _dumps(
            {
                "event": "media",
                "sequenceNumber": str(self.sequence_number),
                "media": {
                    "track": self.track,
                    "chunk": str(self.chunk),
                    "timestamp": str(self.timestamp_ms),
                    "payload": base64.b64encode(self.payload).decode("ascii"),
                },
                "streamSid": self.stream_sid,
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Mark:
    """Twilio echoes a mark we sent ("Mark message") once the audio before it has played,
    or at once when a ``clear`` dropped that audio."""

    event: ClassVar[str] = "mark"
    sequence_number: int
    stream_sid: str
    name: str

    def __post_init__(self) -> None:
        _non_negative("sequence_number", self.sequence_number)
        _non_empty("stream_sid", self.stream_sid)
        _non_empty("name", self.name)

    @classmethod
    def parse(cls, message: Mapping[str, Any]) -> Mark:
        return cls(
            sequence_number=_int(message, "sequenceNumber", "mark"),
            stream_sid=_str(message, "streamSid", "mark"),
            name=_str(_obj(message, "mark", "mark"), "name", "mark.mark"),
        )

    def serialize(self) -> str:
        return _dumps(
            {
                "event": "mark",
                "sequenceNumber": str(self.sequence_number),
                "streamSid": self.stream_sid,
                "mark": {"name": self.name},
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Dtmf:
    """The caller pressed a key ("DTMF message"); bidirectional streams only."""

    event: ClassVar[str] = "dtmf"
    sequence_number: int
    stream_sid: str
    digit: str
    track: str = "inbound_track"

    def __post_init__(self) -> None:
        _non_negative("sequence_number", self.sequence_number)
        _non_empty("stream_sid", self.stream_sid)
        _non_empty("digit", self.digit)

    @classmethod
    def parse(cls, message: Mapping[str, Any]) -> Dtmf:
        dtmf = _obj(message, "dtmf", "dtmf")
        return cls(
            sequence_number=_int(message, "sequenceNumber", "dtmf"),
            stream_sid=_str(message, "streamSid", "dtmf"),
            digit=_str(dtmf, "digit", "dtmf.dtmf"),
            track=_str(dtmf, "track", "dtmf.dtmf"),
        )

    def serialize(self) -> str:
        return _dumps(
            {
                "event": "dtmf",
                "streamSid": self.stream_sid,
                "sequenceNumber": str(self.sequence_number),
                "dtmf": {"track": self.track, "digit": self.digit},
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    """The stream ended ("Stop message"): the call hung up or the stream was stopped."""

    event: ClassVar[str] = "stop"
    sequence_number: int
    stream_sid: str
    account_sid: str
    call_sid: str

    def __post_init__(self) -> None:
        _non_negative("sequence_number", self.sequence_number)
        for name in ("stream_sid", "account_sid", "call_sid"):
            _non_empty(name, getattr(self, name))

    @classmethod
    def parse(cls, message: Mapping[str, Any]) -> Stop:
        stop = _obj(message, "stop", "stop")
        return cls(
            sequence_number=_int(message, "sequenceNumber", "stop"),
            stream_sid=_str(message, "streamSid", "stop"),
            account_sid=_str(stop, "accountSid", "stop.stop"),
            call_sid=_str(stop, "callSid", "stop.stop"),
        )

    def serialize(self) -> str:
        return _dumps(
            {
                "event": "stop",
                "sequenceNumber": str(self.sequence_number),
                "streamSid": self.stream_sid,
                "stop": {"accountSid": self.account_sid, "callSid": self.call_sid},
            }
        )


InboundMessage = Connected | Start | Media | Mark | Dtmf | Stop
Event = InboundMessage | ProtocolViolation

# --- messages to Twilio ("Send messages to Twilio" on the same page) ------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundMedia:
    """Agent audio to play: raw mu-law 8000 Hz mono, base64 in the payload."""

    event: ClassVar[str] = "media"
    stream_sid: str
    payload: bytes

    def __post_init__(self) -> None:
        _non_empty("stream_sid", self.stream_sid)
        if not isinstance(self.payload, bytes):
            raise ValueError("payload must be bytes")

    @classmethod
    def parse(cls, message: Mapping[str, Any]) -> OutboundMedia:
        media = _obj(message, "media", "media")
        return cls(
            stream_sid=_str(message, "streamSid", "media"),
            payload=_b64decode(_str(media, "payload", "media.media"), "media.media.payload"),
        )

    def serialize(self) -> str:
        return _dumps(
            {
                "event": "media",
                "streamSid": self.stream_sid,
                "media": {"payload": base64.b64encode(self.payload).decode("ascii")},
            }
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class OutboundMark:
    """Ask Twilio to echo ``name`` back once the audio queued before it has played."""

    event: ClassVar[str] = "mark"
    stream_sid: str
    name: str

    def __post_init__(self) -> None:
        _non_empty("stream_sid", self.stream_sid)
        _non_empty("name", self.name)

    @classmethod
    def parse(cls, message: Mapping[str, Any]) -> OutboundMark:
        return cls(
            stream_sid=_str(message, "streamSid", "mark"),
            name=_str(_obj(message, "mark", "mark"), "name", "mark.mark"),
        )

    def serialize(self) -> str:
        return _dumps({"event": "mark", "streamSid": self.stream_sid, "mark": {"name": self.name}})


@dataclass(frozen=True, slots=True, kw_only=True)
class Clear:
    """Drop all queued agent audio at once (barge-in); Twilio then echoes pending marks."""

    event: ClassVar[str] = "clear"
    stream_sid: str

    def __post_init__(self) -> None:
        _non_empty("stream_sid", self.stream_sid)

    @classmethod
    def parse(cls, message: Mapping[str, Any]) -> Clear:
        return cls(stream_sid=_str(message, "streamSid", "clear"))

    def serialize(self) -> str:
        return _dumps({"event": "clear", "streamSid": self.stream_sid})


OutboundMessage = OutboundMedia | OutboundMark | Clear

_INBOUND: dict[str, type[InboundMessage]] = {
    c.event: c for c in (Connected, Start, Media, Mark, Dtmf, Stop)
}
_OUTBOUND: dict[str, type[OutboundMessage]] = {
    c.event: c for c in (OutboundMedia, OutboundMark, Clear)
}


def _load(text: str) -> tuple[str, Mapping[str, Any]]:
    try:
        message = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise ParseError("malformed_json", f"not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ParseError("malformed_json", f"not a JSON object but {type(message).__name__}")
    return _str(message, "event", "message"), message


def _parse(text: str, table: Mapping[str, type[Any]]) -> Any:
    event, message = _load(text)
    cls = table.get(event)
    if cls is None:
        raise ParseError("unknown_event", f"unknown event {event!r:.40}")
    try:
        return cls.parse(message)
    except ParseError:
        raise
    except (ValueError, TypeError) as exc:  # from __post_init__ checks
        raise ParseError("bad_field", f"{event}: {exc}") from None


def parse_inbound(text: str) -> InboundMessage | ProtocolViolation:
    """Parse one Twilio -> server frame without any stream state."""
    try:
        result: InboundMessage = _parse(text, _INBOUND)
    except ParseError as exc:
        return exc.violation()
    return result


def parse_outbound(text: str) -> OutboundMessage | ProtocolViolation:
    """Parse one server -> Twilio frame; the caller peer uses this to play the agent."""
    try:
        result: OutboundMessage = _parse(text, _OUTBOUND)
    except ParseError as exc:
        return exc.violation()
    return result
