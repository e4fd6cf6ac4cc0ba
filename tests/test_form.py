"""Form loading, validation errors, normalization and LeadState bookkeeping."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from callgate.conversation.form import (
    FormError,
    Invalid,
    LeadState,
    Normalized,
    load_form,
    normalize,
    parse_form,
)

NOW = datetime(2025, 3, 10, 9, 0)  # a Monday
FORM = load_form(None)

GOOD_HEAD = """
[form]
languages = ["en", "he"]
greeting = { en = "Hi", he = "שלום" }
closing = { en = "Bye", he = "ביי" }
"""


def _write(tmp_path: Path, fields: str) -> Path:
    path = tmp_path / "form.toml"
    path.write_text(GOOD_HEAD + fields, encoding="utf-8")
    return path


def test_default_form_loads_with_both_languages() -> None:
    assert [f.name for f in FORM.fields] == [
        "full_name",
        "phone",
        "reason",
        "email",
        "callback_time",
    ]
    assert [f.name for f in FORM.fields if f.required] == ["full_name", "phone", "reason"]
    assert FORM.field("phone").confirm
    for f in FORM.fields:
        assert f.prompt["en"]
        assert f.prompt["he"]
    assert FORM.closing["he"]
    assert FORM.greeting["en"]


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            '[[fields]]\nname = "x"\ntype = "number"\nprompt = { en = "a", he = "b" }',
            "unknown type",
        ),
        ('[[fields]]\nname = "x"\ntype = "text"', "missing prompt"),
        ('[[fields]]\nname = "x"\ntype = "text"\nprompt = { en = "a" }', "language(s) he"),
        (
            '[[fields]]\nname = "x"\ntype = "text"\nprompt = { en = "a", he = "b" }\n'
            '[[fields]]\nname = "x"\ntype = "text"\nprompt = { en = "a", he = "b" }',
            "duplicate field",
        ),
        (
            '[[fields]]\nname = "x"\ntype = "text"\npattern = "([a-z"\n'
            'prompt = { en = "a", he = "b" }',
            "bad regex",
        ),
        ('[[fields]]\nname = "x"\ntype = "choice"\nprompt = { en = "a", he = "b" }', "choices"),
        (
            '[[fields]]\nname = "x"\ntype = "text"\nrequird = true\n'
            'prompt = { en = "a", he = "b" }',
            "unknown key",
        ),
    ],
)
def test_bad_forms_name_file_field_and_problem(tmp_path: Path, fields: str, message: str) -> None:
    path = _write(tmp_path, fields)
    with pytest.raises(FormError) as err:
        load_form(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)
    assert "'x'" in str(err.value)


def test_unreadable_and_non_toml_files(tmp_path: Path) -> None:
    with pytest.raises(FormError, match="cannot read"):
        load_form(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[form\n", encoding="utf-8")
    with pytest.raises(FormError, match="not valid TOML"):
        load_form(bad)


def test_missing_closing_is_an_error() -> None:
    with pytest.raises(FormError, match="closing"):
        parse_form({"form": {"languages": ["en"], "greeting": {"en": "hi"}}, "fields": []})


@pytest.mark.parametrize(
    ("raw", "region", "expected"),
    [
        ("(415) 555-2671", "US", "+14155552671"),
        ("four one five, five five five, two six seven one", "US", "+14155552671"),
        ("four one five double five five twenty six seventy one", "US", "+14155552671"),
        ("050-234-5678", "IL", "+972502345678"),
        ("אפס חמש אפס, שתיים שלוש ארבע, חמש שש שבע שמונה", "IL", "+972502345678"),
        (
            "plus nine seven two five zero two three four five six seven eight",
            "US",
            "+972502345678",
        ),
    ],
)
def test_phone_normalizes_to_e164(raw: str, region: str, expected: str) -> None:
    assert normalize(FORM.field("phone"), raw, region=region) == Normalized(expected)


def test_phone_too_short_is_invalid() -> None:
    result = normalize(FORM.field("phone"), "five five five one two", region="US")
    assert isinstance(result, Invalid)


@pytest.mark.parametrize(
    "raw",
    [
        "John.Smith@gmail.com",
        "john dot smith at gmail dot com",
        "john dot smith שטרודל gmail נקודה com",
    ],
)
def test_email_written_and_spoken(raw: str) -> None:
    result = normalize(FORM.field("email"), raw)
    assert isinstance(result, Normalized)
    assert result.value.lower() == "john.smith@gmail.com"


def test_email_without_domain_is_invalid() -> None:
    assert isinstance(normalize(FORM.field("email"), "john at gmail"), Invalid)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("tomorrow at 3pm", "2025-03-11T15:00"),
        ("tomorrow at 3", "2025-03-11T15:00"),
        ("day after tomorrow at 10 am", "2025-03-12T10:00"),
        ("at 3:30 p.m. on friday", "2025-03-14T15:30"),
        ("מחר בשלוש", "2025-03-11T15:00"),
        ("מחר בשלוש וחצי", "2025-03-11T15:30"),
        ("מחרתיים בעשר בבוקר", "2025-03-12T10:00"),
        ("tomorrow", "2025-03-11"),
    ],
)
def test_datetime_relative_to_now(raw: str, expected: str) -> None:
    assert normalize(FORM.field("callback_time"), raw, now=NOW) == Normalized(expected)


def test_date_and_time_field_types() -> None:
    data = {
        "form": {"languages": ["en"], "greeting": {"en": "hi"}, "closing": {"en": "bye"}},
        "fields": [
            {"name": "day", "type": "date", "prompt": {"en": "day?"}},
            {"name": "hour", "type": "time", "prompt": {"en": "time?"}},
            {"name": "plan", "type": "choice", "choices": ["basic", "pro"], "prompt": {"en": "?"}},
            {"name": "zip", "type": "text", "pattern": r"\d{5}", "prompt": {"en": "zip?"}},
        ],
    }
    form = parse_form(data)
    assert normalize(form.field("day"), "tomorrow at 5pm", now=NOW) == Normalized("2025-03-11")
    assert normalize(form.field("hour"), "at 5pm", now=NOW) == Normalized("17:00")
    assert isinstance(normalize(form.field("hour"), "tomorrow", now=NOW), Invalid)
    assert normalize(form.field("plan"), "the Pro plan please") == Normalized("pro")
    assert isinstance(normalize(form.field("plan"), "gold"), Invalid)
    assert normalize(form.field("zip"), " 90210 ") == Normalized("90210")
    assert isinstance(normalize(form.field("zip"), "9021"), Invalid)


def test_names_title_case_latin_keep_hebrew() -> None:
    name = FORM.field("full_name")
    assert normalize(name, "john o'brien") == Normalized("John O'Brien")
    assert normalize(name, "Ronald McDonald") == Normalized("Ronald McDonald")
    assert normalize(name, "משה כהן") == Normalized("משה כהן")
    assert isinstance(normalize(name, "why do you need that"), Invalid)


def test_text_length_checked() -> None:
    reason = FORM.field("reason")  # min_length = 3
    assert normalize(reason, "  a leak  in the roof ") == Normalized("a leak in the roof")
    assert isinstance(normalize(reason, "ok"), Invalid)


def test_lead_state_required_confirm_and_complete() -> None:
    lead = LeadState(FORM, region="US")
    assert lead.missing_required() == ["full_name", "phone", "reason"]
    assert isinstance(lead.set("phone", "415 555"), Invalid)
    assert lead.set("full_name", "dana levi") == Normalized("Dana Levi")
    assert lead.set("phone", "415-555-2671") == Normalized("+14155552671")
    assert lead.set("reason", "leaky roof") == Normalized("leaky roof")
    assert lead.missing_required() == ["phone"]  # not confirmed yet
    assert not lead.complete
    lead.confirm("phone")
    assert lead.complete
    lead.set("phone", "212 555 0123")  # a new value needs a new confirmation
    assert lead.missing_required() == ["phone"]
    assert lead.as_dict() == {
        "full_name": "Dana Levi",
        "phone": "+12125550123",
        "reason": "leaky roof",
    }
    lead.clear("phone")
    with pytest.raises(ValueError, match="no value"):
        lead.confirm("phone")
