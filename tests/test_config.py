from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callgate.audio import LegacyEnergyVad, SpeechGate
from callgate.config import ConfigError, Settings, load_settings


def test_defaults_are_the_missions(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    s = load_settings(env_file=None)
    assert (s.audio_frame_size_ms, s.noise_calibration_ms, s.audio_preroll_ms) == (20, 600, 200)
    assert s.audio_hangover_frames == 4
    assert (s.snr_start_normal, s.snr_stop_normal, s.snr_start_music, s.snr_stop_music) == (
        8,
        5,
        12,
        8,
    )
    assert s.use_realtime_api is None  # auto: the Realtime path exactly when a key is set
    assert s.realtime_path is bool(s.openai_api_key.get_secret_value())


def test_the_embedded_default_runs_without_a_key() -> None:
    local = load_settings({"OPENAI_API_KEY": ""}, env_file=None)
    assert (local.realtime_path, local.agent_kind, local.stt_kind, local.tts_kind) == (
        False,
        "local",
        "local",
        "piper",
    )
    cloud = load_settings({"OPENAI_API_KEY": "sk-x"}, env_file=None)
    assert (cloud.realtime_path, cloud.agent_kind) == (True, "realtime")
    fallback = load_settings({"OPENAI_API_KEY": "sk-x", "USE_REALTIME_API": "false"}, env_file=None)
    assert (fallback.realtime_path, fallback.agent_kind, fallback.stt_kind) == (
        False,
        "agents_sdk",
        "openai",
    )


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"USE_REALTIME_API": "true"}, "USE_REALTIME_API=true needs OPENAI_API_KEY"),
        ({"AGENT_BACKEND": "realtime"}, "AGENT_BACKEND=realtime needs the Realtime path"),
        ({"OPENAI_API_KEY": "k", "AGENT_BACKEND": "local"}, "AGENT_BACKEND=local runs only"),
        ({"STT_BACKEND": "openai"}, "need OPENAI_API_KEY"),
    ],
)
def test_inconsistent_backends_fail_at_start_up(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings({"OPENAI_API_KEY": "", **overrides}, env_file=None)


def test_environment_and_dotenv_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SNR_START_NORMAL=7\nSNR_STOP_NORMAL=4\n")
    monkeypatch.setenv("AUDIO_HANGOVER_FRAMES", "6")
    s = load_settings(env_file=str(env_file))
    assert (s.snr_start_normal, s.snr_stop_normal, s.audio_hangover_frames) == (7, 4, 6)


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"SNR_START_NORMAL": "4"}, "SNR_START_NORMAL"),
        ({"SNR_START_MUSIC": "7", "SNR_STOP_MUSIC": "6"}, "SNR_START_MUSIC"),
        ({"AUDIO_PREROLL_MS": "210"}, "AUDIO_PREROLL_MS"),
        ({"AUDIO_WORD_END_MS": "130"}, "AUDIO_WORD_END_MS"),
        ({"NOISE_CALIBRATION_MS": "610"}, "NOISE_CALIBRATION_MS"),
        ({"AUDIO_FRAME_SIZE_MS": "25"}, "AUDIO_FRAME_SIZE_MS"),
        ({"SNR_STOP_NORMAL": "five"}, "SNR_STOP_NORMAL"),
        ({"AUDIO_HANGOVER_FRAMES": "-1"}, "AUDIO_HANGOVER_FRAMES"),
        ({"BANDPASS_LOW_HZ": "1000", "BANDPASS_HIGH_HZ": "1000"}, "BANDPASS_LOW_HZ"),
        ({"GATE_CONFIRMER": "magic"}, "GATE_CONFIRMER"),
        ({"NOT_A_SETTING": "1"}, "NOT_A_SETTING"),
    ],
)
def test_invalid_values_name_the_variable(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(overrides, env_file=None)


def test_invalid_environment_fails_at_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNR_STOP_NORMAL", "9")
    with pytest.raises(ConfigError, match=r"SNR_START_NORMAL \(8.0\) must be >= SNR_STOP_NORMAL"):
        load_settings(env_file=None)


def test_settings_reach_the_gate() -> None:
    s = load_settings(
        {"SNR_START_NORMAL": "7", "SNR_STOP_NORMAL": "4", "AUDIO_HANGOVER_FRAMES": "2"},
        env_file=None,
    )
    options = s.gate_options()
    assert (options.normal.start_db, options.normal.stop_db) == (7, 4)
    assert options.machine.hangover_frames == 2
    assert isinstance(s.build_gate("gate"), SpeechGate)
    legacy = s.build_gate("legacy")
    assert isinstance(legacy, LegacyEnergyVad)
    assert legacy.options.min_speech_rms == s.min_speech_rms


def test_word_end_reaches_the_state_machine_in_frames() -> None:
    options = load_settings({"AUDIO_WORD_END_MS": "120"}, env_file=None).gate_options()
    assert options.machine.word_end_frames == 6


def test_every_setting_has_a_row_in_the_readme() -> None:
    """The README's configuration table is the reference operators read: a setting added
    without its row there is a setting nobody knows about."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    rows = "\n".join(line for line in readme.splitlines() if line.startswith("| `"))
    missing = [name.upper() for name in Settings.model_fields if f"`{name.upper()}`" not in rows]
    assert missing == []


@pytest.mark.parametrize("frame_ms", [10, 20, 30, 40, 50, 60])
def test_every_allowed_frame_size_builds_a_gate_that_hears_speech(frame_ms: int) -> None:
    """AUDIO_FRAME_SIZE_MS other than 20 once failed in gate_options (the talker stage
    kept 20 ms frames): each allowed size must build a gate that opens on a voice."""
    durations = {
        "AUDIO_PREROLL_MS": 200,
        "AUDIO_ONSET_LOOKBACK_MS": 480,
        "AUDIO_CONTINUATION_MS": 120,
        "NOISE_CALIBRATION_MS": 600,
    }
    env = {name: str(frame_ms * max(1, round(ms / frame_ms))) for name, ms in durations.items()}
    env["AUDIO_ONSET_LOOKBACK_MS"] = str(
        max(int(env["AUDIO_ONSET_LOOKBACK_MS"]), int(env["AUDIO_PREROLL_MS"]))
    )
    settings = load_settings({"AUDIO_FRAME_SIZE_MS": str(frame_ms), **env}, env_file=None)
    gate = settings.build_gate()
    rng = np.random.default_rng(frame_ms)
    t = np.arange(3 * 8000) / 8000
    voice = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 8))
    syllables = np.clip(np.sin(2 * np.pi * 3 * t), 0, None) * (t > 1.2)
    pcm = (rng.normal(0, 30, t.size) + 2500 * voice * syllables).astype(np.int16)
    decisions = gate.process_pcm16(pcm)
    assert len(decisions) == pcm.size // (8 * frame_ms)
    assert any(d.sent for d in decisions)
    assert not any(d.sent for d in decisions if d.t_ms < 1000)
