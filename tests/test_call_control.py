"""Twilio REST hang-up against a fake twilio HttpClient: no network."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import pytest
from twilio.http import HttpClient  # type: ignore[import-untyped]
from twilio.http.response import Response  # type: ignore[import-untyped]

from callgate.telephony.call_control import TwilioCallControl, call_resource_url
from callgate.telephony.errors import CallControlError

ACCOUNT = "AC" + "a" * 32
CALL = "CA" + "b" * 32


@dataclass
class Request:
    method: str
    uri: str
    data: dict[str, object] | None
    auth: tuple[str, str] | None


class FakeHttpClient(HttpClient):  # type: ignore[misc]
    """Records each request and answers with a canned response."""

    def __init__(self, status: int = 200, body: str | None = None) -> None:
        super().__init__(logger=logging.getLogger("fake-twilio"), is_async=False)
        self.requests: list[Request] = []
        self.status = status
        self.body = (
            body or f'{{"sid": "{CALL}", "account_sid": "{ACCOUNT}", "status": "completed"}}'
        )

    def request(  # noqa: PLR0917 - twilio's HttpClient.request signature
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        self.requests.append(Request(method, uri, data, auth))
        return Response(self.status, self.body)


def test_call_resource_url() -> None:
    assert call_resource_url(ACCOUNT, CALL) == (
        f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls/{CALL}.json"
    )
    assert call_resource_url(ACCOUNT, CALL, base_url="http://fake:1/").startswith(
        "http://fake:1/2010-04-01/"
    )


@pytest.mark.parametrize("bad", ["CA123", "CA" + "b" * 31 + "/", "AC" + "b" * 32, "../x"])
def test_call_resource_url_rejects_non_sids(bad: str) -> None:
    with pytest.raises(ValueError, match="call_sid"):
        call_resource_url(ACCOUNT, bad)


def test_hang_up_posts_status_completed() -> None:
    http = FakeHttpClient()
    TwilioCallControl(ACCOUNT, "token", http_client=http).hang_up(CALL)
    assert len(http.requests) == 1
    request = http.requests[0]
    assert request.method == "POST"
    assert request.uri == call_resource_url(ACCOUNT, CALL)
    assert request.data == {"Status": "completed"}
    assert request.auth == (ACCOUNT, "token")


def test_hang_up_failure_is_call_control_error() -> None:
    http = FakeHttpClient(status=404, body='{"code": 20404, "message": "not found", "status": 404}')
    control = TwilioCallControl(ACCOUNT, "token", http_client=http)
    with pytest.raises(CallControlError) as info:
        control.hang_up(CALL)
    assert info.value.status == 404


def test_construction_checks() -> None:
    with pytest.raises(ValueError, match="auth_token"):
        TwilioCallControl(ACCOUNT, "")
    with pytest.raises(ValueError, match="account_sid"):
        TwilioCallControl("ACnope", "token")


def test_say_and_hang_up_replaces_the_call_twiml() -> None:
    http = FakeHttpClient()
    twiml = "<Response><Say>Sorry.</Say><Hangup/></Response>"
    TwilioCallControl(ACCOUNT, "token", http_client=http).say_and_hang_up(CALL, twiml)
    assert len(http.requests) == 1
    assert http.requests[0].uri == call_resource_url(ACCOUNT, CALL)
    assert http.requests[0].data == {"Twiml": twiml}
