"""The speech gate: decides every frame whether the caller is talking, and what to send.

Per frame (``frame_ms`` of 8 kHz audio): decode, band-filter, measure the level before
any gain, update the noise floor, compute SNR, detect music (and, under music, the SNR
between its held notes), step the state machine, then release pre-roll (reaching further
back where the signal shows the speech began earlier), speech and hangover frames through
the AGC. Nothing is sent in SILENCE.

Calling protocol: feed audio with :meth:`SpeechGate.process_ulaw` or
:meth:`SpeechGate.process_pcm16` in chunks of any size. Each call returns one
:class:`FrameDecision` per frame completed by that chunk; send ``decision.audio`` for each
(it is empty when nothing is to be sent). Time is counted in samples fed, never read from a
clock, so the same audio always gives the same decisions however it was chunked.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np
import numpy.typing as npt

from callgate.audio.agc import SpeechAgc
from callgate.audio.bandpass import SpeechBandFilter
from callgate.audio.codec import SAMPLE_RATE_HZ, ulaw_to_pcm16
from callgate.audio.confirmer import CandidateConfirmer, make_confirmer
from callgate.audio.decision import SILENCE, SPEECH, FrameDecision, GateState
from callgate.audio.framing import Reframer
from callgate.audio.gate_options import GateOptions, Thresholds
from callgate.audio.level import frame_rms, rms_to_dbfs
from callgate.audio.listener import SpeechListener
from callgate.audio.music import MusicDetector
from callgate.audio.noise_floor import NoiseFloorTracker
from callgate.audio.preroll import OnsetRule, PrerollBuffer
from callgate.audio.state_machine import GateEvent, SpeechStateMachine, machine_recheck
from callgate.audio.talker import TalkerLevel
from callgate.audio.voicing import VoicingAnalyzer

_EMPTY = np.zeros(0, dtype=np.int16)


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
        self._onset_rule = OnsetRule(o.onset_snr_db, o.onset_dip_frames, o.onset_gap_frames)
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
        self.reset()

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
        self._history = np.zeros(self._window, dtype=np.float64)
        self._levels: deque[float] = deque(maxlen=self._held_tone_frames)
        self._frames = 0
        self._candidate_peak = -200.0
        self._attempt_start = 0
        self._chain_until = -1
        self._last_speech = -(10**9)
        self._candidate_open = 0
        self.frames_sent = 0
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
        return [self._process_frame(frame) for frame in self._reframer.push(pcm)]

    def _thresholds(self) -> Thresholds:
        base = self.options.music if self._music.music else self.options.normal
        if self.start_boost_db == 0.0:
            return base
        return Thresholds(base.start_db + self.start_boost_db, base.stop_db)

    def _process_frame(self, frame: npt.NDArray[np.int16]) -> FrameDecision:
        index = self._frames
        self._frames += 1
        # int16 * 2**-15 in one step: exactly astype(float64) / 32768.0, one call fewer.
        filtered = self._filter.process(np.multiply(frame, 1.0 / 32768.0))
        self._history = np.concatenate((self._history[filtered.size :], filtered))
        level = rms_to_dbfs(frame_rms(filtered))
        noise = self._floor.floor_dbfs
        level_snr = level - noise if self._floor.frames_seen else 0.0
        thresholds = self._thresholds()
        # Music is judged on this frame too, but its thresholds apply from the next one.
        music_was_on = self._music.music
        likelihood = self._music.likelihood
        music = self._music.update(self._history, level)
        residual_snr = self._residual_snr(music_was_on)
        # The SNR the thresholds judge: the level's, or the music-removed one when larger.
        snr = level_snr if residual_snr is None else max(level_snr, residual_snr)
        # Periodicity costs an FFT: only frames that could matter pay for it.
        voicing = self._voicing.periodicity(self._history) if snr >= thresholds.stop_db else 0.0
        self._levels.append(level)
        if (
            self._music.last_held_share >= self.options.held_tone_share
            and max(self._levels) - min(self._levels) <= self.options.held_tone_spread_db
        ):
            # A held tone (a horn) is periodic but is not a voice: voices glide and pulse.
            voicing = 0.0
        if self._confirmer is not None:
            self._confirmer.observe(frame)
        if self._listener is not None:
            snr, voicing = self._listened(frame, music_was_on, snr, voicing, thresholds)
        was_silent = self._machine.state is SILENCE
        distant = not self._talker.holds(level)
        self._candidate_peak = level if was_silent else max(self._candidate_peak, level)
        # The agent's echo is voiced too: under the echo guard only the start threshold opens.
        voiced_start = (
            self.start_boost_db == 0.0
            and likelihood < self._tonal_limit
            and not self._floor.calibrating
        )
        step = self._machine.step(
            snr,
            thresholds.start_db,
            thresholds.stop_db,
            voicing,
            # The neural second stage, asked once per candidate that passed every DSP rule.
            self._confirmer.confirm if self._confirmer is not None else None,
            distant=distant,
            near=self._near(index),
            voiced_start=voiced_start,
            # Not while the floor is still being calibrated: the first frames' SNR is a guess.
            rise=voiced_start and not self._floor.calibrating,
        )
        if step.event is GateEvent.ABOVE_START and was_silent:
            self._candidate_open = index
            if index > self._chain_until:
                self._attempt_start = index
        if step.event is GateEvent.REJECTED and not step.voiced_candidate:
            # Unvoiced so far (a long "s" or "f"): the vowel may still come and confirm it.
            self._chain_until = index + self._attempt_gap_frames
        # Confirmed speech never teaches the floor; candidates that came to nothing may.
        self._floor.update(level, speech=step.state is SPEECH, music=music_was_on)
        residual = self._music.last_residual_db
        if self.options.music_residual and residual is not None:
            self._residual_floor.update(residual, speech=step.state is SPEECH, music=music_was_on)
        if music and not music_was_on:
            self._floor.rebase()
            step = self._machine.recheck() or step
        self._talker.update(
            level, voiced_speech=step.state is SPEECH and voicing >= self._min_voicing
        )
        if step.state is SPEECH:
            self._last_speech = index

        audio = _EMPTY
        preroll = 0
        lookback = 0
        gain = 0.0
        sent = step.state is SPEECH
        if step.event is GateEvent.CONFIRMED:
            # Seed AGC from the loudest candidate frame, then release pre-roll and this frame.
            self._agc.start_utterance(self._candidate_peak)
            attempt = min(index - self._attempt_start, self._max_attempt_frames)
            reach = self._onset_reach(attempt)
            held = self._preroll.drain(reach + attempt)
            preroll = len(held)
            lookback = max(0, min(reach, preroll - attempt) - self.options.preroll_frames)
            chunk = np.concatenate([*held, frame]) if held else frame
            gained, gain = self._agc.apply(chunk, level, speech=True)
            audio = gained
        elif step.state is SPEECH:
            audio, gain = self._agc.apply(frame, level, speech=not step.in_hangover)
        else:
            # For the onset lookback: a syllable is voiced and above stop; one far below the
            # caller's level is another talker (a TV), and the lookback stops there.
            syllable = snr >= thresholds.stop_db and voicing >= self._min_voicing
            caller = self._talker.accepts(level)
            self._preroll.push(
                frame, snr, voiced=syllable and caller, foreign=syllable and not caller
            )
        self.frames_sent += (1 + preroll) if sent else 0
        return FrameDecision(
            index=index,
            t_ms=index * self.options.frame_ms,
            state=step.state,
            sent=sent,
            preroll_frames=preroll,
            snr_db=level_snr,
            level_dbfs=level,
            noise_dbfs=noise,
            music=music,
            gain_db=gain if sent else 0.0,
            start_threshold_db=thresholds.start_db,
            stop_threshold_db=thresholds.stop_db,
            voicing=voicing,
            reason=step.reason,
            audio=audio,
            lookback_frames=lookback,
            residual_snr_db=math.nan if residual_snr is None else residual_snr,
        )

    def _near(self, index: int) -> bool:
        """Could the current candidate be the caller, by its loudest frame so far?"""
        if self._talker.accepts(self._candidate_peak):
            return True
        opened = index if self._machine.state is SILENCE else self._candidate_open
        return opened - self._last_speech <= self._continuation_frames and self._talker.continues(
            self._candidate_peak
        )

    def _listened(
        self,
        frame: npt.NDArray[np.int16],
        music_on: bool,
        snr: float,
        voicing: float,
        thresholds: Thresholds,
    ) -> tuple[float, float]:
        """SNR and voicing, raised where the listener hears speech starting."""
        assert self._listener is not None
        caller = self._talker.level_dbfs if self._talker.known else None
        loud = caller is None or caller - self._floor.floor_dbfs < self.options.listener_below_db
        # Not under the echo guard, so Silero does not even run while the agent talks: it
        # hears the agent's own voice coming back as speech too, and the guard is there so
        # that only a caller louder than that echo opens the gate.
        listen = (music_on or self.options.noise_listener) and loud and self.start_boost_db == 0
        self._frames_listened += listen
        probability = self._listener.hear(frame, listen=listen)
        # Only to open and confirm: Silero's probability trails off after the words, and
        # holding speech on it would send the music after them.
        if (
            probability is None
            or probability < self.options.listener_threshold
            or self._machine.state is SPEECH
        ):
            return snr, voicing
        return max(snr, thresholds.start_db), max(voicing, self._min_voicing)

    def _residual_snr(self, music_on: bool) -> float | None:
        """The music-removed SNR, when it may open or confirm a candidate; else ``None``.

        Only outside SPEECH: holding speech stays with the level SNR, or every note change
        after the sentence would keep the gate open.
        """
        residual = self._music.last_residual_db
        if (
            not self.options.music_residual
            or not music_on
            or residual is None
            or not self._residual_floor.frames_seen
            or self._machine.state is SPEECH
        ):
            return None
        return residual - self._residual_floor.floor_dbfs

    def _onset_reach(self, attempt: int) -> int:
        """Frames to send from before the attempt: the pre-roll, or more where the evidence
        of speech (SNR at or above ``onset_snr_db``) runs back further, up to the lookback."""
        o = self.options
        preroll = o.preroll_frames
        limit = o.lookback_frames
        if limit <= preroll:
            return preroll
        run = self._preroll.evidence_run(attempt, self._onset_rule, limit)
        return max(preroll, min(limit, run + self._onset_margin))


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
    # Only when music starts: the floor's rebase and the machine's re-check.
    gate._floor.rebase()
    machine_recheck(np.array([2, 0, 0, 0, 0, 0, 0, 0, 0], dtype=np.int64))
