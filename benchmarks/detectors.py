"""Detectors under benchmark, all reduced to a per-20 ms-frame ``sent`` mask.

Every detector is fed the clip as a live call would deliver it (20 ms chunks, in order,
one fresh instance per clip). External VADs get the same 200 ms pre-roll and 80 ms
hangover as the gate, so differences come from the decisions, not from the padding.
The gate's own sending goes further in one respect: its onset lookback sends, at
confirmation, audio before the 200 ms pre-roll where the signal shows the speech began
earlier (up to ``onset_lookback_ms``). ``gate-fixed-preroll`` is the gate with the lookback
off, for a comparison on equal padding.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from callgate.audio.codec import pcm16_to_float
from callgate.audio.decision import mark_sent

FRAME_SAMPLES = 160
PREROLL_FRAMES = 10
HANGOVER_FRAMES = 4
BoolMask = npt.NDArray[np.bool_]
Pcm16 = npt.NDArray[np.int16]


def apply_preroll_hangover(raw: BoolMask, preroll_frames: int, hangover_frames: int) -> BoolMask:
    """Frames a streaming sender would emit for raw per-frame speech decisions.

    Each raw speech frame is sent, plus ``preroll_frames`` before every onset (flushed
    from a ring buffer) and ``hangover_frames`` after every run ends; i.e. frame i is sent
    when any raw frame lies in [i - hangover_frames, i + preroll_frames].
    """
    raw = np.asarray(raw, dtype=bool)
    n = raw.size
    if n == 0:
        return raw.copy()
    csum = np.concatenate([[0], np.cumsum(raw)])
    idx = np.arange(n)
    lo = np.clip(idx - hangover_frames, 0, n)
    hi = np.clip(idx + preroll_frames + 1, 0, n)
    return np.asarray(csum[hi] - csum[lo] > 0, dtype=bool)


class Detector(Protocol):
    """Runs over one clip and says which frames would be sent."""

    name: str

    def run(self, pcm16: Pcm16) -> BoolMask:
        """Sent mask, one entry per whole 20 ms frame."""
        ...


@dataclass
class FrameGateDetector:
    """callgate's gate or legacy VAD: anything with ``process_pcm16`` -> FrameDecisions."""

    name: str
    factory: Callable[[], Any]

    def run(self, pcm16: Pcm16) -> BoolMask:
        """Feed 20 ms chunks, as a live call does, marking sent frames and the retroactive
        pre-roll as the decisions come (``sent_mask``'s rule) and keeping none of them, as
        the live call keeps none: holding a clip's decisions only to mark them afterwards
        cost the gate's row about 1 us a frame of Python's garbage collection."""
        gate = self.factory()
        frames = pcm16.size // FRAME_SAMPLES
        mask = np.zeros(frames, dtype=np.bool_)
        for k in range(frames):
            for d in gate.process_pcm16(pcm16[k * FRAME_SAMPLES : (k + 1) * FRAME_SAMPLES]):
                mark_sent(mask, d)
        return mask


@dataclass
class SileroDetector:
    """Silero VAD (ONNX) with the standard 0.5 / 0.35 hysteresis, causal on 20 ms frames."""

    name: str = "silero-vad"
    on_threshold: float = 0.5
    off_threshold: float = 0.35

    def run(self, pcm16: Pcm16) -> BoolMask:
        """Each frame takes the state after the last window completed by its end."""
        from callgate.audio.silero import SileroVad  # noqa: PLC0415

        vad = SileroVad(8000)
        win = vad.window_samples
        audio = pcm16_to_float(pcm16).astype(np.float32)
        frames = pcm16.size // FRAME_SAMPLES
        raw = np.zeros(frames, dtype=bool)
        speaking = False
        done = 0  # samples consumed into windows
        for k in range(frames):
            end = (k + 1) * FRAME_SAMPLES
            while done + win <= end:
                p = vad.probability(audio[done : done + win])
                done += win
                if p >= self.on_threshold:
                    speaking = True
                elif p < self.off_threshold:
                    speaking = False
            raw[k] = speaking
        return apply_preroll_hangover(raw, PREROLL_FRAMES, HANGOVER_FRAMES)


@dataclass
class WebRtcDetector:
    """WebRTC VAD at a given aggressiveness mode on 20 ms frames."""

    mode: int
    name: str = ""

    def __post_init__(self) -> None:
        if not self.name:
            self.name = f"webrtc-vad-{self.mode}"

    def run(self, pcm16: Pcm16) -> BoolMask:
        """Raw per-frame decisions plus the shared pre-roll/hangover."""
        import webrtcvad  # noqa: PLC0415

        vad = webrtcvad.Vad(self.mode)
        frames = pcm16.size // FRAME_SAMPLES
        data = pcm16[: frames * FRAME_SAMPLES].astype("<i2").tobytes()
        step = FRAME_SAMPLES * 2
        raw = np.array(
            [bool(vad.is_speech(data[k * step : (k + 1) * step], 8000)) for k in range(frames)],
            dtype=bool,
        )
        return apply_preroll_hangover(raw, PREROLL_FRAMES, HANGOVER_FRAMES)


