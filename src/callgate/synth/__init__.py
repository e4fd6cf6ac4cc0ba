"""Synthesized speech, noise scenes and a telephone channel for tests, benchmarks and demos."""

from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import NOISE_BEDS, mix_at_snr
from callgate.synth.speech import espeak_available, speak, speech_like

__all__ = [
    "NOISE_BEDS",
    "espeak_available",
    "mix_at_snr",
    "speak",
    "speech_like",
    "telephone_channel",
]
