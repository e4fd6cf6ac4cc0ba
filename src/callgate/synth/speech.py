"""Synthetic speech for tests, benchmarks and demos.

Real recorded speech cannot be downloaded on the build machines, so speech comes from
``espeak-ng`` (several voices and variants, English and Hebrew). Where espeak-ng is missing,
:func:`speech_like` makes a harmonic, formant-filtered, syllable-modulated signal that has
the level and spectral shape of speech, so tests can still run.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import signal as sps
from scipy.io import wavfile

from callgate.audio.resample import resample

FloatAudio = npt.NDArray[np.float64]

VOICES: tuple[str, ...] = (
    "en-us",
    "en-gb",
    "en-us+f3",
    "en-us+m3",
    "en+f2",
    "en-us+klatt",
    "en-us+klatt4",
    "en-gb-scotland+m1",
    "en-us+f5",
    "en-029+m2",
    "en-gb-x-rp+m7",
)
"""English espeak-ng voice+variant pairs that sound clearly different from each other."""

HEBREW_VOICES: tuple[str, ...] = ("he", "he+f3", "he+m3")
"""Hebrew voices: many callgate callers speak Hebrew."""

ENGLISH_SENTENCES: tuple[str, ...] = (
    "Hello, I am calling about my appointment.",
    "Yes, that works for me.",
    "My name is Daniel Cohen.",
    "Can you hear me?",
    "I would like to book a table for Thursday evening.",
    "The number is zero five two, three four five, six seven eight nine.",
    "No, not that one, the other address.",
    "I am not sure, let me check.",
    "Could you repeat that please?",
    "It is about the invoice from last month.",
    "Tomorrow morning is better for me.",
    "Okay, thank you very much.",
    "I live on Herzl street, number twelve.",
    "Is anyone there?",
    "We have a problem with the heating in the kitchen.",
    "My email is dana at example dot com.",
    "Sure, go ahead.",
    "I called yesterday but nobody answered.",
    "Around four thirty would be great.",
    "Wait a second, my kids are shouting.",
)

HEBREW_SENTENCES: tuple[str, ...] = (
    "שלום, אני מתקשר בקשר לתור שלי.",
    "כן, זה מתאים לי.",
    "קוראים לי דנה לוי.",
    "אתה שומע אותי?",
    "אני רוצה לקבוע פגישה ליום חמישי.",
    "המספר הוא אפס חמש שתיים, שלוש ארבע חמש.",
    "לא, הכתובת השנייה.",
    "תודה רבה, להתראות.",
)


def espeak_available() -> bool:
    """True when the ``espeak-ng`` binary is on PATH."""
    return shutil.which("espeak-ng") is not None


@functools.lru_cache(maxsize=512)
def _speak_cached(
    text: str, voice: str, rate_wpm: int, pitch: int, sample_rate_hz: int
) -> FloatAudio:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    with tempfile.TemporaryDirectory(prefix="callgate-espeak-") as tmp:
        out = Path(tmp) / "speech.wav"
        # -w writes a proper header; --stdout leaves the length field unset.
        subprocess.run(
            [exe, "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "-w", str(out), text],
            check=True,
            capture_output=True,
            timeout=60,
        )
        rate, data = wavfile.read(out)
    audio = np.asarray(data, dtype=np.float64) / 32768.0
    if audio.ndim == 2:
        audio = audio.mean(axis=1)
    audio = resample(audio, int(rate), sample_rate_hz)
    audio.setflags(write=False)
    return audio


def speak(
    text: str,
    *,
    voice: str = "en-us",
    rate_wpm: int = 160,
    pitch: int = 50,
    sample_rate_hz: int = 8000,
) -> FloatAudio:
    """Speak ``text`` with espeak-ng; float64 audio at ``sample_rate_hz`` (cached, copied)."""
    return np.array(_speak_cached(text, voice, rate_wpm, pitch, sample_rate_hz))


# Formants (F1, F2, F3) in Hz of a few vowels, for the espeak-less fallback.
_VOWELS: tuple[tuple[float, float, float], ...] = (
    (730.0, 1090.0, 2440.0),
    (270.0, 2290.0, 3010.0),
    (530.0, 1840.0, 2480.0),
    (570.0, 840.0, 2410.0),
    (300.0, 870.0, 2240.0),
    (660.0, 1720.0, 2410.0),
)


def _resonate(x: FloatAudio, freq_hz: float, bandwidth_hz: float, rate: int) -> FloatAudio:
    """Second-order resonator (one formant), unity gain at its peak."""
    r = np.exp(-np.pi * bandwidth_hz / rate)
    theta = 2.0 * np.pi * freq_hz / rate
    a = [1.0, -2.0 * r * np.cos(theta), r * r]
    b = [1.0 - r]
    return np.asarray(sps.lfilter(b, a, x), dtype=np.float64)


def speech_like(
    duration_s: float, rng: np.random.Generator, sample_rate_hz: int = 8000
) -> FloatAudio:
    """Speech-shaped audio without espeak: voiced syllables at ~4-5 Hz with gaps.

    Each syllable is a glottal-like harmonic series on a drifting pitch, through three
    formant resonators of a random vowel, under a smooth envelope; some syllables start
    with a fricative noise burst, and words are separated by short pauses.
    """
    rate = sample_rate_hz
    total = round(duration_s * rate)
    out = np.zeros(total, dtype=np.float64)
    f0_base = float(rng.uniform(95.0, 230.0))
    pos = 0
    while pos < total:
        syl = int(rate * rng.uniform(0.12, 0.28))
        t = np.arange(syl) / rate
        f0 = f0_base * (1.0 + 0.08 * np.sin(2 * np.pi * rng.uniform(1, 3) * t + rng.uniform(0, 6)))
        phase = 2 * np.pi * np.cumsum(f0) / rate
        source = np.zeros(syl)
        for h in range(1, int((rate / 2 - 200) / (f0_base * 1.1))):
            source += np.sin(h * phase) / h
        f1, f2, f3 = _VOWELS[int(rng.integers(len(_VOWELS)))]
        voiced = (
            _resonate(source, f1, 90, rate)
            + 0.6 * _resonate(source, f2, 120, rate)
            + 0.3 * _resonate(source, min(f3, rate / 2 - 300), 160, rate)
        )
        env = np.sin(np.pi * np.arange(syl) / syl) ** 0.7
        seg = voiced * env
        if rng.random() < 0.35:
            fric_len = int(rate * rng.uniform(0.04, 0.09))
            noise = rng.standard_normal(fric_len)
            sos = sps.butter(2, min(2500.0, rate / 2 * 0.8), "highpass", fs=rate, output="sos")
            fric = np.asarray(sps.sosfilt(sos, noise)) * 0.15 * np.hanning(fric_len)
            seg = np.concatenate([fric, seg])
        end = min(total, pos + seg.size)
        out[pos:end] += seg[: end - pos]
        pos = end
        if rng.random() < 0.3:
            pos += int(rate * rng.uniform(0.08, 0.35))  # a word or phrase gap
    peak = float(np.max(np.abs(out))) if out.size else 0.0
    return out * (0.5 / peak) if peak > 0 else out


def random_utterance(
    rng: np.random.Generator,
    sample_rate_hz: int = 8000,
    *,
    hebrew_share: float = 0.2,
    use_espeak: bool | None = None,
) -> FloatAudio:
    """One utterance from a random voice, sentence, rate and pitch (espeak or fallback)."""
    if use_espeak is None:
        use_espeak = espeak_available()
    if not use_espeak:
        return speech_like(float(rng.uniform(1.0, 3.5)), rng, sample_rate_hz)
    if rng.random() < hebrew_share:
        voice = HEBREW_VOICES[int(rng.integers(len(HEBREW_VOICES)))]
        text = HEBREW_SENTENCES[int(rng.integers(len(HEBREW_SENTENCES)))]
    else:
        voice = VOICES[int(rng.integers(len(VOICES)))]
        text = ENGLISH_SENTENCES[int(rng.integers(len(ENGLISH_SENTENCES)))]
    rate_wpm = int(rng.choice([140, 155, 170, 185]))
    pitch = int(rng.choice([35, 45, 55, 65]))
    return speak(text, voice=voice, rate_wpm=rate_wpm, pitch=pitch, sample_rate_hz=sample_rate_hz)
