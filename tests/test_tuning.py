"""Scoring against labels, label files and the tried-settings grid, on hand-made inputs
with known answers (the CLI that uses them is tested in test_cli_tune.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from callgate.tuning.grid import MAX_COMBINATIONS, GridError, parse_tries, trials
from callgate.tuning.labels import (
    LabelError,
    Span,
    format_labels,
    label_mask,
    labels_for,
    parse_labels,
)
from callgate.tuning.score import (
    FrameScore,
    clipped_utterances,
    false_triggers,
    onset_frames,
    runs,
)


def _mask(n: int, *ranges: tuple[int, int]) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    for a, b in ranges:
        m[a:b] = True
    return m


def test_f1_precision_recall_known_values() -> None:
    labels = _mask(20, (5, 15))  # 10 speech frames
    sent = _mask(20, (8, 18))  # 7 hits, 3 false, 3 missed
    c = FrameScore()
    c.add(sent, labels)
    assert (c.tp, c.fp, c.fn) == (7, 3, 3)
    assert c.precision == pytest.approx(0.7)
    assert c.recall == pytest.approx(0.7)
    assert c.f1 == pytest.approx(0.7)
    assert c.sent_share == pytest.approx(0.5)


def test_onset_clipping_and_first_100ms() -> None:
    labels = _mask(60, (10, 30), (40, 55))
    sent = _mask(60, (8, 30), (43, 55))  # first heard whole, second clipped by 3 frames
    c = FrameScore()
    c.add(sent, labels)
    assert c.onset_delays_ms == [0.0, 60.0]
    assert c.first_100ms_lost == 1
    assert c.first_100ms_lost_share == pytest.approx(0.5)
    assert c.utterances_heard == 1  # 12/15 = 80% < 90%
    assert c.utterance_recall == pytest.approx(0.5)
    assert c.onset_clip_ms(50) == pytest.approx(30.0)


def test_missed_utterance_counts_as_clipped_for_its_length() -> None:
    c = FrameScore()
    c.add(_mask(30, (20, 30)), _mask(30, (5, 12), (20, 30)))
    assert c.onset_delays_ms == [140.0, 0.0]
    assert c.utterance_recall == pytest.approx(0.5)


def test_no_speech_is_perfect_precision_and_recall_when_silent() -> None:
    c = FrameScore()
    c.add(np.zeros(50, dtype=bool), np.zeros(50, dtype=bool))
    assert c.precision == 1.0
    assert c.recall == 1.0
    assert c.sent_share == 0.0
    assert np.isnan(c.utterance_recall)


def test_scores_merge_adds_up() -> None:
    a, b, both = FrameScore(), FrameScore(), FrameScore()
    la, sa = _mask(20, (3, 9)), _mask(20, (2, 7))
    lb, sb = _mask(30, (10, 25)), _mask(30, (0, 5), (12, 25))
    a.add(sa, la)
    b.add(sb, lb)
    a.merge(b)
    both.add(np.concatenate([sa, sb]), np.concatenate([la, lb]))
    assert (a.tp, a.fp, a.fn, a.utterances, a.first_100ms_lost) == (
        both.tp, both.fp, both.fn, both.utterances, both.first_100ms_lost,
    )  # fmt: skip


def test_runs_of_true_frames() -> None:
    assert runs(_mask(10, (0, 2), (5, 10))) == [(0, 2), (5, 10)]
    assert runs(np.zeros(4, dtype=bool)) == []


def test_false_triggers_are_sent_runs_without_any_speech() -> None:
    labels = _mask(40, (10, 20))
    sent = _mask(40, (2, 5), (8, 22), (30, 33))  # the middle run carries padding only
    assert false_triggers(sent, labels) == [(2, 5), (30, 33)]
    score = FrameScore()
    score.add(sent, labels)
    assert (score.false_triggers, score.false_trigger_frames) == (2, 6)
    assert score.false_trigger_s == pytest.approx(0.12)


def test_clipped_utterances_say_how_late_or_missed() -> None:
    labels = _mask(60, (5, 15), (20, 30), (40, 50))
    sent = _mask(60, (3, 15), (23, 30))  # whole, 3 frames late, missed
    clipped = clipped_utterances(sent, labels, 20)
    assert [(c.start, c.end, c.delay_frames, c.missed) for c in clipped] == [
        (20, 30, 3, False),
        (40, 50, 10, True),
    ]


def test_first_100ms_counts_frames_of_the_frame_size() -> None:
    assert [onset_frames(ms) for ms in (10, 20, 30)] == [10, 5, 3]
    labels = _mask(40, (10, 30))
    sent = labels.copy()
    sent[17] = False  # a gap 70 ms in at 10 ms frames, 140 ms in at 20 ms frames
    at_10, at_20 = FrameScore(frame_ms=10), FrameScore(frame_ms=20)
    at_10.add(sent, labels)
    at_20.add(sent, labels)
    assert at_10.first_100ms_lost == 1
    assert at_20.first_100ms_lost == 0
    assert clipped_utterances(sent, labels, 10)[0].delay_frames == 0  # lost, though not late
    assert not clipped_utterances(sent, labels, 20)


def test_merging_scores_of_other_frame_sizes_is_refused() -> None:
    with pytest.raises(ValueError, match="frame sizes differ"):
        FrameScore(frame_ms=20).merge(FrameScore(frame_ms=10))


# --- label files ---------------------------------------------------------------------


def test_audacity_labels_parse_with_text_spectral_lines_and_a_bom() -> None:
    text = (
        "\ufeff1.500000\t2.250000\thello there\n"
        "\\\t300.0\t3400.0\n"  # Audacity's spectral-selection line
        "\n# a comment\n"
        "0.2 0.9\n"  # spaces work too, and the text is optional
        "3.0\t3.0\tclick\r\n"  # a point label marks a moment: skipped
    )
    spans = parse_labels(text.removeprefix("\ufeff"), "calls/a.txt")
    assert spans == [Span(0.2, 0.9, ""), Span(1.5, 2.25, "hello there")]


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ("1.0", "expected 'start<TAB>end"),
        ("one\ttwo", "must be numbers of seconds"),
        ("2.0\t1.0", "ends at 1 s, before it starts at 2 s"),
        ("-1\t1", "not negative"),
        ("nan\t1", "finite"),
    ],
)
def test_a_bad_label_line_is_named(line: str, says: str) -> None:
    with pytest.raises(LabelError, match=r"a\.txt line 2") as caught:
        parse_labels("0.1\t0.2\n" + line + "\n", "a.txt")
    assert says in str(caught.value)


def test_label_mask_marks_frames_whose_middle_is_covered() -> None:
    # frame k covers [20k, 20k + 20) ms; its middle is 20k + 10 ms
    mask = label_mask([Span(0.105, 0.2)], frames=20, frame_ms=20)
    assert np.array_equal(mask, _mask(20, (5, 10)))  # middles 110..190 ms
    assert label_mask([Span(0.0, 0.009)], 5, 20).sum() == 0  # misses the first middle
    cut = label_mask([Span(0.3, 9.0)], frames=20, frame_ms=20)  # runs past the end
    assert np.array_equal(cut, _mask(20, (15, 20)))


def test_a_label_after_the_recording_ends_is_an_error() -> None:
    with pytest.raises(LabelError, match=r"after the recording ends at 0\.4 s"):
        label_mask([Span(0.5, 0.6)], frames=20, frame_ms=20, source="b.txt")


def test_format_labels_round_trips() -> None:
    text = format_labels([(1.5, 2.25), (3.0, 4.125)])
    assert parse_labels(text) == [Span(1.5, 2.25, "speech"), Span(3.0, 4.125, "speech")]


def test_labels_for_a_folder_a_file_and_the_mistakes(tmp_path: Path) -> None:
    folder = tmp_path / "labels"
    folder.mkdir()
    (folder / "call1.txt").write_text("1\t2\n")
    assert labels_for(Path("in/call1.wav"), folder, single=False) == folder / "call1.txt"
    with pytest.raises(LabelError, match=r"call2\.wav: no labels at .*call2\.txt"):
        labels_for(Path("in/call2.wav"), folder, single=False)
    one = folder / "call1.txt"
    assert labels_for(Path("x.wav"), one, single=True) == one
    with pytest.raises(LabelError, match="several recordings"):
        labels_for(Path("x.wav"), one, single=False)
    with pytest.raises(LabelError, match="no such label file"):
        labels_for(Path("x.wav"), tmp_path / "missing.txt", single=True)


# --- the grid ------------------------------------------------------------------------


def test_tries_become_every_combination_after_the_base() -> None:
    axes = parse_tries(["snr_start_normal=7,8", "SNR_STOP_NORMAL=4, 5,4"])
    assert axes == {"SNR_START_NORMAL": ["7", "8"], "SNR_STOP_NORMAL": ["4", "5"]}
    combos = trials(axes)
    assert combos[0].values == {}
    assert combos[0].label == "(base)"
    assert [c.label for c in combos[1:]] == [
        "SNR_START_NORMAL=7 SNR_STOP_NORMAL=4",
        "SNR_START_NORMAL=7 SNR_STOP_NORMAL=5",
        "SNR_START_NORMAL=8 SNR_STOP_NORMAL=4",
        "SNR_START_NORMAL=8 SNR_STOP_NORMAL=5",
    ]
    assert [c.values for c in trials({})] == [{}]


@pytest.mark.parametrize(
    ("items", "says"),
    [
        (["SNR_START_NORMAL"], "expects NAME=VALUE"),
        (["SNR_START_NORMAL=7,"], "expects NAME=VALUE"),
        (["=7"], "expects NAME=VALUE"),
        (["A=1", "a=2"], "names A twice"),
    ],
)
def test_bad_tries_are_quoted(items: list[str], says: str) -> None:
    with pytest.raises(GridError, match=says):
        parse_tries(items)


def test_too_many_combinations_are_refused_before_any_run() -> None:
    values = [str(v) for v in range(17)]
    with pytest.raises(GridError, match=f"289 combinations, more than {MAX_COMBINATIONS}"):
        trials({"A": values, "B": values})
