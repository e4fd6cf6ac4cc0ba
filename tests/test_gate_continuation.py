"""A sentence's soft last word, right after the caller's speech ended, is still the caller."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from callgate.audio import GateOptions, SpeechGate
from callgate.audio.decision import sent_mask
from callgate.config import ConfigError, load_settings
from tests.conftest import to_pcm, voiced, white

WORDS_END_S = 2.5
"""1 s of room noise, then 1.5 s of the caller's words at -20 dBFS."""


def _words_then_soft_syllable(gap_s: float) -> tuple[npt.NDArray[np.int16], slice]:
    """The caller's words, ``gap_s`` of room noise, then one syllable about 17 dB below the
    caller's learned level (past the talker rule's 14 dB start margin, inside its 18 dB
    continue margin)."""
    rng = np.random.default_rng(7)
    signal = np.concatenate(
        [
            white(1.0, -60, rng),
            voiced(1.5, -20, rng) + white(1.5, -60, rng),
            white(gap_s, -60, rng),
            voiced(0.25, -38, rng) + white(0.25, -60, rng),
            white(0.6, -60, rng),
        ]
    )
    first = round((WORDS_END_S + gap_s) / 0.02)
    return to_pcm(signal), slice(first, first + 13)


def _frames_sent(options: GateOptions, gap_s: float) -> int:
    pcm, syllable = _words_then_soft_syllable(gap_s)
    return int(sent_mask(SpeechGate(options).process_pcm16(pcm))[syllable].sum())


def test_a_soft_last_word_right_after_the_words_is_sent() -> None:
    assert _frames_sent(GateOptions(), gap_s=0.1) >= 10


def test_without_continuation_it_is_taken_for_another_talker() -> None:
    assert _frames_sent(GateOptions(continuation_ms=0), gap_s=0.1) == 0


def test_the_same_syllable_later_is_not_a_continuation() -> None:
    # 0.6 s after the words (a TV across the room) the start margin applies again.
    assert _frames_sent(GateOptions(), gap_s=0.6) == 0


def test_the_setting_reaches_the_gate_and_is_validated() -> None:
    settings = load_settings({"AUDIO_CONTINUATION_MS": "0"}, env_file=None)
    assert settings.gate_options().continuation_ms == 0
    assert load_settings({}, env_file=None).gate_options().continuation_ms == 120
    with pytest.raises(ConfigError, match="AUDIO_CONTINUATION_MS"):
        load_settings({"AUDIO_CONTINUATION_MS": "130"}, env_file=None)


def test_the_continue_margin_lies_between_the_start_and_hold_margins() -> None:
    from callgate.audio.talker import TalkerOptions  # noqa: PLC0415

    with pytest.raises(ValueError, match="continue_margin_db"):
        TalkerOptions(margin_db=14, continue_margin_db=12)
    with pytest.raises(ValueError, match="continue_margin_db"):
        TalkerOptions(continue_margin_db=22, hold_margin_db=20)
    assert not _frames_sent(
        GateOptions(talker=TalkerOptions(continue_margin_db=14.0)), gap_s=0.1
    )  # no wider than the start margin: the syllable is another talker again
