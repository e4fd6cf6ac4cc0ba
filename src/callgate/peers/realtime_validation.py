"""Wire checks and audio helpers for the local Realtime peer.

The peer stays faithful by validating every client event against the SDK's own Pydantic
models (``openai.types.realtime.RealtimeClientEvent`` members, picked by ``type``) and every
event it sends against the matching ``RealtimeServerEvent`` member. The SDK models allow
extra keys, so :func:`unknown_fields` walks the parsed model to report keys the API would
reject ("Unknown parameter"). Error texts follow the API's ``invalid_request_error`` shapes.

The SDK's ``RealtimeFunctionTool`` makes every key optional, so :func:`check_tools` adds
what the API requires of a function tool: ``type: "function"``, a name of
``[A-Za-z0-9_-]{1,64}`` (unique in the list), and ``parameters`` that is a JSON Schema
object of ``type: "object"``; and that a ``tool_choice`` naming a function names a
declared one. MCP tools are refused: the local peer has no MCP client.
"""

from __future__ import annotations

import itertools
import json
import re
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from openai.types.realtime import RealtimeClientEvent, RealtimeServerEvent
from pydantic import BaseModel, ValidationError

from callgate.audio.codec import (
    float_to_pcm16,
    pcm16_from_bytes,
    pcm16_to_bytes,
    pcm16_to_ulaw,
    ulaw_to_pcm16,
)

__all__ = [
    "CLIENT_EVENT_MODELS",
    "SERVER_EVENT_MODELS",
    "ClientEvent",
    "WireError",
    "bytes_per_ms",
    "check_server_event",
    "check_tools",
    "error_event",
    "format_of",
    "frame_rms",
    "parse_client_event",
    "tone",
    "unknown_fields",
]


def _models_by_type(union: object) -> dict[str, type[BaseModel]]:
    members = typing.get_args(typing.get_args(union)[0])
    table: dict[str, type[BaseModel]] = {}
    for model in members:
        (name,) = typing.get_args(model.model_fields["type"].annotation)
        table[name] = model
    return table


CLIENT_EVENT_MODELS = _models_by_type(RealtimeClientEvent)
"""Client event ``type`` -> SDK model, e.g. ``"session.update"`` -> ``SessionUpdateEvent``."""
SERVER_EVENT_MODELS = _models_by_type(RealtimeServerEvent)
"""Server event ``type`` -> SDK model, e.g. ``"response.done"`` -> ``ResponseDoneEvent``."""

_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    """A fresh id in the API's style (``event_…``, ``item_…``, ``resp_…``)."""
    return f"{prefix}_{next(_ids):06d}"


@dataclass(frozen=True)
class WireError:
    """A client event the API would reject; becomes an ``error`` server event."""

    message: str
    code: str
    param: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class ClientEvent:
    """A client event that parsed and validated: its raw payload and the SDK model."""

    type: str
    payload: dict[str, Any]
    model: BaseModel


def error_event(error: WireError) -> dict[str, Any]:
    """The GA ``error`` server event for ``error`` (``RealtimeErrorEvent``)."""
    return {
        "type": "error",
        "event_id": new_id("event"),
        "error": {
            "type": "invalid_request_error",
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "event_id": error.event_id,
        },
    }


