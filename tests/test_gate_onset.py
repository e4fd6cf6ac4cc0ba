"""The onset lookback: a first syllable too short to confirm is still sent with the words."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pytest

from callgate.audio import FrameDecision, GateOptions, SpeechGate
from callgate.audio.preroll import OnsetRule, PrerollBuffer
from callgate.config import ConfigError, load_settings
from tests.conftest import to_pcm, voiced, white

FRAME = np.zeros(160, dtype=np.int16)


def _short_syllable_then_words() -> npt.NDArray[np.int16]:
    """Room noise, a 60 ms syllable (too short to confirm), 300 ms of noise, then words."""
    rng = np.random.default_rng(4)

    def noise(seconds: float) -> npt.NDArray[np.float64]:
        return white(seconds, -60, rng)

    return to_pcm(
        np.concatenate(
            [
                noise(1.0),
                voiced(0.06, -45, rng) + noise(0.06),
                noise(0.3),
                voiced(0.8, -45, rng) + noise(0.8),
                noise(0.5),
            ]
        )
    )


def _first_onset(options: GateOptions) -> FrameDecision:
    decisions = SpeechGate(options).process_pcm16(_short_syllable_then_words())
    return next(d for d in decisions if d.preroll_frames)


def test_lookback_reaches_the_rejected_first_syllable() -> None:
    # The syllable occupies frames 50-52 (1.0-1.06 s); the words open a candidate at ~1.4 s.
    onset = _first_onset(GateOptions())
    assert onset.index > 65
    assert onset.index - onset.preroll_frames <= 51
    assert onset.lookback_frames > 0
    assert onset.audio.size == (onset.preroll_frames + 1) * 160


def test_fixed_preroll_alone_does_not_reach_it() -> None:
    onset = _first_onset(GateOptions(onset_lookback_ms=0))
    assert onset.index - onset.preroll_frames > 52
    assert onset.lookback_frames == 0


def test_lookback_is_capped() -> None:
    onset = _first_onset(GateOptions(onset_lookback_ms=240))
    candidates = 2  # frames of the attempt before the confirming one
    assert onset.preroll_frames <= 240 // 20 + candidates
    assert onset.index - onset.preroll_frames > 52


def test_lookback_options_are_checked() -> None:
    with pytest.raises(ValueError, match="onset_lookback_ms"):
        GateOptions(onset_lookback_ms=210)
    with pytest.raises(ValueError, match="onset_dip_frames"):
        GateOptions(onset_dip_frames=-1)
    assert GateOptions(onset_lookback_ms=0).lookback_frames == GateOptions().preroll_frames


def _buffer(
    snrs: Sequence[float], voiced_at: set[int], foreign_at: frozenset[int] = frozenset()
) -> PrerollBuffer:
    buffer = PrerollBuffer(len(snrs))
    for i, snr in enumerate(snrs):
        buffer.push(FRAME, snr, voiced=i in voiced_at, foreign=i in foreign_at)
    return buffer


def test_evidence_walks_over_syllables_then_the_soft_start() -> None:
    #        0  1  2  3  4   5  6  7  8  9  (the newest 2 frames are the candidate)
    snrs = [0, 0, 5, 6, 12, 1, 0, 0, 9, 9]
    buffer = _buffer(snrs, voiced_at={4})
    # From frame 7 back: gap 7,6,5 -> syllable 4 (reach 4), soft start 3, 2 (reach 6).
    assert buffer.evidence_run(2, OnsetRule(snr_db=4.0, dip=1, gap=5), limit=8) == 6
    # A gap longer than allowed: the syllable is not reached, nor anything quiet before.
    assert buffer.evidence_run(2, OnsetRule(snr_db=4.0, dip=1, gap=2), limit=8) == 0
    # The limit caps the reach.
    assert buffer.evidence_run(2, OnsetRule(snr_db=4.0, dip=1, gap=5), limit=5) == 5


def test_evidence_steps_over_short_dips_only() -> None:
    snrs = [5, 1, 5, 1, 1, 5, 9]
    buffer = _buffer(snrs, voiced_at=set())
    # From frame 5: 5 (reach 1), then two quiet frames: too many for dip=1.
    assert buffer.evidence_run(1, OnsetRule(snr_db=4.0, dip=1, gap=0), limit=6) == 1
    # dip=2 steps over them to frame 2 (reach 4), then over frame 1 to frame 0 (reach 6).
    assert buffer.evidence_run(1, OnsetRule(snr_db=4.0, dip=2, gap=0), limit=6) == 6


def test_evidence_stops_at_another_talker() -> None:
    snrs = [6, 12, 6, 12, 6, 9]
    buffer = _buffer(snrs, voiced_at={1, 3}, foreign_at=frozenset({2}))
    # The caller's syllable at 3 counts; the TV syllable at 2 ends the walk.
    assert buffer.evidence_run(1, OnsetRule(snr_db=4.0, dip=1, gap=5), limit=5) == 2
    assert len(buffer.drain()) == 6
    assert buffer.evidence_run(0, OnsetRule(), limit=5) == 0


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"AUDIO_ONSET_LOOKBACK_MS": "490"}, "AUDIO_ONSET_LOOKBACK_MS"),
        ({"AUDIO_ONSET_LOOKBACK_MS": "-20"}, "AUDIO_ONSET_LOOKBACK_MS"),
        ({"AUDIO_ONSET_SNR_DB": "-1"}, "AUDIO_ONSET_SNR_DB"),
    ],
)
def test_lookback_settings_are_validated(overrides: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_settings(overrides, env_file=None)


def test_lookback_settings_reach_the_gate() -> None:
    s = load_settings({"AUDIO_ONSET_LOOKBACK_MS": "600", "AUDIO_ONSET_SNR_DB": "3"}, env_file=None)
    options = s.gate_options()
    assert (options.onset_lookback_ms, options.onset_snr_db) == (600, 3.0)
    assert options.preroll_ms == 200  # the mission's pre-roll is untouched
