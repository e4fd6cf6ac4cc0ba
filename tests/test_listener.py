"""GATE_MUSIC_LISTENER and GATE_NOISE_LISTENER: Silero hears a caller at 0 dB under loud
music or noise, where the SNR cannot."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import pytest

import callgate.config as config_module
from callgate.audio import GateOptions, SpeechGate
from callgate.audio.decision import sent_mask
from callgate.audio.silero import silero_available
from callgate.config import ConfigError, load_settings
from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import fan, mix_at_snr, music, set_level_dbfs
from callgate.synth.speech import espeak_available, speak

needs_silero = pytest.mark.skipif(not silero_available(), reason="Silero VAD not installed")
needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")

RATE = 8000
MUSIC_ALONE_FRAMES = 150
"""3 s of music before the caller speaks."""


def _caller_under(
    bed: Callable[[float, int, np.random.Generator], npt.NDArray[np.float64]],
    speech_dbfs: float,
    seed: int,
) -> tuple[npt.NDArray[np.int16], npt.NDArray[np.bool_]]:
    """A sentence at the background's own level (0 dB SNR) after 3 s of the background
    alone, through the phone line; frame labels from the clean sentence."""
    words = set_level_dbfs(
        speak("Hello, I am calling about the apartment on Main Street, can you hear me?"),
        speech_dbfs,
    )
    clean = np.concatenate([np.zeros(3 * RATE), words, np.zeros(RATE)])
    noise = bed(clean.size / RATE, RATE, np.random.default_rng(seed))
    pcm = telephone_channel(mix_at_snr(clean, noise, 0.0, RATE), RATE)
    frames = clean.size // 160
    labels = np.array([np.mean(clean[i * 160 : (i + 1) * 160] ** 2) > 1e-5 for i in range(frames)])
    return pcm, labels


def _caller_under_loud_music() -> tuple[npt.NDArray[np.int16], npt.NDArray[np.bool_]]:
    return _caller_under(music, -22.0, 1)


@needs_silero
@needs_espeak
def test_the_listener_hears_the_caller_the_snr_misses() -> None:
    pcm, speech = _caller_under_loud_music()
    sent = {
        listener: sent_mask(SpeechGate(GateOptions(music_listener=listener)).process_pcm16(pcm))[
            : speech.size
        ]
        for listener in (False, True)
    }
    assert sent[False][speech].mean() < 0.1
    assert sent[True][speech].mean() > 0.5
    # The music alone, before the caller: no more false sends than the DSP gate makes.
    alone = slice(0, MUSIC_ALONE_FRAMES)
    assert sent[True][alone].sum() <= sent[False][alone].sum() + 5


@needs_silero
def test_the_listener_is_asked_only_when_told_to_listen() -> None:
    from callgate.audio.listener import SpeechListener  # noqa: PLC0415

    listener = SpeechListener()
    frame = np.zeros(160, dtype=np.int16)
    assert listener.hear(frame, listen=True) is None  # 160 of the 256 samples Silero needs
    assert listener.hear(frame, listen=True) is not None
    assert listener.hear(frame, listen=False) is None
    assert listener.probability is None


def _caller_under_a_fan() -> tuple[npt.NDArray[np.int16], npt.NDArray[np.bool_]]:
    return _caller_under(fan, -26.0, 3)


@needs_silero
@needs_espeak
def test_the_noise_listener_hears_a_caller_under_a_fan() -> None:
    pcm, speech = _caller_under_a_fan()

    def heard(options: GateOptions) -> npt.NDArray[np.bool_]:
        return sent_mask(SpeechGate(options).process_pcm16(pcm))[: speech.size]

    music_only = heard(GateOptions(music_listener=True))  # no music here: it never listens
    loud = heard(GateOptions(music_listener=True, noise_listener=True))
    assert loud[speech].mean() > music_only[speech].mean() + 0.15
    alone = slice(0, MUSIC_ALONE_FRAMES)
    assert loud[alone].sum() <= music_only[alone].sum() + 5  # the fan alone still sends ~nothing


def test_the_setting_needs_silero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(config_module, "silero_available", lambda: False)
    with pytest.raises(ConfigError, match="GATE_MUSIC_LISTENER=true needs Silero VAD"):
        load_settings({"GATE_MUSIC_LISTENER": "true"}, env_file=None)
    with pytest.raises(ConfigError, match="GATE_NOISE_LISTENER=true needs Silero VAD"):
        load_settings({"GATE_NOISE_LISTENER": "true"}, env_file=None)
    with pytest.raises(ConfigError, match="GATE_CONFIRMER=silero needs Silero VAD"):
        load_settings({"GATE_CONFIRMER": "silero"}, env_file=None)
    assert not load_settings({}, env_file=None).gate_options().music_listener


@needs_silero
def test_the_setting_reaches_the_gate() -> None:
    assert (
        load_settings({"GATE_MUSIC_LISTENER": "true"}, env_file=None).gate_options().music_listener
    )
    noisy = load_settings({"GATE_NOISE_LISTENER": "true"}, env_file=None).gate_options()
    assert noisy.noise_listener
    assert noisy.music_listener  # implied: loud music is a loud background too


@needs_silero
@needs_espeak
def test_the_listener_does_not_open_under_the_echo_guard() -> None:
    """While the agent is audible the gate raises its start threshold so that only a caller
    louder than the agent's echo opens it; Silero would hear the echo as speech too, so it
    is not run at all then."""
    pcm, speech = _caller_under_a_fan()
    gate = SpeechGate(GateOptions(music_listener=True, noise_listener=True))
    gate.start_boost_db = 10.0  # what the call session sets while the agent is audible
    sent = sent_mask(gate.process_pcm16(pcm))[: speech.size]
    assert sent.sum() == 0
    # Nor does Silero run then: the agent's talk costs no listener CPU.
    assert gate.frames_listened == 0
    gate.start_boost_db = 0.0
    gate.process_pcm16(pcm[:1600])
    assert gate.frames_listened == 10


@needs_silero
@needs_espeak
def test_the_gate_counts_the_frames_its_listener_heard() -> None:
    """The CPU the listener costs shows as ``frames_listened`` (and the metric
    callgate_frames_listened): every frame of a fan scene before the caller is known."""
    pcm, _ = _caller_under_a_fan()
    plain = SpeechGate(GateOptions())
    loud = SpeechGate(GateOptions(music_listener=True, noise_listener=True))
    plain.process_pcm16(pcm)
    loud.process_pcm16(pcm)
    assert plain.frames_listened == 0
    assert loud.frames_listened >= MUSIC_ALONE_FRAMES  # the fan alone, before the caller
    assert loud.frames_listened <= loud.frames_seen
    loud.reset()
    assert loud.frames_listened == 0


def test_the_listener_settings_reach_the_gate_and_are_checked() -> None:
    options = load_settings(
        {"GATE_LISTENER_THRESHOLD": "0.6", "GATE_LISTENER_BELOW_DB": "14"}, env_file=None
    ).gate_options()
    assert options.listener_threshold == 0.6
    assert options.listener_below_db == 14.0
    with pytest.raises(ConfigError, match="GATE_LISTENER_THRESHOLD"):
        load_settings({"GATE_LISTENER_THRESHOLD": "1.5"}, env_file=None)
    with pytest.raises(ConfigError, match="GATE_LISTENER_BELOW_DB"):
        load_settings({"GATE_LISTENER_BELOW_DB": "0"}, env_file=None)
