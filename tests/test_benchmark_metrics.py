"""Benchmark metrics and shared post-processing on hand-made masks with known answers."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from benchmarks.corpus import label_frames, merge_short_gaps
from benchmarks.detectors import FrameGateDetector, apply_preroll_hangover, with_overrides
from benchmarks.metrics import DetectorResult
from benchmarks.run_gate_asr_benchmark import last_word_kept
from callgate.audio import SpeechGate
from callgate.audio.decision import run_in_frames, sent_mask
from tests.gate_calls import CALLS


def _mask(n: int, *ranges: tuple[int, int]) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    for a, b in ranges:
        m[a:b] = True
    return m


def test_detector_result_buckets() -> None:
    r = DetectorResult("x")
    r.add_clip("speech", "fan", "quiet", _mask(10, (2, 6)), _mask(10, (2, 6)))
    r.add_clip("noise_only", "fan", "none", _mask(10, (0, 5)), np.zeros(10, dtype=bool))
    r.add_clip(
        "music_only", "music_loud", "none", np.zeros(10, dtype=bool), np.zeros(10, dtype=bool)
    )
    assert r.noise_only.sent_share == pytest.approx(0.5)
    assert r.music_only.sent_share == 0.0
    assert r.by_family["fan"].f1 == pytest.approx(1.0)
    assert r.overall.precision == pytest.approx(4 / 9)
    assert "none" not in r.by_talker


def test_preroll_and_hangover_dilate_each_run() -> None:
    raw = _mask(40, (15, 20))
    sent = apply_preroll_hangover(raw, preroll_frames=10, hangover_frames=4)
    assert np.array_equal(sent, _mask(40, (5, 24)))


def test_preroll_is_clipped_at_the_stream_start_and_runs_merge() -> None:
    raw = _mask(30, (3, 5), (10, 12))
    sent = apply_preroll_hangover(raw, preroll_frames=10, hangover_frames=4)
    assert np.array_equal(sent, _mask(30, (0, 16)))
    assert not apply_preroll_hangover(np.zeros(8, dtype=bool), 10, 4).any()


def test_merge_short_gaps_only_fills_short_interior_gaps() -> None:
    labels = _mask(40, (2, 5), (10, 12), (25, 30))
    merged = merge_short_gaps(labels, 10)
    assert np.array_equal(merged, _mask(40, (2, 12), (25, 30)))


def test_label_frames_follows_the_utterance_envelope() -> None:
    rate = 8000
    clean = np.zeros(rate * 2)
    t = np.arange(rate // 2) / rate
    clean[4000:8000] = 0.1 * np.sin(2 * np.pi * 300 * t)  # frames 25..49
    labels = label_frames(clean, [(3000, 9000)])
    assert np.array_equal(labels, _mask(100, (25, 50)))


def test_with_overrides_replaces_nested_fields_together() -> None:
    @dataclasses.dataclass(frozen=True)
    class Pair:
        start: float = 8.0
        stop: float = 5.0

        def __post_init__(self) -> None:
            if self.start < self.stop:
                raise ValueError("start below stop")

    @dataclasses.dataclass(frozen=True)
    class Opts:
        normal: Pair = dataclasses.field(default_factory=Pair)
        name: str = "none"

    out = with_overrides(Opts(), {"normal.start": 3.0, "normal.stop": 2.0, "name": "x"})
    assert out == Opts(Pair(3.0, 2.0), "x")
    assert with_overrides(Opts(), {}) == Opts()


def test_last_word_kept_compares_normalized_last_words() -> None:
    assert last_word_kept("My roof is leaking.", "my roof is Leaking")
    assert not last_word_kept("My roof is leaking.", "My roof is leak.")
    assert not last_word_kept("My roof is leaking.", "")
    assert last_word_kept("Call me at two.", "call me at 2")  # digits and digit words alike


def test_espeak_clips_keep_their_cache_keys_and_piper_clips_get_their_own() -> None:
    import hashlib  # noqa: PLC0415
    import json  # noqa: PLC0415

    from benchmarks.corpus import CORPUS_VERSION, ClipSpec  # noqa: PLC0415
    from callgate.synth.speech import espeak_available  # noqa: PLC0415

    spec = ClipSpec("fan-quiet-0", "speech", "fan", "quiet", 5.0, 10.0, 7, quick=False)
    fields = dataclasses.asdict(spec)
    del fields["voice"]  # the key as it was computed before the voice field existed
    blob = json.dumps({**fields, "v": CORPUS_VERSION, "espeak": espeak_available()}, sort_keys=True)
    assert spec.key() == hashlib.sha1(blob.encode()).hexdigest()[:16]
    assert dataclasses.replace(spec, voice="piper").key() != spec.key()


def test_detector_result_tallies_speech_by_voice() -> None:
    r = DetectorResult("x")
    r.add_clip("speech", "fan", "quiet", _mask(10, (2, 6)), _mask(10, (2, 6)), "piper")
    r.add_clip("speech", "fan", "quiet", np.zeros(10, dtype=bool), _mask(10, (2, 6)))
    r.add_clip("noise_only", "fan", "none", _mask(10, (0, 5)), np.zeros(10, dtype=bool))
    assert r.by_voice["piper"].f1 == pytest.approx(1.0)
    assert r.by_voice["espeak"].f1 == 0.0
    assert r.by_voice_family[("piper", "fan")].utterances == 1
    assert r.by_family["fan"].utterances == 2


def test_exported_labels_give_back_the_corpus_labels() -> None:
    from benchmarks.corpus import Clip, ClipSpec  # noqa: PLC0415
    from benchmarks.export_corpus import clip_labels  # noqa: PLC0415
    from callgate.tuning.labels import label_mask, parse_labels  # noqa: PLC0415

    labels = _mask(60, (3, 9), (20, 21), (40, 60))
    spec = ClipSpec("x", "speech", "fan", "quiet", 5.0, 1.2, 1, quick=False)
    clip = Clip(spec, np.zeros(60 * 160, dtype=np.int16), labels)
    spans = parse_labels(clip_labels(clip))
    assert len(spans) == 3
    assert np.array_equal(label_mask(spans, 60, 20), labels)


def test_the_gate_detector_marks_what_sent_mask_marks() -> None:
    """The benchmark streams the gate's decisions into its mask instead of keeping them;
    the mask must be the one ``sent_mask`` draws from all of them (pre-roll included)."""
    pcm = CALLS["quiet"]
    streamed = FrameGateDetector("gate", SpeechGate).run(pcm)
    kept = sent_mask(run_in_frames(SpeechGate(), pcm))
    assert streamed.sum() > 0
    assert any(d.preroll_frames for d in run_in_frames(SpeechGate(), pcm))
    assert np.array_equal(streamed, kept)
