"""PlaybackTracker: heard audio from echoed Twilio marks, with fake time."""

from __future__ import annotations

import pytest

from callgate.telephony import PlaybackTracker


def test_marks_confirm_audio_in_order() -> None:
    tracker = PlaybackTracker()
    a = tracker.sent(200)
    b = tracker.sent(300)
    assert (a, b) == ("cg-1", "cg-2")
    assert tracker.pending_ms == 500
    assert tracker.played_ms == 0
    assert tracker.playing
    assert tracker.mark_received(a) == 200
    assert tracker.pending_ms == 300
    assert tracker.mark_received(b) == 500
    assert tracker.pending_ms == 0
    assert not tracker.playing


def test_later_mark_implies_earlier_ones_played() -> None:
    tracker = PlaybackTracker()
    tracker.sent(100)
    second = tracker.sent(100)
    assert tracker.mark_received(second) == 200
    assert tracker.pending_ms == 0


def test_unknown_and_repeated_marks_change_nothing() -> None:
    tracker = PlaybackTracker()
    first = tracker.sent(100)
    assert tracker.mark_received("someone-else") == 0
    assert tracker.mark_received(first) == 100
    assert tracker.mark_received(first) == 100


def test_clear_drops_pending_and_late_echoes_do_not_count() -> None:
    tracker = PlaybackTracker()
    first = tracker.sent(100)
    second = tracker.sent(400)
    tracker.mark_received(first)
    assert tracker.cleared() == 400
    assert tracker.pending_ms == 0
    # Twilio echoes pending marks right after clear; that audio was never heard.
    assert tracker.mark_received(second) == 100
    assert tracker.played_ms == 100


def test_per_item_accounting() -> None:
    tracker = PlaybackTracker()
    tracker.sent(100, item_id="item_a")
    tracker.sent(100, item_id="item_b")
    last = tracker.sent(50, item_id="item_b")
    tracker.mark_received(last)
    assert tracker.played_ms_of("item_a") == 100
    assert tracker.played_ms_of("item_b") == 150
    assert tracker.played_ms_of("item_c") == 0


def test_estimate_played_between_marks() -> None:
    tracker = PlaybackTracker()
    first = tracker.sent(200, now_ms=1000)
    tracker.sent(200, now_ms=1000)
    assert tracker.estimate_played_ms(1050) == 50
    tracker.mark_received(first, now_ms=1200)
    assert tracker.estimate_played_ms(1280) == 280
    assert tracker.estimate_played_ms(5000) == 400  # capped at the next mark


def test_estimate_without_times_is_the_lower_bound() -> None:
    tracker = PlaybackTracker()
    tracker.sent(200)
    assert tracker.estimate_played_ms(10_000) == 0


def test_custom_names_and_validation() -> None:
    tracker = PlaybackTracker(mark_prefix="resp")
    assert tracker.sent(10) == "resp-1"
    assert tracker.sent(10, mark_name="mine") == "mine"
    with pytest.raises(ValueError, match="already pending"):
        tracker.sent(10, mark_name="mine")
    with pytest.raises(ValueError, match="audio_ms"):
        tracker.sent(-1)
