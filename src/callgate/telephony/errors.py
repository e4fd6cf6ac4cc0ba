"""Errors raised by callgate's telephony layer.

Bad input from Twilio (or from anyone on the media WebSocket) is never raised: the
sans-I/O stream turns it into a :class:`~callgate.telephony.media_streams.ProtocolViolation`
event, as websockets' ``parse()`` turns a bad frame into a close code. Exceptions are for
our own mistakes and for checks the caller asked for::

    TelephonyError               base of everything below
    ├── StreamStateError         (sans-I/O, local) we misused a TwilioStream, e.g. sent
    │                            media before Twilio's ``start`` gave us a streamSid
    ├── SignatureError           (local policy) a request failed X-Twilio-Signature
    │                            validation; raise it from the server edge if you prefer
    │                            an exception to the boolean validators
    └── CallControlError         (remote, I/O edge) the Twilio REST API refused or could
                                 not be reached; ``status`` is the HTTP status if any
"""

from __future__ import annotations


class TelephonyError(Exception):
    """Base class of telephony errors."""


class StreamStateError(TelephonyError):
    """Our code asked a :class:`TwilioStream` for something its state does not allow."""


class SignatureError(TelephonyError):
    """A Twilio request's X-Twilio-Signature did not match the auth token."""


class CallControlError(TelephonyError):
    """A Twilio REST call-control request failed."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status
