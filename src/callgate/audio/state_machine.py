"""The SILENCE -> MAYBE_SPEECH -> SPEECH state machine, with its transitions as data.

Rule 1: every state change of the gate happens here, through :data:`TRANSITIONS`. A move
that is not in the table raises :class:`InvalidTransitionError` naming the state and the event.
Rule 2: this file knows SNR, thresholds and voicing, nothing about audio or sockets.

Theory of operation, per frame:
- SILENCE: an SNR at or above the start threshold is a candidate (``ABOVE_START``). So is
  a strongly voiced frame (periodicity >= ``voiced_start``) above the stop threshold: a
  quiet caller's first vowel often peaks a few dB short of the start threshold, and a
  noise burst is rarely that periodic. The gate turns this off while the sound is
  music-like, since held notes are periodic too.
- MAYBE_SPEECH: the candidate is confirmed (``CONFIRMED``) once ``confirm_frames`` of its
  frames have been above the stop threshold with at least one voiced frame (and the
  optional second stage agrees). Up to ``rise_frames`` frames just before it opened that
  were above the stop threshold count too: a soft syllable climbs through the stop
  threshold first, and a short one must not fall back for want of a frame. It falls back
  (``REJECTED``) when the SNR stays below the stop threshold for more than
  ``candidate_dip_frames`` frames, or when
  ``max_candidate_frames`` pass without voicing: a loud but unvoiced burst (a door, a
  horn's attack, wind) is not a talker.
- Any state: when the room changes under the gate (music starts), ``recheck`` drops a
  candidate or speech back to SILENCE (``RECHECK``) so it must qualify again under the new
  thresholds. A caller who really is talking re-qualifies within a few frames, and the
  pre-roll covers the gap; music that had opened the gate does not.
- SPEECH: lasts until the SNR has stayed below the stop threshold for ``hangover_frames``
  frames (``HANGOVER_DONE``). Those frames are still sent, so word ends are not dropped.
  Sound that stays above the stop threshold but has had no voiced frame for
  ``max_unvoiced_frames`` counts as below it: a car passing right after the caller's
  sentence must not keep the gate open. Talkers voice a syllable every ~250 ms, within
  the unvoiced limit plus the hangover (160 + 80 ms by default). So does a frame the gate
  marks ``distant``: far below the caller's own level.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from callgate.audio.compiled import kernel
from callgate.audio.decision import MAYBE_SPEECH, SILENCE, SPEECH, GateState


class GateEvent(enum.Enum):
    """What can happen to the gate on a frame."""

    ABOVE_START = "above_start"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    HANGOVER_DONE = "hangover_done"
    RECHECK = "recheck"


TRANSITIONS: dict[tuple[GateState, GateEvent], GateState] = {
    (SILENCE, GateEvent.ABOVE_START): MAYBE_SPEECH,
    (MAYBE_SPEECH, GateEvent.CONFIRMED): SPEECH,
    (MAYBE_SPEECH, GateEvent.REJECTED): SILENCE,
    (SPEECH, GateEvent.HANGOVER_DONE): SILENCE,
    (MAYBE_SPEECH, GateEvent.RECHECK): SILENCE,
    (SPEECH, GateEvent.RECHECK): SILENCE,
}
"""Every allowed move: (state, event) -> next state."""


class InvalidTransitionError(RuntimeError):
    """A bug in the gate: an event fired in a state where the table does not allow it."""


def next_state(state: GateState, event: GateEvent) -> GateState:
    """Look the move up in :data:`TRANSITIONS`, or raise :class:`InvalidTransitionError`."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransitionError(
            f"can't handle event {event.value} in state {state.value}"
        ) from None


