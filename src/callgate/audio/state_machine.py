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
    """Hysteresis over SNR, one frame at a time. Pure: no audio, no clock."""

    def __init__(self, options: StateMachineOptions | None = None) -> None:
        self.options = options or StateMachineOptions()
        self.reset()

    def reset(self) -> None:
        """Back to SILENCE with no history."""
        self.state = SILENCE
        self.candidate_frames = 0
        self._loud = 0
        self._dip = 0
        self._voiced = False
        self._below = 0
        self._unvoiced = 0
        self._since_near_voice = 0
        self._rise = 0

    def recheck(self) -> Step | None:
        """Make the current candidate or speech qualify again; ``None`` if already silent."""
        if self.state is SILENCE:
            return None
        self._fire(GateEvent.RECHECK)
        return Step(SILENCE, GateEvent.RECHECK, "re-check: music started")

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
        if self.state is SILENCE:
            vowel = (
                voiced_start
                and self.options.voiced_start > 0
                and snr_db >= stop_db
                and voicing >= self.options.voiced_start
            )
            if snr_db < start_db and not vowel:
                self._rise = self._rise + 1 if snr_db >= stop_db else 0
                return Step(SILENCE, None, "below start")
            self.candidate_frames = 0
            self._loud = min(self._rise, self.options.rise_frames) if rise else 0
            self._rise = 0
            self._dip = 0
            self._voiced = False
            self._fire(GateEvent.ABOVE_START)
            return self._candidate(snr_db, stop_db, voicing, confirmer, near, fresh=True)
        if self.state is MAYBE_SPEECH:
            return self._candidate(snr_db, stop_db, voicing, confirmer, near, fresh=False)
        voiced = self.options.min_voicing == 0 or voicing >= self.options.min_voicing
        self._unvoiced = 0 if voiced else self._unvoiced + 1
        self._since_near_voice = 0 if voiced and not distant else self._since_near_voice + 1
        word_end = self._since_near_voice <= self.options.word_end_frames
        if (
            snr_db >= stop_db
            and (not distant or word_end)
            and self._unvoiced <= self.options.max_unvoiced_frames
        ):
            self._below = 0
            return Step(SPEECH, None, "speech")
        self._below += 1
        if self._below > self.options.hangover_frames:
            self._fire(GateEvent.HANGOVER_DONE)
            return Step(SILENCE, GateEvent.HANGOVER_DONE, "end of speech")
        return Step(SPEECH, None, "hangover", in_hangover=True)

    def _candidate(
        self,
        snr_db: float,
        stop_db: float,
        voicing: float,
        confirmer: Confirmer | None,
        near: bool,
        *,
        fresh: bool,
    ) -> Step:
        o = self.options
        self.candidate_frames += 1
        if snr_db < stop_db and not fresh:
            self._dip += 1
            if self._dip > o.candidate_dip_frames:
                self._fire(GateEvent.REJECTED)
                return Step(
                    SILENCE,
                    GateEvent.REJECTED,
                    "candidate fell below stop",
                    voiced_candidate=self._voiced,
                )
            return self._candidate_timeout() or Step(
                MAYBE_SPEECH, None, "candidate dip", voiced_candidate=self._voiced
            )
        self._dip = 0
        self._loud += 1
        self._voiced = self._voiced or o.min_voicing == 0 or voicing >= o.min_voicing
        event = GateEvent.ABOVE_START if fresh else None
        if self._loud >= o.confirm_frames and self._voiced and near:
            if confirmer is None or confirmer():
                self._below = 0
                self._unvoiced = 0
                self._since_near_voice = 0
                self._fire(GateEvent.CONFIRMED)
                return Step(SPEECH, GateEvent.CONFIRMED, "onset")
            self._fire(GateEvent.REJECTED)
            return Step(
                SILENCE, GateEvent.REJECTED, "confirmer rejected candidate", voiced_candidate=True
            )
        return self._candidate_timeout() or Step(
            MAYBE_SPEECH, event, "candidate", voiced_candidate=self._voiced
        )

    def _candidate_timeout(self) -> Step | None:
        if self.candidate_frames < self.options.max_candidate_frames:
            return None
        self._fire(GateEvent.REJECTED)
        if self._voiced:
            return Step(SILENCE, GateEvent.REJECTED, "candidate too distant", voiced_candidate=True)
        return Step(SILENCE, GateEvent.REJECTED, "no voicing in candidate")

    def _fire(self, event: GateEvent) -> None:
        self.state = next_state(self.state, event)
