"""X-Twilio-Signature checks for the voice webhook and the media WebSocket. No I/O.

Twilio signs the full URL it requested plus, for POST webhooks, the sorted form fields,
with HMAC-SHA1 keyed by the account auth token ("Webhooks security",
https://www.twilio.com/docs/usage/webhooks/webhooks-security). The media WebSocket upgrade
is a GET, so it is signed over its ``wss://`` URL alone (params = {}).

Behind a proxy or tunnel the request's Host and scheme are not what Twilio used, so compute
the URL from PUBLIC_URL with :func:`expected_url`.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from callgate.telephony.errors import SignatureError

SIGNATURE_HEADER = "X-Twilio-Signature"

_WS_SCHEMES = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}


def expected_url(public_url: str, path: str, query: str = "", *, websocket: bool = False) -> str:
    """The URL Twilio signed: PUBLIC_URL's scheme, host and prefix, then ``path?query``.

    ``websocket=True`` maps https -> wss and http -> ws, as Twilio does for the stream URL.
    """
    parts = urlsplit(public_url.strip())
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"public URL must be scheme://host[/prefix], got {public_url!r}")
    scheme = _WS_SCHEMES.get(parts.scheme.lower(), parts.scheme) if websocket else parts.scheme
    full_path = parts.path.rstrip("/") + "/" + path.lstrip("/")
    return urlunsplit((scheme, parts.netloc, full_path, query, ""))


def validate_webhook(
    auth_token: str, url: str, form_params: Mapping[str, str], signature: str | None
) -> bool:
    """True if ``signature`` signs ``url`` plus the POSTed form. A missing signature or an
    empty token is False. Starlette's ``FormData`` works as ``form_params`` (repeated
    fields included)."""
    if not signature or not auth_token:
        return False
    return bool(RequestValidator(auth_token).validate(url, form_params, signature))


def validate_websocket(auth_token: str, url: str, signature: str | None) -> bool:
    """True if ``signature`` signs the WebSocket upgrade ``url`` (wss://…, query included)."""
    return validate_webhook(auth_token, url, {}, signature)


def require_valid(valid: bool, what: str) -> None:
    """Raise :class:`SignatureError` naming ``what`` when a check above returned False."""
    if not valid:
        raise SignatureError(f"invalid or missing {SIGNATURE_HEADER} on {what}")
