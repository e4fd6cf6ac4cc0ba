"""Properties of the whole gate that must hold for any input (hypothesis)."""

from __future__ import annotations

import itertools

import numpy as np
import numpy.typing as npt
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate.audio import FrameDecision, GateOptions, SpeechGate
from callgate.audio.agc import AgcOptions
from callgate.audio.codec import pcm16_to_ulaw
from callgate.audio.decision import SILENCE, sent_mask
from tests.conftest import to_pcm, voiced, white


def _call(seed: int, speech_db: float, noise_db: float) -> npt.NDArray[np.int16]:
    """A short call: room noise, a burst of speech-like sound, room noise, more speech."""
    rng = np.random.default_rng(seed)
    pieces = [
        white(1.0, noise_db, rng),
        voiced(0.8, speech_db, rng) + white(0.8, noise_db, rng),
        white(0.5, noise_db, rng),
        voiced(0.6, speech_db, rng, pitch_hz=210) + white(0.6, noise_db, rng),
        white(0.4, noise_db, rng),
    ]
    return to_pcm(np.concatenate(pieces))


def _summary(decisions: list[FrameDecision]) -> list[tuple[object, ...]]:
    return [
        (
            d.index,
            d.state,
            d.sent,
            d.preroll_frames,
            d.lookback_frames,
            d.snr_db,
            d.noise_dbfs,
            d.gain_db,
            d.music,
        )
        for d in decisions
    ]


calls = st.builds(
    _call,
    seed=st.integers(0, 10_000),
    speech_db=st.floats(-45, -12),
    noise_db=st.floats(-65, -40),
)


@settings(max_examples=25, deadline=None)
@given(pcm=calls, cuts=st.lists(st.integers(1, 900), min_size=1, max_size=40))
def test_decisions_do_not_depend_on_chunking(pcm: npt.NDArray[np.int16], cuts: list[int]) -> None:
    whole = SpeechGate().process_pcm16(pcm)
    gate = SpeechGate()
    pieces: list[FrameDecision] = []
    position, k = 0, 0
    while position < pcm.size:
        size = cuts[k % len(cuts)]
        pieces.extend(gate.process_pcm16(pcm[position : position + size]))
        position += size
        k += 1
    assert _summary(pieces) == _summary(whole)
    assert np.array_equal(
        np.concatenate([d.audio for d in pieces]), np.concatenate([d.audio for d in whole])
    )


@settings(max_examples=25, deadline=None)
@given(pcm=calls)
def test_mu_law_input_gives_the_same_decisions(pcm: npt.NDArray[np.int16]) -> None:
    assert _summary(SpeechGate().process_ulaw(pcm16_to_ulaw(pcm))) == _summary(
        SpeechGate().process_pcm16(pcm)
    )


@settings(max_examples=25, deadline=None)
@given(
    pcm=calls,
    max_gain=st.floats(0, 30),
    max_cut=st.floats(0, 20),
    max_step=st.floats(0.1, 6),
)
def test_gain_stays_bounded_and_rises_smoothly(
    pcm: npt.NDArray[np.int16], max_gain: float, max_cut: float, max_step: float
) -> None:
    options = GateOptions(
        agc=AgcOptions(max_gain_db=max_gain, max_cut_db=max_cut, max_step_db=max_step)
    )
    decisions = SpeechGate(options).process_pcm16(pcm)
    sent = [d for d in decisions if d.sent]
    for d in sent:
        assert -max_cut - 1e-9 <= d.gain_db <= max_gain + 1e-9
    for before, after in itertools.pairwise(sent):
        # Upward moves are rate-limited; only clipping protection may pull gain down faster.
        assert after.gain_db - before.gain_db <= max_step + 1e-9
    for d in decisions:
        if not d.sent:
            assert d.gain_db == 0.0


