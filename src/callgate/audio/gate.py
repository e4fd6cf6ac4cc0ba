"""The speech gate: decides every frame whether the caller is talking, and what to send.

Per frame (``frame_ms`` of 8 kHz audio): decode, band-filter, measure the level before
any gain, update the noise floor, compute SNR, detect music (and, under music, the SNR
between its held notes), step the state machine, then release pre-roll (reaching further
back where the signal shows the speech began earlier), speech and hangover frames through
the AGC. Nothing is sent in SILENCE. The stages keep their state in arrays, and the
frame runs through them as one compiled step (``gate_step``); this class holds the stages,
builds the decision, and asks the optional listener and confirmer, which run in Python.

Calling protocol: feed audio with :meth:`SpeechGate.process_ulaw` or
:meth:`SpeechGate.process_pcm16` in chunks of any size. Each call returns one
:class:`FrameDecision` per frame completed by that chunk; send ``decision.audio`` for each
(it is empty when nothing is to be sent). Time is counted in samples fed, never read from a
clock, so the same audio always gives the same decisions however it was chunked.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from callgate.audio import gate_step
from callgate.audio.agc import SpeechAgc
from callgate.audio.bandpass import SpeechBandFilter
from callgate.audio.codec import SAMPLE_RATE_HZ, ulaw_to_pcm16
from callgate.audio.confirmer import CandidateConfirmer, make_confirmer
from callgate.audio.decision import FrameDecision, GateState
from callgate.audio.framing import Reframer
from callgate.audio.gate_options import GateOptions
from callgate.audio.gate_step import gate_analyse, gate_decide, gate_frame
from callgate.audio.listener import SpeechListener
from callgate.audio.music import MusicDetector
from callgate.audio.noise_floor import NoiseFloorTracker
from callgate.audio.preroll import PrerollBuffer
from callgate.audio.state_machine import (
    ASK_CONFIRMER,
    ASKING,
    CONFIRMED_BY_CONFIRMER,
    IN_SPEECH,
    REASONS,
    REJECTED_BY_CONFIRMER,
    STATES,
    SpeechStateMachine,
    StateMachineOptions,
    machine_outcome,
)
from callgate.audio.talker import TalkerLevel
from callgate.audio.voicing import VoicingAnalyzer

_EMPTY = np.zeros(0, dtype=np.int16)
# The step kernels, called with their arrays spread from the tuples ``_arrays_for`` builds.
_analyse: Callable[..., gate_step.Analysis] = gate_analyse
_decide: Callable[..., gate_step.Decision] = gate_decide
_frame: Callable[..., tuple[gate_step.Analysis, gate_step.Decision]] = gate_frame
FRAME_SAMPLES = 160


class SpeechGate:
    """The noise-robust speech gate for one call. Not thread-safe; one instance per call."""

    def __init__(self, options: GateOptions | None = None) -> None:
        self.options = options or GateOptions()
        o = self.options
        self._frame_samples = o.frame_samples
        self._reframer = Reframer(self._frame_samples)
        self._filter = SpeechBandFilter(o.bandpass)
        # Voicing and music look at two frames (40 ms at 20 ms): enough for a 70 Hz period.
        self._window = max(2 * self._frame_samples, 320)
        self._voicing = VoicingAnalyzer(self._window)
        # A new note counts between the notes for fewer analyses than a candidate needs to
        # confirm, so note changes alone cannot open the gate (80 ms let hold music in).
        self._music = MusicDetector(
            self._window,
            o.music_detector,
            residual_held_frames=o.machine.confirm_frames if o.music_residual else 0,
        )
        self._floor = NoiseFloorTracker(o.noise)
        self._residual_floor = NoiseFloorTracker(o.noise)
        self._machine = SpeechStateMachine(o.machine)
        self._attempt_gap_frames = o.attempt_gap_ms // o.frame_ms
        self._continuation_frames = o.continuation_ms // o.frame_ms
        self._max_attempt_frames = max(o.max_attempt_ms // o.frame_ms, 1)
        # One frame more than the evidence: a word's first samples rise inside that frame.
        self._onset_margin = 1
        self._preroll = PrerollBuffer(
            o.lookback_frames + self._max_attempt_frames, self._frame_samples
        )
        self._agc = SpeechAgc(o.agc)
        self._talker = TalkerLevel(o.talker)
        self._min_voicing = o.machine.min_voicing
        self._held_tone_frames = max(1, o.music_detector.held_ms // o.frame_ms)
        # Held tones are periodic too: no voiced starts while sound is even half music-like.
        self._tonal_limit = o.music_detector.held_share_on / 2
        listens = o.music_listener or o.noise_listener
        self._listener = SpeechListener() if listens else None
        self._confirmer: CandidateConfirmer | None = make_confirmer(
            o.confirmer, o.confirmer_threshold, self._frame_samples
        )
        self._settings = self._step_settings()
        self._filter_in_step = bool(self._settings[gate_step.USE_FILTER_KERNEL])
        self._frame_ms = o.frame_ms
        self._state = np.zeros(gate_step.STATE)
        self._history = np.zeros(self._window, dtype=np.float64)
        self._filtered = np.zeros(self._frame_samples)
        self._levels = np.zeros(self._held_tone_frames)
        self._out = np.zeros((self._preroll.max_frames + 1) * self._frame_samples, np.int16)
        self.reset()
        # The stages' arrays, by the step kernels' parameter names (gate_step).
        f, m, v = self._filter, self._music, self._voicing
        floor, residual = self._floor, self._residual_floor
        talker, preroll, agc = self._talker, self._preroll, self._agc
        float_owners: dict[str, tuple[object, str]] = {
            "filtered": (self, "_filtered"),
            "b": (f, "_b_norm"),
            "a": (f, "_a_norm"),
            "zi": (f, "_zi_tf"),
            "history": (self, "_history"),
            "taper": (m, "_window"),
            "amplitude": (m, "_amplitude"),
            "power": (m, "_power"),
            "picked": (m, "_picked"),
            "scores": (m, "_scores"),
            "actives": (m, "_actives"),
            "music_counts": (m, "_counts"),
            "music_settings": (m, "_settings"),
            "lag_scale": (v, "_lag_scale"),
            "levels": (self, "_levels"),
            "floor": (floor, "state"),
            "floor_settings": (floor, "params"),
            "floor_recent": (floor, "recent"),
            "floor_calibration": (floor, "calibration"),
            "residual_floor": (residual, "state"),
            "residual_recent": (residual, "recent"),
            "residual_calibration": (residual, "calibration"),
            "machine_settings": (self._machine, "params"),
            "talker": (talker, "state"),
            "talker_settings": (talker, "params"),
            "preroll_snr": (preroll, "snr"),
            "agc": (agc, "state"),
            "agc_settings": (agc, "params"),
            "state": (self, "_state"),
            "settings": (self, "_settings"),
            "music_fft_in": (m, "_fft_in"),
            "voicing_fft_in": (v, "_fft_in"),
        }
        floats, bounds = _pack([float_owners[name] for name in gate_step.PACKED])
        arrays = {name: getattr(owner, attr) for name, (owner, attr) in float_owners.items()}
        arrays |= {
            "floats": floats,
            "bounds": bounds,
            "dilated": m._dilated_runs,
            "runs": m._runs,
            "counters": self._machine.counters,
            "preroll_frames": preroll.frames,
            "preroll_voiced": preroll.voiced,
            "preroll_counters": preroll.counters,
            "out": self._out,
        }
        self._frame_arrays = _arrays_for(gate_frame, arrays)
        # For a gate with a confirmer, which takes the frame in its two halves.
        self._analyse_arrays = _arrays_for(gate_analyse, arrays)
        self._decide_arrays = _arrays_for(gate_decide, arrays)

    def _step_settings(self) -> npt.NDArray[np.float64]:
        """The gate's own settings, as the step kernels read them (``gate_step``)."""
        o = self.options
        g = gate_step
        settings = np.zeros(g.SETTINGS)
        settings[g.NORMAL_START], settings[g.NORMAL_STOP] = o.normal.start_db, o.normal.stop_db
        settings[g.MUSIC_START], settings[g.MUSIC_STOP] = o.music.start_db, o.music.stop_db
        settings[g.HELD_TONE_SHARE] = o.held_tone_share
        settings[g.HELD_TONE_SPREAD] = o.held_tone_spread_db
        settings[g.MIN_VOICING] = self._min_voicing
        settings[g.MUSIC_RESIDUAL] = o.music_residual
        settings[g.LISTENER_THRESHOLD] = o.listener_threshold
        settings[g.TONAL_LIMIT] = self._tonal_limit
        settings[g.ATTEMPT_GAP] = self._attempt_gap_frames
        settings[g.CONTINUATION] = self._continuation_frames
        settings[g.MAX_ATTEMPT] = self._max_attempt_frames
        settings[g.PREROLL_FRAMES] = o.preroll_frames
        settings[g.LOOKBACK_FRAMES] = o.lookback_frames
        settings[g.ONSET_MARGIN] = self._onset_margin
        settings[g.ONSET_SNR] = o.onset_snr_db
        settings[g.ONSET_DIP] = o.onset_dip_frames
        settings[g.ONSET_GAP] = o.onset_gap_frames
        settings[g.VOICING_MIN_LAG] = self._voicing.min_lag
        settings[g.MUSIC_LOW] = self._music._band.start
        settings[g.USE_FILTER_KERNEL] = self._filter._compiled
        return settings

    @property
    def frame_samples(self) -> int:
        """Samples per analysis frame at 8 kHz."""
        return self._frame_samples

    @property
    def state(self) -> GateState:
        """The current state."""
        return self._machine.state

    @property
    def frames_seen(self) -> int:
        """Frames analysed since the start of the call."""
        return self._frames

    @property
    def frames_withheld(self) -> int:
        """Frames never sent: the audio the Realtime API did not bill."""
        return self._frames - self.frames_sent

    @property
    def frames_listened(self) -> int:
        """Frames the music or noise listener ran Silero on (about 120 us each)."""
        return self._frames_listened

    @property
    def noise_floor_dbfs(self) -> float:
        """The noise floor the next frame will be judged by."""
        return self._floor.floor_dbfs

    def reset(self) -> None:
        """Forget everything, as at the start of a new call."""
        self._reframer.reset()
        self._filter.reset()
        self._floor.reset()
        self._residual_floor.reset()
        self._machine.reset()
        self._preroll.clear()
        self._agc.reset()
        self._music.reset()
        self._talker.reset()
        self._history[:] = 0.0
        self._state[:] = 0.0
        self._state[gate_step.CANDIDATE_PEAK] = -200.0
        self._state[gate_step.CHAIN_UNTIL] = -1.0
        self._state[gate_step.LAST_SPEECH] = -(10.0**9)
        self._frames = 0
        self._frames_listened = 0
        self.start_boost_db = 0.0
        """Extra SNR the start threshold needs, set by the call while the agent speaks
        (echo guard): its own voice leaking back must not open the gate."""
        if self._confirmer is not None:
            self._confirmer.reset()
        if self._listener is not None:
            self._listener.reset()

    def process_ulaw(self, data: bytes) -> list[FrameDecision]:
        """Feed mu-law bytes (Twilio ``media`` payloads); one decision per completed frame."""
        return self.process_pcm16(ulaw_to_pcm16(data))

    def process_pcm16(self, samples: npt.ArrayLike) -> list[FrameDecision]:
        """Feed int16 samples at 8 kHz; one decision per completed frame."""
        pcm = np.asarray(samples, dtype=np.int16).reshape(-1)
        if pcm.size == self._frame_samples and not self._reframer.pending_samples:
            return [self._process_frame(pcm)]  # the live case: one 20 ms frame per chunk
        return [self._process_frame(frame) for frame in self._reframer.push(pcm)]

    @property
    def frames_sent(self) -> int:
        """Frames sent so far, pre-roll included."""
        return int(self._state[gate_step.FRAMES_SENT])

    def _process_frame(self, frame: npt.NDArray[np.int16]) -> FrameDecision:
        index = self._frames
        self._frames += 1
        boost = self.start_boost_db
        heard = self._heard(frame) if self._listener is not None else math.nan
        if not self._filter_in_step:
            # int16 * 2**-15 in one step: exactly astype(float64) / 32768.0.
            self._filtered[:] = self._filter.process(np.multiply(frame, 1.0 / 32768.0))
        if self._confirmer is None:
            analysis, decision = _frame(frame, index, boost, heard, *self._frame_arrays)
        else:
            # The neural second stage, asked once per candidate that passed every DSP rule.
            self._confirmer.observe(frame)
            analysis = _analyse(frame, *self._analyse_arrays, boost, heard)
            decision = _decide(frame, index, analysis, boost, *self._decide_arrays, ASK_CONFIRMER)
            if decision[2] == ASKING:
                said = (
                    CONFIRMED_BY_CONFIRMER if self._confirmer.confirm() else REJECTED_BY_CONFIRMER
                )
                decision = _decide(frame, index, analysis, boost, *self._decide_arrays, said)
        level, noise, level_snr, _, residual_snr, voicing, music, _, _, start, stop = analysis
        state, _, reason, _, _, preroll, lookback, gain, samples = decision
        if state < 0:
            machine_outcome(*decision[:5])  # raises: a move the transition table forbids
        sent = state == IN_SPEECH
        # Positional, in FrameDecision's field order: this runs every 20 ms of every call.
        return FrameDecision(
            index,
            index * self._frame_ms,
            STATES[state],
            sent,
            preroll,
            level_snr,
            level,
            noise,
            music,
            gain if sent else 0.0,
            start,
            stop,
            voicing,
            REASONS[reason],
            self._out[:samples].copy() if samples else _EMPTY,
            lookback,
            residual_snr,
        )

    def _heard(self, frame: npt.NDArray[np.int16]) -> float:
        """Silero's speech probability for the frame, or NaN where the listener does not
        listen: only under a background loud next to the caller (or before the caller is
        known), under music unless ``noise_listener``; never under the echo guard, since
        Silero hears the agent's own voice coming back as speech too."""
        assert self._listener is not None
        caller = self._talker.level_dbfs if self._talker.known else None
        loud = caller is None or caller - self._floor.floor_dbfs < self.options.listener_below_db
        listen = (
            (self._music.music or self.options.noise_listener) and loud and self.start_boost_db == 0
        )
        self._frames_listened += listen
        probability = self._listener.hear(frame, listen=listen)
        return math.nan if probability is None else probability


