"""Candidates found in single transcribed utterances, English and Hebrew."""

from __future__ import annotations

from datetime import datetime

import pytest

from callgate.conversation.extract import (
    caller_emails,
    detect_language,
    emails,
    extract,
    parse_when,
    phone_runs,
    respell_email,
)

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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # What tiny.en writes for digits: "for" 4, "to" 2, "ate" 8, "oh" 0.
        ("My number is for 1 5 5 5 5 2 6 7 1", ("4155552671", "155552671")),
        ("four one five, five five five, to six seven one", ("4155552671",)),
        ("two one two five five five oh one nine ate", ("2125550198",)),
        ("six four six double five five three four one two", ("6465553412",)),
        ("triple five one two three four five six", ("555123456",)),
        # A sound-alike that is only a word stays a word.
        ("call 212 555 0198 for now", ("2125550198",)),
        ("a number for 212 555 0198", ("42125550198", "2125550198")),
        ("I want to go to the store", ()),
    ],
)
def test_phone_runs_with_spoken_digits(text: str, expected: tuple[str, ...]) -> None:
    assert phone_runs(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Spelled letters, as the transcriber writes them.
        ("J-O-H-N at example dot com", ("john@example.com",)),
        ("it is j. o. h. n. at gmail dot com", ("john@gmail.com",)),
        ("john underscore smith at gmail dot com", ("john_smith@gmail.com",)),
        # The spoken "dot" written as a full stop, before the "at".
        ("My email is Dana. Cohen at example.com", ("dana.cohen@example.com", "cohen@example.com")),
        ("Sure. John at example dot com", ("john@example.com",)),
        # "at" heard as "and", or glued into the words around it.
        ("david.lovey and outlook.com", ("david.lovey@outlook.com",)),
        ("david.leviandoutlook.com", ("david.levi@outlook.com",)),
        ("my email is emilyatdavis.org.", ("emily@davis.org",)),
        ("sandragmail.com", ()),
    ],
)
def test_emails_as_transcribed(text: str, expected: tuple[str, ...]) -> None:
    assert emails(text) == expected


@pytest.mark.parametrize(
    ("address", "name", "expected"),
    [
        ("daniel.cats@example.org", "Daniel Katz", "daniel.katz@example.org"),
        ("sera.miller@yahoo.com", "Sarah Miller", "sarah.miller@yahoo.com"),
        ("dana.com@example.com", "Dana Cohen", "dana.cohen@example.com"),
        # Short forms and other words are the caller's choice: left alone.
        ("dan.cohen@example.com", "Dana Cohen", "dan.cohen@example.com"),
        ("mike.brown@example.com", "Michael Brown", "mike.brown@example.com"),
        ("info@example.com", "Dana Cohen", "info@example.com"),
        ("dana@example.com", "דנה כהן", "dana@example.com"),
    ],
)
def test_respell_email_after_the_callers_name(address: str, name: str, expected: str) -> None:
    assert respell_email(address, name) == expected


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        # The spoken "dot" between two name parts lost: the first name joins with a dot.
        ("My name is Daniel Katz at example dot org.", "Daniel Katz", "daniel.katz@example.org"),
        ("My email is Michael Brown at gmail.com.", "Michael Brown", "michael.brown@gmail.com"),
        # ... as it sounds, respelled after the name as before.
        ("daniel cats at example dot org", "Daniel Katz", "daniel.katz@example.org"),
        ("daniel dot cats at example dot org", "Daniel Katz", "daniel.katz@example.org"),
        # One name part, or a word that is not the caller's name before it: left alone.
        ("my email is kevin at robinson dot net", "Kevin Robinson", "kevin@robinson.net"),
        ("it is katz at example dot org", "Daniel Katz", "katz@example.org"),
        ("ask for daniel, katz at example dot org", "", "katz@example.org"),
        ("brown brown at example dot org", "Michael Brown", "brown@example.org"),
    ],
)
def test_caller_emails_with_the_callers_name(text: str, name: str, expected: str) -> None:
    assert caller_emails(text, emails(text), name)[0] == expected
