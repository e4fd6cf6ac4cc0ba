"""The Agents SDK backend through the real SDK, over real HTTP, against the local Chat API peer."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
import openai
import pytest
from openai import AsyncOpenAI

from callgate.config import Settings
from callgate.conversation.agents.base import AgentReply, EndCall
from callgate.conversation.agents.sdk import AgentsSdkAgent
from callgate.conversation.form import load_form
from callgate.conversation.tools import form_instructions, tool_schemas
from callgate.peers.chat_api import (
    ChatApiPeer,
    ChatPolicy,
    PolicyReply,
    ReceivedRequest,
    ToolCall,
    form_filling_policy,
)

NOW = datetime(2025, 3, 10, 9, 0)
FORM = load_form(None)
KEY = "sk-local-test"


def _clock() -> datetime:
    return NOW


def _settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "_env_file": None,
        "openai_api_key": KEY,
        "agent_model": "test-chat-model",
        "agent_instructions": "You work for Acme Roofing.",
        "default_region": "US",
        "transcription_language": "",
        **overrides,
    }
    return Settings(**values)


def _client(url: str) -> AsyncOpenAI:
    # No SDK-level retries: the agent's own retry is what is under test, and fast.
    return AsyncOpenAI(api_key=KEY, base_url=url, max_retries=0)


def _agent(client: AsyncOpenAI, **overrides: Any) -> AgentsSdkAgent:
    return AgentsSdkAgent.from_settings(_settings(**overrides), FORM, client, clock=_clock)


def _run(policy: ChatPolicy, body: Callable[[ChatApiPeer, AsyncOpenAI], Awaitable[None]]) -> None:
    """Run ``body`` with the peer serving ``policy`` and an SDK client pointed at it."""

    async def go() -> None:
        async with ChatApiPeer(policy, api_key=KEY) as peer, _client(peer.url) as client:
            await body(peer, client)

    asyncio.run(go())


async def _call(agent: AgentsSdkAgent, turns: list[str]) -> list[AgentReply]:
    replies = [await agent.start()]
    for text in turns:
        assert replies[-1].end_call is None, f"call ended before {text!r}"
        replies.append(await agent.on_caller_turn(text))
    return replies


# --- a scripted model: what a chat model does with these tools on this call -------------


def _tool_results(
    messages: list[dict[str, Any]],
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(tool name, arguments, parsed output) of the calls answered since the last assistant."""
    start = len(messages)
    while messages[start - 1]["role"] == "tool":
        start -= 1
    calls = {c["id"]: c["function"] for c in messages[start - 1]["tool_calls"]}
    out = []
    for msg in messages[start:]:
        fn = calls[msg["tool_call_id"]]
        out.append((fn["name"], json.loads(fn["arguments"]), json.loads(msg["content"])))
    return out


def _save(name: str, value: str, **extra: Any) -> ToolCall:
    return ToolCall("save_field", {"name": name, "value": value, **extra})


CALLER_TURNS: dict[str, PolicyReply | str] = {
    "Hi, my name is Dana Cohen": PolicyReply(tool_calls=(_save("full_name", "Dana Cohen"),)),
    "it's five five five one two": PolicyReply(tool_calls=(_save("phone", "555 12"),)),
    "sure, four one five, five five five, two six seven one": PolicyReply(
        tool_calls=(_save("phone", "415 555 2671"),)
    ),
    "yes, that's right": PolicyReply(tool_calls=(_save("phone", "+14155552671", confirmed=True),)),
    "that's all, thanks": PolicyReply(
        tool_calls=(ToolCall("end_call", {"reason": "lead_complete"}),)
    ),
    "My roof is leaking and I need a repair quote": PolicyReply(
        "Got it.", (_save("reason", "My roof is leaking and I need a repair quote"),)
    ),
}