def compile_gate_kernels() -> None:
    """Compile the gate's numba kernels now, instead of on a call's first frames.

    On a new machine that takes a couple of seconds (later processes read numba's disk
    cache): the server does it at start-up, so that no caller's first words wait behind
    the compiler. A second of quiet noise, then a loud voiced sound, takes almost every
    kernel; the rest are called directly.
    """
    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE_HZ) / SAMPLE_RATE_HZ
    voiced = sum(np.sin(2 * np.pi * 150.0 * k * t) / k for k in range(1, 8))
    pcm = np.concatenate([rng.normal(0.0, 30.0, SAMPLE_RATE_HZ), 3000.0 * voiced])
    gate = SpeechGate()
    gate.process_pcm16(pcm.astype(np.int16))
    # The two halves a gate with a confirmer takes apart.
    frame = pcm[:FRAME_SAMPLES].astype(np.int16)
    analysis = _analyse(frame, *gate._analyse_arrays, 0.0, math.nan)
    _decide(frame, 0, analysis, 0.0, *gate._decide_arrays, ASK_CONFIRMER)
    # Only when music starts: the floor's rebase and the machine's re-check (of speech).
    gate._floor.rebase()
    machine = SpeechStateMachine(StateMachineOptions(confirm_frames=1))
    machine.step(30.0, 8.0, 5.0, 0.9)
    machine.recheck()


def _arrays_for(step: Any, arrays: dict[str, Any]) -> tuple[Any, ...]:
    """The arrays a step kernel takes, in the order of its parameters: the ones between
    its leading per-frame arguments and its trailing ones."""
    return tuple(arrays[name] for name in _parameters(step) if name in arrays)


@functools.cache
def _parameters(step: Any) -> tuple[str, ...]:
    return tuple(inspect.signature(step.py_func).parameters)


def _pack(
    owners: list[tuple[object, str]],
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
    """Move each named float array into one shared array, in order, and leave the owner a
    view of its slice (so the stages go on working on it); returns the shared array and
    the slices' bounds, as ``gate_step.gate_frame`` takes them (``gate_step.PACKED``)."""
    arrays = [getattr(owner, name) for owner, name in owners]
    bounds = np.zeros(len(arrays) + 1, dtype=np.int64)
    bounds[1:] = np.cumsum([array.size for array in arrays])
    floats = np.empty(int(bounds[-1]))
    for (owner, name), array, start, stop in zip(owners, arrays, bounds, bounds[1:], strict=False):
        view = floats[start:stop]
        view[:] = array
        setattr(owner, name, view)
    return floats, bounds
