"""Scripted calls through the local form agent, English and Hebrew."""

from __future__ import annotations

import asyncio
from datetime import datetime

from callgate.conversation.agents.base import AgentReply, EndCall
from callgate.conversation.agents.local import LocalFormAgent, stt_prompt_for
from callgate.conversation.form import load_form

NOW = datetime(2025, 3, 10, 9, 0)
FORM = load_form(None)


def _agent(*, region: str = "US", language: str | None = None) -> LocalFormAgent:
    return LocalFormAgent(FORM, clock=lambda: NOW, region=region, language=language)


def _run(agent: LocalFormAgent, turns: list[str]) -> list[AgentReply]:
    async def go() -> list[AgentReply]:
        replies = [await agent.start()]
        for text in turns:
            assert replies[-1].end_call is None, f"call ended before {text!r}"
            replies.append(await agent.on_caller_turn(text))
        return replies

    return asyncio.run(go())


def test_english_call_with_correction_ends_lead_complete() -> None:
    agent = _agent(region="US")
    replies = _run(
        agent,
        [
            # Two fields in one sentence, one of them not asked for yet.
            "Hi, my name is dana levi and my number is 415 555 2672",
            "no, it's four one five, five five five, two six seven one",
            "yes that's right",
            "I'd like a quote for fixing my roof",
            "sure, dana dot levi at gmail dot com",
            "tomorrow at 3pm",
        ],
    )
    assert replies[0].say.startswith(FORM.greeting["en"])
    assert FORM.field("full_name").prompt["en"] in replies[0].say
    assert "4 1 5, 5 5 5, 2 6 7 2" in replies[1].say
    assert "right?" in replies[1].say
    assert replies[1].field_updates == {"full_name": "Dana Levi", "phone": "+14155552672"}
    assert "2 6 7 1" in replies[2].say  # the corrected number is read back again
    assert FORM.field("reason").prompt["en"] in replies[3].say
    assert FORM.field("email").prompt["en"] in replies[4].say
    assert replies[-1].end_call == EndCall("lead_complete")
    assert replies[-1].say == FORM.closing["en"]
    assert agent.lead.as_dict() == {
        "full_name": "Dana Levi",
        "phone": "+14155552671",
        "reason": "I'd like a quote for fixing my roof",
        "email": "dana.levi@gmail.com",
        "callback_time": "2025-03-11T15:00",
    }


def test_hebrew_call_detects_language_and_ends_lead_complete() -> None:
    agent = _agent(region="IL")
    replies = _run(
        agent,
        [
            "שלום, קוראים לי משה כהן",
            "אפס חמש אפס, שתיים שלוש ארבע, חמש שש שבע תשע",
            "לא",
            "אפס חמש אפס, שתיים שלוש ארבע, חמש שש שבע שמונה",
            "כן, נכון",
            "יש לי נזילה במטבח",
            "לא תודה",
            "מחר בשלוש",
        ],
    )
    assert replies[1].language == "he"
    assert FORM.field("phone").prompt["he"] in replies[1].say
    assert "0 5 0, 2 3 4, 5 6 7 9" in replies[2].say
    assert "נכון" in replies[2].say
    assert "סליחה" in replies[3].say
    assert FORM.field("phone").prompt["he"] in replies[3].say
    assert FORM.field("reason").prompt["he"] in replies[5].say
    assert FORM.field("email").prompt["he"] in replies[6].say
    assert FORM.field("callback_time").prompt["he"] in replies[7].say
    assert replies[-1].end_call == EndCall("lead_complete")
    assert replies[-1].say == FORM.closing["he"]
    assert agent.lead.as_dict() == {
        "full_name": "משה כהן",
        "phone": "+972502345678",
        "reason": "יש לי נזילה במטבח",
        "callback_time": "2025-03-11T15:00",
    }


