"""Twilio telephony: the Media Streams protocol (sans-I/O), playback tracking from marks,
TwiML, request signatures, and the REST hang-up edge."""

from callgate.telephony.errors import (
    CallControlError,
    SignatureError,
    StreamStateError,
    TelephonyError,
)
from callgate.telephony.media_streams import (
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
    ProtocolViolation,
    Start,
    Stop,
    TwilioStream,
    parse_inbound,
    parse_outbound,
)
from callgate.telephony.playback import PlaybackTracker

__all__ = [
    "CallControlError",
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
    "PlaybackTracker",
    "ProtocolViolation",
    "SignatureError",
    "Start",
    "Stop",
    "StreamStateError",
    "TelephonyError",
    "TwilioStream",
    "parse_inbound",
    "parse_outbound",
]
