"""Which gate, agent and engines a call gets: the path decides, the legacy VAD stays put."""

from __future__ import annotations

import pytest

from callgate.audio import LegacyEnergyVad, SpeechGate
from callgate.config import ConfigError, load_settings
from callgate.server.backends import call_form, call_gate, call_tools, describe, speech_engines


def test_the_legacy_vad_is_never_used_on_the_realtime_path() -> None:
    realtime = load_settings({"OPENAI_API_KEY": "sk-x", "FALLBACK_VAD": "legacy"}, env_file=None)
    assert realtime.realtime_path
    assert isinstance(call_gate(realtime), SpeechGate)
    fallback = load_settings({"OPENAI_API_KEY": "", "FALLBACK_VAD": "legacy"}, env_file=None)
    assert isinstance(call_gate(fallback), LegacyEnergyVad)


def test_form_tools_only_when_the_realtime_model_fills_the_form() -> None:
    realtime = load_settings({"OPENAI_API_KEY": "sk-x"}, env_file=None)
    assert call_tools(realtime, call_form(realtime)) is not None
    fallback = load_settings({"OPENAI_API_KEY": ""}, env_file=None)
    assert call_tools(fallback, call_form(fallback)) is None


def test_the_embedded_default_says_so_in_one_line() -> None:
    line = describe(load_settings({"OPENAI_API_KEY": ""}, env_file=None))
    assert line.startswith("no OPENAI_API_KEY: embedded default")
    assert "local speech-to-text" in line
    assert "\n" not in line


def test_hebrew_with_the_english_only_local_model_refuses_to_start() -> None:
    settings = load_settings({"OPENAI_API_KEY": "", "TRANSCRIPTION_LANGUAGE": "he"}, env_file=None)
    with pytest.raises(ConfigError, match="openai"):
        speech_engines(settings)


def test_a_broken_form_file_names_form_path() -> None:
    settings = load_settings(
        {"OPENAI_API_KEY": "", "FORM_PATH": "/nonexistent/form.toml"}, env_file=None
    )
    with pytest.raises(ConfigError, match="FORM_PATH"):
        call_form(settings)


def test_early_transcription_defaults_follow_the_stt_in_use() -> None:
    def early(env: dict[str, str]) -> int:
        return load_settings(env, env_file=None).early_stt_ms

    assert early({"OPENAI_API_KEY": "", "STT_BACKEND": "local"}) == 150
    # Each stale early transcription would be a paid request.
    assert early({"OPENAI_API_KEY": "sk-x", "STT_BACKEND": "openai"}) == 0
    assert early({"OPENAI_API_KEY": "sk-x", "STT_BACKEND": "openai", "STT_EARLY_MS": "300"}) == 300
    assert early({"OPENAI_API_KEY": "", "STT_EARLY_MS": "0"}) == 0
    with pytest.raises(ConfigError, match="STT_EARLY_MS"):
        load_settings({"STT_EARLY_MS": "-5"}, env_file=None)
