"""Transcript assembly: caller fragments merged and ordered, agent replies cut at barge-in."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callgate.conversation.transcripts import (
    Transcript,
    TranscriptOptions,
    Turn,
    cut_text,
)

# --- caller fragments ------------------------------------------------------------------


def test_fragments_split_by_a_short_pause_merge_into_one_turn() -> None:
    t = Transcript()
    t.caller_fragment("i1", "I'd like to book", 1000, 2000)
    t.caller_fragment("i2", "a table for two", 2500, 3800, previous_item_id="i1")
    assert t.turns() == [
        Turn("caller", "I'd like to book a table for two", 1000, 3800, item_id="i1")
    ]


def test_a_pause_of_merge_gap_or_more_starts_a_new_turn() -> None:
    t = Transcript(TranscriptOptions(merge_gap_ms=800))
    t.caller_fragment("i1", "Hello?", 1000, 1500)
    t.caller_fragment("i2", "Is anyone there?", 2300, 3000)  # gap exactly 800
    assert [turn.text for turn in t.turns()] == ["Hello?", "Is anyone there?"]


def test_merge_gap_zero_keeps_touching_fragments_apart() -> None:
    t = Transcript(TranscriptOptions(merge_gap_ms=0))
    t.caller_fragment("i1", "one", 0, 500)
    t.caller_fragment("i2", "two", 500, 900)
    assert len(t.turns()) == 2


def test_an_agent_reply_between_fragments_keeps_them_apart() -> None:
    t = Transcript()
    t.caller_fragment("c1", "Hi", 0, 400)
    t.agent_turn("a1", "Hello!", 450, 300, previous_item_id="c1")
    t.caller_fragment("c2", "I need help", 800, 1500, previous_item_id="a1")
    assert [(x.speaker, x.text) for x in t.turns()] == [
        ("caller", "Hi"),
        ("agent", "Hello!"),
        ("caller", "I need help"),
    ]


def test_hebrew_fragments_merge() -> None:
    t = Transcript()
    t.caller_fragment("i1", "שלום, אני רוצה", 0, 900)
    t.caller_fragment("i2", "לקבוע תור למחר", 1300, 2400, previous_item_id="i1")
    assert t.as_text() == "Caller: שלום, אני רוצה לקבוע תור למחר"


def test_late_transcript_of_an_earlier_item_is_placed_by_start_time() -> None:
    t = Transcript()
    t.caller_fragment("i2", "second", 5000, 5500)
    t.caller_fragment("i1", "first", 1000, 1500)
    assert [x.text for x in t.turns()] == ["first", "second"]


def test_previous_item_id_wins_over_start_time() -> None:
    t = Transcript()
    t.caller_fragment("i1", "first", 3000, 3500)
    t.caller_fragment("i2", "second", 1000, 1500, previous_item_id="i1")  # skewed clock
    assert [x.text for x in t.turns()] == ["first second"]  # order by link, then merged


def test_an_empty_fragment_still_links_the_order() -> None:
    t = Transcript()
    t.caller_fragment("i3", "third", 100, 200, previous_item_id="i2")
    t.caller_fragment("i2", "   ", 9000, 9100, previous_item_id="i1")
    t.caller_fragment("i1", "first", 5000, 5100)
    assert [x.text for x in t.turns()] == ["first third"]  # not "third first"


def test_duplicate_is_ignored_and_correction_replaces() -> None:
    t = Transcript()
    t.caller_fragment("i1", "my name is dan", 0, 1000)
    t.caller_fragment("i1", "my name is dan", 0, 1000)
    assert [x.text for x in t.turns()] == ["my name is dan"]
    t.caller_fragment("i1", "my name is Dana", 0, 1100)
    assert t.turns() == [Turn("caller", "my name is Dana", 0, 1100, item_id="i1")]


def test_an_empty_transcript_is_dropped_and_does_not_erase_text() -> None:
    t = Transcript()
    t.caller_fragment("i0", " ", 0, 100)
    t.caller_fragment("i1", "hello", 200, 600)
    t.caller_fragment("i1", "", 200, 600)
    assert t.turns() == [Turn("caller", "hello", 200, 600, item_id="i1")]


def test_caller_fragment_cannot_overwrite_an_agent_item() -> None:
    t = Transcript()
    t.agent_turn("a1", "How can I help?", 0, 1000)
    t.caller_fragment("a1", "bogus", 0, 100)
    assert t.turns() == [Turn("agent", "How can I help?", 0, 1000, item_id="a1")]


def test_options_reject_out_of_range() -> None:
    with pytest.raises(ValueError, match="merge_gap_ms"):
        TranscriptOptions(merge_gap_ms=-1)


# --- agent replies and barge-in ----------------------------------------------------------

SENTENCE = "I can book you for Monday at nine"  # 33 characters


def test_agent_turn_without_barge_in_is_whole() -> None:
    t = Transcript()
    t.agent_turn("a1", SENTENCE, 1000, 3300)
    assert t.turns() == [Turn("agent", SENTENCE, 1000, 4300, item_id="a1")]


def test_cut_is_estimated_by_share_of_audio_and_kept_at_a_word_boundary() -> None:
    # 1000/3300 of 33 chars = 10: a space, so "book" was heard whole.
    assert cut_text(SENTENCE, 1000, 3300) == "I can book"
    # 800/3300 -> 8: inside "book", so back off to the word before.
    assert cut_text(SENTENCE, 800, 3300) == "I can"


def test_word_timings_beat_the_estimate() -> None:
    words = [("I", 100), ("can", 300), ("book", 500), ("you", 600), ("for", 700)]
    words += [("Monday", 1200), ("at", 1300), ("nine", 1700)]
    assert cut_text(SENTENCE, 800, 3300, words) == "I can book you for"
    assert cut_text(SENTENCE, 1250, 3300, words) == "I can book you for Monday"


def test_barge_in_stores_exactly_the_heard_words() -> None:
    t = Transcript()
    t.caller_fragment("c1", "Can I book?", 0, 900)
    t.agent_turn("a1", SENTENCE, 1000, 3300, previous_item_id="c1")
    t.agent_interrupted("a1", 1000)
    t.caller_fragment("c2", "No, Tuesday", 2100, 2900, previous_item_id="a1")
    turns = t.turns()
    assert turns[1] == Turn("agent", "I can book", 1000, 2000, interrupted=True, item_id="a1")
    assert "—" not in turns[1].text
    assert "…" not in turns[1].text
    assert t.as_text() == "Caller: Can I book?\nAgent: I can book —\nCaller: No, Tuesday"


def test_interruption_before_the_agent_text_arrives_is_applied_later() -> None:
    t = Transcript()
    t.agent_interrupted("a1", 1000)
    t.agent_turn("a1", SENTENCE, 0, 3300)
    assert t.turns()[0].text == "I can book"
    assert t.turns()[0].interrupted


def test_word_timings_attached_after_the_text_are_used() -> None:
    t = Transcript()
    t.agent_turn("a1", "one two three", 0, 3000)
    t.agent_words("a1", [("one", 500), ("two", 2500), ("three", 3000)])
    t.agent_interrupted("a1", 2000)
    assert t.turns()[0].text == "one"


def test_barge_in_after_the_end_of_the_audio_is_not_a_cut() -> None:
    t = Transcript()
    t.agent_turn("a1", SENTENCE, 0, 3300)
    t.agent_interrupted("a1", 3300)
    assert t.turns() == [Turn("agent", SENTENCE, 0, 3300, item_id="a1")]


def test_a_reply_cut_before_its_first_word_is_not_a_turn() -> None:
    t = Transcript()
    t.agent_turn("a1", SENTENCE, 0, 3300)
    t.agent_interrupted("a1", 50)
    assert t.turns() == []
    assert t.as_text() == ""


def test_hebrew_agent_reply_is_cut_at_a_word_boundary() -> None:
    text = "אני יכול לקבוע לך תור ליום שני בתשע"
    t = Transcript()
    t.agent_turn("a1", text, 0, len(text) * 100)
    t.agent_interrupted("a1", 1200)  # 12 of the characters: inside "לקבוע"
    assert t.turns()[0].text == "אני יכול"


# --- properties ----------------------------------------------------------------------------

WORDS = st.sampled_from(["yes", "no", "table", "Monday", "שלום", "תור", "מחר", "9", "ok,"])


@dataclass(frozen=True)
class Fragment:
    item_id: str
    text: str
    start_ms: int
    end_ms: int
    previous_item_id: str | None


@st.composite
def fragment_events(draw: st.DrawFn) -> list[Fragment]:
    """Caller fragments of one call, in spoken order, some linked, some sent twice."""
    events: list[Fragment] = []
    now = 0
    for n in range(draw(st.integers(1, 8))):
        now += draw(st.integers(0, 2000))
        end = now + draw(st.integers(0, 1500))
        text = " ".join(draw(st.lists(WORDS, min_size=0, max_size=4)))
        prev = f"i{n - 1}" if n and draw(st.booleans()) else None
        events.append(Fragment(f"i{n}", text, now, end, prev))
        if prev is not None and draw(st.booleans()):  # item.added without the link
            events.append(Fragment(f"i{n}", text, now, end, None))
        now = end
    return events


def _feed(events: list[Fragment]) -> list[Turn]:
    t = Transcript()
    for e in events:
        t.caller_fragment(e.item_id, e.text, e.start_ms, e.end_ms, e.previous_item_id)
    return t.turns()


@settings(max_examples=200)
@given(st.data())
def test_any_order_of_fragment_events_gives_the_same_transcript(data: st.DataObject) -> None:
    events = data.draw(fragment_events())
    shuffled = data.draw(st.permutations(events))
    assert _feed(shuffled) == _feed(events)


@settings(max_examples=200)
@given(st.data())
def test_duplicate_events_never_change_the_transcript(data: st.DataObject) -> None:
    events = data.draw(fragment_events())
    extra = data.draw(st.lists(st.sampled_from(events), max_size=6))
    mixed = data.draw(st.permutations(events + extra))
    assert _feed(mixed) == _feed(events)


@given(
    st.lists(WORDS, min_size=1, max_size=12),
    st.lists(st.sampled_from([" ", "  ", "\n"]), min_size=11, max_size=11),
    st.integers(1, 20_000),
    st.integers(-100, 25_000),
    st.booleans(),
)
def test_a_cut_is_a_word_boundary_prefix_and_grows_with_time(
    words: list[str], spaces: list[str], audio_ms: int, heard_ms: int, timed: bool
) -> None:
    text = words[0] + "".join(s + w for s, w in zip(spaces, words[1:], strict=False))
    step = audio_ms // len(words)
    timings = [(w, step * (n + 1)) for n, w in enumerate(words)] if timed else None
    cut = cut_text(text, heard_ms, audio_ms, timings)
    assert text.startswith(cut)
    assert cut in ("", text) or text[len(cut)].isspace()
    assert cut == cut.strip()
    later = cut_text(text, heard_ms + 100, audio_ms, timings)
    assert later.startswith(cut)


@given(st.lists(WORDS, min_size=1, max_size=10), st.integers(1, 10_000), st.integers(0, 10_000))
def test_stored_agent_text_is_a_prefix_and_flagged(
    words: list[str], audio_ms: int, heard_ms: int
) -> None:
    text = " ".join(words)
    t = Transcript()
    t.agent_turn("a1", text, 0, audio_ms)
    t.agent_interrupted("a1", heard_ms)
    turns = t.turns()
    if turns:
        assert text.startswith(turns[0].text)
        assert turns[0].interrupted == (heard_ms < audio_ms)
    else:
        assert heard_ms < audio_ms
