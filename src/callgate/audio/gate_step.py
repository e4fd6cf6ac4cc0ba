"""The speech gate's frame, compiled: the stages' kernels run in one call per frame.

Each stage (band-pass, music, voicing, noise floors, state machine, talker, pre-roll, AGC)
keeps its state in arrays and steps through its own numba kernel; :class:`SpeechGate`
holds the stage objects. A frame through the stages one Python call at a time spent
most of its time in the calls. Here the gate's own rules, the ones that wire the stages
together (see ``gate.py``), run in two kernels over the stages' arrays:

- :func:`gate_analyse`: filter, level, music, the SNR the thresholds judge, voicing and
  the held-tone rule, and the listener's verdict (heard by the caller of the kernel,
  since Silero runs in Python);
- :func:`gate_decide`: the state machine, the candidate and attempt bookkeeping, the noise
  floors, the talker's level, the pre-roll and the AGC.

:func:`gate_frame` is both in one call, for a gate without a confirmer. With one, the
gate calls them apart: when the DSP rules would confirm, :func:`gate_decide` stops
before changing anything and says so (``ASKING``), the confirmer is asked in Python, and
the frame is decided again with its answer.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from callgate.audio.agc import agc_apply, agc_start
from callgate.audio.bandpass import transfer_filter
from callgate.audio.compiled import kernel
from callgate.audio.level import frame_rms, rms_to_dbfs
from callgate.audio.music import (
    music_held_share,
    music_likelihood,
    music_on,
    music_residual_db,
    music_update,
)
from callgate.audio.noise_floor import (
    floor_calibrating,
    floor_heard,
    floor_level,
    floor_rebase,
    floor_update,
)
from callgate.audio.preroll import preroll_evidence, preroll_push, preroll_take
from callgate.audio.state_machine import (
    ASKING,
    IN_SILENCE,
    IN_SPEECH,
    NO_CONFIRMER,
    ON_ABOVE_START,
    ON_CONFIRMED,
    ON_REJECTED,
    machine_recheck,
    machine_state,
    machine_step,
)
from callgate.audio.talker import (
    CONTINUE_MARGIN,
    HOLD_MARGIN,
    MARGIN,
    talker_update,
    talker_within,
)
from callgate.audio.voicing import voicing_periodicity

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Samples = npt.NDArray[np.int16]

# The gate's settings array (built by SpeechGate) ...
(
    NORMAL_START,
    NORMAL_STOP,
    MUSIC_START,
    MUSIC_STOP,
    HELD_TONE_SHARE,
    HELD_TONE_SPREAD,
    MIN_VOICING,
    MUSIC_RESIDUAL,
    LISTENER_THRESHOLD,
    TONAL_LIMIT,
    ATTEMPT_GAP,
    CONTINUATION,
    MAX_ATTEMPT,
    PREROLL_FRAMES,
    LOOKBACK_FRAMES,
    ONSET_MARGIN,
    ONSET_SNR,
    ONSET_DIP,
    ONSET_GAP,
    VOICING_MIN_LAG,
    MUSIC_LOW,
    USE_FILTER_KERNEL,
) = range(22)
SETTINGS = 22
# ... and its state array.
(
    CANDIDATE_PEAK,
    ATTEMPT_START,
    CHAIN_UNTIL,
    LAST_SPEECH,
    CANDIDATE_OPEN,
    LEVELS_LENGTH,
    LEVELS_HEAD,
    FRAMES_SENT,
) = range(8)
STATE = 8


Analysis = tuple[float, float, float, float, float, float, bool, bool, float, float, float]
"""level, noise floor, level SNR, judged SNR, residual SNR (NaN: none), voicing, music,
music before this frame, music likelihood before it, start and stop thresholds."""
Decision = tuple[int, int, int, bool, bool, int, int, float, int]
"""state, event, reason, in hangover, voiced candidate, pre-roll frames sent, of which
lookback, gain, samples of audio in the output buffer."""


@kernel
def gate_analyse(  # noqa: PLR0917 (a kernel takes its buffers as arguments)
    frame: Samples,
    filtered: Floats,
    b: Floats,
    a: Floats,
    zi: Floats,
    history: Floats,
    taper: Floats,
    dilated: npt.NDArray[np.int32],
    runs: npt.NDArray[np.int32],
    amplitude: Floats,
    power: Floats,
    picked: Floats,
    scores: Floats,
    actives: Floats,
    music_counts: Floats,
    music_settings: Floats,
    lag_scale: Floats,
    music_fft_in: Floats,
    voicing_fft_in: Floats,
    floor: Floats,
    residual_floor: Floats,
    counters: Ints,
    levels: Floats,
    state: Floats,
    settings: Floats,
    boost: float,
    heard: float,
) -> Analysis:
    """The first half of a frame: what the frame sounds like, and how it is judged."""
    n = frame.size
    if settings[USE_FILTER_KERNEL]:
        for i in range(n):
            filtered[i] = frame[i] * (1.0 / 32768.0)
        transfer_filter(b, a, filtered, zi, filtered)
    # Otherwise the caller has filtered the frame into ``filtered`` (sosfilt).
    history[: history.size - n] = history[n:]
    history[history.size - n :] = filtered
    level = rms_to_dbfs(frame_rms(filtered))
    noise = floor_level(floor)
    level_snr = level - noise if floor_heard(floor) else 0.0
    # Music is judged on this frame too, but its thresholds apply from the next one.
    music_was_on = music_on(music_counts)
    start = settings[MUSIC_START] if music_was_on else settings[NORMAL_START]
    stop = settings[MUSIC_STOP] if music_was_on else settings[NORMAL_STOP]
    if boost != 0.0:
        start += boost
    likelihood = music_likelihood(music_counts)
    music = music_update(
        history,
        level,
        taper,
        music_fft_in,
        int(settings[MUSIC_LOW]),
        dilated,
        runs,
        amplitude,
        power,
        picked,
        scores,
        actives,
        music_counts,
        music_settings,
    )
    # The music-removed SNR may open or confirm a candidate, only outside SPEECH: holding
    # speech stays with the level SNR, or every note change would keep the gate open.
    residual_snr = math.nan
    if (
        settings[MUSIC_RESIDUAL]
        and music_was_on
        and floor_heard(residual_floor)
        and machine_state(counters) != IN_SPEECH
    ):
        residual_snr = music_residual_db(music_counts) - floor_level(residual_floor)
    snr = level_snr if math.isnan(residual_snr) else max(level_snr, residual_snr)
    # Periodicity costs an FFT: only frames that could matter pay for it.
    voicing = 0.0
    if snr >= stop:
        voicing = voicing_periodicity(
            history, voicing_fft_in, int(settings[VOICING_MIN_LAG]), lag_scale
        )
    # A held tone (a horn) is periodic but is not a voice: voices glide and pulse.
    head = int(state[LEVELS_HEAD])
    levels[head] = level
    state[LEVELS_HEAD] = (head + 1) % levels.size
    state[LEVELS_LENGTH] = min(state[LEVELS_LENGTH] + 1.0, levels.size)
    recent = levels[: int(state[LEVELS_LENGTH])]
    if (
        music_held_share(music_counts) >= settings[HELD_TONE_SHARE]
        and recent.max() - recent.min() <= settings[HELD_TONE_SPREAD]
    ):
        voicing = 0.0
    # The listener (Silero, heard in Python) only opens and confirms: its probability
    # trails off after the words, and holding speech on it would send what follows.
    if (
        not math.isnan(heard)
        and heard >= settings[LISTENER_THRESHOLD]
        and machine_state(counters) != IN_SPEECH
    ):
        snr = max(snr, start)
        voicing = max(voicing, settings[MIN_VOICING])
    return (
        level,
        noise,
        level_snr,
        snr,
        residual_snr,
        voicing,
        music,
        music_was_on,
        likelihood,
        start,
        stop,
    )


@kernel
def gate_decide(  # noqa: PLR0917
    frame: Samples,
    index: int,
    analysis: Analysis,
    boost: float,
    floor: Floats,
    floor_settings: Floats,
    floor_recent: Floats,
    floor_calibration: Floats,
    residual_floor: Floats,
    residual_recent: Floats,
    residual_calibration: Floats,
    music_counts: Floats,
    counters: Ints,
    machine_settings: Floats,
    talker: Floats,
    talker_settings: Floats,
    preroll_frames: Samples,
    preroll_snr: Floats,
    preroll_voiced: npt.NDArray[np.bool_],
    preroll_counters: Ints,
    agc: Floats,
    agc_settings: Floats,
    state: Floats,
    settings: Floats,
    out: Samples,
    confirmer: int,
) -> Decision:
    """The second half of a frame: the state machine and everything that follows it."""
    level, _, _, snr, _, voicing, music, music_was_on, likelihood, start, stop = analysis
    was_silent = machine_state(counters) == IN_SILENCE
    distant = not talker_within(talker, talker_settings, level, HOLD_MARGIN)
    peak_before = state[CANDIDATE_PEAK]
    state[CANDIDATE_PEAK] = level if was_silent else max(peak_before, level)
    peak = state[CANDIDATE_PEAK]
    calibrating = floor_calibrating(floor, floor_settings)
    # The agent's echo is voiced too: under the echo guard only the start threshold opens.
    voiced_start = boost == 0.0 and likelihood < settings[TONAL_LIMIT] and not calibrating
    # Could the candidate be the caller, by its loudest frame so far?
    near = talker_within(talker, talker_settings, peak, MARGIN)
    if not near:
        opened = index if was_silent else state[CANDIDATE_OPEN]
        near = opened - state[LAST_SPEECH] <= settings[CONTINUATION] and talker_within(
            talker, talker_settings, peak, CONTINUE_MARGIN
        )
    before = counters.copy() if confirmer else counters
    outcome = machine_step(
        counters,
        machine_settings,
        snr,
        start,
        stop,
        voicing,
        distant,
        voiced_start,
        near,
        # Not while the floor is still being calibrated: the first frames' SNR is a guess.
        voiced_start and not calibrating,
        confirmer,
    )
    new_state, event, reason, in_hangover, voiced_candidate = outcome
    if reason == ASKING:
        # Nothing of this frame's decision has happened yet: ask, then decide it again.
        counters[:] = before
        state[CANDIDATE_PEAK] = peak_before
        return new_state, event, reason, in_hangover, voiced_candidate, 0, 0, 0.0, 0
    if new_state < 0:
        return new_state, event, reason, in_hangover, voiced_candidate, 0, 0, 0.0, 0
    if event == ON_ABOVE_START and was_silent:
        state[CANDIDATE_OPEN] = index
        if index > state[CHAIN_UNTIL]:
            state[ATTEMPT_START] = index
    if event == ON_REJECTED and not voiced_candidate:
        # Unvoiced so far (a long "s" or "f"): the vowel may still come and confirm it.
        state[CHAIN_UNTIL] = index + settings[ATTEMPT_GAP]
    # Confirmed speech never teaches the floor; candidates that came to nothing may.
    speech = new_state == IN_SPEECH
    floor_update(
        floor, floor_settings, floor_recent, floor_calibration, level, speech, music_was_on
    )
    residual = music_residual_db(music_counts)
    if settings[MUSIC_RESIDUAL] and not math.isnan(residual):
        floor_update(
            residual_floor,
            floor_settings,
            residual_recent,
            residual_calibration,
            residual,
            speech,
            music_was_on,
        )
    if music and not music_was_on:
        floor_rebase(floor, floor_recent)
        if machine_state(counters) != IN_SILENCE:
            new_state, event, reason, in_hangover, voiced_candidate = machine_recheck(counters)
            if new_state < 0:
                return new_state, event, reason, in_hangover, voiced_candidate, 0, 0, 0.0, 0
            speech = False
    talker_voiced = speech and voicing >= settings[MIN_VOICING]
    talker_update(talker, talker_settings, level, talker_voiced)
    if speech:
        state[LAST_SPEECH] = index
    n = frame.size
    sent_preroll = 0
    lookback = 0
    gain = 0.0
    samples = 0
    if event == ON_CONFIRMED:
        # Seed AGC from the loudest candidate frame, then release pre-roll and this frame,
        # gathered in ``out`` and gained there in place.
        agc_start(agc, agc_settings, state[CANDIDATE_PEAK])
        attempt = min(index - int(state[ATTEMPT_START]), int(settings[MAX_ATTEMPT]))
        reach = _onset_reach(preroll_snr, preroll_voiced, preroll_counters, settings, attempt)
        held = preroll_take(preroll_frames, preroll_counters, reach + attempt, out)
        samples = (held + 1) * n
        out[held * n : samples] = frame
        sent_preroll = held
        lookback = max(0, min(reach, held - attempt) - int(settings[PREROLL_FRAMES]))
        gain = agc_apply(agc, agc_settings, out[:samples], level, True, out)
    elif speech:
        gain = agc_apply(agc, agc_settings, frame, level, not in_hangover, out)
        samples = n
    else:
        # For the onset lookback: a syllable is voiced and above stop; one far below the
        # caller's level is another talker (a TV), and the lookback stops there.
        syllable = snr >= stop and voicing >= settings[MIN_VOICING]
        caller = talker_within(talker, talker_settings, level, MARGIN)
        preroll_push(
            preroll_frames,
            preroll_snr,
            preroll_voiced,
            preroll_counters,
            frame,
            snr,
            syllable and caller,
            syllable and not caller,
        )
    if speech:
        state[FRAMES_SENT] += 1 + sent_preroll
    return (
        new_state,
        event,
        reason,
        in_hangover,
        voiced_candidate,
        sent_preroll,
        lookback,
        gain,
        samples,
    )


@kernel
def _onset_reach(
    snr: Floats, voiced: npt.NDArray[np.bool_], counters: Ints, settings: Floats, attempt: int
) -> int:
    """Frames to send from before the attempt: the pre-roll, or more where the evidence
    of speech (SNR at or above the onset SNR) runs back further, up to the lookback."""
    preroll = int(settings[PREROLL_FRAMES])
    limit = int(settings[LOOKBACK_FRAMES])
    if limit <= preroll:
        return preroll
    run = preroll_evidence(
        snr,
        voiced,
        counters,
        attempt,
        settings[ONSET_SNR],
        int(settings[ONSET_DIP]),
        int(settings[ONSET_GAP]),
        limit,
    )
    return max(preroll, min(limit, run + int(settings[ONSET_MARGIN])))


PACKED = (
    "filtered",
    "b",
    "a",
    "zi",
    "history",
    "taper",
    "amplitude",
    "power",
    "picked",
    "scores",
    "actives",
    "music_counts",
    "music_settings",
    "lag_scale",
    "levels",
    "floor",
    "floor_settings",
    "floor_recent",
    "floor_calibration",
    "residual_floor",
    "residual_recent",
    "residual_calibration",
    "machine_settings",
    "talker",
    "talker_settings",
    "preroll_snr",
    "agc",
    "agc_settings",
    "state",
    "settings",
    "music_fft_in",
    "voicing_fft_in",
)
"""The float arrays :func:`gate_frame` takes as consecutive slices of one array, in this
order: one argument instead of thirty, since numba's call costs about 70 ns an argument."""
(
    _FILTERED,
    _B,
    _A,
    _ZI,
    _HISTORY,
    _TAPER,
    _AMPLITUDE,
    _POWER,
    _PICKED,
    _SCORES,
    _ACTIVES,
    _MUSIC_COUNTS,
    _MUSIC_SETTINGS,
    _LAG_SCALE,
    _LEVELS,
    _FLOOR,
    _FLOOR_SETTINGS,
    _FLOOR_RECENT,
    _FLOOR_CALIBRATION,
    _RESIDUAL_FLOOR,
    _RESIDUAL_RECENT,
    _RESIDUAL_CALIBRATION,
    _MACHINE_SETTINGS,
    _TALKER,
    _TALKER_SETTINGS,
    _PREROLL_SNR,
    _AGC,
    _AGC_SETTINGS,
    _STATE,
    _SETTINGS,
    _MUSIC_FFT_IN,
    _VOICING_FFT_IN,
) = range(32)


