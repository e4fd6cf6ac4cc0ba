"""Loop and echo detection: normalized similarity, repeat runs, echoes, English and Hebrew."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callgate.conversation.loops import (
    DEFAULT_REPHRASE_INSTRUCTION,
    EchoDetected,
    LoopDetected,
    LoopDetector,
    LoopOptions,
    normalize,
    partial_similarity,
    similarity,
)

# --- normalize and similarity ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  What's   your NAME?! ", "whats your name"),
        ("Call 050-123-4567, please.", "call 050 123 4567 please"),
        ("Café STRASSE straße", "cafe strasse strasse"),
        ("מַה שִּׁמְךָ?", "מה שמך"),  # niqqud removed
        ("בֵּית־סֵפֶר׃", "בית ספר"),  # maqaf splits, sof pasuq removed
        ('צה"ל וצ׳יפס, צה״ל', "צהל וציפס צהל"),  # gershayim / geresh join
        ("\tשלום\n\nעולם ", "שלום עולם"),
    ],
)
def test_normalize(text: str, expected: str) -> None:
    assert normalize(text) == expected


def test_identical_after_normalizing_is_one() -> None:
    assert similarity("What is your name?", "what is your name") == 1.0
    assert similarity("מה שמך, בבקשה?", "מַה שִּׁמְךָ בְּבַקָּשָׁה") == 1.0


def test_reordered_words_are_the_same_reply() -> None:
    assert (
        similarity("Could you tell me your name, please?", "Could you please tell me your name?")
        == 1.0
    )


def test_different_questions_are_below_the_default_threshold() -> None:
    assert similarity("What is your name?", "What is your phone number?") < 0.85
    assert similarity("מה שמך?", "מה מספר הטלפון שלך?") < 0.85


def test_empty_texts() -> None:
    assert similarity("", "?!") == 1.0
    assert similarity("hello", "...") == 0.0


def test_partial_similarity_finds_a_piece_of_a_long_reply() -> None:
    whole = "Hello and thanks for calling Acme, how can I help you today?"
    assert partial_similarity("thanks for calling acme", whole) == 1.0
    assert similarity("thanks for calling acme", whole) < 0.6
    # A longer text that merely contains the shorter one is not a piece of it.
    assert partial_similarity("yes I want to book a table for four", "yes") < 0.5


TEXT = st.text(alphabet=st.sampled_from(list("ab c,.!אבג־ְ1 ")), max_size=30)


@given(TEXT, TEXT)
def test_similarity_is_symmetric_and_in_range(a: str, b: str) -> None:
    s = similarity(a, b)
    assert 0.0 <= s <= 1.0
    assert s == similarity(b, a)


@given(TEXT)
def test_normalize_is_idempotent_and_self_similar(a: str) -> None:
    assert normalize(normalize(a)) == normalize(a)
    assert similarity(a, a) == 1.0
    assert "  " not in normalize(a)


# --- agent repeats ---------------------------------------------------------------------------


def test_loop_fires_on_the_third_near_identical_reply() -> None:
    d = LoopDetector()
    assert d.agent_said("Sorry, I didn't catch that. What is your name?", 0) is None
    assert d.agent_said("Sorry, I did not catch that. What is your name?", 5000) is None
    event = d.agent_said("Sorry, I didn't catch that. What's your name?", 10_000)
    assert isinstance(event, LoopDetected)
    assert event.kind == "agent_repeat"
    assert event.count == 3
    assert event.text == "Sorry, I didn't catch that. What's your name?"
    assert len(event.texts) == 3
    assert event.texts[0] == "Sorry, I didn't catch that. What is your name?"
    assert 0.85 <= event.similarity < 1.0
    assert event.at_ms == 10_000
    assert event.action == "rephrase"
    assert event.instruction == DEFAULT_REPHRASE_INSTRUCTION


def test_loop_reports_again_with_a_growing_count() -> None:
    d = LoopDetector(LoopOptions(repeats=2))
    assert d.agent_said("What is your name?", 0) is None
    first = d.agent_said("What is your name?", 1)
    second = d.agent_said("What is your name?", 2)
    assert first is not None
    assert first.count == 2
    assert second is not None
    assert second.count == 3


def test_one_different_reply_resets_the_run() -> None:
    d = LoopDetector()
    d.agent_said("What is your name?", 0)
    d.agent_said("What is your name?", 1)
    assert d.agent_said("Thanks! And your phone number?", 2) is None
    assert d.agent_said("What is your name?", 3) is None
    assert d.agent_said("What is your name?", 4) is None
    assert d.agent_said("What is your name?", 5) is not None


def test_caller_turns_between_replies_do_not_reset_the_run() -> None:
    d = LoopDetector()
    d.agent_said("What is your name?", 0)
    d.caller_said("uh, I'm calling about my order", 1000)
    d.agent_said("What is your name?", 2000)
    d.caller_said("my order", 3000)
    assert d.agent_said("What is your name?", 4000) is not None


def test_hebrew_loop_with_and_without_niqqud() -> None:
    d = LoopDetector()
    d.agent_said("סליחה, לא הבנתי. מה שמך?", 0)
    d.agent_said("סְלִיחָה, לֹא הֵבַנְתִּי. מַה שִּׁמְךָ?", 1)
    event = d.agent_said("סליחה לא הבנתי, מה שמך", 2)
    assert event is not None
    assert event.count == 3
    assert event.similarity == 1.0


def test_hebrew_different_questions_are_no_loop() -> None:
    d = LoopDetector()
    d.agent_said("מה שמך?", 0)
    d.agent_said("מה מספר הטלפון שלך?", 1)
    assert d.agent_said("מה שמך?", 2) is None


@pytest.mark.parametrize("action", ["transfer", "end"])
def test_other_actions_carry_no_instruction(action: str) -> None:
    d = LoopDetector(LoopOptions(action=action, repeats=2))  # type: ignore[arg-type]
    d.agent_said("Hello?", 0)
    event = d.agent_said("Hello?", 1)
    assert event is not None
    assert event.action == action
    assert event.instruction is None


def test_empty_replies_are_ignored() -> None:
    d = LoopDetector(LoopOptions(repeats=2))
    assert d.agent_said("...", 0) is None
    assert d.agent_said("  ", 1) is None
    assert d.agent_said("Hello?", 2) is None


def test_reset_forgets_the_run_and_the_echo_window() -> None:
    d = LoopDetector(LoopOptions(repeats=2))
    d.agent_said("Hello?", 0)
    d.reset()
    assert d.agent_said("Hello?", 1) is None
    d.reset()
    assert d.caller_said("Hello?", 2) is None


@given(st.integers(2, 6), st.integers(1, 12))
def test_identical_replies_fire_from_the_repeats_th_on(repeats: int, n: int) -> None:
    d = LoopDetector(LoopOptions(repeats=repeats))
    events = [d.agent_said("Can I have your name?", i * 1000) for i in range(n)]
    counts = [e.count if e else None for e in events]
    assert counts == [i + 1 if i + 1 >= repeats else None for i in range(n)]


# --- echo ------------------------------------------------------------------------------------


def test_the_agents_words_heard_as_the_caller_are_an_echo() -> None:
    d = LoopDetector()
    d.agent_said("Thanks for calling Acme, how can I help you today?", 1000)
    event = d.caller_said("thanks for calling acme how can I help you today", 4000)
    assert isinstance(event, EchoDetected)
    assert event.kind == "caller_echo"
    assert event.action == "drop"
    assert event.agent_text == "Thanks for calling Acme, how can I help you today?"
    assert event.caller_text == "thanks for calling acme how can I help you today"
    assert event.similarity == 1.0
    assert (event.at_ms, event.agent_at_ms) == (4000, 1000)


def test_a_piece_of_a_long_reply_is_an_echo() -> None:
    d = LoopDetector()
    d.agent_said("Hello and thanks for calling Acme, how can I help you today?", 0)
    assert d.caller_said("thanks for calling acme how", 2000) is not None


def test_a_short_answer_inside_the_question_is_not_an_echo() -> None:
    d = LoopDetector()
    d.agent_said("Is that correct, yes or no?", 0)
    assert d.caller_said("yes", 2000) is None
    assert d.caller_said("Yes, I want to book a table for four people", 3000) is None


def test_an_echo_outside_the_window_is_a_caller_turn() -> None:
    d = LoopDetector(LoopOptions(echo_window_ms=10_000))
    d.agent_said("How can I help you today?", 0)
    assert d.caller_said("How can I help you today?", 10_000) is not None
    assert d.caller_said("How can I help you today?", 10_001) is None


def test_the_best_matching_reply_is_reported() -> None:
    d = LoopDetector()
    d.agent_said("What is your name?", 0)
    d.agent_said("What is your phone number?", 1000)
    event = d.caller_said("what is your phone number", 2000)
    assert event is not None
    assert event.agent_text == "What is your phone number?"


def test_hebrew_echo() -> None:
    d = LoopDetector()
    d.agent_said("שלום, הגעתם למרפאת השיניים. איך אפשר לעזור?", 0)
    event = d.caller_said("הגעתם למרפאת השיניים איך אפשר", 3000)
    assert event is not None
    assert event.similarity >= 0.8
    assert d.caller_said("אני רוצה לקבוע תור לטיפול", 4000) is None


def test_caller_turn_with_no_agent_reply_is_no_echo() -> None:
    assert LoopDetector().caller_said("hello", 0) is None


@pytest.mark.parametrize(
    "kwargs",
    [
        {"similarity": 0.0},
        {"similarity": 1.5},
        {"repeats": 1},
        {"action": "hang"},
        {"echo_similarity": 0.0},
        {"echo_window_ms": -1},
        {"echo_partial_min_words": 0},
    ],
)
def test_options_reject_out_of_range(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LoopOptions(**kwargs)  # type: ignore[arg-type]
