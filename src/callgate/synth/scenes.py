"""Noise beds and mixing for the benchmark corpus, tests and demos.

Every bed is synthesized from a seeded ``numpy.random.Generator`` (no recordings can be
fetched), shaped after what reaches a phone in the field: room hum, fans, street traffic,
wind through an open window, babble, a TV talker with room reverb, music and hold music.
Beds come back at an RMS of -20 dBFS; callers set the level with :func:`set_level_dbfs`
or :func:`mix_at_snr`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from callgate.synth.dsp import add_at, adsr, band, colored_noise, hum, reverb, smooth_random, tone
from callgate.synth.speech import espeak_available, random_utterance, speech_like

FloatAudio = npt.NDArray[np.float64]
NoiseBed = Callable[[float, int, np.random.Generator], FloatAudio]

_BED_DBFS = -20.0
FRAME_MS = 20


def db_to_amp(db: float) -> float:
    """dB to an amplitude factor."""
    return float(10.0 ** (db / 20.0))


def rms_dbfs(x: FloatAudio) -> float:
    """RMS level in dBFS (full scale = 1.0); -inf-safe."""
    return float(10.0 * np.log10(np.mean(np.square(x)) + 1e-20))


def set_level_dbfs(x: FloatAudio, dbfs: float) -> FloatAudio:
    """Scale so the RMS of the whole signal is ``dbfs``."""
    return x * db_to_amp(dbfs - rms_dbfs(x))


def frame_energies_db(x: FloatAudio, sample_rate_hz: int) -> FloatAudio:
    """Mean-square level of each whole 20 ms frame, in dBFS."""
    n = sample_rate_hz * FRAME_MS // 1000
    frames = x[: x.size // n * n].reshape(-1, n)
    return np.asarray(10.0 * np.log10(np.mean(frames**2, axis=1) + 1e-20), dtype=np.float64)


def active_level_dbfs(speech: FloatAudio, sample_rate_hz: int, window_db: float = 35.0) -> float:
    """Speech level over its active frames (within ``window_db`` of the loudest frame).

    Pauses would otherwise pull the level down and make the SNR depend on how much silence
    a clip holds.
    """
    e = frame_energies_db(speech, sample_rate_hz)
    if e.size == 0:
        return -200.0
    active = e[e > e.max() - window_db]
    return float(10.0 * np.log10(np.mean(10.0 ** (active / 10.0))))


def noise_gain_for_snr(
    speech: FloatAudio, noise: FloatAudio, snr_db: float, sample_rate_hz: int = 8000
) -> float:
    """Factor that puts ``noise`` ``snr_db`` below the active speech level."""
    target = active_level_dbfs(speech, sample_rate_hz) - snr_db
    return db_to_amp(target - rms_dbfs(noise))


def mix_at_snr(
    speech: FloatAudio, noise: FloatAudio, snr_db: float, sample_rate_hz: int = 8000
) -> FloatAudio:
    """Speech plus noise scaled so active-speech level minus noise RMS is ``snr_db``.

    ``noise`` is cut or tiled to the speech length.
    """
    if noise.size < speech.size:
        noise = np.tile(noise, int(np.ceil(speech.size / max(noise.size, 1))))
    noise = noise[: speech.size]
    return speech + noise * noise_gain_for_snr(speech, noise, snr_db, sample_rate_hz)


# ---- beds ------------------------------------------------------------------------------


def _normalize(x: FloatAudio) -> FloatAudio:
    return set_level_dbfs(x, _BED_DBFS)


def _talker_stream(
    duration_s: float, rate: int, rng: np.random.Generator, gap_s: tuple[float, float]
) -> FloatAudio:
    """One talker speaking sentence after sentence (espeak, else the fallback)."""
    n = int(duration_s * rate)
    out = np.zeros(n)
    pos = int(rng.uniform(0, 0.5) * rate)
    use_espeak = espeak_available()
    while pos < n:
        utt = random_utterance(rng, rate, use_espeak=use_espeak)
        utt = utt / (np.sqrt(np.mean(utt**2)) + 1e-12)
        add_at(out, pos, utt)
        pos += utt.size + int(rng.uniform(*gap_s) * rate)
    return out


def quiet_room(duration_s: float, sample_rate_hz: int, rng: np.random.Generator) -> FloatAudio:
    """A quiet room: very low pink noise with faint mains hum harmonics."""
    n = int(duration_s * sample_rate_hz)
    x = colored_noise(n, rng, 1.0) + 0.3 * hum(n, sample_rate_hz, rng)
    return _normalize(x)


def fan(duration_s: float, sample_rate_hz: int, rng: np.random.Generator) -> FloatAudio:
    """A fan: stationary broadband colored noise, blade modulation and motor hum."""
    n = int(duration_s * sample_rate_hz)
    rate = sample_rate_hz
    broad = band(colored_noise(n, rng, 0.7), 150.0, 2500.0, rate)
    broad /= np.sqrt(np.mean(broad**2)) + 1e-12
    t = np.arange(n) / rate
    blade = 1.0 + 0.15 * np.sin(2 * np.pi * rng.uniform(15, 30) * t)
    motor = tone(rng.uniform(90, 160), n, rate, 6, 1.0)
    return _normalize(broad * blade + 0.25 * motor + 0.1 * hum(n, rate, rng))


def _car(rate: int, rng: np.random.Generator) -> FloatAudio:
    """One car passing: a noise swell with an engine tone gliding down (Doppler)."""
    dur = rng.uniform(3.0, 8.0)
    n = int(dur * rate)
    t = np.arange(n) / rate
    center = dur / 2
    env = np.exp(-(((t - center) / (dur / 5)) ** 2))
    tyre = band(rng.standard_normal(n), 80.0, 1500.0, rate)
    tyre /= np.sqrt(np.mean(tyre**2)) + 1e-12
    f_engine = rng.uniform(60, 140)
    doppler = 1.0 + 0.06 * np.tanh(-(t - center) * 2.0)
    phase = 2 * np.pi * np.cumsum(f_engine * doppler) / rate
    engine = sum(np.sin(h * phase) / h for h in range(1, 8))
    return np.asarray(env * (tyre + 0.3 * engine), dtype=np.float64)


def _horn(rate: int, rng: np.random.Generator) -> FloatAudio:
    n = int(rng.uniform(0.3, 0.8) * rate)
    f = rng.uniform(380, 480)
    x = tone(f, n, rate, 8, 0.7) + tone(f * 1.26, n, rate, 8, 0.7)
    return x * adsr(n, rate, 0.02, 0.05, sustain=0.9, release=0.05)


def street(duration_s: float, sample_rate_hz: int, rng: np.random.Generator) -> FloatAudio:
    """A street: brown/pink rumble, cars passing with Doppler swells, an occasional horn."""
    rate = sample_rate_hz
    n = int(duration_s * rate)
    out = 0.6 * colored_noise(n, rng, 2.0) + 0.3 * colored_noise(n, rng, 1.0)
    pos = int(rng.uniform(-3, 1) * rate)
    while pos < n:
        car = 1.5 * rng.uniform(0.4, 1.5) * _car(rate, rng)
        if pos < 0:
            car = car[-pos:]
            pos = 0
        add_at(out, pos, car)
        pos += int(rng.uniform(1.5, 6.0) * rate)
    for _ in range(rng.poisson(duration_s / 15.0)):
        add_at(out, int(rng.uniform(0, duration_s) * rate), 0.8 * _horn(rate, rng))
    return _normalize(out)


def _bird(rate: int, rng: np.random.Generator) -> FloatAudio:
    n = int(rng.uniform(0.05, 0.15) * rate)
    top = min(3600.0, rate / 2 * 0.9)
    f = np.linspace(rng.uniform(2000, top), rng.uniform(2000, top), n)
    x = np.sin(2 * np.pi * np.cumsum(f) / rate)
    return np.asarray(x * np.hanning(n), dtype=np.float64)


def open_window(duration_s: float, sample_rate_hz: int, rng: np.random.Generator) -> FloatAudio:
    """An open window: wind gusts (slowly modulated low noise), distant traffic, birds."""
    rate = sample_rate_hz
    n = int(duration_s * rate)
    gust = 0.2 + smooth_random(n, rng, rate, 0.4) ** 2 * 1.5
    wind = band(colored_noise(n, rng, 1.0), 60.0, 900.0, rate) * gust
    wind /= np.sqrt(np.mean(wind**2)) + 1e-12
    traffic = 0.4 * band(colored_noise(n, rng, 2.0), 50.0, 600.0, rate)
    out = wind + traffic / (np.sqrt(np.mean(traffic**2)) + 1e-12) * 0.4
    t = 0.0
    while t < duration_s:
        t += rng.exponential(1.5)
        for k in range(int(rng.integers(1, 5))):
            add_at(out, int((t + 0.18 * k) * rate), 0.5 * _bird(rate, rng))
    return _normalize(out)


def babble(
    duration_s: float, sample_rate_hz: int, rng: np.random.Generator, talkers: int = 7
) -> FloatAudio:
    """Babble: ``talkers`` (>= 6) different voices speaking different sentences at once."""
    out = np.zeros(int(duration_s * sample_rate_hz))
    for _ in range(max(6, talkers)):
        out += _talker_stream(duration_s, sample_rate_hz, rng, (0.05, 0.6)) * rng.uniform(0.6, 1.0)
    return _normalize(out)


def music(
    duration_s: float, sample_rate_hz: int, rng: np.random.Generator, loudness: float = 0.5
) -> FloatAudio:
    """Synthesized pop-like music: chords with ADSR, a bass line, a lead melody, drums.

    ``loudness`` (0..1) is production density rather than level: more drums, a busier
    melody and more compression as it rises; the level is always -20 dBFS RMS.
    """
    rate = sample_rate_hz
    n = int(duration_s * rate)
    out = np.zeros(n)
    beat = 60.0 / rng.uniform(80, 140)
    beat_n = int(beat * rate)
    root = 110.0 * 2 ** (int(rng.integers(0, 12)) / 12)
    progression = [0, 5, 7, 3] if rng.random() < 0.5 else [0, 9, 5, 7]
    major = [0, 2, 4, 5, 7, 9, 11, 12]
    bar = 0
    while bar * 4 * beat_n < n:
        degree = progression[bar % len(progression)]
        start = bar * 4 * beat_n
        chord_root = root * 2 ** (degree / 12)
        for interval in (0, 4, 7) if degree in (0, 5, 7) else (0, 3, 7):
            f = chord_root * 2 ** (interval / 12) * 2
            note = tone(f, 4 * beat_n, rate, 6, 1.2) * adsr(
                4 * beat_n, rate, 0.03, 0.3, sustain=0.6, release=0.3
            )
            add_at(out, start, 0.25 * note)
        for b in range(4):
            bn = beat_n
            bass = tone(chord_root / 2, bn, rate, 8, 1.0) * adsr(
                bn, rate, 0.01, 0.1, sustain=0.7, release=0.05
            )
            add_at(out, start + b * beat_n, 0.4 * bass)
            for half in range(2 if loudness > 0.3 else 1):
                step = int(rng.integers(0, len(major)))
                f = chord_root * 4 * 2 ** (major[step] / 12)
                ln = beat_n // (2 if loudness > 0.3 else 1)
                t = np.arange(ln) / rate
                vib = 1 + 0.01 * np.sin(2 * np.pi * 5.5 * t)
                lead = np.sin(2 * np.pi * np.cumsum(f * vib) / rate)
                lead += 0.4 * np.sin(4 * np.pi * np.cumsum(f * vib) / rate)
                add_at(
                    out,
                    start + b * beat_n + half * ln,
                    0.2 * lead * adsr(ln, rate, 0.02, 0.05, sustain=0.8, release=0.05),
                )
            # drums: kick on 1 and 3, snare on 2 and 4, hi-hats on eighths
            dn = int(0.15 * rate)
            if b % 2 == 0:
                t = np.arange(dn) / rate
                kick = np.sin(2 * np.pi * np.cumsum(np.linspace(150, 50, dn)) / rate)
                add_at(out, start + b * beat_n, (0.3 + 0.5 * loudness) * kick * np.exp(-t * 25))
            else:
                snare = band(rng.standard_normal(dn), 300.0, 3000.0, rate)
                snare *= np.exp(-np.arange(dn) / rate * 30)
                add_at(out, start + b * beat_n, (0.1 + 0.4 * loudness) * snare)
            hn = int(0.04 * rate)
            hat = band(rng.standard_normal(hn), 2500.0, None, rate) * np.exp(
                -np.arange(hn) / rate * 80
            )
            for e in range(2):
                add_at(out, start + b * beat_n + e * beat_n // 2, 0.15 * loudness * hat)
        bar += 1
    if loudness > 0:
        drive = 1.0 + 3.0 * loudness  # compression: louder productions are denser
        out = np.tanh(drive * out / (np.max(np.abs(out)) + 1e-12))
    return _normalize(out)


def hold_music(duration_s: float, sample_rate_hz: int, rng: np.random.Generator) -> FloatAudio:
    """Hold music: a looping simple melody of plain tones, tinny and band-limited."""
    rate = sample_rate_hz
    n = int(duration_s * rate)
    out = np.zeros(n)
    root = 440.0 * 2 ** (int(rng.integers(-5, 5)) / 12)
    scale = [0, 2, 4, 5, 7, 9, 11, 12]
    melody = [scale[int(i)] for i in rng.integers(0, len(scale), 16)]
    note_n = int(rng.uniform(0.25, 0.45) * rate)
    pos = 0
    i = 0
    while pos < n:
        f = root * 2 ** (melody[i % len(melody)] / 12)
        note = tone(f, note_n, rate, 3, 1.5) * adsr(
            note_n, rate, 0.01, 0.05, sustain=0.7, release=0.05
        )
        add_at(out, pos, note)
        pos += note_n
        i += 1
    out = band(out, 500.0, 3000.0, rate, order=3)
    out = np.round(out / (np.max(np.abs(out)) + 1e-12) * 64) / 64  # a cheap, tinny player
    return _normalize(out)


def tv(duration_s: float, sample_rate_hz: int, rng: np.random.Generator) -> FloatAudio:
    """A TV in the room: one distant talker with reverb over background music."""
    rate = sample_rate_hz
    talker = reverb(_talker_stream(duration_s, rate, rng, (0.2, 1.2)), rate, rng, 0.6)
    talker = band(talker, 150.0, 5000.0, rate)
    talker = set_level_dbfs(talker, -20.0)
    bg = music(duration_s, rate, rng, loudness=0.3)
    return _normalize(talker + db_to_amp(-10.0) * bg)


def speech_or_fallback_stream(
    duration_s: float, sample_rate_hz: int, rng: np.random.Generator
) -> FloatAudio:
    """A continuous talker, for demos that need speech-like interference."""
    if espeak_available():
        return _normalize(_talker_stream(duration_s, sample_rate_hz, rng, (0.2, 1.0)))
    return _normalize(speech_like(duration_s, rng, sample_rate_hz))


NOISE_BEDS: dict[str, NoiseBed] = {
    "quiet_room": quiet_room,
    "fan": fan,
    "street": street,
    "open_window": open_window,
    "babble": babble,
    "tv": tv,
    "music_weak": lambda d, r, g: music(d, r, g, loudness=0.2),
    "music_loud": lambda d, r, g: music(d, r, g, loudness=0.9),
    "hold_music": hold_music,
}
"""Noise families by name, as the benchmark corpus uses them."""
