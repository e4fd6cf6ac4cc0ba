"""The demo recording behind ``callgate sample``: a caller in a noisy place, on a phone line.

No real calls ship with the project, so the README's first command makes one: noise alone
first (the gate calibrates its noise floor on it), then three sentences with pauses, mixed at
a chosen SNR and passed through the telephone channel (8 kHz, 300-3400 Hz, mu-law). The same
seed always gives the same file, so the README's numbers can be reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.io import wavfile

from callgate.audio.codec import SAMPLE_RATE_HZ, Pcm16
from callgate.cli.analyze import write_atomic
from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import NOISE_BEDS, noise_gain_for_snr
from callgate.synth.speech import espeak_available, speak, speech_like

SYNTH_RATE_HZ = 16_000
"""Rate the scene is built at before the phone channel brings it to 8 kHz."""
SENTENCES: tuple[str, ...] = (
    "Hello, I am calling about my appointment.",
    "My name is Daniel Cohen.",
    "Tomorrow morning is better for me.",
)
"""What the demo caller says."""
LEAD_IN_S = 1.5
"""Noise before the first word: longer than the 600 ms noise calibration."""
PAUSES_S: tuple[float, ...] = (1.2, 1.6)
"""Silences between the sentences, long enough for the gate to close."""
TAIL_S = 1.5
"""Noise after the last word."""
SPEECH_PEAK = 0.5
"""Peak of the speech alone: a normal talker on a phone, well below full scale."""
AUDIBLE_BELOW_PEAK = 0.01
"""Samples under this share of the speech peak (-40 dB) count as silence for the spans."""
PEAK = 0.89
"""Largest sample of the mix before the channel, so it never clips."""


@dataclass(frozen=True, slots=True)
class SampleCall:
    """The demo call and where its speech is, for checks and the README."""

    pcm: Pcm16
    """8 kHz mono PCM16 as Twilio delivers it."""
    speech_spans_s: tuple[tuple[float, float], ...]
    """(start, end) of each sentence, in seconds, without the synthesizer's padding."""
    noise: str
    snr_db: float
    used_espeak: bool


def _utterances(rng: np.random.Generator) -> tuple[list[npt.NDArray[np.float64]], bool]:
    """The sentences via espeak-ng, or speech-like audio when espeak-ng is missing."""
    if espeak_available():
        spoken = [speak(text, voice="en-us", sample_rate_hz=SYNTH_RATE_HZ) for text in SENTENCES]
        return spoken, True
    return [speech_like(2.0, rng, SYNTH_RATE_HZ) for _ in SENTENCES], False


def _audible_extent(utterance: npt.NDArray[np.float64]) -> tuple[int, int]:
    """First and one-past-last sample within 40 dB of the peak: the synthesizer pads its
    speech with silence, which is no part of what the caller says."""
    loud = np.flatnonzero(np.abs(utterance) > np.max(np.abs(utterance)) * AUDIBLE_BELOW_PEAK)
    return (int(loud[0]), int(loud[-1]) + 1) if loud.size else (0, utterance.size)


def make_sample(noise: str = "street", snr_db: float = 10.0, seed: int = 7) -> SampleCall:
    """Build the demo call: ``noise`` bed, three sentences at ``snr_db`` over it."""
    if noise not in NOISE_BEDS:
        raise ValueError(f"unknown noise {noise!r}; choose one of {', '.join(NOISE_BEDS)}")
    rng = np.random.default_rng(seed)
    utterances, used_espeak = _utterances(rng)
    gaps = (LEAD_IN_S, *PAUSES_S)
    total_s = sum(gaps) + sum(u.size for u in utterances) / SYNTH_RATE_HZ + TAIL_S
    speech = np.zeros(round(total_s * SYNTH_RATE_HZ), dtype=np.float64)
    spans: list[tuple[float, float]] = []
    position = 0
    for gap, utterance in zip(gaps, utterances, strict=True):
        position += round(gap * SYNTH_RATE_HZ)
        speech[position : position + utterance.size] = utterance
        first, last = _audible_extent(utterance)
        spans.append(((position + first) / SYNTH_RATE_HZ, (position + last) / SYNTH_RATE_HZ))
        position += utterance.size
    bed = NOISE_BEDS[noise](total_s, SYNTH_RATE_HZ, rng)[: speech.size]
    bed = np.pad(bed, (0, speech.size - bed.size))
    mix = speech + bed * noise_gain_for_snr(speech, bed, snr_db, SYNTH_RATE_HZ)
    mix *= SPEECH_PEAK / max(float(np.max(np.abs(speech))), 1e-9)
    mix *= min(1.0, PEAK / max(float(np.max(np.abs(mix))), 1e-9))
    return SampleCall(
        pcm=telephone_channel(mix, SYNTH_RATE_HZ),
        speech_spans_s=tuple(spans),
        noise=noise,
        snr_db=snr_db,
        used_espeak=used_espeak,
    )


def write_sample(path: Path, call: SampleCall) -> None:
    """Write the call as an 8 kHz mono 16-bit WAV, atomically."""
    write_atomic(path, lambda temp: wavfile.write(temp, SAMPLE_RATE_HZ, call.pcm))
