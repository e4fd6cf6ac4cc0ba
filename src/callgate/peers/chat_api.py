"""A local OpenAI Chat Completions API (``POST /v1/chat/completions``) with a scripted model.

Tests and demos point ``AsyncOpenAI(base_url=peer.url)`` here; the ``openai`` SDK (and the
Agents SDK's ``OpenAIChatCompletionsModel`` on top of it) then talks HTTP to 127.0.0.1 as it
would to OpenAI. Nothing leaves the machine.

    async with ChatApiPeer(form_filling_policy()) as peer:
        client = AsyncOpenAI(api_key="sk-local", base_url=peer.url, max_retries=0)
        ...
        peer.requests[-1].body["tools"]  # what the SDK sent

The "model" is a :data:`ChatPolicy`: a plain function that gets the request's ``messages``
and ``tools`` (as sent) and returns text, tool calls, or both (:class:`PolicyReply`). Tests
script a conversation with one; :func:`form_filling_policy` is a generic one that fills
callgate's lead form through the ``save_field`` / ``end_call`` tools, using callgate's own
extractor on the caller's words.

The wire format follows the API reference: a non-streaming ``chat.completion`` object, or
with ``stream: true`` server-sent ``chat.completion.chunk`` events ending in
``data: [DONE]``. Requests are validated the way the API does (parameters, message roles,
tool messages answering a preceding ``tool_calls`` entry and every tool call answered,
tool schemas, strict-mode schema rules) and invalid ones get a 400 with an OpenAI-style
``{"error": {"message", "type", "param", "code"}}`` body. Test hooks:
:meth:`ChatApiPeer.fail_next` answers the next requests with a 500/502/503 server error,
:meth:`ChatApiPeer.stall_next` holds them unanswered (a hung model).

Run it alone for a demo: ``python -m callgate.peers.chat_api --port 8765`` serves the form
filling policy; point ``OPENAI_BASE_URL=http://127.0.0.1:8765/v1`` at it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from callgate.conversation.agents.local import speakable
from callgate.conversation.extract import Candidates, detect_language, extract
from callgate.conversation.form import Form, FormField, load_form
from callgate.peers.uvicorn_peer import UvicornPeer

__all__ = [
    "ChatApiPeer",
    "ChatPolicy",
    "PolicyReply",
    "ReceivedRequest",
    "ToolCall",
    "chat_api_app",
    "form_filling_policy",
    "main",
]

logger = logging.getLogger(__name__)

CHAT_PATH = "/v1/chat/completions"


# --- the scripted model's interface ---------------------------------------------------------


@dataclass(frozen=True)
class ToolCall:
    """One function call the scripted model makes. ``id`` None: the peer assigns one."""

    name: str
    arguments: Mapping[str, Any] | str = field(default_factory=dict)
    id: str | None = None


@dataclass(frozen=True)
class PolicyReply:
    """What the scripted model answers: text, tool calls, or both (content beside calls)."""

    content: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()


ChatPolicy = Callable[[list[dict[str, Any]], list[dict[str, Any]]], PolicyReply | str]
"""``policy(messages, tools)`` -> a reply; a plain ``str`` is a text answer.

``messages`` and ``tools`` are the request's arrays as sent (already validated); ``tools``
is empty when the request had none.
"""


@dataclass
class ReceivedRequest:
    """One request the peer answered: the parsed body, headers, status and answer."""

    body: Any
    headers: dict[str, str]
    status: int = 200
    response: Any = None
    """The JSON answer; for a stream, the completion the chunks add up to."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        msgs = self.body.get("messages") if isinstance(self.body, dict) else None
        return list(msgs) if isinstance(msgs, list) else []

    @property
    def tools(self) -> list[dict[str, Any]]:
        tools = self.body.get("tools") if isinstance(self.body, dict) else None
        return list(tools) if isinstance(tools, list) else []


# --- validation -----------------------------------------------------------------------------


class _RequestError(Exception):
    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message, self.param, self.code, self.status, self.kind = (
            message, param, code, status, kind
        )  # fmt: skip

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