def lead_policy(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> PolicyReply | str:
    """Answers as a chat model would, from the caller's words and the tool results."""
    last = messages[-1]
    if last["role"] == "user":
        return CALLER_TURNS.get(last["content"], "Sorry, could you say that again?")
    parts: list[str] = []
    for tool, args, out in _tool_results(messages):
        if tool == "save_field" and not out["ok"]:
            parts.append("Sorry, that doesn't look like a complete phone number.")
        elif tool == "end_call" and not out["ok"]:
            parts.append("Before we finish, I still need a few details.")
        elif tool == "save_field" and args["name"] == "full_name":
            parts.append(f"Thanks {out['value'].split()[0]}.")
        elif tool == "save_field" and out.get("needs_confirmation"):
            return f"I have {out['value']}. Is that right?"
    if not out["missing"]:
        return PolicyReply(FORM.closing["en"], (ToolCall("end_call", {"reason": "lead_complete"}),))
    next_up = out["missing"][0]
    if next_up == "phone":
        parts.append("What is the best number to reach you?")
    else:
        parts.append("Great. How can we help you today?")
    return " ".join(parts)


# --- conversations ----------------------------------------------------------------------


def test_whole_lead_collected_with_normalized_values_and_lead_complete() -> None:
    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        agent = _agent(client)
        greeting = await agent.start()
        assert greeting.say == f"{FORM.greeting['en']} {FORM.field('full_name').prompt['en']}"
        assert peer.requests == []  # the greeting needs no model call
        replies = [greeting] + [
            await agent.on_caller_turn(text)
            for text in [
                "Hi, my name is Dana Cohen",
                "sure, four one five, five five five, two six seven one",
                "yes, that's right",
                "My roof is leaking and I need a repair quote",
            ]
        ]
        _, name, phone, confirm, reason = replies
        assert [r.end_call for r in replies[:-1]] == [None] * 4
        assert name == AgentReply(
            "Thanks Dana. What is the best number to reach you?", "en", {"full_name": "Dana Cohen"}
        )
        assert phone.say == "I have +14155552671. Is that right?"
        assert phone.field_updates == {"phone": "+14155552671"}
        assert confirm.field_updates == {}  # same value, now confirmed
        assert confirm.end_call is None
        # Text the model says beside a tool call is spoken too, before its closing line.
        assert reason.say == f"Got it. {FORM.closing['en']}"
        assert reason.end_call == EndCall("lead_complete")
        assert reason.field_updates == {"reason": "My roof is leaking and I need a repair quote"}
        assert agent.lead.as_dict() == {
            "full_name": "Dana Cohen",
            "phone": "+14155552671",
            "reason": "My roof is leaking and I need a repair quote",
        }
        assert agent.lead.complete
        assert "phone" in agent.lead.confirmed
        # Two model calls per turn (tool call, then the answer); the accepted end_call ends
        # the run without asking the model again.
        assert [r.status for r in peer.requests] == [200] * 8
        assert peer.requests[-1].response["choices"][0]["message"]["tool_calls"][0]["function"] == {
            "name": "end_call",
            "arguments": '{"reason": "lead_complete"}',
        }
        # The history is replayed each turn: the last request holds the whole call.
        roles = [m["role"] for m in peer.requests[-1].messages]
        assert roles[:3] == ["system", "assistant", "user"]
        assert roles.count("user") == 4
        # The caller talks over the goodbye: the closing is said again, the call ends again.
        again = await agent.on_caller_turn("wait, one more thing")
        assert again == AgentReply(reason.say, "en", {}, EndCall("lead_complete"))
        assert len(peer.requests) == 8

    _run(lead_policy, body)


def test_invalid_phone_is_refused_and_asked_again() -> None:
    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        agent = _agent(client)
        replies = await _call(agent, ["Hi, my name is Dana Cohen", "it's five five five one two"])
        refused = replies[-1]
        assert refused.say == (
            "Sorry, that doesn't look like a complete phone number. "
            "What is the best number to reach you?"
        )
        assert refused.field_updates == {}
        assert refused.end_call is None
        assert "phone" not in agent.lead.values
        assert agent.lead.rejected == {"phone": "555 12"}
        # The model was told why, in the tool result it got back.
        tool_msg = peer.requests[-1].messages[-1]
        assert tool_msg["role"] == "tool"
        result = json.loads(tool_msg["content"])
        assert result["ok"] is False
        assert "not a valid phone number" in result["error"]
        assert result["missing"] == ["phone", "reason"]
        # The next answer is taken.
        ok = await agent.on_caller_turn("sure, four one five, five five five, two six seven one")
        assert ok.field_updates == {"phone": "+14155552671"}

    _run(lead_policy, body)


def test_end_call_lead_complete_is_refused_while_fields_are_missing() -> None:
    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        agent = _agent(client)
        replies = await _call(agent, ["Hi, my name is Dana Cohen", "that's all, thanks"])
        reply = replies[-1]
        assert reply.end_call is None
        assert reply.say == (
            "Before we finish, I still need a few details. What is the best number to reach you?"
        )
        result = json.loads(peer.requests[-1].messages[-1]["content"])
        assert result["ok"] is False
        assert "missing" in result["error"]
        # The call goes on.
        more = await agent.on_caller_turn("sure, four one five, five five five, two six seven one")
        assert more.end_call is None
        assert more.field_updates == {"phone": "+14155552671"}

    _run(lead_policy, body)


def test_request_carries_the_form_tools_instructions_and_model() -> None:
    settings = _settings()

    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        agent = AgentsSdkAgent.from_settings(settings, FORM, client, clock=_clock)
        await _call(agent, ["Hi, my name is Dana Cohen"])
        first: ReceivedRequest = peer.requests[0]
        assert first.body["model"] == "test-chat-model"
        assert first.headers["authorization"] == f"Bearer {KEY}"
        assert first.body.get("stream") in (None, False)  # Runner.run does not stream
        system = first.messages[0]
        assert system == {
            "role": "system",
            "content": form_instructions(FORM, "en", base=settings.agent_instructions),
        }
        assert system["content"].startswith("You work for Acme Roofing.")
        assert first.messages[1] == {"role": "assistant", "content": agent.history[0]["content"]}  # type: ignore[typeddict-item]
        assert first.messages[2] == {"role": "user", "content": "Hi, my name is Dana Cohen"}
        sent = {t["function"]["name"]: t for t in first.tools}
        assert set(sent) == {"save_field", "end_call"}
        for schema in tool_schemas(FORM):
            tool = sent[schema["name"]]
            assert tool["type"] == "function"
            assert tool["function"]["description"] == schema["description"]
            assert tool["function"]["parameters"] == schema["parameters"]  # exact, not rewritten
            assert tool["function"].get("strict") is False
        field_enum = sent["save_field"]["function"]["parameters"]["properties"]["name"]["enum"]
        assert field_enum == ["full_name", "phone", "reason", "email", "callback_time"]
        end_enum = sent["end_call"]["function"]["parameters"]["properties"]["reason"]["enum"]
        assert end_enum == ["lead_complete", "caller_goodbye"]

    _run(lead_policy, body)


def test_hebrew_call_with_the_form_filling_policy() -> None:
    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        agent = _agent(client, default_region="IL")
        replies = await _call(
            agent,
            [
                "קוראים לי דנה כהן",
                "אפס חמש אפס, שתיים שלוש ארבע, חמש שש שבע שמונה",
                "כן",
                "יש לי נזילה בגג",
            ],
        )
        assert replies[0].language == "en"  # before the caller spoke: the form's first language
        assert [r.language for r in replies[1:]] == ["he"] * 4
        assert replies[1].say == f"תודה. {FORM.field('phone').prompt['he']}"
        assert replies[1].field_updates == {"full_name": "דנה כהן"}
        assert "האם זה נכון?" in replies[2].say
        assert replies[-1].say == FORM.closing["he"]
        assert replies[-1].end_call == EndCall("lead_complete")
        assert agent.lead.as_dict() == {
            "full_name": "דנה כהן",
            "phone": "+972502345678",
            "reason": "יש לי נזילה בגג",
        }
        # The instructions follow the caller's language.
        he_system = peer.requests[0].messages[0]["content"]
        assert he_system == form_instructions(FORM, "he", base="You work for Acme Roofing.")
        assert FORM.field("phone").prompt["he"] in he_system

    _run(form_filling_policy(FORM, clock=_clock, region="IL"), body)


def test_english_call_with_the_form_filling_policy_volunteered_fields() -> None:
    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        agent = _agent(client)
        replies = await _call(
            agent,
            [
                "this is Dana Cohen and my number is 415 555 2671",
                "no, it's four one five, five five five, two six seven two",
                "yes",
                "I'd like a quote for a new roof",
            ],
        )
        assert replies[1].field_updates == {"full_name": "Dana Cohen", "phone": "+14155552671"}
        assert "4 1 5, 5 5 5, 2 6 7 1. Is that right?" in replies[1].say
        assert replies[2].field_updates == {"phone": "+14155552672"}
        assert replies[-1].end_call == EndCall("lead_complete")
        assert agent.lead.as_dict()["phone"] == "+14155552672"
        assert agent.lead.complete

    _run(form_filling_policy(FORM, clock=_clock), body)


def test_caller_goodbye_ends_the_call_before_the_lead_is_complete() -> None:
    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        agent = _agent(client)
        replies = await _call(agent, ["my name is Dana Cohen", "sorry, I have to go, bye"])
        assert replies[-1].end_call == EndCall("caller_goodbye")
        assert replies[-1].say == "Thank you for calling. Goodbye!"
        assert agent.lead.as_dict() == {"full_name": "Dana Cohen"}

    _run(form_filling_policy(FORM, clock=_clock), body)


def test_cancelled_turn_updates_are_reported_on_the_next_turn() -> None:
    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        def policy(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> PolicyReply:
            if messages[-1]["content"] == "Hi, my name is Dana Cohen":
                peer.stall_next(1, seconds=5.0)  # the answer after the tool call hangs
                return PolicyReply(tool_calls=(_save("full_name", "Dana Cohen"),))
            return PolicyReply("What is the best number to reach you?")

        peer.policy = policy
        agent = _agent(client)
        await agent.start()
        turn = asyncio.create_task(agent.on_caller_turn("Hi, my name is Dana Cohen"))
        async with asyncio.timeout(2):
            while len(peer.requests) < 2:
                await asyncio.sleep(0.005)
        turn.cancel()  # the caller barged in
        with pytest.raises(asyncio.CancelledError):
            await turn
        assert agent.lead.as_dict() == {"full_name": "Dana Cohen"}
        reply = await agent.on_caller_turn("sorry, go on")
        assert reply.field_updates == {"full_name": "Dana Cohen"}
        assert reply.say == "What is the best number to reach you?"

    _run(lead_policy, body)


# --- failures -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "caller", "language"),
    [(500, "my name is Dana Cohen", "en"), (503, "קוראים לי דנה כהן", "he")],
)
def test_server_error_twice_ends_with_an_apology(
    status: int, caller: str, language: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings()

    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        agent = AgentsSdkAgent.from_settings(settings, FORM, client, clock=_clock)
        await agent.start()
        peer.fail_next(2, status=status)
        with caplog.at_level(logging.WARNING, logger="callgate.conversation.agents.sdk"):
            reply = await agent.on_caller_turn(caller)
        assert reply.end_call == EndCall("agent_error")
        assert reply.language == language
        expected = settings.apology_text if language == "en" else "סליחה, יש לנו תקלה טכנית."
        assert reply.say.startswith(expected)
        assert reply.field_updates == {}
        assert [r.status for r in peer.requests] == [status, status]  # one try, one retry
        causes = [r for r in caplog.records if r.name == "callgate.conversation.agents.sdk"]
        assert len(causes) == 2
        assert f"Error code: {status}" in causes[-1].getMessage()
        assert causes[-1].levelno == logging.ERROR
        # The history keeps the caller's words and the apology.
        assert agent.history[-1] == {"role": "assistant", "content": reply.say}

    _run(lead_policy, body)


def test_one_server_error_is_retried() -> None:
    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        agent = _agent(client)
        await agent.start()
        peer.fail_next(1, status=500)
        reply = await agent.on_caller_turn("Hi, my name is Dana Cohen")
        assert reply.end_call is None
        assert reply.field_updates == {"full_name": "Dana Cohen"}
        assert [r.status for r in peer.requests] == [500, 200, 200]

    _run(lead_policy, body)


def test_hung_model_times_out_and_ends_with_an_apology() -> None:
    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        agent = AgentsSdkAgent.from_settings(
            _settings(), FORM, client, clock=_clock, turn_timeout_s=0.2
        )
        await agent.start()
        peer.stall_next(2, seconds=5.0)
        started = asyncio.get_running_loop().time()
        reply = await agent.on_caller_turn("my name is Dana Cohen")
        assert asyncio.get_running_loop().time() - started < 2.0
        assert reply.end_call == EndCall("agent_error")
        await asyncio.sleep(0.05)  # the peer sees the client go away
        assert [r.status for r in peer.requests] == [499, 499]

    _run(lead_policy, body)


def test_max_turns_overrun_ends_with_an_apology() -> None:
    def looping(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> PolicyReply:
        return PolicyReply(tool_calls=(_save("full_name", "Dana Cohen"),))

    async def body(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        agent = AgentsSdkAgent.from_settings(_settings(), FORM, client, clock=_clock, max_turns=3)
        await agent.start()
        reply = await agent.on_caller_turn("my name is Dana Cohen")
        assert reply.end_call == EndCall("agent_error")
        assert len(peer.requests) == 6  # three model calls a try, two tries
        assert reply.field_updates == {"full_name": "Dana Cohen"}  # the tool did run

    _run(looping, body)


def test_unreachable_endpoint_ends_with_an_apology() -> None:
    async def go() -> None:
        peer = await ChatApiPeer(lead_policy).start()
        url = peer.url
        await peer.stop()  # nothing listens there now: connection refused
        async with _client(url) as client:
            agent = AgentsSdkAgent.from_settings(_settings(), FORM, client, clock=_clock)
            await agent.start()
            reply = await agent.on_caller_turn("hello?")
        assert reply.end_call == EndCall("agent_error")
        assert reply.say == _settings().apology_text
        assert await agent.on_caller_turn("hello??") == AgentReply(
            reply.say, "en", {}, EndCall("agent_error")
        )

    asyncio.run(go())


# --- the peer's wire format and validation -----------------------------------------------

_CALL = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
_USER = {"role": "user", "content": "hi"}
_ASKED = {"role": "assistant", "content": None, "tool_calls": [_CALL]}


def _tool_msg(call_id: str) -> dict[str, Any]:
    return {"role": "tool", "tool_call_id": call_id, "content": "x"}


def _with_tool(**function: Any) -> dict[str, Any]:
    return {"messages": [_USER], "tools": [{"type": "function", "function": function}]}


@pytest.mark.parametrize(
    ("body", "param", "fragment"),
    [
        (
            {"messages": [_USER, _tool_msg("call_9")]},
            "messages.[1].role",
            "must be a response to a preceeding message with 'tool_calls'",
        ),
        (
            {"messages": [_ASKED, _tool_msg("call_2")]},
            "messages.[1].tool_call_id",
            "'call_2' not found",
        ),
        (
            {"messages": [_ASKED, _USER]},
            "messages.[0].role",
            "did not have response messages: call_1",
        ),
        ({"messages": []}, "messages", "empty array"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role", "'robot'"),
        ({"messages": [{"role": "user"}]}, "messages[0].content", "Missing required"),
        ({}, "messages", "Missing required parameter"),
        (
            _with_tool(name="f", parameters={"type": "string"}),
            "tools[0].function.parameters",
            "must be a JSON Schema of 'type: \"object\"'",
        ),
        (_with_tool(name="bad name"), "tools[0].function.name", "does not match pattern"),
        (
            _with_tool(name="f", strict=True, parameters=tool_schemas(FORM)[0]["parameters"]),
            "tools[0].function.parameters",
            "Missing 'confirmed'",
        ),
        (
            {"messages": [_USER], "tool_choice": "auto"},
            "tool_choice",
            "only allowed when 'tools' are specified",
        ),
        ({"messages": [_USER], "bogus": 1}, None, "bogus"),
    ],
)
def test_peer_rejects_malformed_requests(
    body: dict[str, Any], param: str | None, fragment: str
) -> None:
    called: list[int] = []

    def policy(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> str:
        called.append(1)
        return "hi"

    async def check(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        async with httpx.AsyncClient(base_url=peer.url) as http:
            resp = await http.post(
                "/chat/completions",
                json={"model": "m", **body},
                headers={"Authorization": f"Bearer {KEY}"},
            )
        assert resp.status_code == 400
        error = resp.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error"
        assert error["param"] == param
        assert fragment in error["message"]
        assert peer.requests[-1].status == 400
        assert called == []

    _run(policy, check)


def test_peer_errors_reach_the_openai_sdk_typed() -> None:
    async def check(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        with pytest.raises(openai.BadRequestError) as bad:
            await client.chat.completions.create(
                model="m",
                messages=[{"role": "tool", "tool_call_id": "call_1", "content": "x"}],
            )
        assert bad.value.param == "messages.[0].role"
        async with AsyncOpenAI(api_key="sk-wrong", base_url=peer.url, max_retries=0) as wrong:
            with pytest.raises(openai.AuthenticationError):
                await wrong.chat.completions.create(
                    model="m", messages=[{"role": "user", "content": "hi"}]
                )
        async with httpx.AsyncClient(base_url=peer.url) as http:
            no_key = await http.post("/chat/completions", json={"model": "m", "messages": []})
            not_json = await http.post(
                "/chat/completions", content=b"{", headers={"Authorization": f"Bearer {KEY}"}
            )
        assert no_key.status_code == 401
        assert not_json.status_code == 400
        assert "could not parse the JSON body" in not_json.json()["error"]["message"]

    _run(lead_policy, check)


def test_peer_completion_and_stream_formats() -> None:
    def policy(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> PolicyReply:
        if messages[-1]["role"] == "tool":
            return PolicyReply("Thanks Dana. What is the best number to reach you?")
        return PolicyReply(tool_calls=(_save("full_name", "Dana Cohen"),))

    tools: Any = [{"type": "function", "function": s} for s in tool_schemas(FORM)]
    user: Any = {"role": "user", "content": "my name is Dana Cohen"}

    async def check(peer: ChatApiPeer, client: AsyncOpenAI) -> None:
        first = await client.chat.completions.create(model="m", messages=[user], tools=tools)
        assert first.object == "chat.completion"
        assert first.id.startswith("chatcmpl-")
        assert first.model == "m"
        choice = first.choices[0]
        assert choice.finish_reason == "tool_calls"
        assert choice.message.content is None
        call = choice.message.tool_calls[0]  # type: ignore[index]
        assert call.type == "function"
        assert call.function.name == "save_field"  # type: ignore[union-attr]
        assert json.loads(call.function.arguments) == {  # type: ignore[union-attr]
            "name": "full_name",
            "value": "Dana Cohen",
        }
        assert first.usage is not None
        assert first.usage.total_tokens > 0
        raw = peer.requests[-1].response
        assert raw["choices"][0]["message"]["tool_calls"][0]["id"] == call.id

        # Streamed: the chunks add up to the same tool call, then to the answer.
        stream = await client.chat.completions.create(
            model="m", messages=[user], tools=tools, stream=True,
            stream_options={"include_usage": True},
        )  # fmt: skip
        name, args, finish, usage = "", "", None, None
        async for chunk in stream:
            assert chunk.object == "chat.completion.chunk"
            usage = chunk.usage or usage
            for c in chunk.choices:
                for d in c.delta.tool_calls or []:
                    name += (d.function and d.function.name) or ""
                    args += (d.function and d.function.arguments) or ""
                finish = c.finish_reason or finish
        assert (name, json.loads(args), finish) == (
            "save_field",
            {"name": "full_name", "value": "Dana Cohen"},
            "tool_calls",
        )
        assert usage is not None
        answered = [
            user,
            {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
            {"role": "tool", "tool_call_id": call.id, "content": '{"ok": true}'},
        ]
        stream = await client.chat.completions.create(
            model="m", messages=answered, tools=tools, stream=True
        )
        text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "Thanks Dana. What is the best number to reach you?"

    _run(policy, check)
