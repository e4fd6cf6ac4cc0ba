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
from scipy import signal as sps

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


# ---- building blocks ---------------------------------------------------------------------


def colored_noise(n: int, rng: np.random.Generator, exponent: float) -> FloatAudio:
    """Noise with power spectrum ~ 1/f**exponent (0 white, 1 pink, 2 brown), unit RMS."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.arange(spectrum.size, dtype=np.float64)
    f[0] = 1.0
    x = np.fft.irfft(spectrum / f ** (exponent / 2.0), n)
    return np.asarray(x / (np.sqrt(np.mean(x**2)) + 1e-20), dtype=np.float64)


def _band(
    x: FloatAudio, low: float | None, high: float | None, rate: int, order: int = 2
) -> FloatAudio:
    nyq = rate / 2.0
    if high is not None and high >= nyq * 0.98:
        high = None
    if low is not None and high is not None:
        sos = sps.butter(order, [low, high], "bandpass", fs=rate, output="sos")
    elif low is not None:
        sos = sps.butter(order, low, "highpass", fs=rate, output="sos")
    elif high is not None:
        sos = sps.butter(order, high, "lowpass", fs=rate, output="sos")
    else:
        return x
    return np.asarray(sps.sosfilt(sos, x), dtype=np.float64)


def _smooth_random(n: int, rng: np.random.Generator, rate: int, rate_hz: float) -> FloatAudio:
    """A slow random curve in [0, 1]: interpolated random points ``rate_hz`` apart."""
    points = max(2, int(n / rate * rate_hz) + 2)
    knots = rng.random(points)
    x = np.linspace(0, points - 1, n)
    curve = np.interp(x, np.arange(points), knots)
    return np.asarray(curve, dtype=np.float64)


def hum(n: int, rate: int, rng: np.random.Generator, mains_hz: float | None = None) -> FloatAudio:
    """Mains hum: a fundamental and odd harmonics with slight random phases; unit-ish RMS."""
    base = mains_hz if mains_hz is not None else float(rng.choice([50.0, 60.0]))
    t = np.arange(n) / rate
    out = np.zeros(n)
    for h, amp in ((1, 1.0), (2, 0.3), (3, 0.5), (5, 0.25), (7, 0.12)):
        if base * h < rate / 2:
            out += amp * np.sin(2 * np.pi * base * h * t + rng.uniform(0, 2 * np.pi))
    return out


def _normalize(x: FloatAudio) -> FloatAudio:
    return set_level_dbfs(x, _BED_DBFS)


def _tone(freq: float, dur_n: int, rate: int, harmonics: int, decay: float) -> FloatAudio:
    """A harmonic tone with 1/h^decay harmonics, all below Nyquist."""
    t = np.arange(dur_n) / rate
    out = np.zeros(dur_n)
    for h in range(1, harmonics + 1):
        if freq * h >= rate / 2 * 0.95:
            break
        out += np.sin(2 * np.pi * freq * h * t) / h**decay
    return out


def _adsr(
    n: int, rate: int, attack: float, decay: float, *, sustain: float, release: float
) -> FloatAudio:
    a = max(1, int(attack * rate))
    d = max(1, int(decay * rate))
    r = max(1, int(release * rate))
    s = max(0, n - a - d - r)
    env = np.concatenate(
        [
            np.linspace(0, 1, a),
            np.linspace(1, sustain, d),
            np.full(s, sustain),
            np.linspace(sustain, 0, r),
        ]
    )
    return env[:n] if env.size >= n else np.pad(env, (0, n - env.size))


def _add(out: FloatAudio, start: int, seg: FloatAudio) -> None:
    if start >= out.size:
        return
    end = min(out.size, start + seg.size)
    out[start:end] += seg[: end - start]


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
        _add(out, pos, utt)
        pos += utt.size + int(rng.uniform(*gap_s) * rate)
    return out


def reverb(x: FloatAudio, rate: int, rng: np.random.Generator, rt60_s: float = 0.5) -> FloatAudio:
    """Room reverb: convolution with exponentially decaying noise (a synthetic RIR)."""
    n = int(rt60_s * rate)
    t = np.arange(n) / rate
    ir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60_s)
    ir[0] = 3.0  # the direct path
    y = sps.fftconvolve(x, ir)[: x.size]
    return np.asarray(y, dtype=np.float64)


# ---- beds --------------------------------------------------------------------------------


def quiet_room(duration_s: float, sample_rate_hz: int, rng: np.random.Generator) -> FloatAudio:
    """A quiet room: very low pink noise with faint mains hum harmonics."""
    n = int(duration_s * sample_rate_hz)
    x = colored_noise(n, rng, 1.0) + 0.3 * hum(n, sample_rate_hz, rng)
    return _normalize(x)


def fan(duration_s: float, sample_rate_hz: int, rng: np.random.Generator) -> FloatAudio:
    """A fan: stationary broadband colored noise, blade modulation and motor hum."""
    n = int(duration_s * sample_rate_hz)
    rate = sample_rate_hz
    broad = _band(colored_noise(n, rng, 0.7), 150.0, 2500.0, rate)
    broad /= np.sqrt(np.mean(broad**2)) + 1e-12
    t = np.arange(n) / rate
    blade = 1.0 + 0.15 * np.sin(2 * np.pi * rng.uniform(15, 30) * t)
    motor = _tone(rng.uniform(90, 160), n, rate, 6, 1.0)
    return _normalize(broad * blade + 0.25 * motor + 0.1 * hum(n, rate, rng))


def _car(rate: int, rng: np.random.Generator) -> FloatAudio:
    """One car passing: a noise swell with an engine tone gliding down (Doppler)."""
    dur = rng.uniform(3.0, 8.0)
    n = int(dur * rate)
    t = np.arange(n) / rate
    center = dur / 2
    env = np.exp(-(((t - center) / (dur / 5)) ** 2))
    tyre = _band(rng.standard_normal(n), 80.0, 1500.0, rate)
    tyre /= np.sqrt(np.mean(tyre**2)) + 1e-12
    f_engine = rng.uniform(60, 140)
    doppler = 1.0 + 0.06 * np.tanh(-(t - center) * 2.0)
    phase = 2 * np.pi * np.cumsum(f_engine * doppler) / rate
    engine = sum(np.sin(h * phase) / h for h in range(1, 8))
    return np.asarray(env * (tyre + 0.3 * engine), dtype=np.float64)


def _horn(rate: int, rng: np.random.Generator) -> FloatAudio:
    n = int(rng.uniform(0.3, 0.8) * rate)
    f = rng.uniform(380, 480)
    x = _tone(f, n, rate, 8, 0.7) + _tone(f * 1.26, n, rate, 8, 0.7)
    return x * _adsr(n, rate, 0.02, 0.05, sustain=0.9, release=0.05)


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
        _add(out, pos, car)
        pos += int(rng.uniform(1.5, 6.0) * rate)
    for _ in range(rng.poisson(duration_s / 15.0)):
        _add(out, int(rng.uniform(0, duration_s) * rate), 0.8 * _horn(rate, rng))
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
    gust = 0.2 + _smooth_random(n, rng, rate, 0.4) ** 2 * 1.5
    wind = _band(colored_noise(n, rng, 1.0), 60.0, 900.0, rate) * gust
    wind /= np.sqrt(np.mean(wind**2)) + 1e-12
    traffic = 0.4 * _band(colored_noise(n, rng, 2.0), 50.0, 600.0, rate)
    out = wind + traffic / (np.sqrt(np.mean(traffic**2)) + 1e-12) * 0.4
    t = 0.0
    while t < duration_s:
        t += rng.exponential(1.5)
        for k in range(int(rng.integers(1, 5))):
            _add(out, int((t + 0.18 * k) * rate), 0.5 * _bird(rate, rng))
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
            note = _tone(f, 4 * beat_n, rate, 6, 1.2) * _adsr(
                4 * beat_n, rate, 0.03, 0.3, sustain=0.6, release=0.3
            )
            _add(out, start, 0.25 * note)
        for b in range(4):
            bn = beat_n
            bass = _tone(chord_root / 2, bn, rate, 8, 1.0) * _adsr(
                bn, rate, 0.01, 0.1, sustain=0.7, release=0.05
            )
            _add(out, start + b * beat_n, 0.4 * bass)
            for half in range(2 if loudness > 0.3 else 1):
                step = int(rng.integers(0, len(major)))
                f = chord_root * 4 * 2 ** (major[step] / 12)
                ln = beat_n // (2 if loudness > 0.3 else 1)
                t = np.arange(ln) / rate
                vib = 1 + 0.01 * np.sin(2 * np.pi * 5.5 * t)
                lead = np.sin(2 * np.pi * np.cumsum(f * vib) / rate)
                lead += 0.4 * np.sin(4 * np.pi * np.cumsum(f * vib) / rate)
                _add(
                    out,
                    start + b * beat_n + half * ln,
                    0.2 * lead * _adsr(ln, rate, 0.02, 0.05, sustain=0.8, release=0.05),
                )
            # drums: kick on 1 and 3, snare on 2 and 4, hi-hats on eighths
            dn = int(0.15 * rate)
            if b % 2 == 0:
                t = np.arange(dn) / rate
                kick = np.sin(2 * np.pi * np.cumsum(np.linspace(150, 50, dn)) / rate)
                _add(out, start + b * beat_n, (0.3 + 0.5 * loudness) * kick * np.exp(-t * 25))
            else:
                snare = _band(rng.standard_normal(dn), 300.0, 3000.0, rate)
                snare *= np.exp(-np.arange(dn) / rate * 30)
                _add(out, start + b * beat_n, (0.1 + 0.4 * loudness) * snare)
            hn = int(0.04 * rate)
            hat = _band(rng.standard_normal(hn), 2500.0, None, rate) * np.exp(
                -np.arange(hn) / rate * 80
            )
            for e in range(2):
                _add(out, start + b * beat_n + e * beat_n // 2, 0.15 * loudness * hat)
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
        tone = _tone(f, note_n, rate, 3, 1.5) * _adsr(
            note_n, rate, 0.01, 0.05, sustain=0.7, release=0.05
        )
        _add(out, pos, tone)
        pos += note_n
        i += 1
    out = _band(out, 500.0, 3000.0, rate, order=3)
    out = np.round(out / (np.max(np.abs(out)) + 1e-12) * 64) / 64  # a cheap, tinny player
    return _normalize(out)


def tv(duration_s: float, sample_rate_hz: int, rng: np.random.Generator) -> FloatAudio:
    """A TV in the room: one distant talker with reverb over background music."""
    rate = sample_rate_hz
    talker = reverb(_talker_stream(duration_s, rate, rng, (0.2, 1.2)), rate, rng, 0.6)
    talker = _band(talker, 150.0, 5000.0, rate)
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
