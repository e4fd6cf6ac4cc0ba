"""The Twilio Media Streams core, stepped with text frames only.

Formats: https://www.twilio.com/docs/voice/media-streams/websocket-messages
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate.telephony import (
    Clear,
    Connected,
    Dtmf,
    InboundMessage,
    Mark,
    Media,
    OutboundMark,
    OutboundMedia,
    OutboundMessage,
    ProtocolViolation,
    Start,
    Stop,
    StreamStateError,
    TwilioStream,
    parse_inbound,
    parse_outbound,
)

SID = "MZ" + "0" * 32
CALL = "CA" + "1" * 32
ACCOUNT = "AC" + "2" * 32

START = Start(
    sequence_number=1,
    stream_sid=SID,
    account_sid=ACCOUNT,
    call_sid=CALL,
    custom_parameters={"From": "+15550100", "To": "+15550101"},
)


def media(seq: int = 2, payload: bytes = b"\xff" * 160, sid: str = SID) -> Media:
    return Media(
        sequence_number=seq,
        stream_sid=sid,
        payload=payload,
        chunk=seq - 1,
        timestamp_ms=(seq - 2) * 20,
    )


def started() -> TwilioStream:
    stream = TwilioStream()
    assert stream.receive_text(Connected().serialize()) == [Connected()]
    assert stream.receive_text(START.serialize()) == [START]
    return stream


def only_violation(events: Sequence[object]) -> ProtocolViolation:
    assert len(events) == 1
    event = events[0]
    assert isinstance(event, ProtocolViolation)
    return event


# --- "WebSocket messages from Twilio": round trips ------------------------------------------

INBOUND: list[InboundMessage] = [
    Connected(),
    START,
    media(),
    Mark(sequence_number=7, stream_sid=SID, name="cg-1"),
    Dtmf(sequence_number=8, stream_sid=SID, digit="5"),
    Stop(sequence_number=9, stream_sid=SID, account_sid=ACCOUNT, call_sid=CALL),
]


@pytest.mark.parametrize("message", INBOUND, ids=lambda m: type(m).__name__)
def test_inbound_round_trip(message: InboundMessage) -> None:
    text = message.serialize()
    assert parse_inbound(text) == message
    assert json.loads(text)["event"] == message.event


OUTBOUND: list[OutboundMessage] = [
    OutboundMedia(stream_sid=SID, payload=bytes(range(256))),
    OutboundMark(stream_sid=SID, name="cg-2"),
    Clear(stream_sid=SID),
]


@pytest.mark.parametrize("message", OUTBOUND, ids=lambda m: type(m).__name__)
def test_outbound_round_trip(message: OutboundMessage) -> None:
    assert parse_outbound(message.serialize()) == message


def test_parses_twilio_doc_example_media() -> None:
    # Shape of the "Media message" example: numbers are strings.
    text = json.dumps(
        {
            "event": "media",
            "sequenceNumber": "3",
            "media": {
                "track": "inbound",
                "chunk": "1",
                "timestamp": "5",
                "payload": "no+JhoaJjpw=",
            },
            "streamSid": SID,
        }
    )
    message = parse_inbound(text)
    assert isinstance(message, Media)
    assert (message.sequence_number, message.chunk, message.timestamp_ms) == (3, 1, 5)
    assert message.payload == base64.b64decode("no+JhoaJjpw=")
    assert len(message.payload) == 8


def test_outbound_media_has_documented_shape() -> None:
    frame = json.loads(OutboundMedia(stream_sid=SID, payload=b"\x00\x01").serialize())
    assert frame == {"event": "media", "streamSid": SID, "media": {"payload": "AAE="}}


def test_dataclasses_validate_when_built() -> None:
    with pytest.raises(ValueError, match="stream_sid"):
        OutboundMark(stream_sid="", name="x")
    with pytest.raises(ValueError, match="timestamp_ms"):
        Media(sequence_number=1, stream_sid=SID, payload=b"", chunk=1, timestamp_ms=-1)


# --- TwilioStream: state -------------------------------------------------------------------


def test_start_sets_state() -> None:
    stream = TwilioStream()
    assert not stream.started
    assert stream.stream_sid is None
    stream.receive_text(START.serialize())
    assert stream.started
    assert stream.stream_sid == SID
    assert stream.call_sid == CALL
    assert stream.custom_parameters["From"] == "+15550100"


def test_media_event_carries_decoded_audio() -> None:
    stream = started()
    [event] = stream.receive_text(media(payload=b"\x7f\x00").serialize())
    assert isinstance(event, Media)
    assert event.payload == b"\x7f\x00"


def test_stop_stops_and_later_messages_are_dropped() -> None:
    stream = started()
    [event] = stream.receive_text(INBOUND[-1].serialize())
    assert isinstance(event, Stop)
    assert stream.stopped
    assert only_violation(stream.receive_text(media().serialize())).kind == "after_stop"


# --- TwilioStream: violations are events, never exceptions ---------------------------------


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("{not json", "malformed_json"),
        ("[1, 2]", "malformed_json"),
        ('{"event": "hello"}', "unknown_event"),
        ('{"protocol": "Call"}', "missing_field"),
        ('{"event": "connected", "protocol": "Call"}', "missing_field"),
        ('{"event": "connected", "protocol": 1, "version": "1"}', "bad_field"),
    ],
)
def test_bad_frames_become_violations(text: str, kind: str) -> None:
    violation = only_violation(TwilioStream().receive_text(text))
    assert violation.kind == kind
    assert violation.detail


def test_media_before_start_is_reported_and_dropped() -> None:
    stream = TwilioStream()
    assert only_violation(stream.receive_text(media().serialize())).kind == "media_before_start"
    assert not stream.started


def test_bad_base64() -> None:
    stream = started()
    frame = json.loads(media().serialize())
    frame["media"]["payload"] = "***"
    violation = only_violation(stream.receive_text(json.dumps(frame)))
    assert violation.kind == "bad_base64"
    assert "payload" in violation.detail


def test_missing_media_field_names_the_path() -> None:
    stream = started()
    frame = json.loads(media().serialize())
    del frame["media"]["chunk"]
    violation = only_violation(stream.receive_text(json.dumps(frame)))
    assert violation.kind == "missing_field"
    assert "media.media.chunk" in violation.detail


def test_non_numeric_sequence_number() -> None:
    frame = json.loads(media().serialize())
    frame["sequenceNumber"] = "12a"
    assert only_violation(started().receive_text(json.dumps(frame))).kind == "bad_field"


def test_oversized_is_dropped_unparsed() -> None:
    stream = TwilioStream(max_message_bytes=1024)
    big = media(payload=b"\x00" * 2000).serialize()
    assert only_violation(stream.receive_text(big)).kind == "oversized"
    # Multi-byte characters count as bytes, not characters.
    wide = json.dumps({"event": "x", "pad": "é" * 600}, ensure_ascii=False)
    assert len(wide) < 1024 < len(wide.encode())
    assert only_violation(stream.receive_text(wide)).kind == "oversized"


def test_bad_media_format_does_not_start() -> None:
    stream = TwilioStream()
    frame = json.loads(START.serialize())
    frame["start"]["mediaFormat"]["sampleRate"] = 16000
    violation = only_violation(stream.receive_text(json.dumps(frame)))
    assert violation.kind == "bad_media_format"
    assert "16000" in violation.detail
    assert not stream.started


def test_duplicate_start_and_wrong_sid() -> None:
    stream = started()
    assert only_violation(stream.receive_text(START.serialize())).kind == "duplicate_start"
    other = media(sid="MZ" + "9" * 32).serialize()
    assert only_violation(stream.receive_text(other)).kind == "wrong_stream_sid"


def test_mark_before_start() -> None:
    mark = Mark(sequence_number=2, stream_sid=SID, name="x").serialize()
    assert only_violation(TwilioStream().receive_text(mark)).kind == "before_start"


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_arbitrary_text_never_raises(text: str) -> None:
    for event in started().receive_text(text):
        assert isinstance(event, ProtocolViolation | Connected | Start | Media | Mark | Dtmf | Stop)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=5),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
        max_leaves=10,
    ),
    st.sampled_from(["connected", "start", "media", "mark", "dtmf", "stop"]),
)
def test_arbitrary_json_bodies_never_raise(body: object, event: str) -> None:
    frame = {"event": event, "streamSid": SID, "sequenceNumber": "2", event: body}
    for result in started().receive_text(json.dumps(frame)):
        assert not isinstance(result, Start | Stop) or result.stream_sid == SID


# --- outbound builders ----------------------------------------------------------------------


def test_send_before_start_is_our_error() -> None:
    stream = TwilioStream()
    with pytest.raises(StreamStateError):
        stream.media(b"\xff" * 10)
    with pytest.raises(StreamStateError):
        stream.mark("a")
    with pytest.raises(StreamStateError):
        stream.clear()


def test_media_splits_into_chunks_in_order() -> None:
    stream = TwilioStream(chunk_bytes=320)
    stream.receive_text(START.serialize())
    audio = bytes(i % 256 for i in range(700))
    frames = stream.media(audio)
    assert len(frames) == 3
    parsed = [parse_outbound(f) for f in frames]
    assert all(isinstance(p, OutboundMedia) and p.stream_sid == SID for p in parsed)
    assert b"".join(p.payload for p in parsed if isinstance(p, OutboundMedia)) == audio
    assert stream.media(b"") == []


def test_mark_and_clear_frames() -> None:
    stream = started()
    assert parse_outbound(stream.mark("cg-1")) == OutboundMark(stream_sid=SID, name="cg-1")
    assert parse_outbound(stream.clear()) == Clear(stream_sid=SID)
