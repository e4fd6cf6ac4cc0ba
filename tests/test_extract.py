"""Candidates found in single transcribed utterances, English and Hebrew."""

from __future__ import annotations

from datetime import datetime

import pytest

from callgate.conversation.extract import detect_language, extract, parse_when, phone_runs

NOW = datetime(2025, 3, 10, 9, 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("my number is 415 555 2671", ("4155552671",)),
        ("it's 415-555-2671, thanks", ("4155552671",)),
        ("five five five one two three four five six seven", ("5551234567",)),
        ("four one five double five five two six seven one", ("4155552671",)),
        ("plus nine seven two five zero", ()),  # too short for a phone
        ("אפס חמש אפס שתיים שלוש ארבע חמש שש שבע שמונה", ("0502345678",)),
        ("המספר שלי אפס חמישים ושתיים, שלוש ארבע חמש, שש שבע שמונה תשע", ("0523456789",)),
        ("I have two kids and one dog", ()),
    ],
)
def test_phone_runs(text: str, expected: tuple[str, ...]) -> None:
    assert phone_runs(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sure, it's john.smith@gmail.com", ("john.smith@gmail.com",)),
        ("john dot smith at gmail dot com", ("john.smith@gmail.com",)),
        ("j o h n at example dot org", ("john@example.org",)),
        ("המייל שלי הוא dana שטרודל walla נקודה co נקודה il", ("dana@walla.co.il",)),
        ("I'll be at home tomorrow", ()),
    ],
)
def test_emails(text: str, expected: tuple[str, ...]) -> None:
    assert extract(text, now=NOW).emails == expected


@pytest.mark.parametrize(
    ("text", "strong", "weak"),
    [
        ("Hi, my name is john smith and my number is 415 555 2671", ("john smith",), ()),
        ("this is Dana Levi", (), ("Dana Levi",)),
        ("I'm calling about my order", (), ()),
        ("קוראים לי משה כהן, המספר שלי אפס חמש", ("משה כהן",), ()),
        ("שמי יוסי", ("יוסי",), ()),
        ("אני רוצה לדבר עם מישהו", (), ()),
        ("אני רונית", (), ("רונית",)),
    ],
)
def test_names(text: str, strong: tuple[str, ...], weak: tuple[str, ...]) -> None:
    c = extract(text, now=NOW)
    assert (c.names, c.weak_names) == (strong, weak)


@pytest.mark.parametrize(
    ("text", "yes", "no"),
    [
        ("yes", True, False),
        ("Yeah, that's right.", True, False),
        ("correct", True, False),
        ("no, that's not right", False, True),
        ("that's not right", False, True),
        ("כן בדיוק", True, False),
        ("נכון", True, False),
        ("לא, זה לא נכון", False, True),
        ("my name is John", False, False),
    ],
)
def test_yes_no(text: str, yes: bool, no: bool) -> None:
    c = extract(text, now=NOW)
    assert (c.yes, c.no) == (yes, no)


@pytest.mark.parametrize(
    ("text", "bye"),
    [
        ("ok bye", True),
        ("that's all, goodbye", True),
        ("ביי", True),
        ("תודה זהו", True),
        ("להתראות", True),
        ("I'd like to buy a boat", False),
        ("my name is Abby", False),
    ],
)
def test_goodbye(text: str, bye: bool) -> None:
    assert extract(text, now=NOW).goodbye is bye


def test_when_found_and_phone_digits_are_not_dates() -> None:
    c = extract("call me tomorrow at 3pm on 415 555 2671", now=NOW)
    assert c.when is not None
    assert c.when.value == datetime(2025, 3, 11, 15, 0)
    assert c.when.has_date
    assert c.when.has_time
    assert parse_when("my number is 415 555 2671", NOW) is None
    assert parse_when("I need help with my roof", NOW) is None


def test_time_only_rolls_to_tomorrow_when_past() -> None:
    when = parse_when("at 8 in the morning", NOW)
    assert when is not None
    assert when.value == datetime(2025, 3, 11, 8, 0)
    assert not when.has_date


def test_language_detection() -> None:
    assert detect_language("שלום") == "he"
    assert detect_language("hello") == "en"
    assert detect_language("4155552671") is None
    assert extract("כן", now=NOW).language == "he"
