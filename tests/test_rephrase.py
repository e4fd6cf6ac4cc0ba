"""The loop rule's "say it differently" reaches every agent backend, the local one too."""

from __future__ import annotations

import asyncio
from datetime import datetime

from callgate.conversation.agents.local import LocalFormAgent
from callgate.conversation.form import load_form
from callgate.fallback.pipeline import PipelineLink
from tests.test_fallback_pipeline import ScriptedStt, ScriptedTts

FORM = load_form(None)
NOW = datetime(2025, 3, 10, 9, 0)


def local(language: str = "en") -> LocalFormAgent:
    return LocalFormAgent(FORM, clock=lambda: NOW, region="US", language=language, max_attempts=3)


def test_the_local_agent_asks_the_next_question_another_way_once() -> None:
    agent = local()

    async def go() -> list[str]:
        await agent.start()
        asked = await agent.on_caller_turn("my name is dana levi")
        wrong = await agent.on_caller_turn("it's five five five")  # not a whole number
        agent.instruct("You keep repeating yourself: say it differently.")
        rephrased = await agent.on_caller_turn("um, five five")
        again = await agent.on_caller_turn("I'm not sure")
        return [asked.say, wrong.say, rephrased.say, again.say]

    asked, wrong, rephrased, again = asyncio.run(go())
    phone_prompt = FORM.field("phone").prompt["en"]
    assert phone_prompt in asked
    assert phone_prompt in wrong
    assert phone_prompt not in rephrased
    assert "Let me put it another way." in rephrased
    assert "one digit at a time" in rephrased
    assert "one digit at a time" not in again  # only the next question is reworded


def test_hebrew_is_reworded_in_hebrew() -> None:
    agent = local("he")

    async def go() -> str:
        await agent.start()
        agent.instruct("rephrase")
        return (await agent.on_caller_turn("קוראים לי דנה כהן")).say

    said = asyncio.run(go())
    assert "אנסח את זה אחרת." in said
    assert "ספרה אחרי ספרה" in said


def test_the_fallback_link_hands_a_system_item_to_the_agent() -> None:
    class Listening:
        def __init__(self) -> None:
            self.told: list[str] = []

        def instruct(self, text: str) -> None:
            self.told.append(text)

    async def go() -> list[str]:
        the_agent = Listening()
        link = PipelineLink(the_agent, ScriptedStt([]), ScriptedTts())  # type: ignore[arg-type]
        await link.add_text_item("system", "Say it differently.")
        await link.add_text_item("assistant", "not an instruction")
        await link.close()
        return the_agent.told

    assert asyncio.run(go()) == ["Say it differently."]
