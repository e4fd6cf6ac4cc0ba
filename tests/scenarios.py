"""Building blocks for field-test scenarios: a caller's sentences in a noisy room.

A scene is built at 8 kHz: a noise bed at a fixed level for the whole call, the caller's
sentences placed at given times at a given active level, then the telephone channel. The
clean speech gives the labels, so a test can ask what the gate did to each utterance and
to the stretches where only the room was heard.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callgate.audio import FrameDecision, GateOptions, SpeechGate
from callgate.audio.decision import run_in_frames, sent_mask
from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import NOISE_BEDS, active_level_dbfs, db_to_amp, rms_dbfs
from callgate.synth.speech import speak

RATE = 8000
FRAME = 160

SENTENCES = [
    "Hi, my name is Daniel Cohen and I'm calling about my order.",
    "Sure, my phone number is five five five, one two three, four five six seven.",
    "Yes, Tuesday afternoon at three would be perfect for me.",
    "Seven apples and some oranges, please.",
]


@dataclass
class Scene:
    """A call's audio with its labels."""

    pcm: npt.NDArray[np.int16]
    speech_frames: npt.NDArray[np.bool_]
    utterances: list[tuple[int, int]]
    """(first frame, end frame) of each sentence."""

    def run(
        self, options: GateOptions | None = None
    ) -> tuple[list[FrameDecision], npt.NDArray[np.bool_]]:
        """Run the gate in 20 ms chunks, as a live call; return decisions and the sent mask."""
        decisions = run_in_frames(SpeechGate(options), self.pcm)
        return decisions, sent_mask(decisions)

    def noise_only(self, margin_frames: int = 25) -> npt.NDArray[np.bool_]:
        """Frames at least ``margin_frames`` away from any speech."""
        near = np.zeros(self.speech_frames.size, dtype=bool)
        for first, end in self.utterances:
            near[max(0, first - margin_frames) : end + margin_frames] = True
        return ~near


def _level(signal: npt.NDArray[np.float64], dbfs: float) -> npt.NDArray[np.float64]:
    return np.asarray(signal * db_to_amp(dbfs - active_level_dbfs(signal, RATE)))


def build_scene(
    duration_s: float,
    *,
    talk: Sequence[tuple[float, str]],
    talker_dbfs: float,
    beds: Sequence[tuple[float, str, float]],
    seed: int = 0,
    voice: str = "en-us",
) -> Scene:
    """``talk``: (start s, sentence); ``beds``: (start s, noise family, level dBFS)."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * RATE)
    noise = np.zeros(n)
    for start, family, dbfs in beds:
        first = int(start * RATE)
        bed: Callable[[float, int, np.random.Generator], npt.NDArray[np.float64]] = NOISE_BEDS[
            family
        ]
        piece = bed(duration_s - start, RATE, rng)[: n - first]
        noise[first : first + piece.size] += piece * db_to_amp(dbfs - rms_dbfs(piece))
    speech = np.zeros(n)
    utterances = []
    for start, text in talk:
        said = _level(speak(text, voice=voice), talker_dbfs)
        first = int(start * RATE)
        said = said[: n - first]
        speech[first : first + said.size] += said
        energy = np.array(
            [np.mean(said[i : i + FRAME] ** 2) for i in range(0, said.size - FRAME + 1, FRAME)]
        )
        active = np.flatnonzero(10 * np.log10(energy + 1e-20) > 10 * np.log10(energy.max()) - 35)
        utterances.append((first // FRAME + int(active[0]), first // FRAME + int(active[-1]) + 1))
    frames = n // FRAME
    labels = np.zeros(frames, dtype=bool)
    for first, end in utterances:
        labels[first:end] = True
    pcm = telephone_channel(speech + noise, RATE)
    return Scene(pcm=pcm[: frames * FRAME], speech_frames=labels, utterances=utterances)


def first_100ms_kept(scene: Scene, sent: npt.NDArray[np.bool_]) -> list[bool]:
    """Per utterance: were its first five frames all sent?"""
    return [bool(sent[first : first + 5].all()) for first, _ in scene.utterances]


def utterance_coverage(scene: Scene, sent: npt.NDArray[np.bool_]) -> list[float]:
    """Per utterance: share of its frames that were sent."""
    return [float(sent[first:end].mean()) for first, end in scene.utterances]
