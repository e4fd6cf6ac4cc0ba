"""A labelled telephone-band corpus for the gate benchmark, built deterministically.

Each clip is a noise bed with (usually) a caller speaking utterances of 1-4 s separated by
pauses, after at least 1 s of noise-only lead-in (the gate calibrates on the first 600 ms).
Speech is labelled per 20 ms frame from the clean speech, before noise and the phone
channel, so labels do not depend on any detector. Clips are cached under
``benchmarks/.cache/`` keyed by the corpus version and the clip's spec.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from scipy import signal as sps

from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import (
    NOISE_BEDS,
    active_level_dbfs,
    db_to_amp,
    frame_energies_db,
    rms_dbfs,
)
from callgate.synth.speech import ENGLISH_SENTENCES, espeak_available, random_utterance

if TYPE_CHECKING:
    from callgate.speech.tts import PiperTTS

CORPUS_VERSION = "3"
SYNTH_RATE_HZ = 16000
FRAME_SAMPLES = 160  # 20 ms at 8 kHz
CACHE_DIR = Path(__file__).resolve().parent / ".cache"

TALKER_LEVELS_DBFS: dict[str, float] = {"quiet": -38.0, "normal": -26.0, "loud": -16.0}
FAMILY_SNRS: dict[str, tuple[float, ...]] = {
    "quiet_room": (20.0, 30.0),
    "tv": (5.0, 10.0, 15.0, 20.0),
    "music_weak": (10.0, 15.0, 20.0),
    "music_loud": (0.0, 5.0, 10.0),
    "street": (5.0, 10.0, 15.0, 20.0),
    "fan": (0.0, 5.0, 10.0, 15.0),
    "open_window": (0.0, 5.0, 10.0, 15.0),
    "babble": (5.0, 10.0, 15.0, 20.0),
    "hold_music": (10.0, 15.0, 20.0),
}
MUSIC_FAMILIES = ("music_weak", "music_loud", "hold_music")


@dataclass(frozen=True)
class ClipSpec:
    """Everything that determines one clip; its hash names the cache file."""

    name: str
    kind: str  # "speech", "noise_only", "music_only", "speech_jump"
    family: str
    talker: str  # a TALKER_LEVELS_DBFS key, or "none"
    snr_db: float  # speech clips: SNR; noise/music-only: the bed level in dBFS
    duration_s: float
    seed: int
    quick: bool
    jump_family: str = ""  # speech_jump/noise_only: a second bed that starts mid-clip
    jump_at_s: float = 0.0
    jump_db: float = 0.0  # its level relative to the first bed (or absolute for noise-only)
    voice: str = "espeak"  # "espeak" (several voices) or "piper" (a neural voice)

    def key(self) -> str:
        """Stable hash of the spec plus corpus version and the speech source."""
        fields = asdict(self)
        if fields["voice"] == "espeak":
            del fields["voice"]  # the clips made before Piper joined keep their cache keys
        blob = json.dumps(
            {**fields, "v": CORPUS_VERSION, "espeak": espeak_available()}, sort_keys=True
        )
        return hashlib.sha1(blob.encode()).hexdigest()[:16]


@dataclass
class Clip:
    """One corpus clip: the 8 kHz PCM16 a call would carry, and per-frame labels."""

    spec: ClipSpec
    pcm16: npt.NDArray[np.int16]
    labels: npt.NDArray[np.bool_]

    @property
    def frames(self) -> int:
        """Number of whole 20 ms frames."""
        return int(self.labels.size)


def corpus_specs(*, quick: bool = False) -> list[ClipSpec]:
    """The corpus plan: every family x talker level x replicate, plus no-speech scenes."""
    specs: list[ClipSpec] = []
    plan = np.random.default_rng(20240601)
    fams = list(FAMILY_SNRS)
    levels = list(TALKER_LEVELS_DBFS)
    for fi, fam in enumerate(fams):
        snrs = FAMILY_SNRS[fam]
        for li, lvl in enumerate(levels):
            for rep in range(5):
                snr = snrs[(li + rep * 2 + fi) % len(snrs)]
                specs.append(
                    ClipSpec(
                        name=f"{fam}-{lvl}-{rep}",
                        kind="speech",
                        family=fam,
                        talker=lvl,
                        snr_db=snr,
                        duration_s=float(plan.uniform(8.0, 15.0)),
                        seed=int(plan.integers(2**31)),
                        quick=rep == 0 and (fi + li) % 3 != 2,
                    )
                )
    noise_only = [
        ("quiet_room", -45.0), ("fan", -33.0), ("street", -32.0), ("open_window", -35.0),
        ("babble", -36.0), ("tv", -34.0), ("fan", -40.0), ("street", -38.0),
        ("open_window", -30.0), ("babble", -31.0), ("tv", -30.0), ("quiet_room", -42.0),
    ]  # fmt: skip
    for i, (fam, level) in enumerate(noise_only):
        specs.append(
            ClipSpec(
                name=f"noise_only-{fam}-{i}",
                kind="noise_only",
                family=fam,
                talker="none",
                snr_db=level,
                duration_s=float(plan.uniform(10.0, 20.0)),
                seed=int(plan.integers(2**31)),
                quick=i in (1, 2, 5),
            )
        )
    music_only = [
        ("music_loud", -24.0), ("music_loud", -28.0), ("music_weak", -36.0),
        ("music_weak", -32.0), ("hold_music", -30.0), ("hold_music", -24.0),
        ("music_loud", -22.0), ("music_weak", -40.0),
    ]  # fmt: skip
    for i, (fam, level) in enumerate(music_only):
        specs.append(
            ClipSpec(
                name=f"music_only-{fam}-{i}",
                kind="music_only",
                family=fam,
                talker="none",
                snr_db=level,
                duration_s=float(plan.uniform(10.0, 20.0)),
                seed=int(plan.integers(2**31)),
                quick=i in (0, 4),
            )
        )
    # Noise that switches on mid-clip: the floor must follow without passing the onset.
    jumps = [
        ("noise_only", "quiet_room", "tv", -45.0, -30.0),
        ("noise_only", "quiet_room", "fan", -45.0, -32.0),
        ("noise_only", "quiet_room", "music_loud", -45.0, -26.0),
        ("noise_only", "fan", "street", -40.0, -30.0),
        ("speech_jump", "quiet_room", "fan", 25.0, 20.0),
        ("speech_jump", "quiet_room", "tv", 25.0, 18.0),
        ("speech_jump", "street", "music_loud", 15.0, 8.0),
        ("speech_jump", "quiet_room", "street", 25.0, 17.0),
    ]
    for i, (kind, fam, jfam, base, jump) in enumerate(jumps):
        specs.append(
            ClipSpec(
                name=f"jump-{fam}-to-{jfam}-{i}",
                kind=kind,
                family=fam,
                talker="none" if kind == "noise_only" else ("normal", "quiet", "loud")[i % 3],
                snr_db=base,
                duration_s=float(plan.uniform(12.0, 16.0)),
                seed=int(plan.integers(2**31)),
                quick=i in (0, 4),
                jump_family=jfam,
                jump_at_s=float(plan.uniform(4.0, 7.0)),
                jump_db=jump,
            )
        )
    specs += _piper_specs()
    return [s for s in specs if s.quick] if quick else specs


PIPER_REPLICATES = 2
"""Piper clips per family and talker level: fewer than espeak's five, since there is one
Piper voice against espeak's several, and synthesis is slower."""