_KNOWN_PARAMS = {
    "model", "messages", "tools", "tool_choice", "parallel_tool_calls", "stream",
    "stream_options", "temperature", "top_p", "n", "stop", "max_tokens",
    "max_completion_tokens", "presence_penalty", "frequency_penalty", "logit_bias",
    "logprobs", "top_logprobs", "user", "seed", "response_format", "store", "metadata",
    "reasoning_effort", "verbosity", "service_tier", "modalities", "audio", "prediction",
    "prompt_cache_key", "prompt_cache_retention", "prompt_cache_options", "safety_identifier",
    "web_search_options", "functions", "function_call",
}  # fmt: skip
_ROLES = ("system", "assistant", "user", "function", "tool", "developer")
_TOOL_NAME_RE = re.compile(r"[a-zA-Z0-9_-]{1,64}")
_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", int: "integer",
               float: "number", type(None): "null"}  # fmt: skip


def _type_name(value: Any) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _invalid_type(param: str, expected: str, value: Any) -> _RequestError:
    return _RequestError(
        f"Invalid type for '{param}': expected {expected}, but got {_type_name(value)} instead.",
        param,
        "invalid_type",
    )


def _missing(param: str) -> _RequestError:
    return _RequestError(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def _check_content(where: str, content: Any, part_types: Sequence[str]) -> None:
    if isinstance(content, str):
        return
    if not isinstance(content, list):
        raise _invalid_type(f"{where}.content", "one of a string or array of objects", content)
    for j, part in enumerate(content):
        param = f"{where}.content[{j}]"
        if not isinstance(part, dict):
            raise _invalid_type(param, "an object", part)
        if part.get("type") not in part_types:
            allowed = ", ".join(f"'{t}'" for t in part_types)
            raise _RequestError(
                f"Invalid value: '{part.get('type')}'. Supported values are: {allowed}.",
                f"{param}.type",
                "invalid_value",
            )
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            raise _invalid_type(f"{param}.text", "a string", part.get("text"))


def _check_tool_calls(where: str, calls: Any) -> list[str]:
    if not isinstance(calls, list):
        raise _invalid_type(f"{where}.tool_calls", "an array", calls)
    if not calls:
        raise _RequestError(
            f"Invalid '{where}.tool_calls': empty array. Expected an array with minimum length "
            "1, but got an empty array instead.",
            f"{where}.tool_calls",
            "empty_array",
        )
    ids: list[str] = []
    for j, call in enumerate(calls):
        param = f"{where}.tool_calls[{j}]"
        if not isinstance(call, dict):
            raise _invalid_type(param, "an object", call)
        for key in ("id", "type", "function"):
            if key not in call:
                raise _missing(f"{param}.{key}")
        if not isinstance(call["id"], str):
            raise _invalid_type(f"{param}.id", "a string", call["id"])
        if call["type"] != "function":
            raise _RequestError(
                f"Invalid value: '{call['type']}'. Supported values are: 'function'.",
                f"{param}.type",
                "invalid_value",
            )
        function = call["function"]
        if not isinstance(function, dict):
            raise _invalid_type(f"{param}.function", "an object", function)
        for key in ("name", "arguments"):
            if key not in function:
                raise _missing(f"{param}.function.{key}")
            if not isinstance(function[key], str):
                raise _invalid_type(f"{param}.function.{key}", "a string", function[key])
        ids.append(call["id"])
    return ids


def _unanswered(index: int, ids: list[str]) -> _RequestError:
    return _RequestError(
        "An assistant message with 'tool_calls' must be followed by tool messages responding "
        "to each 'tool_call_id'. The following tool_call_ids did not have response messages: "
        + ", ".join(ids),
        f"messages.[{index}].role",
    )


def _check_messages(messages: Any) -> None:
    if not isinstance(messages, list):
        raise _invalid_type("messages", "an array", messages)
    if not messages:
        raise _RequestError(
            "Invalid 'messages': empty array. Expected an array with minimum length 1, but "
            "got an empty array instead.",
            "messages",
            "empty_array",
        )
    open_calls: list[str] = []  # ids of the last assistant tool_calls not answered yet
    open_index = -1
    answering = False  # inside the run of tool messages after an assistant's tool_calls
    for i, msg in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(msg, dict):
            raise _invalid_type(where, "an object", msg)
        if "role" not in msg:
            raise _missing(f"{where}.role")
        role = msg["role"]
        if role not in _ROLES:
            allowed = ", ".join(f"'{r}'" for r in _ROLES[:-1]) + f", and '{_ROLES[-1]}'"
            raise _RequestError(
                f"Invalid value: '{role}'. Supported values are: {allowed}.",
                f"{where}.role",
                "invalid_value",
            )
        if role != "tool" and open_calls:
            raise _unanswered(open_index, open_calls)
        if role != "tool":
            answering = False
        if role in ("system", "developer", "user"):
            if "content" not in msg:
                raise _missing(f"{where}.content")
            parts = ("text", "image_url", "input_audio", "file") if role == "user" else ("text",)
            _check_content(where, msg["content"], parts)
        elif role == "assistant":
            content = msg.get("content")
            calls = msg.get("tool_calls")
            if content is None and not calls and not msg.get("function_call"):
                raise _RequestError(
                    "Invalid value for 'content': expected a string, got null.",
                    f"messages.[{i}].content",
                )
            if content is not None:
                _check_content(where, content, ("text", "refusal"))
            if calls is not None:
                open_calls, open_index, answering = _check_tool_calls(where, calls), i, True
        elif role == "tool":
            if "tool_call_id" not in msg:
                raise _missing(f"{where}.tool_call_id")
            if "content" not in msg:
                raise _missing(f"{where}.content")
            _check_content(where, msg["content"], ("text",))
            call_id = msg["tool_call_id"]
            if not answering:
                raise _RequestError(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"messages.[{i}].role",
                )
            if call_id not in open_calls:
                raise _RequestError(
                    f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in "
                    "'tool_calls' of previous message.",
                    f"messages.[{i}].tool_call_id",
                )
            open_calls.remove(call_id)
    if open_calls:
        raise _unanswered(open_index, open_calls)


def _strict_problem(schema: Any, path: str) -> str | None:
    """Why ``schema`` breaks the Structured Outputs rules of strict function calling."""
    if not isinstance(schema, dict):
        return None
    if schema.get("type") == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        missing = [k for k in props if k not in required]
        if missing:
            return (
                f"In context={path}, 'required' is required to be supplied and to be an array "
                f"including every key in properties. Missing '{missing[0]}'."
            )
        if schema.get("additionalProperties") is not False:
            return (
                f"In context={path}, 'additionalProperties' is required to be supplied and to "
                "be false."
            )
        for key, sub in props.items():
            if problem := _strict_problem(sub, f"{path[:-1]}'properties', '{key}')"):
                return problem
    if schema.get("type") == "array":
        return _strict_problem(schema.get("items"), f"{path[:-1]}'items')")
    return None


def _check_tools(tools: Any) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _invalid_type("tools", "an array", tools)
    for i, tool in enumerate(tools):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _invalid_type(where, "an object", tool)
        if tool.get("type") != "function":
            raise _RequestError(
                f"Invalid value: '{tool.get('type')}'. Supported values are: 'function' and "
                "'custom'.",
                f"{where}.type",
                "invalid_value",
            )
        function = tool.get("function")
        if function is None:
            raise _missing(f"{where}.function")
        if not isinstance(function, dict):
            raise _invalid_type(f"{where}.function", "an object", function)
        name = function.get("name")
        if name is None:
            raise _missing(f"{where}.function.name")
        if not isinstance(name, str) or not _TOOL_NAME_RE.fullmatch(name):
            raise _RequestError(
                f"Invalid '{where}.function.name': string does not match pattern. Expected a "
                "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                f"{where}.function.name",
                "invalid_value",
            )
        if "description" in function and not isinstance(function["description"], str):
            raise _invalid_type(
                f"{where}.function.description", "a string", function["description"]
            )
        params = function.get("parameters", {"type": "object", "properties": {}})
        if not isinstance(params, dict) or params.get("type") != "object":
            got = params.get("type") if isinstance(params, dict) else _type_name(params)
            raise _RequestError(
                f"Invalid schema for function '{name}': schema must be a JSON Schema of "
                f"'type: \"object\"', got 'type: \"{got}\"'.",
                f"{where}.function.parameters",
                "invalid_function_parameters",
            )
        if function.get("strict") is True and (problem := _strict_problem(params, "()")):
            raise _RequestError(
                f"Invalid schema for function '{name}': {problem}",
                f"{where}.function.parameters",
                "invalid_function_parameters",
            )
    return tools


def _validate(body: Any) -> None:
    if not isinstance(body, dict):
        raise _RequestError(
            "We could not parse the JSON body of your request. (HINT: This likely means you "
            "aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, "
            "but what was sent was not valid JSON.)"
        )
    for key in body:
        if key not in _KNOWN_PARAMS:
            raise _RequestError(f"Unrecognized request argument supplied: {key}")
    if "model" not in body:
        raise _RequestError("you must provide a model parameter")
    if not isinstance(body["model"], str):
        raise _invalid_type("model", "a string", body["model"])
    if "messages" not in body:
        raise _missing("messages")
    _check_messages(body["messages"])
    has_tools = "tools" in body
    if has_tools:
        _check_tools(body["tools"])
    for key in ("tool_choice", "parallel_tool_calls"):
        if key in body and not has_tools:
            raise _RequestError(
                f"Invalid value for '{key}': '{key}' is only allowed when 'tools' are specified.",
                key,
            )
    choice = body.get("tool_choice")
    if choice is not None and choice not in ("none", "auto", "required"):
        names = [t["function"]["name"] for t in body.get("tools", [])]
        if not (
            isinstance(choice, dict)
            and choice.get("type") == "function"
            and isinstance(choice.get("function"), dict)
            and choice["function"].get("name") in names
        ):
            raise _RequestError(
                "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a "
                "named function among the tools.",
                "tool_choice",
                "invalid_value",
            )
    if "parallel_tool_calls" in body and not isinstance(body["parallel_tool_calls"], bool):
        raise _invalid_type("parallel_tool_calls", "a boolean", body["parallel_tool_calls"])
    if "stream" in body and not isinstance(body["stream"], bool | None):
        raise _invalid_type("stream", "a boolean", body["stream"])
    if body.get("stream_options") is not None and not body.get("stream"):
        raise _RequestError(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
            "stream_options",
        )
    n = body.get("n", 1)
    if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128):
        raise _RequestError(
            f"Invalid 'n': expected an integer from 1 to 128, got {n!r}.", "n", "invalid_value"
        )
    temperature = body.get("temperature")
    if temperature is not None and (
        not isinstance(temperature, int | float) or not 0 <= temperature <= 2
    ):
        raise _RequestError(
            f"Invalid 'temperature': expected a number from 0 to 2, got {temperature!r}.",
            "temperature",
            "invalid_value",
        )


