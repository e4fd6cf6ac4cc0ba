"""Confirmed fields are reported as such, by every backend, so the record can say so."""

from __future__ import annotations

import asyncio
from datetime import datetime

from callgate.conversation.agents.base import AgentReply
from callgate.conversation.agents.local import LocalFormAgent
from callgate.conversation.form import load_form
from callgate.conversation.tools import FormTools

NOW = datetime(2025, 3, 10, 9, 0)
FORM = load_form(None)


def test_the_form_asks_to_confirm_the_phone() -> None:
    assert FORM.field("phone").confirm


def test_local_agent_reports_the_read_back_the_caller_agreed_to() -> None:
    agent = LocalFormAgent(FORM, clock=lambda: NOW, region="US")

    async def go() -> list[AgentReply]:
        await agent.start()
        return [
            await agent.on_caller_turn(text)
            for text in (
                "my name is dana levi and my number is 415 555 2672",
                "no, it's four one five, five five five, two six seven one",
                "yes that's right",
                "I'd like a quote for fixing my roof",
            )
        ]

    gave, corrected, agreed, later = asyncio.run(go())
    assert gave.confirmed == frozenset()
    assert corrected.field_updates == {"phone": "+14155552671"}
    assert corrected.confirmed == frozenset()  # a new value is read back again
    assert agreed.confirmed == {"phone"}
    assert agreed.field_updates == {}
    assert later.confirmed == frozenset()  # reported once


def test_save_field_reports_confirmation_only_when_asked() -> None:
    tools = FormTools(FORM, clock=lambda: NOW)
    first = tools.call("save_field", {"name": "phone", "value": "212 555 2368"})
    assert first.ok
    assert first.field_updates == {"phone": "+12125552368"}
    assert first.confirmed == frozenset()
    again = tools.call("save_field", {"name": "phone", "value": "212 555 2368", "confirmed": True})
    assert again.field_updates == {}  # same value: nothing new but the confirmation
    assert again.confirmed == {"phone"}
    refused = tools.call("save_field", {"name": "phone", "value": "12", "confirmed": True})
    assert not refused.ok
    assert refused.confirmed == frozenset()
