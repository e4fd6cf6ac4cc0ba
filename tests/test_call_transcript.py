"""The live call's transcript on the call clock (conversation/call_transcript.py)."""

from __future__ import annotations

from callgate.conversation.call_transcript import CallTranscript
from callgate.conversation.transcripts import TranscriptOptions


def spoken(t: CallTranscript) -> list[tuple[str, str, bool]]:
    return [(turn.speaker, turn.text, turn.interrupted) for turn in t.turns()]


def test_a_barge_in_after_the_agent_text_arrived_cuts_the_turn() -> None:
    t = CallTranscript()
    t.agent_text("a1", "Thanks for calling, have a lovely day. Goodbye!", now_ms=1000)
    # 2 s of audio queued in 100 ms chunks at 1000 ms; the caller cuts in after 800 ms.
    for _ in range(20):
        t.agent_audio("a1", 100, now_ms=1000, queued_ms=0)
    assert spoken(t) == [("agent", "Thanks for calling, have a lovely day. Goodbye!", False)]
    t.interrupted("a1", heard_ms=800)
    ((speaker, text, interrupted),) = spoken(t)
    assert (speaker, interrupted) == ("agent", True)
    assert text == "Thanks for"  # 40% of the characters, backed off to a word boundary
    (turn,) = t.turns()
    assert (turn.start_ms, turn.end_ms) == (1000, 1800)


def test_a_late_caller_transcription_goes_before_the_answer() -> None:
    t = CallTranscript()
    t.caller_audio(now_ms=2200, audio_ms=200)  # pre-roll reaches back to 2000
    t.caller_audio(now_ms=2220, audio_ms=20)
    t.caller_committed(now_ms=3400)
    t.caller_item("c1", now_ms=3420)  # input_audio_buffer.committed names it
    t.agent_audio("a1", 1500, now_ms=3900, queued_ms=0)
    t.agent_text("a1", "Hi Dana, and your phone?", now_ms=3950)
    t.caller_text("c1", "My name is Dana.", now_ms=4100)  # after the answer's text
    assert spoken(t) == [
        ("caller", "My name is Dana.", False),
        ("agent", "Hi Dana, and your phone?", False),
    ]
    caller = t.turns()[0]
    assert (caller.start_ms, caller.end_ms) == (2000, 3400)


def test_without_item_names_a_transcription_takes_every_open_commit() -> None:
    # The fallback pipeline: a cancelled answer carries the first commit's audio into the
    # second, and one transcription covers both.
    t = CallTranscript()
    t.caller_audio(now_ms=1000, audio_ms=200)
    t.caller_committed(now_ms=1600)
    t.caller_audio(now_ms=1900, audio_ms=200)
    t.caller_committed(now_ms=2500)
    t.caller_text("x", "I need a plumber tomorrow.", now_ms=3300)
    (turn,) = t.turns()
    assert (turn.start_ms, turn.end_ms) == (800, 2500)
    t.caller_audio(now_ms=5000, audio_ms=200)
    t.caller_committed(now_ms=5600)
    t.caller_text("y", "At nine.", now_ms=6000)
    assert t.turns()[1].start_ms == 4800


def test_server_turn_mode_items_span_the_speech_since_the_last_one() -> None:
    t = CallTranscript()
    t.caller_audio(now_ms=1000, audio_ms=100)
    t.caller_item("c1", now_ms=2000)  # the model committed by itself
    t.caller_audio(now_ms=3000, audio_ms=100)
    t.caller_item("c2", now_ms=3500)
    t.caller_text("c2", "second", now_ms=3600)
    t.caller_text("c1", "first", now_ms=3700)
    turns = t.turns()
    assert [turn.text for turn in turns] == ["first", "second"]
    assert [(turn.start_ms, turn.end_ms) for turn in turns] == [(900, 2000), (2900, 3500)]


def test_fragments_closer_than_the_merge_gap_are_one_turn() -> None:
    t = CallTranscript(TranscriptOptions(merge_gap_ms=800))
    for item, (start, end), text in (
        ("c1", (1000, 1500), "My number is"),
        ("c2", (1900, 2600), "555 0100."),
    ):
        t.caller_audio(now_ms=start, audio_ms=0)
        t.caller_committed(now_ms=end)
        t.caller_item(item, now_ms=end)
        t.caller_text(item, text, now_ms=end + 100)
    assert spoken(t) == [("caller", "My number is 555 0100.", False)]


def test_changed_reports_each_new_reading_once() -> None:
    t = CallTranscript()
    assert t.changed() is None  # nothing said yet
    t.agent_text("a1", "Hello there.", now_ms=0)
    first = t.changed()
    assert first is not None
    assert first[0].text == "Hello there."
    assert t.changed() is None
    t.agent_audio("a1", 1000, now_ms=0, queued_ms=0)
    longer = t.changed()  # the audio's length moved the turn's end
    assert longer is not None
    assert longer[0].end_ms == 1000
    t.interrupted("a1", heard_ms=0)
    assert t.changed() == []  # cut before a word was heard: no turn at all