# --- the server -----------------------------------------------------------------------------


def _tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: about four characters a token."""
    return (len(text) + 3) // 4


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


_SERVER_ERRORS = {
    500: "The server had an error while processing your request. Sorry about that!",
    502: "Bad gateway.",
    503: "The engine is currently overloaded, please try again later.",
}


class ChatApiPeer(UvicornPeer):
    """The local Chat Completions server. Use as ``async with ChatApiPeer(policy) as peer``.

    ``api_key`` None accepts any bearer token (one must still be sent); a string must match.
    Read :attr:`requests` for what arrived; set :attr:`policy` to change the model mid-test.
    """

    def __init__(
        self,
        policy: ChatPolicy,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        api_key: str | None = None,
    ) -> None:
        self.policy = policy
        self.host = host
        self.port = port
        self.api_key = api_key
        self.requests: list[ReceivedRequest] = []
        """Every request to the completions route, valid or not, in arrival order."""
        self.app = chat_api_app(self)
        self._fail: list[int] = []
        self._stall: list[float] = []
        self._ids = itertools.count(1)

    @property
    def errors(self) -> list[ReceivedRequest]:
        """Requests answered with an error status."""
        return [r for r in self.requests if r.status >= 400]

    def fail_next(self, n: int = 1, status: int = 500) -> None:
        """Answer the next ``n`` requests with HTTP ``status`` (500, 502 or 503)."""
        if status not in _SERVER_ERRORS:
            raise ValueError(f"status must be one of {sorted(_SERVER_ERRORS)}")
        self._fail += [status] * n

    def stall_next(self, n: int = 1, seconds: float = 30.0) -> None:
        """Hold the next ``n`` requests unanswered for ``seconds`` (a hung model); a client
        that gives up earlier disconnects, and then the request is dropped."""
        self._stall += [seconds] * n

    # --- request handling ---------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        """Answer one ``POST /v1/chat/completions``."""
        headers = {k.lower(): v for k, v in request.headers.items()}
        raw = await request.body()
        try:
            body: Any = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        record = ReceivedRequest(body=body, headers=headers)
        self.requests.append(record)
        if self._stall and await _stalled(request, self._stall.pop(0)):
            record.status = 499  # client closed the request (nginx's code; nothing was sent)
            return Response(status_code=499)
        try:
            self._authorize(headers)
            if self._fail:
                status = self._fail.pop(0)
                raise _RequestError(_SERVER_ERRORS[status], status=status, kind="server_error")
            _validate(body)
            completion = self._complete(body)
        except _RequestError as exc:
            record.status, record.response = exc.status, exc.body()
            return JSONResponse(exc.body(), status_code=exc.status)
        record.response = completion
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _sse(completion, include_usage),
                media_type="text/event-stream",
                headers={"cache-control": "no-cache"},
            )
        return JSONResponse(completion)

    def _authorize(self, headers: Mapping[str, str]) -> None:
        auth = headers.get("authorization", "")
        token = auth[len("Bearer ") :].strip() if auth.startswith("Bearer ") else ""
        if not token:
            raise _RequestError(
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                status=401,
            )
        if self.api_key is not None and token != self.api_key:
            raise _RequestError("Incorrect API key provided.", code="invalid_api_key", status=401)

    def _complete(self, body: dict[str, Any]) -> dict[str, Any]:
        messages: list[dict[str, Any]] = body["messages"]
        tools: list[dict[str, Any]] = body.get("tools") or []
        try:
            reply = self.policy(messages, tools)
        except Exception as exc:
            logger.exception("chat peer policy failed")
            raise _RequestError(
                f"The scripted model failed: {exc!r}", status=500, kind="server_error"
            ) from exc
        if isinstance(reply, str):
            reply = PolicyReply(content=reply)
        calls = [
            {
                "id": call.id or f"call_{next(self._ids):06d}",
                "type": "function",
                "function": {
                    "name": call.name,
                    "arguments": call.arguments
                    if isinstance(call.arguments, str)
                    else json.dumps(dict(call.arguments), ensure_ascii=False),
                },
            }
            for call in reply.tool_calls
        ]
        message: dict[str, Any] = {
            "role": "assistant",
            "content": reply.content,
            "refusal": None,
            "annotations": [],
        }
        if calls:
            message["tool_calls"] = calls
        n = body.get("n") or 1
        choices = [
            {
                "index": i,
                "message": message,
                "logprobs": None,
                "finish_reason": "tool_calls" if calls else "stop",
            }
            for i in range(n)
        ]
        prompt = _tokens(json.dumps(messages, ensure_ascii=False)) + _tokens(
            json.dumps(tools, ensure_ascii=False) if tools else ""
        )
        out = _tokens((reply.content or "") + json.dumps(calls, ensure_ascii=False) * bool(calls))
        return {
            "id": f"chatcmpl-{next(self._ids):06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": choices,
            "usage": _usage(prompt, out * n),
            "service_tier": "default",
            "system_fingerprint": None,
        }


async def _stalled(request: Request, seconds: float) -> bool:
    """Wait ``seconds`` or until the client disconnects; True if it did."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        if await request.is_disconnected():
            return True
        await asyncio.sleep(0.01)
    return False