@kernel
def _part(floats: Floats, bounds: Ints, which: int) -> Floats:
    """The packed array at position ``which`` of :data:`PACKED`."""
    return floats[bounds[which] : bounds[which + 1]]


@kernel
def gate_frame(  # noqa: PLR0917
    frame: Samples,
    index: int,
    boost: float,
    heard: float,
    floats: Floats,
    bounds: Ints,
    dilated: npt.NDArray[np.int32],
    runs: npt.NDArray[np.int32],
    counters: Ints,
    preroll_frames: Samples,
    preroll_voiced: npt.NDArray[np.bool_],
    preroll_counters: Ints,
    out: Samples,
) -> tuple[Analysis, Decision]:
    """A whole frame, for a gate without a confirmer: analyse, then decide. ``floats``
    holds the float arrays named in :data:`PACKED`, between consecutive ``bounds``."""
    f, k = floats, bounds
    analysis = gate_analyse(
        frame,
        _part(f, k, _FILTERED),
        _part(f, k, _B),
        _part(f, k, _A),
        _part(f, k, _ZI),
        _part(f, k, _HISTORY),
        _part(f, k, _TAPER),
        dilated,
        runs,
        _part(f, k, _AMPLITUDE),
        _part(f, k, _POWER),
        _part(f, k, _PICKED),
        _part(f, k, _SCORES),
        _part(f, k, _ACTIVES),
        _part(f, k, _MUSIC_COUNTS),
        _part(f, k, _MUSIC_SETTINGS),
        _part(f, k, _LAG_SCALE),
        _part(f, k, _MUSIC_FFT_IN),
        _part(f, k, _VOICING_FFT_IN),
        _part(f, k, _FLOOR),
        _part(f, k, _RESIDUAL_FLOOR),
        counters,
        _part(f, k, _LEVELS),
        _part(f, k, _STATE),
        _part(f, k, _SETTINGS),
        boost,
        heard,
    )
    decision = gate_decide(
        frame,
        index,
        analysis,
        boost,
        _part(f, k, _FLOOR),
        _part(f, k, _FLOOR_SETTINGS),
        _part(f, k, _FLOOR_RECENT),
        _part(f, k, _FLOOR_CALIBRATION),
        _part(f, k, _RESIDUAL_FLOOR),
        _part(f, k, _RESIDUAL_RECENT),
        _part(f, k, _RESIDUAL_CALIBRATION),
        _part(f, k, _MUSIC_COUNTS),
        counters,
        _part(f, k, _MACHINE_SETTINGS),
        _part(f, k, _TALKER),
        _part(f, k, _TALKER_SETTINGS),
        preroll_frames,
        _part(f, k, _PREROLL_SNR),
        preroll_voiced,
        preroll_counters,
        _part(f, k, _AGC),
        _part(f, k, _AGC_SETTINGS),
        _part(f, k, _STATE),
        _part(f, k, _SETTINGS),
        out,
        NO_CONFIRMER,
    )
    return analysis, decision
