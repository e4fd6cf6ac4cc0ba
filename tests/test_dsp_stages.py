"""Each DSP stage on synthesized signals."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from scipy.signal import sosfilt

from callgate.audio.bandpass import BandpassOptions, SpeechBandFilter
from callgate.audio.framing import Reframer
from callgate.audio.level import DBFS_FLOOR, dbfs_to_rms, frame_rms, rms_to_dbfs
from callgate.audio.music import MusicDetector, MusicOptions
from callgate.audio.noise_floor import NoiseFloorOptions, NoiseFloorTracker
from callgate.audio.talker import TalkerLevel, TalkerOptions
from callgate.audio.voicing import VoicingAnalyzer
from tests.conftest import tone, voiced, white


def _gain_db(freq_hz: float) -> float:
    signal = tone(freq_hz, 1.0, -20)
    out = SpeechBandFilter().process(signal)[4000:]
    return rms_to_dbfs(frame_rms(out)) - rms_to_dbfs(frame_rms(signal[4000:]))


def test_bandpass_keeps_speech_band_and_cuts_hum() -> None:
    assert abs(_gain_db(1000)) < 0.5
    assert _gain_db(50) < -40
    assert _gain_db(100) < -20
    assert _gain_db(3900) < -6


def test_bandpass_streaming_equals_one_shot(rng: np.random.Generator) -> None:
    signal = white(0.5, -20, rng)
    whole = SpeechBandFilter().process(signal)
    streaming = SpeechBandFilter()
    pieces = [streaming.process(signal[i : i + 137]) for i in range(0, signal.size, 137)]
    assert np.allclose(np.concatenate(pieces), whole)


def test_bandpass_rejects_impossible_edges() -> None:
    with pytest.raises(ValueError, match="band edges"):
        BandpassOptions(low_hz=300, high_hz=4100)


def test_level_dbfs_of_known_signals(rng: np.random.Generator) -> None:
    assert rms_to_dbfs(frame_rms(tone(1000, 0.5, -26))) == pytest.approx(-26, abs=0.05)
    assert rms_to_dbfs(frame_rms(np.zeros(160))) == DBFS_FLOOR
    assert rms_to_dbfs(dbfs_to_rms(-33.0)) == pytest.approx(-33.0)


def test_reframer_returns_whole_frames_and_keeps_the_rest() -> None:
    reframer = Reframer(160)
    assert reframer.push(np.arange(100, dtype=np.int16)) == []
    frames = reframer.push(np.arange(100, 500, dtype=np.int16))
    assert [f.tolist() for f in frames] == [list(range(i, i + 160)) for i in (0, 160, 320)]
    assert reframer.pending_samples == 20


def _feed_floor(tracker: NoiseFloorTracker, levels: list[float], speech: bool = False) -> float:
    for level in levels:
        tracker.update(level, speech=speech)
    return tracker.floor_dbfs


def test_noise_floor_calibrates_on_the_first_600_ms() -> None:
    tracker = NoiseFloorTracker()
    rng = np.random.default_rng(1)
    levels = list(-50 + rng.normal(0, 1, 30))
    floor = _feed_floor(tracker, levels)
    assert not tracker.calibrating
    assert -52 < floor < -49


def test_noise_floor_calibration_is_robust_to_early_speech() -> None:
    tracker = NoiseFloorTracker()
    # 20 frames of room at -55 dBFS, then the caller starts at -25 dBFS inside calibration.
    floor = _feed_floor(tracker, [-55.0] * 20 + [-25.0] * 10)
    assert floor < -54


def test_noise_floor_follows_falling_noise_fast() -> None:
    tracker = NoiseFloorTracker()
    _feed_floor(tracker, [-40.0] * 60)
    floor = _feed_floor(tracker, [-60.0] * 25)  # 0.5 s later
    assert floor < -59


def test_noise_floor_follows_steady_rising_noise_within_two_seconds() -> None:
    tracker = NoiseFloorTracker()
    _feed_floor(tracker, [-60.0] * 60)
    rng = np.random.default_rng(2)
    # A fan switches on, 20 dB louder; the gate calls it speech at first.
    floor = _feed_floor(tracker, list(-40 + rng.normal(0, 1, 100)), speech=True)
    assert floor > -42


def test_noise_floor_never_learns_speech() -> None:
    tracker = NoiseFloorTracker()
    _feed_floor(tracker, [-60.0] * 60)
    rng = np.random.default_rng(3)
    # Ten seconds of syllabic speech, fluctuating +-8 dB around -30 dBFS.
    t = np.arange(500) * 0.02
    speech = list(-30 + 8 * np.sin(2 * np.pi * 4 * t) + rng.normal(0, 2, t.size))
    floor = _feed_floor(tracker, speech, speech=True)
    assert floor == pytest.approx(-60.0, abs=0.5)


def test_noise_floor_options_are_checked() -> None:
    with pytest.raises(ValueError, match="rise_time_ms"):
        NoiseFloorOptions(rise_time_ms=0)


def test_voicing_separates_voiced_sound_from_noise(rng: np.random.Generator) -> None:
    analyzer = VoicingAnalyzer(320)
    band = SpeechBandFilter()
    speech = band.process(voiced(1.0, -25, rng))
    noise = SpeechBandFilter().process(white(1.0, -25, rng))
    speech_v = np.median([analyzer.periodicity(speech[i : i + 320]) for i in range(800, 7000, 160)])
    noise_v = np.median([analyzer.periodicity(noise[i : i + 320]) for i in range(800, 7000, 160)])
    assert speech_v > 0.6
    assert noise_v < 0.35


def _chords(seconds: float) -> npt.NDArray[np.float64]:
    """Held notes: a triad that changes every 600 ms, alternating loudness."""
    roots = [262, 330, 392, 349, 294, 440, 262, 330, 392, 349] * 3
    notes = []
    for k, root in enumerate(roots[: int(np.ceil(seconds / 0.6))]):
        triad = tone(root, 0.6, -30) + tone(root * 1.26, 0.6, -30) + tone(root * 1.5, 0.6, -30)
        notes.append((triad + 0.3 * tone(root * 2, 0.6, -30)) * (1.0 - 0.3 * (k % 2)))
    return np.concatenate(notes)[: int(seconds * 8000)]


def _run_music(signal: npt.NDArray[np.float64], options: MusicOptions | None = None) -> list[bool]:
    detector = MusicDetector(320, options)
    band = SpeechBandFilter()
    filtered = band.process(signal)
    flags = []
    for i in range(320, filtered.size, 160):
        flags.append(detector.update(filtered[i - 320 : i], level_dbfs=-30.0))
    return flags


def test_music_detector_switches_on_for_held_notes() -> None:
    flags = _run_music(_chords(5.0))
    assert not any(flags[:50])  # needs sustained music, not one chord
    assert all(flags[120:])


def test_music_detector_stays_off_for_speech(rng: np.random.Generator) -> None:
    flags = _run_music(voiced(6.0, -25, rng))
    assert not any(flags)


def test_music_detector_switches_off_after_off_ms(rng: np.random.Generator) -> None:
    options = MusicOptions(off_ms=1000)
    signal = np.concatenate([_chords(4.0), white(3.0, -40, rng)])
    flags = _run_music(signal, options)
    music_end = 4 * 50
    assert flags[music_end - 5]
    assert flags[music_end + 20]  # hysteresis: still on shortly after
    assert not any(flags[music_end + 90 :])


def test_talker_level_rejects_distant_sound_once_the_caller_is_known() -> None:
    talker = TalkerLevel(TalkerOptions(margin_db=14, hold_margin_db=20, learn_frames=25))
    assert talker.accepts(-60)  # nobody heard yet: anything may be the caller
    for level in [-22.0, -18.0] * 15:
        talker.update(level, voiced_speech=True)
    assert talker.known
    assert talker.level_dbfs is not None
    assert -20 < talker.level_dbfs < -17.5  # near the louder syllables
    assert talker.accepts(-30)
    assert not talker.accepts(-36)
    assert talker.holds(-36)
    assert not talker.holds(-42)
    # A quiet stretch of 20 s lets the reference relax by 5 dB.
    for _ in range(1000):
        talker.update(-60, voiced_speech=False)
    assert talker.accepts(-36)


@pytest.mark.parametrize(("low", "high"), [(250.0, 3400.0), (300.0, 3400.0), (200.0, 3800.0)])
def test_bandpass_fast_path_matches_second_order_sections(
    low: float, high: float, rng: np.random.Generator
) -> None:
    band = SpeechBandFilter(BandpassOptions(low_hz=low, high_hz=high))
    signal = white(5.0, -20, rng)
    streamed = np.concatenate(
        [band.process(signal[i : i + 160]) for i in range(0, signal.size, 160)]
    )
    reference = sosfilt(band._sos, signal)
    assert np.max(np.abs(streamed - reference)) < 1e-9
