"""A word's soft end survives the gate with AUDIO_WORD_END_MS (the demo's "leaking").

The quiet "-king" falls more than the talker rule's margin below the caller's vowels, so
without the grace the gate takes it for another talker and ends speech there, and the
recognizer hears "leak".
"""

from __future__ import annotations

import asyncio

import numpy as np
import numpy.typing as npt

from callgate.audio import SpeechGate
from callgate.audio.codec import float_to_pcm16, pcm16_to_float
from callgate.cli.conversation import piper_caller
from callgate.config import load_settings
from callgate.speech.stt import LocalWhisperSTT
from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import NOISE_BEDS, mix_at_snr

RATE = 8000


def street_call() -> npt.NDArray[np.int16]:
    speech = pcm16_to_float(piper_caller("My roof is leaking."))
    x = np.concatenate([np.zeros(RATE), speech, np.zeros(RATE)])
    bed = NOISE_BEDS["street"](x.size / RATE + 0.1, RATE, np.random.default_rng(7))[: x.size]
    line = telephone_channel(mix_at_snr(x, bed, 15.0, RATE), RATE)
    return line if line.dtype == np.int16 else float_to_pcm16(line)


def sent_audio(gate: SpeechGate, pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    frames = [d.audio for d in gate.process_pcm16(pcm) if d.audio.size]
    return np.concatenate(frames)


def test_the_soft_end_of_leaking_reaches_the_recognizer() -> None:
    pcm = street_call()
    off = load_settings({}, env_file=None).build_gate("gate")
    on = load_settings({"AUDIO_WORD_END_MS": "120"}, env_file=None).build_gate("gate")
    assert isinstance(off, SpeechGate)
    assert isinstance(on, SpeechGate)
    cut, whole = sent_audio(off, pcm), sent_audio(on, pcm)
    assert whole.size > cut.size
    stt = LocalWhisperSTT()
    heard_cut = asyncio.run(stt.transcribe(cut)).lower()  # "my roof is leak." today
    heard_whole = asyncio.run(stt.transcribe(whole)).lower()
    assert "leaking" in heard_whole, (heard_cut, heard_whole)
