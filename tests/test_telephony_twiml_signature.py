"""TwiML for <Connect><Stream> and X-Twilio-Signature checks (no network)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from callgate.telephony import SignatureError
from callgate.telephony.signature import (
    expected_url,
    require_valid,
    validate_webhook,
    validate_websocket,
)
from callgate.telephony.twiml import (
    connect_stream_twiml,
    hangup_twiml,
    media_stream_url,
    say_and_hangup_twiml,
    stream_parameters,
)

TOKEN = "12345678901234567890123456789012"


def test_connect_stream_twiml_structure() -> None:
    params = {"From": "+972501234567", "To": "+15550101", "CallSid": "CA" + "1" * 32, "x": "<&>"}
    root = ET.fromstring(connect_stream_twiml("wss://example.com/twilio/media", params))
    assert root.tag == "Response"
    connect = root.find("Connect")
    assert connect is not None
    stream = connect.find("Stream")
    assert stream is not None
    assert stream.get("url") == "wss://example.com/twilio/media"
    got = {p.get("name"): p.get("value") for p in stream.findall("Parameter")}
    assert got == params  # escaping survives the XML round trip


def test_connect_stream_rejects_http_url() -> None:
    with pytest.raises(ValueError, match="wss://"):
        connect_stream_twiml("https://example.com/twilio/media", {})


def test_stream_parameters_pick_webhook_fields() -> None:
    form = {"From": "+1", "To": "+2", "CallSid": "CA1", "AccountSid": "AC1", "Caller": "+1"}
    assert stream_parameters(form, {"agent": "sales"}) == {
        "From": "+1",
        "To": "+2",
        "CallSid": "CA1",
        "agent": "sales",
    }


@pytest.mark.parametrize(
    ("public", "expected"),
    [
        ("https://cg.example.com", "wss://cg.example.com/twilio/media"),
        ("https://cg.example.com/", "wss://cg.example.com/twilio/media"),
        ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/twilio/media"),
        ("https://example.com/prefix/", "wss://example.com/prefix/twilio/media"),
    ],
)
def test_media_stream_url(public: str, expected: str) -> None:
    assert media_stream_url(public) == expected


@pytest.mark.parametrize("bad", ["ftp://x", "example.com", "https://"])
def test_media_stream_url_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="public URL"):
        media_stream_url(bad)


def test_hangup_twimls() -> None:
    assert ET.fromstring(hangup_twiml()).find("Hangup") is not None
    root = ET.fromstring(say_and_hangup_twiml("סליחה", language="he-IL"))
    say = root.find("Say")
    assert say is not None
    assert say.text == "סליחה"
    assert say.get("language") == "he-IL"
    assert [child.tag for child in root] == ["Say", "Hangup"]


# --- signatures ------------------------------------------------------------------------------


def sign(url: str, params: dict[str, str]) -> str:
    return str(RequestValidator(TOKEN).compute_signature(url, params))


def test_webhook_signature_valid_tampered_missing() -> None:
    url = "https://cg.example.com/twilio/voice"
    form = {"CallSid": "CA1", "From": "+15550100", "To": "+15550101"}
    signature = sign(url, form)
    assert validate_webhook(TOKEN, url, form, signature)
    assert not validate_webhook(TOKEN, url, {**form, "From": "+15550199"}, signature)
    assert not validate_webhook(TOKEN, url + "?x=1", form, signature)
    assert not validate_webhook("other-token", url, form, signature)
    assert not validate_webhook(TOKEN, url, form, None)
    assert not validate_webhook(TOKEN, url, form, "")
    assert not validate_webhook("", url, form, signature)


def test_websocket_signature_over_url_only() -> None:
    url = "wss://cg.example.com/twilio/media"
    signature = sign(url, {})
    assert validate_websocket(TOKEN, url, signature)
    assert not validate_websocket(TOKEN, "wss://evil.example.com/twilio/media", signature)
    assert not validate_websocket(TOKEN, url, None)


def test_expected_url_uses_public_url_not_host() -> None:
    assert (
        expected_url("https://cg.example.com/", "/twilio/voice", "a=1")
        == "https://cg.example.com/twilio/voice?a=1"
    )
    ws = expected_url("https://cg.example.com/base", "twilio/media", websocket=True)
    assert ws == "wss://cg.example.com/base/twilio/media"
    assert ws == media_stream_url("https://cg.example.com/base")
    with pytest.raises(ValueError, match="public URL"):
        expected_url("cg.example.com", "/x")


def test_require_valid_raises_signature_error() -> None:
    require_valid(True, "webhook")
    with pytest.raises(SignatureError, match="media WebSocket"):
        require_valid(False, "media WebSocket")
