"""Twilio REST call control: the only network I/O in ``callgate.telephony``.

Hang-up is an action the server takes on an event, never a side effect of serializing a
message. The Twilio client is blocking; from asyncio call it via ``asyncio.to_thread``.
"""

from __future__ import annotations

import re
from typing import Any

from twilio.base.exceptions import TwilioException  # type: ignore[import-untyped]
from twilio.rest import Client  # type: ignore[import-untyped]

from callgate.telephony.errors import CallControlError

TWILIO_API_BASE_URL = "https://api.twilio.com"
_SID = re.compile(r"^[A-Z]{2}[0-9a-fA-F]{32}$")


def _check_sid(name: str, sid: str, prefix: str) -> None:
    if not _SID.match(sid) or not sid.startswith(prefix):
        raise ValueError(f"{name} must be {prefix} followed by 32 hex digits, got {sid!r:.50}")


def call_resource_url(account_sid: str, call_sid: str, base_url: str = TWILIO_API_BASE_URL) -> str:
    """The Call resource ("Update a Call resource", /2010-04-01/Accounts/{AC}/Calls/{CA}.json).

    SIDs are checked so that nothing but a SID lands in the path.
    """
    _check_sid("account_sid", account_sid, "AC")
    _check_sid("call_sid", call_sid, "CA")
    return f"{base_url.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Calls/{call_sid}.json"


class TwilioCallControl:
    """Ends calls through the REST API. ``http_client`` (a ``twilio.http.HttpClient``) is
    the seam for tests and for timeouts/proxies."""

    def __init__(self, account_sid: str, auth_token: str, *, http_client: Any = None) -> None:
        _check_sid("account_sid", account_sid, "AC")
        if not auth_token:
            raise ValueError("auth_token is empty; set TWILIO_AUTH_TOKEN to hang up calls")
        self._client = Client(account_sid, auth_token, http_client=http_client)

    def say_and_hang_up(self, call_sid: str, twiml: str) -> None:
        """Replace the live call's instructions with ``twiml``: an apology then ``<Hangup/>``,
        or a ``<Dial>`` that transfers the caller.

        Updating a live call's TwiML ends its media stream, and Twilio then speaks the text
        with its own TTS. It works when the model that would have spoken is gone. Blocking;
        raises like :meth:`hang_up`.
        """
        _check_sid("call_sid", call_sid, "CA")
        try:
            self._client.calls(call_sid).update(twiml=twiml)
        except TwilioException as exc:
            status = getattr(exc, "status", None)
            raise CallControlError(f"apology for {call_sid} failed: {exc}", status=status) from exc

    def hang_up(self, call_sid: str) -> None:
        """Complete the call (status=completed). Blocking.

        Raises :class:`CallControlError` when Twilio refuses or cannot be reached, and
        ValueError for a malformed SID.
        """
        _check_sid("call_sid", call_sid, "CA")
        try:
            self._client.calls(call_sid).update(status="completed")
        except TwilioException as exc:
            status = getattr(exc, "status", None)
            raise CallControlError(f"hang-up of {call_sid} failed: {exc}", status=status) from exc
