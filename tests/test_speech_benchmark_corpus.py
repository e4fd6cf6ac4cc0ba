"""The speech benchmark's callers: enough of them, and each one's reference text recovers
its expected fields exactly (so every miss in the benchmark is the recognizer's)."""

from __future__ import annotations

import pytest

from benchmarks.run_speech_benchmark import (
    FIRST_LEADS,
    GENERAL_SENTENCES,
    LEADS,
    Lead,
    corpus,
    recover_field,
)
from callgate.conversation.form import load_form

FORM = load_form()


def test_enough_distinct_callers() -> None:
    assert len(LEADS) >= 20
    assert LEADS[: len(FIRST_LEADS)] == FIRST_LEADS
    for attr in ("name", "phone", "email"):
        assert len({getattr(lead, attr) for lead in LEADS}) == len(LEADS), attr


@pytest.mark.parametrize("lead", LEADS, ids=lambda lead: lead.name)
def test_reference_text_gives_the_expected_fields(lead: Lead) -> None:
    assert recover_field(FORM, "full_name", f"My name is {lead.name}.") == lead.name
    assert recover_field(FORM, "phone", f"My number is {lead.phone_words}.") == lead.phone
    said = f"My email is {lead.email_words}."
    assert recover_field(FORM, "email", said, lead.name) == lead.email


def test_corpus_subsets() -> None:
    assert len(corpus(False)) == len(GENERAL_SENTENCES) + 3 * len(FIRST_LEADS)  # gate ASR's
    fields_only = corpus(False, LEADS, general=False)
    assert len(fields_only) == 3 * len(LEADS)
    assert all(item.field for item in fields_only)
    assert len(corpus(True, LEADS)) == len(GENERAL_SENTENCES) // 2 + 9