@dataclass(frozen=True, slots=True)
class StateMachineOptions:
    """Timing of the state machine, in frames."""

    confirm_frames: int = 3
    """Frames at or above the start threshold needed to confirm speech."""
    hangover_frames: int = 4
    """Frames below the stop threshold before SPEECH ends; they are still sent."""
    candidate_dip_frames: int = 2
    """Frames a candidate may dip below the stop threshold (between two syllables of a
    quiet talker) before it is rejected."""
    max_candidate_frames: int = 12
    """Longest a candidate may wait for a voiced frame before it is rejected."""
    min_voicing: float = 0.45
    """Periodicity (0..1) a frame needs to count as voiced; 0 disables the voicing check."""
    voiced_start: float = 0.7
    """Periodicity that lets a frame between the stop and start thresholds open a candidate
    (0 = only the start threshold opens one)."""
    max_unvoiced_frames: int = 8
    """Frames of SPEECH without a voiced frame after which loud sound no longer holds it.
    Was 15; 8, with the faster steady rule of the noise floor, cut the street noise that
    held the gate open after a sentence (street F1 0.797 -> 0.831, gate benchmark
    2026-11-25)."""
    word_end_frames: int = 0
    """Frames after the caller's last voiced, near frame during which a distant frame
    still holds SPEECH: a word's quiet end ("-ing", "-en") falls far below the vowels
    before it and must not be cut as another talker. 0: no such grace."""
    rise_frames: int = 1
    """Frames just before a candidate opened, above the stop threshold, that count towards
    its confirmation: a soft syllable climbs through the stop threshold before it crosses
    the start one, and a short first syllable must not fall back for want of one frame."""

    def __post_init__(self) -> None:
        if self.confirm_frames < 1:
            raise ValueError(f"confirm_frames must be >= 1, got {self.confirm_frames}")
        if self.hangover_frames < 0:
            raise ValueError(f"hangover_frames must be >= 0, got {self.hangover_frames}")
        if self.candidate_dip_frames < 0:
            raise ValueError(f"candidate_dip_frames must be >= 0, got {self.candidate_dip_frames}")
        if self.max_candidate_frames < self.confirm_frames:
            raise ValueError("max_candidate_frames must be >= confirm_frames")
        if self.max_unvoiced_frames < 1:
            raise ValueError(f"max_unvoiced_frames must be >= 1, got {self.max_unvoiced_frames}")
        if not 0 <= self.voiced_start < 1:
            raise ValueError(f"voiced_start must be in [0, 1), got {self.voiced_start}")
        if self.word_end_frames < 0:
            raise ValueError(f"word_end_frames must be >= 0, got {self.word_end_frames}")
        if self.rise_frames < 0:
            raise ValueError(f"rise_frames must be >= 0, got {self.rise_frames}")
        if not 0 <= self.min_voicing < 1:
            raise ValueError(f"min_voicing must be in [0, 1), got {self.min_voicing}")


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one frame: the state after it, the event fired (if any), and why."""

    state: GateState
    event: GateEvent | None
    reason: str
    in_hangover: bool = False
    voiced_candidate: bool = False
    """For a candidate: a voiced frame has been seen in it."""


Confirmer = Callable[[], bool]
"""Second-stage check run once per candidate that passes the DSP rules."""


class SpeechStateMachine:
    """Hysteresis over SNR, one frame at a time. Pure: no audio, no clock.

    The counters live in an int array and each frame is one call of :func:`machine_step`,
    a numba kernel, so that a compiled gate step can run the very same rules.
    """

    def __init__(self, options: StateMachineOptions | None = None) -> None:
        self.options = options or StateMachineOptions()
        o = self.options
        self.params = np.array(
            [
                o.confirm_frames,
                o.hangover_frames,
                o.candidate_dip_frames,
                o.max_candidate_frames,
                o.min_voicing,
                o.voiced_start,
                o.max_unvoiced_frames,
                o.word_end_frames,
                o.rise_frames,
            ],
            dtype=np.float64,
        )
        self.counters = np.zeros(_COUNTERS, dtype=np.int64)
        """State, candidate frames, loud, dip, voiced, below, unvoiced, since a near
        voice, rise: see :func:`machine_step`."""
        self.reset()

    def reset(self) -> None:
        """Back to SILENCE with no history."""
        self.counters[:] = 0

    @property
    def state(self) -> GateState:
        """The current state."""
        return STATES[machine_state(self.counters)]

    @property
    def candidate_frames(self) -> int:
        """Frames the current candidate has lasted."""
        return int(self.counters[_CANDIDATE])

    def recheck(self) -> Step | None:
        """Make the current candidate or speech qualify again; ``None`` if already silent."""
        if self.state is SILENCE:
            return None
        return machine_outcome(*machine_recheck(self.counters))

    def step(
        self,
        snr_db: float,
        start_db: float,
        stop_db: float,
        voicing: float,
        confirmer: Confirmer | None = None,
        *,
        distant: bool = False,
        voiced_start: bool = True,
        near: bool = True,
        rise: bool = True,
    ) -> Step:
        """Advance by one frame. ``confirmer`` is asked only when DSP rules would confirm.

        ``distant`` marks a frame far quieter than the caller's own voice (a TV across the
        room); during SPEECH it counts as below the stop threshold. ``voiced_start`` allows
        strongly voiced frames to open a candidate below the start threshold. ``near`` says
        the candidate so far is loud enough to be the caller; until it is, the candidate
        waits (a sentence may start softly) and times out like an unvoiced one. ``rise``
        lets the frames just before a new candidate count towards it (``rise_frames``).
        """
        args = (snr_db, start_db, stop_db, voicing, distant, voiced_start, near, rise)
        if confirmer is None:
            return machine_outcome(*machine_step(self.counters, self.params, *args, NO_CONFIRMER))
        before = self.counters.copy()
        outcome = machine_step(self.counters, self.params, *args, ASK_CONFIRMER)
        if outcome[2] == ASKING:
            # The DSP rules would confirm: ask, then take the frame again with the answer.
            self.counters[:] = before
            answer = CONFIRMED_BY_CONFIRMER if confirmer() else REJECTED_BY_CONFIRMER
            outcome = machine_step(self.counters, self.params, *args, answer)
        return machine_outcome(*outcome)


STATES: tuple[GateState, ...] = (SILENCE, MAYBE_SPEECH, SPEECH)
"""The states by their number in the kernels."""
EVENTS: tuple[GateEvent | None, ...] = (None, *GateEvent)
"""The events by their number in the kernels (0: none)."""
REASONS: tuple[str, ...] = (
    "below start",
    "candidate",
    "candidate dip",
    "candidate fell below stop",
    "onset",
    "confirmer rejected candidate",
    "candidate too distant",
    "no voicing in candidate",
    "speech",
    "hangover",
    "end of speech",
    "re-check: music started",
    "asking the confirmer",
)
"""Why a step went as it did, by its number in the kernels."""
(
    _BELOW_START,
    _CANDIDATE_REASON,
    _CANDIDATE_DIP,
    _FELL_BELOW_STOP,
    _ONSET,
    _CONFIRMER_REJECTED,
    _TOO_DISTANT,
    _NO_VOICING,
    _SPEECH_REASON,
    _HANGOVER,
    _END_OF_SPEECH,
    _RECHECKED,
    ASKING,
) = range(len(REASONS))
NO_CONFIRMER, ASK_CONFIRMER, CONFIRMED_BY_CONFIRMER, REJECTED_BY_CONFIRMER = range(4)
"""What ``machine_step`` knows of the second stage: there is none; there is one, ask it
(the step stops with ``ASKING`` when the DSP rules would confirm); it said yes; it said no."""
ON_ABOVE_START, ON_CONFIRMED, ON_REJECTED, ON_HANGOVER_DONE, ON_RECHECK = range(1, 6)
"""The events by number, as ``EVENTS`` lists them."""
IN_SILENCE, IN_MAYBE, IN_SPEECH = range(3)
"""The states by number, as ``STATES`` lists them."""
_TABLE = np.full((len(STATES), len(EVENTS)), -1, dtype=np.int64)
for (_source, _fired), _target in TRANSITIONS.items():
    _TABLE[STATES.index(_source), EVENTS.index(_fired)] = STATES.index(_target)
_COUNTERS = 9
_STATE, _CANDIDATE, _LOUD, _DIP, _VOICED, _BELOW, _UNVOICED, _SINCE_NEAR, _RISE = range(9)
(
    _CONFIRM_FRAMES,
    _HANGOVER_FRAMES,
    _DIP_FRAMES,
    _MAX_CANDIDATE,
    _MIN_VOICING,
    _VOICED_START,
    _MAX_UNVOICED,
    _WORD_END,
    _RISE_FRAMES,
) = range(9)


def machine_outcome(state: int, event: int, reason: int, in_hangover: bool, voiced: bool) -> Step:
    """The :class:`Step` a kernel's outcome describes; raises InvalidTransitionError for a
    move the table forbids."""
    if state < 0:
        fired = EVENTS[event]
        name = fired.value if fired is not None else "none"
        raise InvalidTransitionError(
            f"can't handle event {name} in state {STATES[-state - 1].value}"
        )
    return Step(STATES[state], EVENTS[event], REASONS[reason], in_hangover, voiced)


Outcome = tuple[int, int, int, bool, bool]
"""(state, event, reason, in hangover, voiced candidate), by number; a negative state
-(s + 1) means the event is not allowed in state s (a bug: see TRANSITIONS)."""


@kernel
def _fire(counters: npt.NDArray[np.int64], event: int) -> bool:
    """Move by the table; False (state unchanged) when the move is not in it."""
    target = _TABLE[counters[_STATE], event]
    if target < 0:
        return False
    counters[_STATE] = target
    return True


@kernel
def _event(
    counters: npt.NDArray[np.int64], event: int, reason: int, in_hangover: bool, voiced: bool
) -> Outcome:
    """Fire ``event`` and describe the step, or report that the table forbids it."""
    if not _fire(counters, event):
        return -counters[_STATE] - 1, event, reason, in_hangover, voiced
    return counters[_STATE], event, reason, in_hangover, voiced


@kernel
def machine_state(counters: npt.NDArray[np.int64]) -> int:
    """The current state's number (``STATES``)."""
    return int(counters[_STATE])