def with_overrides(obj: Any, overrides: dict[str, Any]) -> Any:
    """A copy of a (nested, frozen) dataclass with dotted keys replaced.

    ``{"normal.start_db": 7, "confirmer": "silero"}`` replaces ``obj.normal.start_db`` and
    ``obj.confirmer``; keys of one nested object are applied together, so its validation
    sees the final values.
    """
    direct: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        head, dot, rest = key.partition(".")
        if dot:
            nested.setdefault(head, {})[rest] = value
        else:
            direct[key] = value
    for head, sub in nested.items():
        direct[head] = with_overrides(getattr(obj, head), sub)
    return dataclasses.replace(obj, **direct) if direct else obj


def _gate_factory(options: dict[str, Any]) -> Callable[[], Any]:
    from callgate.audio import GateOptions, SpeechGate  # noqa: PLC0415

    gate_options = with_overrides(GateOptions(), options)

    def make() -> Any:
        return SpeechGate(gate_options)

    make()  # fail now, not mid-benchmark, when the options or the gate are broken
    return make


def _legacy_factory() -> Callable[[], Any]:
    from callgate.audio.legacy_vad import LegacyEnergyVad, LegacyVadOptions  # noqa: PLC0415

    def make() -> Any:
        return LegacyEnergyVad(LegacyVadOptions())

    make()
    return make


DETECTOR_NAMES = (
    "gate",
    "gate-fixed-preroll",
    "gate+silero",
    "gate+silero-m8",
    "gate+music-listener",
    "gate+noise-listener",
    "legacy-energy",
    "silero-vad",
    "webrtc-vad-2",
    "webrtc-vad-3",
)


def build_detectors(
    names: list[str] | None = None, gate_options: dict[str, Any] | None = None
) -> tuple[list[Detector], list[str]]:
    """Detectors that can be constructed here, and a note for each one that cannot."""
    wanted = list(names) if names else list(DETECTOR_NAMES)
    opts = dict(gate_options or {})
    detectors: list[Detector] = []
    notes: list[str] = []
    for name in wanted:
        try:
            if name == "gate":
                detectors.append(FrameGateDetector(name, _gate_factory(opts)))
            elif name == "gate-fixed-preroll":
                # Only the shared 200 ms pre-roll (and the candidate frames) before an onset.
                fixed = {**opts, "onset_lookback_ms": 0}
                detectors.append(FrameGateDetector(name, _gate_factory(fixed)))
            elif name == "gate+silero":
                detectors.append(
                    FrameGateDetector(name, _gate_factory({**opts, "confirmer": "silero"}))
                )
            elif name == "gate+silero-m8":
                # The confirmer makes the stricter music thresholds unnecessary:
                # GATE_CONFIRMER=silero SNR_START_MUSIC=8 SNR_STOP_MUSIC=5.
                relaxed = {"confirmer": "silero", "music.start_db": 8.0, "music.stop_db": 5.0}
                detectors.append(FrameGateDetector(name, _gate_factory({**opts, **relaxed})))
            elif name == "gate+music-listener":
                # GATE_MUSIC_LISTENER=true: Silero opens and confirms under loud music only.
                listener = {**opts, "music_listener": True}
                detectors.append(FrameGateDetector(name, _gate_factory(listener)))
            elif name == "gate+noise-listener":
                # GATE_NOISE_LISTENER=true: Silero opens and confirms under any loud background.
                loud = {**opts, "music_listener": True, "noise_listener": True}
                detectors.append(FrameGateDetector(name, _gate_factory(loud)))
            elif name == "legacy-energy":
                detectors.append(FrameGateDetector(name, _legacy_factory()))
            elif name == "silero-vad":
                from callgate.audio.silero import SileroVad  # noqa: PLC0415

                SileroVad(8000)
                detectors.append(SileroDetector())
            elif name.startswith("webrtc-vad-"):
                import webrtcvad  # noqa: PLC0415, F401

                detectors.append(WebRtcDetector(int(name.rsplit("-", 1)[1])))
            else:
                notes.append(f"{name}: unknown detector (known: {', '.join(DETECTOR_NAMES)})")
        except Exception as exc:  # a detector that cannot be built is skipped, not fatal
            notes.append(f"{name}: skipped ({type(exc).__name__}: {exc})")
    return detectors, notes


def timed_run(detector: Detector, pcm16: Pcm16) -> tuple[BoolMask, int]:
    """The sent mask and the CPU time (process_time_ns) the detector took."""
    t0 = time.process_time_ns()
    mask = detector.run(pcm16)
    return mask, time.process_time_ns() - t0