def chat_api_app(peer: ChatApiPeer) -> FastAPI:
    """The FastAPI app of ``peer``: ``POST /v1/chat/completions`` and OpenAI-style 404s."""
    app = FastAPI(title="callgate chat api peer", docs_url=None, redoc_url=None, openapi_url=None)

    @app.post(CHAT_PATH)
    async def completions(request: Request) -> Response:
        return await peer.handle(request)

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def not_found(path: str, request: Request) -> Response:
        err = _RequestError(f"Invalid URL ({request.method} /{path})", status=404)
        return JSONResponse(err.body(), status_code=404)

    return app


async def _sse(completion: dict[str, Any], include_usage: bool) -> AsyncIterator[bytes]:
    """The completion as ``chat.completion.chunk`` server-sent events."""
    base = {k: completion[k] for k in ("id", "created", "model", "system_fingerprint")}
    base["object"] = "chat.completion.chunk"
    extra = {"usage": None} if include_usage else {}

    def event(choices: list[dict[str, Any]], **more: Any) -> bytes:
        chunk = {**base, "choices": choices, **extra, **more}
        return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n".encode()

    for choice in completion["choices"]:
        index, message = choice["index"], choice["message"]

        def delta(d: dict[str, Any], finish: str | None = None, i: int = index) -> dict[str, Any]:
            return {"index": i, "delta": d, "logprobs": None, "finish_reason": finish}

        yield event([delta({"role": "assistant", "content": "", "refusal": None})])
        for piece in re.findall(r"\s*\S+", message["content"] or ""):
            yield event([delta({"content": piece})])
        for k, call in enumerate(message.get("tool_calls") or []):
            head = {"index": k, "id": call["id"], "type": "function",
                    "function": {"name": call["function"]["name"], "arguments": ""}}  # fmt: skip
            yield event([delta({"tool_calls": [head]})])
            args = call["function"]["arguments"]
            half = len(args) // 2
            for part in (args[:half], args[half:]):
                if part:
                    yield event(
                        [delta({"tool_calls": [{"index": k, "function": {"arguments": part}}]})]
                    )
        yield event([delta({}, choice["finish_reason"])])
    if include_usage:
        yield event([], usage=completion["usage"])
    yield b"data: [DONE]\n\n"