def test_missing_required_field_keeps_call_open_until_second_goodbye() -> None:
    agent = _agent(region="US", language="en")
    replies = _run(
        agent,
        [
            "this is John Smith",
            "I don't want to give my number",
            "no",
            "I want to ask about pricing",
            "hmm",
            "ok bye",
            "I said goodbye",
        ],
    )
    phone_prompt = FORM.field("phone").prompt["en"]
    assert phone_prompt in replies[1].say
    assert "phone number" in replies[2].say
    assert phone_prompt in replies[2].say
    assert "move on" in replies[3].say  # gave up after max_attempts, asks the next field
    assert FORM.field("reason").prompt["en"] in replies[3].say
    assert "still need your phone number" in replies[4].say  # comes back to it
    assert all(r.end_call is None for r in replies[:6])
    assert replies[6].say == "Before you go, may I have your phone number?"
    assert replies[7].end_call == EndCall("caller_goodbye")
    assert agent.lead.missing_required() == ["phone"]
    assert agent.lead.rejected["phone"] == "no"
    assert agent.lead.as_dict() == {
        "full_name": "John Smith",
        "reason": "I want to ask about pricing",
    }


def test_goodbye_then_answer_completes_the_lead() -> None:
    agent = _agent(region="US")
    replies = _run(
        agent,
        [
            "my name is Ana Ruiz, I need a plumber",
            "Ana Ruiz",
            "bye",
            "212 555 0123",
            "yes",
            "I need a plumber",
            "no thanks",
            "no",
        ],
    )
    assert replies[3].say == "Before you go, may I have your phone number?"
    assert replies[3].end_call is None
    assert replies[-1].end_call == EndCall("lead_complete")
    assert agent.lead.as_dict()["phone"] == "+12125550123"


def test_after_end_the_agent_says_goodbye_again() -> None:
    """A caller who talked over the goodbye hears it again, and the call still ends."""
    agent = _agent(language="en")
    replies = _run(agent, ["my name is Ana Ruiz", "bye", "bye"])
    assert replies[-1].end_call == EndCall("caller_goodbye")
    late = asyncio.run(agent.on_caller_turn("hello?"))
    assert late.say == replies[-1].say
    assert late.end_call == EndCall("caller_goodbye")
    assert late.field_updates == {}


def test_stt_prompt_follows_the_question_and_the_callers_name() -> None:
    agent = _agent(region="US", language="en")
    prompts: list[str | None] = []

    async def go() -> None:
        await agent.start()
        prompts.append(agent.stt_prompt())  # asking the name
        await agent.on_caller_turn("my name is Daniel Katz")
        prompts.append(agent.stt_prompt())  # asking the phone
        await agent.on_caller_turn("nine one seven five five five eight eight two zero")
        prompts.append(agent.stt_prompt())  # reading the phone back
        await agent.on_caller_turn("yes")
        await agent.on_caller_turn("I need a new roof")
        prompts.append(agent.stt_prompt())  # asking the e-mail
        reply = await agent.on_caller_turn("daniel dot cats at example dot org")
        assert reply.field_updates == {"email": "daniel.katz@example.org"}  # as the name

    asyncio.run(go())
    assert prompts[0] is None
    assert prompts[1] == prompts[2] == stt_prompt_for("phone")
    assert prompts[3] == stt_prompt_for("email", "Daniel Katz")
    assert "Daniel Katz" in (prompts[3] or "")
    assert "dot" in (prompts[3] or "")


def test_no_stt_prompt_in_hebrew() -> None:
    agent = _agent(language="he")

    async def go() -> None:
        await agent.start()
        await agent.on_caller_turn("קוראים לי משה כהן")

    asyncio.run(go())
    assert agent.lead.values["full_name"] == "משה כהן"
    assert agent.stt_prompt() is None


def test_email_answer_that_lost_the_dot_between_the_callers_names() -> None:
    agent = _agent(region="US", language="en")

    async def go() -> dict[str, str]:
        await agent.start()
        await agent.on_caller_turn("my name is Daniel Katz")
        await agent.on_caller_turn("nine one seven five five five eight eight two zero")
        await agent.on_caller_turn("yes")
        await agent.on_caller_turn("I need a new roof")
        # What tiny.en wrote after the e-mail prompt for "daniel dot katz at example dot org".
        reply = await agent.on_caller_turn("My name is Daniel Katz at example dot org.")
        return reply.field_updates

    assert asyncio.run(go()) == {"email": "daniel.katz@example.org"}
