"""The state machine stepped one frame at a time, checking the state after each step."""

from __future__ import annotations

import pytest

from callgate.audio.decision import MAYBE_SPEECH, SILENCE, SPEECH
from callgate.audio.state_machine import (
    TRANSITIONS,
    GateEvent,
    InvalidTransitionError,
    SpeechStateMachine,
    StateMachineOptions,
    next_state,
)

START, STOP = 8.0, 5.0


def _walk(machine: SpeechStateMachine, snrs: list[float], voicing: float = 0.8) -> list[str]:
    return [machine.step(s, START, STOP, voicing).state.value for s in snrs]


def test_table_covers_exactly_the_documented_moves() -> None:
    assert TRANSITIONS == {
        (SILENCE, GateEvent.ABOVE_START): MAYBE_SPEECH,
        (MAYBE_SPEECH, GateEvent.CONFIRMED): SPEECH,
        (MAYBE_SPEECH, GateEvent.REJECTED): SILENCE,
        (SPEECH, GateEvent.HANGOVER_DONE): SILENCE,
        (MAYBE_SPEECH, GateEvent.RECHECK): SILENCE,
        (SPEECH, GateEvent.RECHECK): SILENCE,
    }


def test_recheck_drops_speech_and_candidates_but_not_silence() -> None:
    m = SpeechStateMachine(StateMachineOptions(confirm_frames=1))
    assert m.recheck() is None
    m.step(20, START, STOP, 0.9)
    assert m.state is SPEECH
    step = m.recheck()
    assert step is not None
    assert (step.state, step.event) == (SILENCE, GateEvent.RECHECK)
    assert m.state is SILENCE


def test_illegal_move_raises_and_names_state_and_event() -> None:
    with pytest.raises(InvalidTransitionError, match="confirmed in state silence"):
        next_state(SILENCE, GateEvent.CONFIRMED)


def test_onset_confirms_after_three_frames_then_hangover() -> None:
    m = SpeechStateMachine(StateMachineOptions(confirm_frames=3, hangover_frames=4))
    states = _walk(m, [0, 9, 9, 9, 9, 6, 2, 2, 2, 2, 2, 2])
    assert states == [
        "silence",
        "maybe_speech",
        "maybe_speech",
        "speech",
        "speech",
        "speech",  # between stop and start: still speech (hysteresis)
        "speech",  # hangover 1..4
        "speech",
        "speech",
        "speech",
        "silence",
        "silence",
    ]


def test_candidate_falls_back_below_stop() -> None:
    m = SpeechStateMachine(StateMachineOptions(candidate_dip_frames=2))
    assert _walk(m, [9, 9, 3, 0, 0, 0]) == ["maybe_speech"] * 4 + ["silence", "silence"]


def test_candidate_survives_a_short_dip_between_syllables() -> None:
    m = SpeechStateMachine(StateMachineOptions(candidate_dip_frames=2, confirm_frames=3))
    assert _walk(m, [9, 9, 3, 3, 9]) == ["maybe_speech"] * 4 + ["speech"]


def test_unvoiced_candidate_is_rejected_after_the_wait() -> None:
    m = SpeechStateMachine(StateMachineOptions(max_candidate_frames=5))
    states = _walk(m, [20] * 6, voicing=0.1)
    assert states == ["maybe_speech"] * 4 + ["silence", "maybe_speech"]


def test_voicing_late_in_the_candidate_still_confirms() -> None:
    m = SpeechStateMachine(StateMachineOptions(max_candidate_frames=10))
    results = [m.step(12, START, STOP, v).state for v in (0.1, 0.1, 0.1, 0.1, 0.7)]
    assert results == [MAYBE_SPEECH] * 4 + [SPEECH]


def test_confirmer_is_asked_only_when_dsp_would_confirm() -> None:
    calls: list[int] = []

    def no() -> bool:
        calls.append(1)
        return False

    m = SpeechStateMachine()
    states = [m.step(s, START, STOP, 0.8, no).state for s in (9, 9, 9)]
    assert states == [MAYBE_SPEECH, MAYBE_SPEECH, SILENCE]
    assert len(calls) == 1


def test_zero_hangover_ends_on_first_quiet_frame() -> None:
    m = SpeechStateMachine(StateMachineOptions(confirm_frames=1, hangover_frames=0))
    assert _walk(m, [9, 2]) == ["speech", "silence"]


def test_a_frame_rising_through_stop_counts_towards_confirmation() -> None:
    # 6 dB: above stop, below start (and voiced too weakly to open a candidate itself).
    # The short syllable 9, 9 then confirms at once.
    m = SpeechStateMachine(StateMachineOptions(confirm_frames=3, rise_frames=1))
    assert _walk(m, [0, 6, 9, 9], voicing=0.5) == ["silence", "silence", "maybe_speech", "speech"]
    # Without the rise credit the same syllable falls back after its dips.
    m = SpeechStateMachine(StateMachineOptions(confirm_frames=3, rise_frames=0))
    assert _walk(m, [0, 6, 9, 9, 2, 2, 2], voicing=0.5) == [
        "silence",
        "silence",
        "maybe_speech",
        "maybe_speech",
        "maybe_speech",
        "maybe_speech",
        "silence",
    ]


def test_rise_credit_needs_the_frame_just_before_and_can_be_withheld() -> None:
    m = SpeechStateMachine(StateMachineOptions(confirm_frames=3, rise_frames=1))
    # A quiet frame between the rise and the candidate breaks the run.
    assert _walk(m, [6, 2, 9, 9], voicing=0.5) == [
        "silence",
        "silence",
        "maybe_speech",
        "maybe_speech",
    ]
    m = SpeechStateMachine(StateMachineOptions(confirm_frames=3, rise_frames=1))
    states = [m.step(s, START, STOP, 0.5, rise=False).state.value for s in [6, 9, 9]]
    assert states == ["silence", "maybe_speech", "maybe_speech"]
    with pytest.raises(ValueError, match="rise_frames"):
        StateMachineOptions(rise_frames=-1)


def test_word_end_grace_holds_a_soft_ending_then_lets_another_talker_go() -> None:
    def run(word_end_frames: int) -> list[str]:
        m = SpeechStateMachine(StateMachineOptions(word_end_frames=word_end_frames))
        for _ in range(3):  # confirm on loud voiced frames
            m.step(20.0, 8.0, 5.0, 0.9)
        states = []
        # The word's soft end: above the stop line, unvoiced, far below the caller's level.
        for _ in range(10):
            states.append(m.step(10.0, 8.0, 5.0, 0.2, distant=True).state.value)
        return states

    held, cut = run(3), run(0)
    assert cut[0] == "speech"  # a hangover frame: still sent
    # With the grace, the first 3 frames hold speech; then the hangover runs out as without.
    assert held.index("silence") == cut.index("silence") + 3