# --- a generic form-filling model -----------------------------------------------------------

_POLICY_PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "thanks": "Thank you.",
        "readback": "I have your {label} as {value}. Is that right?",
        "sorry_wrong": "Sorry about that.",
        "refused": "Sorry, that doesn't seem to be a valid {label}.",
        "not_caught": "Sorry, I didn't catch that.",
        "bye": "Thank you for calling. Goodbye!",
        "after_end": "Goodbye!",
    },
    "he": {
        "thanks": "תודה.",
        "readback": "רשמתי את {label}: {value}. האם זה נכון?",
        "sorry_wrong": "סליחה על הטעות.",
        "refused": "סליחה, זה לא נראה כמו {label} תקין.",
        "not_caught": "סליחה, לא הבנתי.",
        "bye": "תודה שהתקשרת, להתראות!",
        "after_end": "להתראות!",
    },
}
_MAX_BARE_NAME_WORDS = 4


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass
class _FormView:
    """What the conversation so far says about the lead (from the tool results)."""

    missing: list[str]
    saved: dict[str, str]  # field -> last normalized value
    unconfirmed: set[str]
    ended: bool = False


def _read_conversation(form: Form, messages: list[dict[str, Any]]) -> _FormView:
    view = _FormView([f.name for f in form.fields if f.required], {}, set())
    for msg in messages:
        if msg.get("role") != "tool":
            continue
        out = _json_object(_text_of(msg.get("content")))
        if isinstance(out.get("missing"), list):
            view.missing = [m for m in out["missing"] if isinstance(m, str)]
        if out.get("ok") and isinstance(out.get("field"), str) and "value" in out:
            view.saved[out["field"]] = str(out["value"])
            if out.get("needs_confirmation"):
                view.unconfirmed.add(out["field"])
            else:
                view.unconfirmed.discard(out["field"])
        if out.get("ok") and "ending" in out:
            view.ended = True
    return view