def _piper_specs() -> list[ClipSpec]:
    """The same families, levels and SNRs spoken by Piper's neural voice.

    espeak-ng's pitch is flat and its onsets are sharp, which flatters a detector that keys
    on harmonicity. Piper's joe voice glides and breathes like a person, so these clips
    show whether the gate's numbers hold for a more natural talker. A separate plan keeps
    the espeak clips (and their cache) exactly as they were.
    """
    plan = np.random.default_rng(20261126)
    specs: list[ClipSpec] = []
    for fi, fam in enumerate(FAMILY_SNRS):
        snrs = FAMILY_SNRS[fam]
        for li, lvl in enumerate(TALKER_LEVELS_DBFS):
            for rep in range(PIPER_REPLICATES):
                specs.append(
                    ClipSpec(
                        name=f"piper-{fam}-{lvl}-{rep}",
                        kind="speech",
                        family=fam,
                        talker=lvl,
                        snr_db=snrs[(li + rep * 2 + fi + 1) % len(snrs)],
                        duration_s=float(plan.uniform(8.0, 15.0)),
                        seed=int(plan.integers(2**31)),
                        quick=rep == 0 and fi % 3 == 0 and li == (fi // 3) % 3,
                        voice="piper",
                    )
                )
    return specs


def label_frames(
    clean8k: npt.NDArray[np.float64],
    spans: list[tuple[int, int]],
    noise8k: npt.NDArray[np.float64] | None = None,
) -> npt.NDArray[np.bool_]:
    """Speech labels per 20 ms frame from the clean speech at 8 kHz.

    Within each utterance span (sample range), a frame is speech when its energy is within
    35 dB of the utterance's loudest frame, above -60 dBFS, and, given the noise, not
    masked by it: the frame's in-band speech energy is at least the noise energy of the
    same frame. A word onset buried under the noise is inaudible to a person too, and
    counting it would score every detector on sound nobody could hear. Gaps under 200 ms
    between speech frames are then filled.
    """
    energies = frame_energies_db(clean8k, 8000)
    audible = np.ones(energies.size, dtype=bool)
    if noise8k is not None:
        noise_energies = frame_energies_db(noise8k, 8000)[: energies.size]
        audible[: noise_energies.size] = energies[: noise_energies.size] >= noise_energies
    labels = np.zeros(energies.size, dtype=bool)
    for start, end in spans:
        f0 = start // FRAME_SAMPLES
        f1 = min(energies.size, -(-end // FRAME_SAMPLES))
        if f1 <= f0:
            continue
        seg = energies[f0:f1]
        labels[f0:f1] |= (seg > seg.max() - 35.0) & (seg > -60.0) & audible[f0:f1]
    return merge_short_gaps(labels, 10)


def merge_short_gaps(labels: npt.NDArray[np.bool_], max_gap: int) -> npt.NDArray[np.bool_]:
    """Fill runs of False shorter than ``max_gap`` frames that lie between two True runs."""
    out = labels.copy()
    idx = np.flatnonzero(labels)
    if idx.size < 2:
        return out
    for a, b in itertools.pairwise(idx):
        if 1 < b - a <= max_gap:
            out[a:b] = True
    return out


_INBAND = sps.butter(4, [300.0, 3400.0], "bandpass", fs=SYNTH_RATE_HZ, output="sos")


def inband(x: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The telephone band (300-3400 Hz) of synth-rate audio, where levels and SNRs are set.

    Levels are what the line carries: rumble and hum that the channel removes do not count.
    """
    return np.asarray(sps.sosfiltfilt(_INBAND, x), dtype=np.float64)


def _inband_rms_dbfs(x: npt.NDArray[np.float64]) -> float:
    return rms_dbfs(inband(x)) if x.size > 100 else rms_dbfs(x)


def _piper_utterance(rng: np.random.Generator, rate: int) -> npt.NDArray[np.float64]:
    """One English sentence from Piper's joe voice at a random pace, without sampling
    noise so that every machine builds the same clip."""
    from callgate.audio.resample import resample  # noqa: PLC0415
    from callgate.speech.tts import PiperTTS  # noqa: PLC0415

    global _PIPER  # noqa: PLW0603 (one loaded voice for the whole corpus)
    if _PIPER is None:
        _PIPER = PiperTTS(noise_scale=0.0, noise_w_scale=0.0)
    text = ENGLISH_SENTENCES[int(rng.integers(len(ENGLISH_SENTENCES)))]
    pace = float(rng.choice([0.9, 1.0, 1.1, 1.2]))
    pcm = _PIPER.render(text, length_scale=pace)
    return resample(pcm.astype(np.float64) / 32768.0, _PIPER.sample_rate_hz, rate)


_PIPER: PiperTTS | None = None


def _utterance(voice: str, rng: np.random.Generator, rate: int) -> npt.NDArray[np.float64]:
    return _piper_utterance(rng, rate) if voice == "piper" else random_utterance(rng, rate)


def _place_utterances(
    spec: ClipSpec, rng: np.random.Generator, n: int
) -> tuple[npt.NDArray[np.float64], list[tuple[int, int]]]:
    rate = SYNTH_RATE_HZ
    clean = np.zeros(n)
    spans: list[tuple[int, int]] = []
    pos = int(rng.uniform(1.0, 2.0) * rate)
    level = TALKER_LEVELS_DBFS[spec.talker]
    while True:
        utt = _utterance(spec.voice, rng, rate)
        for _ in range(4):  # prefer 1-4 s utterances
            if rate <= utt.size <= 4.2 * rate:
                break
            utt = _utterance(spec.voice, rng, rate)
        if pos + utt.size > n - int(0.3 * rate):
            break
        utt_level = active_level_dbfs(inband(utt), rate)
        gain = db_to_amp(level + rng.uniform(-2.0, 2.0) - utt_level)
        clean[pos : pos + utt.size] += utt * gain
        spans.append((pos, pos + utt.size))
        pos += utt.size + int(rng.uniform(0.4, 3.0) * rate)
    return clean, spans


def build_clip(spec: ClipSpec) -> Clip:
    """Synthesize one clip from its spec (no cache)."""
    rng = np.random.default_rng(spec.seed)
    rate = SYNTH_RATE_HZ
    n = int(spec.duration_s * rate)
    n -= n % (rate // 50)
    bed = NOISE_BEDS[spec.family](spec.duration_s + 0.1, rate, rng)[:n]
    jump = np.zeros(n)
    if spec.jump_family:
        at = int(spec.jump_at_s * rate)
        jbed = NOISE_BEDS[spec.jump_family](spec.duration_s, rate, rng)[: n - at]
        ramp = np.minimum(1.0, np.arange(jbed.size) / (0.3 * rate))  # switched on over 300 ms
        jump[at:] = jbed * ramp
    if spec.kind in ("noise_only", "music_only"):
        clean = np.zeros(n)
        spans: list[tuple[int, int]] = []
        noise = bed * db_to_amp(spec.snr_db - _inband_rms_dbfs(bed))
        if spec.jump_family:
            noise = noise + jump * db_to_amp(spec.jump_db - _inband_rms_dbfs(jump[jump != 0]))
    else:
        clean, spans = _place_utterances(spec, rng, n)
        speech_level = TALKER_LEVELS_DBFS[spec.talker]
        noise = bed * db_to_amp(speech_level - spec.snr_db - _inband_rms_dbfs(bed))
        if spec.jump_family:
            target = speech_level - spec.jump_db
            noise = noise + jump * db_to_amp(target - _inband_rms_dbfs(jump[jump != 0]))
    pcm = telephone_channel(clean + noise, rate)
    clean8k = telephone_channel_float(inband(clean))
    noise8k = telephone_channel_float(inband(noise))
    labels = label_frames(clean8k, [(a // 2, b // 2) for a, b in spans], noise8k)
    frames = min(labels.size, pcm.size // FRAME_SAMPLES)
    return Clip(spec, pcm[: frames * FRAME_SAMPLES], labels[:frames])


def telephone_channel_float(clean: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Clean speech resampled to 8 kHz for labelling (no band-pass, no codec)."""
    from callgate.audio.resample import resample  # noqa: PLC0415

    return resample(clean, SYNTH_RATE_HZ, 8000)


def load_clip(spec: ClipSpec, cache_dir: Path = CACHE_DIR) -> Clip:
    """A clip from the cache, building and storing it on a miss."""
    path = cache_dir / f"{spec.name}-{spec.key()}.npz"
    if path.is_file():
        with np.load(path) as data:
            return Clip(spec, data["pcm16"].astype(np.int16), data["labels"].astype(bool))
    clip = build_clip(spec)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, pcm16=clip.pcm16, labels=clip.labels)
    tmp.replace(path)
    return clip


def load_corpus(
    *, quick: bool = False, progress: Callable[[ClipSpec], None] | None = None
) -> list[Clip]:
    """All clips of the (quick) corpus, cached."""
    clips = []
    for spec in corpus_specs(quick=quick):
        clips.append(load_clip(spec))
        if progress is not None:
            progress(spec)
    return clips