def unknown_fields(value: object, path: str = "") -> list[str]:
    """Dotted paths of keys that no SDK model declares (the API: "Unknown parameter")."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        found += [f"{path}.{key}".lstrip(".") for key in value.model_extra or {}]
        for name in type(value).model_fields:
            found += unknown_fields(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += unknown_fields(item, f"{path}[{index}]")
    return found


def _loc(parts: tuple[int | str, ...]) -> str:
    # Union members show up in pydantic locations as class or tag names; the API has none.
    kept = [str(p) for p in parts if not (isinstance(p, str) and (p[:1].isupper() or "[" in p))]
    return ".".join(kept)


def parse_client_event(raw: str | bytes) -> ClientEvent | WireError:
    """Parse one WebSocket message into a validated :class:`ClientEvent`, or the error."""
    try:
        payload = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        return WireError(f"We could not parse the JSON body of your request: {exc}", "invalid_json")
    if not isinstance(payload, dict):
        return WireError("Expected a JSON object as the event.", "invalid_type")
    event_id = payload.get("event_id") if isinstance(payload.get("event_id"), str) else None
    kind = payload.get("type")
    if not isinstance(kind, str):
        return WireError(
            "Missing required parameter: 'type'.", "missing_required_parameter", "type"
        )
    model = CLIENT_EVENT_MODELS.get(kind)
    if model is None:
        supported = ", ".join(repr(name) for name in sorted(CLIENT_EVENT_MODELS))
        return WireError(
            f"Invalid value: {kind!r}. Supported values are: {supported}.",
            "invalid_value",
            "type",
            event_id,
        )
    try:
        parsed = model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _loc(first["loc"])
        if first["type"] == "missing":
            return WireError(
                f"Missing required parameter: {where!r}.",
                "missing_required_parameter",
                where,
                event_id,
            )
        return WireError(
            f"Invalid value for {where!r} in {kind}: {first['msg']}.",
            "invalid_value",
            where,
            event_id,
        )
    extra = unknown_fields(parsed)
    if extra:
        return WireError(
            f"Unknown parameter: {extra[0]!r}.", "unknown_parameter", extra[0], event_id
        )
    return ClientEvent(kind, payload, parsed)


def check_server_event(event: dict[str, Any]) -> None:
    """Raise ``AssertionError`` if the peer is about to send an event the SDK would not model."""
    model = SERVER_EVENT_MODELS.get(event.get("type", ""))
    if model is None:
        raise AssertionError(f"peer bug: unknown server event type {event.get('type')!r}")
    try:
        parsed = model.model_validate(event)
    except ValidationError as exc:
        raise AssertionError(f"peer bug: invalid {event['type']}: {exc}") from exc
    extra = unknown_fields(parsed)
    # ``session`` echoes server-side keys (id, object, expires_at) the request model lacks.
    extra = [key for key in extra if not key.startswith("session.")]
    if extra:
        raise AssertionError(f"peer bug: {event['type']} has undeclared keys {extra}")


_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _tool_problem(tool: object, where: str, seen: set[str]) -> WireError | None:
    if not isinstance(tool, dict):
        return WireError(f"Invalid type for {where!r}: expected an object.", "invalid_type", where)
    kind = tool.get("type")
    if kind is None:
        return WireError(
            f"Missing required parameter: '{where}.type'.",
            "missing_required_parameter",
            f"{where}.type",
        )
    if kind != "function":
        return WireError(
            f"Invalid value: {kind!r}. This peer supports only tools of type 'function'.",
            "invalid_value",
            f"{where}.type",
        )
    name = tool.get("name")
    if name is None:
        return WireError(
            f"Missing required parameter: '{where}.name'.",
            "missing_required_parameter",
            f"{where}.name",
        )
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        return WireError(
            f"Invalid '{where}.name': string does not match pattern. Expected a string "
            "that matches the pattern '^[a-zA-Z0-9_-]{1,64}$'.",
            "invalid_value",
            f"{where}.name",
        )
    if name in seen:
        return WireError(
            f"Invalid 'tools': duplicate function name {name!r}.", "invalid_value", f"{where}.name"
        )
    seen.add(name)
    if "parameters" not in tool:
        return WireError(
            f"Missing required parameter: '{where}.parameters'.",
            "missing_required_parameter",
            f"{where}.parameters",
        )
    schema = tool["parameters"]
    got = schema.get("type") if isinstance(schema, dict) else type(schema).__name__
    problem = ""
    if not isinstance(schema, dict) or got != "object":
        problem = f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{got}\"'"
    elif not isinstance(schema.get("properties", {}), dict):
        problem = "'properties' must be an object"
    elif not (
        isinstance(schema.get("required", []), list)
        and all(isinstance(r, str) for r in schema.get("required", []))
    ):
        problem = "'required' must be an array of strings"
    if problem:
        return WireError(
            f"Invalid schema for function {name!r}: {problem}.",
            "invalid_function_parameters",
            f"{where}.parameters",
        )
    return None


def check_tools(
    tools: object, tool_choice: object, current: Sequence[object] = (), prefix: str = "session"
) -> WireError | None:
    """The API's error for bad ``tools`` / ``tool_choice`` of a session or response update,
    or ``None``. ``tools`` is ``None`` when the update leaves them as they are; ``current``
    is the session's tools then (for ``tool_choice``)."""
    effective = current
    if tools is not None:
        if not isinstance(tools, list):
            where = f"{prefix}.tools"
            return WireError(
                f"Invalid type for {where!r}: expected an array.", "invalid_type", where
            )
        seen: set[str] = set()
        for index, tool in enumerate(tools):
            error = _tool_problem(tool, f"{prefix}.tools[{index}]", seen)
            if error is not None:
                return error
        effective = tools
    if isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        names = [t.get("name") for t in effective if isinstance(t, dict)]
        if tool_choice.get("name") not in names:
            return WireError(
                f"Invalid value for '{prefix}.tool_choice': no function named "
                f"{tool_choice.get('name')!r} in the tools.",
                "invalid_value",
                f"{prefix}.tool_choice.name",
            )
    elif isinstance(tool_choice, dict):
        return WireError(
            f"Invalid value: {tool_choice.get('type')!r}. This peer supports tool_choice "
            "'auto', 'none', 'required' or a function.",
            "invalid_value",
            f"{prefix}.tool_choice.type",
        )
    return None


def format_of(audio_format: object) -> str:
    """The ``type`` of a GA audio format object (``audio/pcmu``, ``audio/pcma``, ``audio/pcm``)."""
    if isinstance(audio_format, dict) and isinstance(audio_format.get("type"), str):
        return str(audio_format["type"])
    return "audio/pcm"


def bytes_per_ms(audio_type: str) -> int:
    """Bytes per millisecond: G.711 at 8 kHz is 8, PCM16 at 24 kHz is 48."""
    return 48 if audio_type == "audio/pcm" else 8


def frame_rms(audio: bytes, audio_type: str) -> float:
    """RMS of a frame on the int16 scale; digital silence (mu-law 0xFF) is 0."""
    if not audio:
        return 0.0
    if audio_type == "audio/pcm":
        samples = pcm16_from_bytes(audio[: len(audio) - len(audio) % 2])
    elif audio_type == "audio/pcmu":
        samples = ulaw_to_pcm16(audio)
    else:  # audio/pcma: no A-law decoder here; treat any non-idle byte (0xD5) as energy
        return float(np.mean(np.frombuffer(audio, dtype=np.uint8) != 0xD5) * 32767)
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def tone(seconds: float, audio_type: str = "audio/pcmu", freq_hz: float = 440.0) -> bytes:
    """A -12 dBFS sine in the session's output format: the default assistant voice."""
    rate = 24_000 if audio_type == "audio/pcm" else 8_000
    t = np.arange(int(seconds * rate)) / rate
    samples = float_to_pcm16(0.25 * np.sin(2 * np.pi * freq_hz * t))
    if audio_type == "audio/pcm":
        return pcm16_to_bytes(samples)
    return pcm16_to_ulaw(samples)
