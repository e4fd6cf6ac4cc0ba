"""The Twilio Media Streams protocol state for one call, sans-I/O.

:class:`TwilioStream` holds the per-call state: feed it each text frame with
:meth:`TwilioStream.receive_text` and act on the returned events; ask it for outbound frames
with :meth:`TwilioStream.media`, :meth:`TwilioStream.mark` and :meth:`TwilioStream.clear`
and write them to the socket yourself. It never touches a socket or a clock, and bad input
becomes a :class:`ProtocolViolation` event instead of an exception. The message classes live
in :mod:`callgate.telephony.messages` and are re-exported here.
"""

from __future__ import annotations

from collections.abc import Mapping

from callgate.telephony.errors import StreamStateError
from callgate.telephony.messages import (
    EXPECTED_CHANNELS,
    EXPECTED_ENCODING,
    EXPECTED_SAMPLE_RATE_HZ,
    ULAW_BYTES_PER_MS,
    Clear,
    Connected,
    Dtmf,
    Event,
    InboundMessage,
    Mark,
    Media,
    OutboundMark,
    OutboundMedia,
    OutboundMessage,
    ParseError,
    ProtocolViolation,
    Start,
    Stop,
    ViolationKind,
    parse_inbound,
    parse_outbound,
)

__all__ = [
    "EXPECTED_CHANNELS",
    "EXPECTED_ENCODING",
    "EXPECTED_SAMPLE_RATE_HZ",
    "ULAW_BYTES_PER_MS",
    "Clear",
    "Connected",
    "Dtmf",
    "Event",
    "InboundMessage",
    "Mark",
    "Media",
    "OutboundMark",
    "OutboundMedia",
    "OutboundMessage",
    "ParseError",
    "ProtocolViolation",
    "Start",
    "Stop",
    "TwilioStream",
    "ViolationKind",
    "parse_inbound",
    "parse_outbound",
]


class TwilioStream:
    """Sans-I/O state of one Twilio media stream, seen from our server.

    Call :meth:`receive_text` for every text frame and handle the returned events in order.
    It never raises on input: bad frames become :class:`ProtocolViolation` events and are
    dropped. After a :class:`Stop` event the call is over; close the socket. A
    ``bad_media_format`` violation means the stream never started: hang up.

    Outbound frames come from :meth:`media`, :meth:`mark` and :meth:`clear`; they raise
    :class:`StreamStateError` before ``start`` (no streamSid to address yet).
    """

    def __init__(self, *, max_message_bytes: int = 65_536, chunk_bytes: int = 320) -> None:
        """``max_message_bytes``: largest frame accepted (a security limit; a 20 ms media
        frame is about 350 bytes). ``chunk_bytes``: mu-law bytes per outbound media message,
        320 = 40 ms, which halves the message count of 20 ms frames and keeps ``clear``
        fine-grained."""
        if max_message_bytes < 1:
            raise ValueError(f"max_message_bytes must be positive, got {max_message_bytes}")
        if chunk_bytes < 1:
            raise ValueError(f"chunk_bytes must be positive, got {chunk_bytes}")
        self.max_message_bytes = max_message_bytes
        self.chunk_bytes = chunk_bytes
        self._start: Start | None = None
        self._stopped = False

    @property
    def started(self) -> bool:
        return self._start is not None

    @property
    def stopped(self) -> bool:
        return self._stopped

    @property
    def stream_sid(self) -> str | None:
        return self._start.stream_sid if self._start else None

    @property
    def call_sid(self) -> str | None:
        return self._start.call_sid if self._start else None

    @property
    def custom_parameters(self) -> Mapping[str, str]:
        return self._start.custom_parameters if self._start else {}

    def receive_text(self, text: str) -> list[Event]:
        """Feed one text frame; returns zero or more events (today at most one)."""
        if len(text) > self.max_message_bytes or (
            len(text) * 4 > self.max_message_bytes
            and len(text.encode("utf-8", "surrogatepass")) > self.max_message_bytes
        ):
            return [
                ProtocolViolation(
                    "oversized", f"message over {self.max_message_bytes} bytes dropped"
                )
            ]
        parsed = parse_inbound(text)
        if isinstance(parsed, ProtocolViolation):
            return [parsed]
        violation = self._check(parsed)
        if violation is not None:
            return [violation]
        if isinstance(parsed, Start):
            self._start = parsed
        elif isinstance(parsed, Stop):
            self._stopped = True
        return [parsed]

    def _check(self, message: InboundMessage) -> ProtocolViolation | None:
        if self._stopped:
            return ProtocolViolation("after_stop", f"{message.event} after stop dropped")
        if isinstance(message, Connected):
            return None
        if isinstance(message, Start):
            if self._start is not None:
                return ProtocolViolation("duplicate_start", "second start ignored")
            if not message.format_ok:
                return ProtocolViolation(
                    "bad_media_format",
                    f"expected {EXPECTED_ENCODING} {EXPECTED_SAMPLE_RATE_HZ} Hz mono, got "
                    f"{message.encoding!r} {message.sample_rate_hz} Hz {message.channels} ch",
                )
            return None
        if self._start is None:
            if isinstance(message, Stop):
                return None  # a call can end before it starts; let the server wind down
            kind: ViolationKind = (
                "media_before_start" if isinstance(message, Media) else ("before_start")
            )
            return ProtocolViolation(kind, f"{message.event} before start dropped")
        if message.stream_sid != self._start.stream_sid:
            return ProtocolViolation(
                "wrong_stream_sid",
                f"{message.event} for {message.stream_sid!r:.40}, stream is "
                f"{self._start.stream_sid!r}",
            )
        return None

    def _sid(self) -> str:
        if self._start is None:
            raise StreamStateError("cannot send to Twilio before start gave a streamSid")
        return self._start.stream_sid

    def media(self, ulaw: bytes) -> list[str]:
        """Frames that play ``ulaw`` (mu-law 8 kHz) to the caller, ``chunk_bytes`` each."""
        sid = self._sid()
        step = self.chunk_bytes
        return [
            OutboundMedia(stream_sid=sid, payload=bytes(ulaw[i : i + step])).serialize()
            for i in range(0, len(ulaw), step)
        ]

    def mark(self, name: str) -> str:
        """A mark frame; Twilio echoes ``name`` once the audio sent before it has played."""
        return OutboundMark(stream_sid=self._sid(), name=name).serialize()

    def clear(self) -> str:
        """A clear frame: Twilio drops unplayed audio and echoes every pending mark."""
        return Clear(stream_sid=self._sid()).serialize()