@kernel
def machine_recheck(counters: npt.NDArray[np.int64]) -> Outcome:
    """Drop a candidate or speech back to SILENCE, to qualify again (music started)."""
    return _event(counters, ON_RECHECK, _RECHECKED, False, False)


@kernel
def machine_step(  # noqa: PLR0917 (the rules, as in the module doc)
    counters: npt.NDArray[np.int64],
    params: npt.NDArray[np.float64],
    snr: float,
    start: float,
    stop: float,
    voicing: float,
    distant: bool,
    voiced_start: bool,
    near: bool,
    rise: bool,
    confirmer: int,
) -> Outcome:
    """One frame of :meth:`SpeechStateMachine.step`, by the rules in the module doc."""
    c, p = counters, params
    if c[_STATE] == IN_SILENCE:
        vowel = (
            voiced_start and p[_VOICED_START] > 0 and snr >= stop and voicing >= p[_VOICED_START]
        )
        if snr < start and not vowel:
            c[_RISE] = c[_RISE] + 1 if snr >= stop else 0
            return IN_SILENCE, 0, _BELOW_START, False, False
        c[_CANDIDATE] = 0
        c[_LOUD] = min(c[_RISE], int(p[_RISE_FRAMES])) if rise else 0
        c[_RISE] = 0
        c[_DIP] = 0
        c[_VOICED] = 0
        if not _fire(c, ON_ABOVE_START):
            return -c[_STATE] - 1, ON_ABOVE_START, _CANDIDATE_REASON, False, False
        return _candidate(c, p, snr, stop, voicing, near, True, confirmer)
    if c[_STATE] == IN_MAYBE:
        return _candidate(c, p, snr, stop, voicing, near, False, confirmer)
    voiced = p[_MIN_VOICING] == 0 or voicing >= p[_MIN_VOICING]
    c[_UNVOICED] = 0 if voiced else c[_UNVOICED] + 1
    c[_SINCE_NEAR] = 0 if voiced and not distant else c[_SINCE_NEAR] + 1
    word_end = c[_SINCE_NEAR] <= p[_WORD_END]
    if snr >= stop and (not distant or word_end) and c[_UNVOICED] <= p[_MAX_UNVOICED]:
        c[_BELOW] = 0
        return IN_SPEECH, 0, _SPEECH_REASON, False, False
    c[_BELOW] += 1
    if c[_BELOW] > p[_HANGOVER_FRAMES]:
        return _event(c, ON_HANGOVER_DONE, _END_OF_SPEECH, False, False)
    return IN_SPEECH, 0, _HANGOVER, True, False