def form_filling_policy(
    form: Form | None = None,
    *,
    clock: Callable[[], datetime] = datetime.now,
    region: str = "US",
) -> ChatPolicy:
    """A scripted model that fills ``form`` (default: the built-in one) with the form tools.

    On a caller message it runs :func:`callgate.conversation.extract.extract` and calls
    ``save_field`` for the field being asked (and any phone, e-mail or name volunteered), or
    ``save_field(..., confirmed=true)`` when the caller says yes to a read-back. After the
    tool results it reads back an unconfirmed value, re-asks a refused one, or asks the
    first field of the result's ``missing`` list; with nothing missing it says the form's
    closing line and calls ``end_call(lead_complete)``. A goodbye ends the call
    (``lead_complete`` or ``caller_goodbye``). Optional fields are only taken when
    volunteered. It answers in the language of the caller's last message. A request
    without the two tools gets the next question as text (a model calls only the tools it
    was given).
    """
    the_form = form or load_form()

    def policy(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> PolicyReply:
        turn = _FormPolicyTurn(the_form, messages, clock(), region)
        offered = {t.get("function", {}).get("name") for t in tools}
        if not {"save_field", "end_call"} <= offered:
            return turn.ask_without_tools()  # a model only calls the tools it was given
        return turn.reply()

    return policy


class _FormPolicyTurn:
    def __init__(
        self, form: Form, messages: list[dict[str, Any]], now: datetime, region: str
    ) -> None:
        self.form, self.messages, self.now, self.region = form, messages, now, region
        self.view = _read_conversation(form, messages)
        users = [_text_of(m.get("content")) for m in messages if m.get("role") == "user"]
        lang = detect_language(users[-1]) if users else None
        self.lang = lang if lang in form.languages else form.languages[0]
        self.words = _POLICY_PHRASES.get(self.lang, _POLICY_PHRASES["en"])

    # what is being asked
    @property
    def pending_confirm(self) -> str | None:
        return next((m for m in self.view.missing if m in self.view.unconfirmed), None)

    @property
    def asking(self) -> str | None:
        return self.pending_confirm or (self.view.missing[0] if self.view.missing else None)

    def reply(self) -> PolicyReply:
        last = self.messages[-1]
        if last.get("role") == "tool":
            return self._after_tools()
        if last.get("role") == "user":
            return self._on_caller(_text_of(last.get("content")))
        return self._ask_next([])

    def ask_without_tools(self) -> PolicyReply:
        return PolicyReply(self._text(self.form.field(self.asking).prompt) if self.asking else "")

    def _text(self, texts: dict[str, str]) -> str:
        return texts.get(self.lang) or texts[self.form.languages[0]]

    def _ask_next(self, parts: list[str], *, thanks: bool = False) -> PolicyReply:
        """Read back, ask the next missing field (after "thank you" if ``thanks``), or close."""
        if self.view.ended:
            return PolicyReply(self.words["after_end"])
        name = self.asking
        if name is None:
            parts.append(self._text(self.form.closing))
            return PolicyReply(
                " ".join(parts), (ToolCall("end_call", {"reason": "lead_complete"}),)
            )
        field_ = self.form.field(name)
        if name == self.pending_confirm:
            value = speakable(field_, self.view.saved[name], self.lang, self.region)
            label = self._text(field_.label)
            parts.append(self.words["readback"].format(label=label, value=value))
        else:
            parts += [self.words["thanks"]] * thanks + [self._text(field_.prompt)]
        return PolicyReply(" ".join(parts))

    def _on_caller(self, text: str) -> PolicyReply:
        c = extract(text, now=self.now)
        if c.goodbye:
            if not self.view.missing:
                closing = self._text(self.form.closing)
                return PolicyReply(closing, (ToolCall("end_call", {"reason": "lead_complete"}),))
            return PolicyReply(
                self.words["bye"], (ToolCall("end_call", {"reason": "caller_goodbye"}),)
            )
        calls: list[ToolCall] = []
        asking = self.asking
        parts: list[str] = []
        if asking is not None and asking == self.pending_confirm:
            field_ = self.form.field(asking)
            new = [v for v in self._candidates(field_, c, whole_text=False)
                   if v != self.view.saved[asking]]  # fmt: skip
            if new and not c.yes:
                calls.append(ToolCall("save_field", {"name": asking, "value": new[0]}))
            elif c.yes:
                value = self.view.saved[asking]
                calls.append(
                    ToolCall("save_field", {"name": asking, "value": value, "confirmed": True})
                )
            elif c.no:
                return PolicyReply(f"{self.words['sorry_wrong']} {self._text(field_.prompt)}")
        elif asking is not None:
            found = self._candidates(self.form.field(asking), c, whole_text=True)
            if found:
                calls.append(ToolCall("save_field", {"name": asking, "value": found[0]}))
        for f in self.form.fields:  # volunteered, with strong cues only
            if (
                f.name == asking
                or f.name in self.view.saved
                or f.type not in ("phone", "email", "name")
            ):
                continue
            strong = self._candidates(f, c, whole_text=False, weak=False)
            if strong:
                calls.append(ToolCall("save_field", {"name": f.name, "value": strong[0]}))
        if calls:
            return PolicyReply(None, tuple(calls))
        if asking is not None:
            parts.append(self.words["not_caught"])
        return self._ask_next(parts)

    def _candidates(
        self, f: FormField, c: Candidates, *, whole_text: bool, weak: bool = True
    ) -> list[str]:
        found: list[str]
        if f.type == "phone":
            found = list(c.phones)
        elif f.type == "email":
            found = list(c.emails)
        elif f.type == "name":
            found = list(c.names) + (list(c.weak_names) if weak else [])
            whole_text = whole_text and len(c.text.split()) <= _MAX_BARE_NAME_WORDS
        else:
            found = []
        if whole_text and c.text:
            found.append(c.text)
        return found

    def _after_tools(self) -> PolicyReply:
        # The tool messages answering the last assistant message's calls.
        start = len(self.messages)
        while start > 0 and self.messages[start - 1].get("role") == "tool":
            start -= 1
        assistant = self.messages[start - 1] if start > 0 else {}
        names: dict[str, dict[str, Any]] = {}
        for call in assistant.get("tool_calls") or []:
            args = _json_object(call.get("function", {}).get("arguments", ""))
            names[call.get("id", "")] = {"tool": call.get("function", {}).get("name"), **args}
        parts: list[str] = []
        refused = False
        for msg in self.messages[start:]:
            out = _json_object(_text_of(msg.get("content")))
            call = names.get(msg.get("tool_call_id", ""), {})
            if not out.get("ok") and call.get("tool") == "save_field":
                refused = True
                try:
                    label = self._text(self.form.field(str(call.get("name"))).label)
                except KeyError:
                    label = str(call.get("name"))
                parts.append(self.words["refused"].format(label=label))
        return self._ask_next(parts, thanks=not refused)


# --- a stand-alone server for demos ---------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> None:
    """Serve the form-filling policy on HOST:PORT until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument(
        "--form", type=Path, default=None, help="lead form TOML (default: built-in)"
    )
    parser.add_argument("--region", default="US")
    args = parser.parse_args(argv)
    peer = ChatApiPeer(form_filling_policy(load_form(args.form), region=args.region))
    print(f"chat completions peer on http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(peer.app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