@settings(max_examples=25, deadline=None)
@given(pcm=calls)
def test_preroll_is_the_audio_just_before_the_onset(pcm: npt.NDArray[np.int16]) -> None:
    # With the AGC pinned to 0 dB the sent audio must be the input, sample for sample.
    options = GateOptions(agc=AgcOptions(max_gain_db=0, max_cut_db=0))
    gate = SpeechGate(options)
    decisions = gate.process_pcm16(pcm)
    n = gate.frame_samples
    onsets = [d for d in decisions if d.preroll_frames]
    most = options.lookback_frames + options.max_attempt_ms // options.frame_ms
    for d in onsets:
        start = (d.index - d.preroll_frames) * n
        assert np.array_equal(d.audio, pcm[start : (d.index + 1) * n])
        # At least the fixed pre-roll (unless earlier audio was already sent), at most the
        # onset lookback plus the candidate frames; the lookback part is reported apart.
        assert d.preroll_frames >= min(d.index, options.preroll_frames) or any(
            e.sent for e in decisions[d.index - options.preroll_frames : d.index]
        )
        assert d.preroll_frames <= most
        assert 0 <= d.lookback_frames <= options.lookback_frames - options.preroll_frames
        if d.lookback_frames:  # frames beyond a full pre-roll
            assert d.preroll_frames >= options.preroll_frames + d.lookback_frames
    for d in decisions:
        if d.sent and not d.preroll_frames:
            assert np.array_equal(d.audio, pcm[d.index * n : (d.index + 1) * n])


@settings(max_examples=25, deadline=None)
@given(pcm=calls)
def test_nothing_is_sent_in_silence_and_nothing_twice(pcm: npt.NDArray[np.int16]) -> None:
    gate = SpeechGate()
    decisions = gate.process_pcm16(pcm)
    covered: list[int] = []
    for d in decisions:
        if d.state is SILENCE:
            assert d.audio.size == 0
            assert not d.sent
        if d.sent:
            covered.extend(range(d.index - d.preroll_frames, d.index + 1))
    assert len(covered) == len(set(covered))
    assert sum(d.audio.size for d in decisions) == len(covered) * gate.frame_samples
    assert gate.frames_sent == len(covered)
    assert gate.frames_withheld == len(decisions) - len(covered)


def test_echo_guard_raises_only_the_start_threshold() -> None:
    gate = SpeechGate()
    gate.start_boost_db = 6.0
    decisions = gate.process_pcm16(_call(7, -20, -55))
    assert {d.start_threshold_db for d in decisions if not d.music} == {14.0}
    assert {d.stop_threshold_db for d in decisions if not d.music} == {5.0}
    # A burst 10 dB over the floor opens the normal gate but not the guarded one.
    rng = np.random.default_rng(5)
    quiet_room = white(1.0, -60, rng)
    burst = voiced(0.6, -50, rng) + white(0.6, -60, rng)
    pcm = to_pcm(np.concatenate([quiet_room, burst, quiet_room]))
    plain = SpeechGate().process_pcm16(pcm)
    guarded = SpeechGate()
    guarded.start_boost_db = 15.0
    assert any(d.sent for d in plain)
    assert not any(d.sent for d in guarded.process_pcm16(pcm))


@settings(max_examples=25, deadline=None)
@given(pcm=calls)
def test_onset_lookback_only_adds_audio_before_onsets(pcm: npt.NDArray[np.int16]) -> None:
    # The lookback changes what is sent at a confirmation, never a decision: same states,
    # same reasons, and a superset of the frames that reach the model.
    with_lookback = SpeechGate().process_pcm16(pcm)
    fixed = SpeechGate(GateOptions(onset_lookback_ms=0)).process_pcm16(pcm)
    assert [(d.state, d.reason, d.snr_db) for d in with_lookback] == [
        (d.state, d.reason, d.snr_db) for d in fixed
    ]
    wide, narrow = sent_mask(with_lookback), sent_mask(fixed)
    assert not (narrow & ~wide).any()
    assert all(d.lookback_frames == 0 for d in fixed)
    assert sum(d.lookback_frames for d in with_lookback) == int((wide & ~narrow).sum())
