"""The GA ``session.update`` payload, validated against the SDK's own Pydantic models."""

from __future__ import annotations

from typing import Any

import pytest
from openai.types.realtime import SessionUpdateEvent

from callgate.config import Settings, load_settings
from callgate.realtime.session import (
    FunctionTool,
    build_session,
    server_silence_ms,
    session_update_event,
)


def _settings(**overrides: Any) -> Settings:
    return load_settings(overrides, env_file=None)


def _extras(value: object, path: str = "") -> list[str]:
    """Keys the SDK models do not declare: a typo would show up here."""
    found: list[str] = []
    extra = getattr(value, "model_extra", None)
    if extra:
        found += [f"{path}.{key}" for key in extra]
    fields = getattr(type(value), "model_fields", {})
    for name in fields:
        found += _extras(getattr(value, name), f"{path}.{name}")
    if isinstance(value, list):
        for i, item in enumerate(value):
            found += _extras(item, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("mode", ["client", "server_vad", "semantic_vad"])
def test_payload_validates_against_sdk_models(mode: str) -> None:
    tool = FunctionTool(
        "record_field",
        "Store one form field the caller told you.",
        {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]},
    )
    settings = _settings(turn_detection=mode, transcription_language="he")
    event = SessionUpdateEvent.model_validate(session_update_event(settings, [tool]))
    assert _extras(event) == []
    session = event.session
    assert session.type == "realtime"
    assert session.model == settings.openai_realtime_model
    assert session.output_modalities == ["audio"]
    assert session.audio is not None
    assert session.audio.input is not None
    assert session.audio.output is not None
    assert session.audio.input.format is not None
    assert session.audio.input.format.type == "audio/pcmu"
    assert session.audio.output.format is not None
    assert session.audio.output.format.type == "audio/pcmu"
    assert session.audio.output.voice == settings.openai_voice
    assert session.audio.input.transcription is not None
    assert session.audio.input.transcription.language == "he"
    assert session.tools is not None
    assert [t.name for t in session.tools] == ["record_field"]  # type: ignore[union-attr]
    detection = session.audio.input.turn_detection
    if mode == "client":
        assert detection is None
    else:
        assert detection is not None
        assert detection.type == mode
        assert detection.interrupt_response is False


def test_client_mode_sends_explicit_null_turn_detection() -> None:
    session = build_session(_settings(turn_detection="client"))
    assert "turn_detection" in session["audio"]["input"]
    assert session["audio"]["input"]["turn_detection"] is None


def test_empty_language_is_omitted_so_the_model_detects_it() -> None:
    session = build_session(_settings(transcription_language=""))
    assert "language" not in session["audio"]["input"]["transcription"]


def test_server_silence_is_shorter_than_the_padding() -> None:
    settings = _settings(
        turn_detection="server_vad", end_of_turn_silence_ms=600, turn_silence_padding_ms=500
    )
    assert server_silence_ms(settings) == 400
    session = build_session(settings)
    detection = session["audio"]["input"]["turn_detection"]
    assert detection is not None
    assert detection.get("silence_duration_ms") == 400
    short = _settings(
        turn_detection="server_vad", end_of_turn_silence_ms=300, turn_silence_padding_ms=1000
    )
    assert server_silence_ms(short) == 300


def test_server_mode_without_padding_is_rejected() -> None:
    with pytest.raises(ValueError, match="TURN_SILENCE_PADDING_MS"):
        build_session(_settings(turn_detection="semantic_vad", turn_silence_padding_ms=0))


def test_tool_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="name"):
        FunctionTool("bad name", "x")
    with pytest.raises(ValueError, match="object"):
        FunctionTool("ok", "x", {"type": "string"})
    assert "tool_choice" not in build_session(_settings())