@kernel
def _candidate(  # noqa: PLR0917
    c: npt.NDArray[np.int64],
    p: npt.NDArray[np.float64],
    snr: float,
    stop: float,
    voicing: float,
    near: bool,
    fresh: bool,
    confirmer: int,
) -> Outcome:
    c[_CANDIDATE] += 1
    if snr < stop and not fresh:
        c[_DIP] += 1
        if c[_DIP] > p[_DIP_FRAMES]:
            return _event(c, ON_REJECTED, _FELL_BELOW_STOP, False, c[_VOICED] == 1)
        if c[_CANDIDATE] >= p[_MAX_CANDIDATE]:
            return _timeout(c)
        return IN_MAYBE, 0, _CANDIDATE_DIP, False, c[_VOICED] == 1
    c[_DIP] = 0
    c[_LOUD] += 1
    if p[_MIN_VOICING] == 0 or voicing >= p[_MIN_VOICING]:
        c[_VOICED] = 1
    event = ON_ABOVE_START if fresh else 0
    if c[_LOUD] >= p[_CONFIRM_FRAMES] and c[_VOICED] == 1 and near:
        if confirmer == ASK_CONFIRMER:
            return c[_STATE], event, ASKING, False, True
        if confirmer != REJECTED_BY_CONFIRMER:
            c[_BELOW] = 0
            c[_UNVOICED] = 0
            c[_SINCE_NEAR] = 0
            return _event(c, ON_CONFIRMED, _ONSET, False, False)
        return _event(c, ON_REJECTED, _CONFIRMER_REJECTED, False, True)
    if c[_CANDIDATE] >= p[_MAX_CANDIDATE]:
        return _timeout(c)
    return IN_MAYBE, event, _CANDIDATE_REASON, False, c[_VOICED] == 1


@kernel
def _timeout(c: npt.NDArray[np.int64]) -> Outcome:
    if c[_VOICED] == 1:
        return _event(c, ON_REJECTED, _TOO_DISTANT, False, True)
    return _event(c, ON_REJECTED, _NO_VOICING, False, False)
