"""The Realtime-native agent's function tools, end to end over real WebSockets.

The official SDK (through :class:`RealtimeLink` or a bare connection) talks to the local
peer on 127.0.0.1: the session declares the form's tools, a scripted "model" calls them,
the outputs go back, and a reconnect in the middle of a tool exchange replays a
consistent conversation.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import (
    RealtimeConversationItemAssistantMessage,
    RealtimeConversationItemFunctionCall,
    RealtimeErrorEvent,
    RealtimeFunctionToolParam,
    RealtimeServerEvent,
    RealtimeSessionCreateRequest,
    ResponseDoneEvent,
    ResponseFunctionCallArgumentsDeltaEvent,
    ResponseFunctionCallArgumentsDoneEvent,
    ResponseOutputItemAddedEvent,
    ResponseOutputItemDoneEvent,
    SessionUpdateEvent,
)

from callgate.config import Settings, load_settings
from callgate.conversation.form import load_form
from callgate.conversation.tools import FormTools, form_instructions
from callgate.peers.realtime_records import (
    CallFunction,
    PeerItem,
    PeerOptions,
    PeerReply,
    Say,
    ScriptedResponder,
    scripted_responder,
)
from callgate.peers.realtime_server import RealtimePeer
from callgate.realtime.link import (
    FunctionCallRequest,
    LinkEvent,
    LinkReconnected,
    RealtimeLink,
    RealtimeLinkError,
    function_call_request,
)
from callgate.realtime.session import (
    FunctionTool,
    build_session,
    realtime_native,
    session_form,
    session_update_event,
)
from tests.test_realtime_link import kind, pumped

Event = RealtimeServerEvent | LinkEvent
SAVE_NAME = {"name": "full_name", "value": "dana levi"}

FORM_TOML = """
[form]
languages = ["en", "he"]
greeting = { en = "Hi, this is Acme.", he = "שלום, כאן אקמה." }
closing = { en = "Bye now.", he = "להתראות." }

[[fields]]
name = "full_name"
type = "name"
required = true
prompt = { en = "Your name?", he = "מה שמך?" }

[[fields]]
name = "city"
type = "text"
prompt = { en = "Which city?", he = "באיזו עיר?" }
"""


def native_settings(peer: RealtimePeer | None = None, **overrides: Any) -> Settings:
    """Settings that select the Realtime-native backend (a key makes the path Realtime)."""
    values: dict[str, Any] = {"openai_api_key": "sk-test", "realtime_max_reconnects": 2}
    if peer is not None:
        values["openai_websocket_base_url"] = peer.url
    return load_settings(values | overrides, env_file=None)


async def next_of(events: asyncio.Queue[Event], want: Callable[[Event], bool]) -> Event:
    async with asyncio.timeout(3):
        while True:
            event = await events.get()
            if want(event):
                return event


async def until_done(events: asyncio.Queue[Event]) -> list[Event]:
    """Events up to and including the next ``response.done``."""
    seen: list[Event] = []
    async with asyncio.timeout(3):
        while not seen or getattr(seen[-1], "type", None) != "response.done":
            seen.append(await events.get())
    return seen


Body = Callable[[RealtimePeer, RealtimeLink, asyncio.Queue[Event]], Awaitable[None]]


def with_link(
    body: Body, responder: ScriptedResponder, *, pace: float = 0.0, **settings: Any
) -> RealtimePeer:
    """Open a native-backend link to a fresh peer, pump its events, run ``body``, close."""

    async def main() -> RealtimePeer:
        options = PeerOptions(responder=responder, pace=pace, transcriber=lambda a: "Dana Levi")
        async with RealtimePeer(options) as peer:
            link = RealtimeLink(
                native_settings(peer, **settings),
                call_sid="CA_tools",
                backoff_initial_s=0.02,
                backoff_max_s=0.05,
                session_timeout_s=1.0,
            )
            await pumped(peer, link, body)
            return peer

    return asyncio.run(main())


# --- the session -------------------------------------------------------------------------


def test_native_session_declares_the_form_tools_and_instructions() -> None:
    settings = native_settings()
    assert realtime_native(settings)
    form = session_form(settings)
    event = SessionUpdateEvent.model_validate(session_update_event(settings))
    session = event.session
    assert isinstance(session, RealtimeSessionCreateRequest)
    assert session.instructions is not None
    assert session.tool_choice == "auto"
    tools = [t.model_dump(exclude_none=True) for t in session.tools or []]
    assert [(t["type"], t["name"]) for t in tools] == [
        ("function", "save_field"),
        ("function", "end_call"),
    ]
    save = tools[0]["parameters"]
    assert save["properties"]["name"]["enum"] == [f.name for f in form.fields]
    assert save["required"] == ["name", "value"]
    assert tools[1]["parameters"]["properties"]["reason"]["enum"] == [
        "lead_complete",
        "caller_goodbye",
    ]
    expected = form_instructions(form, form.languages[0], base=settings.agent_instructions)
    assert session.instructions == expected
    assert session.instructions.startswith(settings.agent_instructions)
    assert form.greeting["en"] in session.instructions


def test_form_path_and_language_shape_the_tools(tmp_path: Path) -> None:
    path = tmp_path / "form.toml"
    path.write_text(FORM_TOML, encoding="utf-8")
    settings = native_settings(form_path=str(path), transcription_language="he")
    session = build_session(settings)
    tools: list[Any] = list(session["tools"])
    save = next(t for t in tools if t.get("name") == "save_field")
    assert save["parameters"]["properties"]["name"]["enum"] == ["full_name", "city"]
    form = load_form(path)
    assert session["instructions"] == form_instructions(
        form, "he", base=settings.agent_instructions
    )
    assert "שלום, כאן אקמה." in session["instructions"]
    # Explicit instructions and tools still win over the form's.
    own = FunctionTool("lookup", "Look something up.")
    custom = build_session(settings, [own], instructions="Be brief.")
    assert [t.get("name") for t in custom["tools"]] == ["lookup"]
    assert custom["instructions"] == "Be brief."


def test_other_backends_keep_the_plain_session() -> None:
    plain = load_settings({}, env_file=None)  # no key: the fallback path, local agent
    assert not realtime_native(plain)
    session = build_session(plain)
    assert session["tools"] == []
    assert "tool_choice" not in session
    assert session["instructions"] == plain.agent_instructions


# --- a function call, through the SDK ------------------------------------------------------


def test_function_call_streams_as_sdk_events_and_the_output_reaches_the_model() -> None:
    responder = scripted_responder(
        [
            "Hello, thanks for calling! May I have your name?",
            [
                Say("Thanks, let me note that."),
                CallFunction("save_field", SAVE_NAME, call_id="call_name1"),
            ],
            lambda conversation: [Say(f"Model saw: {conversation[-1].text}")],
        ]
    )
    got: dict[str, Any] = {}

    async def body(peer: RealtimePeer, link: RealtimeLink, events: asyncio.Queue[Event]) -> None:
        await link.create_response()  # the greeting: the model speaks first
        got["greeting"] = await until_done(events)
        await link.append_audio(b"\x30" * 1600)
        await link.commit()
        await next_of(events, kind("conversation.item.input_audio_transcription.completed"))
        await link.create_response()
        turn = await until_done(events)
        got["turn"] = turn
        requests = [r for r in map(function_call_request, turn) if r is not None]
        got["requests"] = requests
        tools = FormTools(session_form(link.settings))
        for request in requests:
            outcome = tools.call(request.name, request.arguments)
            got["outcome"] = outcome
            await link.send_function_output(request.call_id, outcome.output)
        await next_of(events, kind("conversation.item.done"))
        await link.create_response()  # after response.done: the model answers the result
        got["after"] = await until_done(events)

    peer = with_link(body, responder)
    assert peer.errors == []
    greeting = got["greeting"][-1]
    assert isinstance(greeting, ResponseDoneEvent)
    assert [i.type for i in greeting.response.output or []] == ["message"]

    turn: list[Event] = got["turn"]
    types = [getattr(e, "type", "") for e in turn]
    call_types = [t for t in types if "function_call" in t or t.startswith("response.output_item")]
    arguments = json.dumps(SAVE_NAME)
    n_deltas = -(-len(arguments) // 16)
    assert call_types == [
        "response.output_item.added",  # the audio message, output_index 0
        "response.output_item.done",
        "response.output_item.added",  # the function call, output_index 1
        *["response.function_call_arguments.delta"] * n_deltas,
        "response.function_call_arguments.done",
        "response.output_item.done",
    ]
    added = [e for e in turn if isinstance(e, ResponseOutputItemAddedEvent)][1]
    assert isinstance(added.item, RealtimeConversationItemFunctionCall)
    assert added.item.status == "in_progress"
    assert added.item.call_id == "call_name1"
    assert added.item.arguments == ""
    deltas = [e for e in turn if isinstance(e, ResponseFunctionCallArgumentsDeltaEvent)]
    assert "".join(d.delta for d in deltas) == arguments
    done_args = next(e for e in turn if isinstance(e, ResponseFunctionCallArgumentsDoneEvent))
    assert (done_args.call_id, done_args.name, done_args.arguments) == (
        "call_name1",
        "save_field",
        arguments,
    )
    assert done_args.output_index == 1
    assert done_args.item_id == added.item.id
    item_done = [e for e in turn if isinstance(e, ResponseOutputItemDoneEvent)][1]
    assert isinstance(item_done.item, RealtimeConversationItemFunctionCall)
    assert item_done.item.status == "completed"
    assert done_args.response_id == item_done.response_id == added.response_id
    response_done = turn[-1]
    assert isinstance(response_done, ResponseDoneEvent)
    output = response_done.response.output or []
    assert isinstance(output[0], RealtimeConversationItemAssistantMessage)
    assert isinstance(output[1], RealtimeConversationItemFunctionCall)
    assert output[1].arguments == arguments
    assert response_done.response.id == done_args.response_id

    assert got["requests"] == [
        FunctionCallRequest(
            "call_name1", "save_field", arguments, added.item.id or "", done_args.response_id
        )
    ]
    outcome = got["outcome"]
    assert outcome.ok
    assert outcome.field_updates == {"full_name": "Dana Levi"}

    record = peer.connections[0]
    created = record.received("conversation.item.create")[-1]["item"]
    assert created["type"] == "function_call_output"
    assert created["call_id"] == "call_name1"
    assert json.loads(created["output"])["value"] == "Dana Levi"
    # The third response was given the conversation with the tool's output last.
    seen = responder.conversations[2]
    assert [i.type for i in seen] == [
        "message",
        "message",
        "message",
        "function_call",
        "function_call_output",
    ]
    assert [i.role for i in seen[:3]] == ["assistant", "user", "assistant"]
    assert seen[1].text == "Dana Levi"
    assert seen[-1].call_id == "call_name1"
    assert seen[-1].text == outcome.output
    after = got["after"]
    said = next(
        e for e in after if getattr(e, "type", "") == "response.output_audio_transcript.done"
    )
    assert getattr(said, "transcript", "") == f"Model saw: {outcome.output}"


def test_an_output_for_an_unknown_call_id_is_an_error_event() -> None:
    responder = scripted_responder([[CallFunction("end_call", {"reason": "caller_goodbye"})]])
    got: list[Event] = []
    request_ids: list[str] = []

    async def body(peer: RealtimePeer, link: RealtimeLink, events: asyncio.Queue[Event]) -> None:
        await link.send_function_output("call_nope", '{"ok": true}')
        got.append(await next_of(events, kind("error")))
        await link.create_response()
        turn = await until_done(events)
        (request,) = [r for r in map(function_call_request, turn) if r is not None]
        assert request.call_id.startswith("call_")
        request_ids.append(request.call_id)
        await link.send_function_output(request.call_id, '{"ok": true}')
        await next_of(events, kind("conversation.item.done"))
        got.extend(link.replay_items())  # type: ignore[arg-type]

    peer = with_link(body, responder)
    error = got[0]
    assert isinstance(error, RealtimeErrorEvent)
    assert error.error.type == "invalid_request_error"
    assert error.error.param == "item.call_id"
    assert "call_nope" in error.error.message
    assert len(peer.errors) == 1  # the real call_id was accepted
    assert [i.type for i in peer.connections[0].items] == ["function_call", "function_call_output"]
    # A replay would not re-send the orphan output: its call was never in the conversation.
    replay: list[Any] = got[1:]
    assert [(i["type"], i["call_id"]) for i in replay] == [
        ("function_call", request_ids[0]),
        ("function_call_output", request_ids[0]),
    ]


# --- reconnects -------------------------------------------------------------------------


def test_reconnect_mid_tool_exchange_replays_call_and_output_consistently() -> None:
    responder = scripted_responder(
        [
            [Say("Got it."), CallFunction("save_field", SAVE_NAME, call_id="call_a")],
            [CallFunction("save_field", {"name": "reason", "value": "a leak"}, call_id="call_b")],
            lambda conversation: PeerReply([Say(f"{len(conversation)} items")]),
        ]
    )
    got: dict[str, Any] = {}

    async def body(peer: RealtimePeer, link: RealtimeLink, events: asyncio.Queue[Event]) -> None:
        await link.create_response()
        (first,) = [r for r in map(function_call_request, await until_done(events)) if r]
        await link.send_function_output(first.call_id, '{"ok": true, "n": 1}')
        await next_of(events, kind("conversation.item.done"))
        await link.create_response()
        (second,) = [r for r in map(function_call_request, await until_done(events)) if r]
        # The connection drops before the second output goes out: it is dropped on the
        # wire, kept in the history, and delivered by the replay.
        await peer.drop_connections()
        async with asyncio.timeout(1):
            while link.connected:
                await asyncio.sleep(0.001)
        await link.send_function_output(second.call_id, '{"ok": true, "n": 2}')
        got["dropped"] = link.dropped_sends
        got["marker"] = await next_of(events, lambda e: isinstance(e, LinkReconnected))
        await link.create_response()
        got["after"] = await until_done(events)

    peer = with_link(body, responder)
    assert got["dropped"] == 1
    assert got["marker"] == LinkReconnected(attempt=1, replayed_items=5)
    assert peer.errors == []
    second = peer.connections[1]
    assert [e.type for e in second.events][:6] == ["session.update"] + [
        "conversation.item.create"
    ] * 5
    replayed = [e["item"] for e in second.received("conversation.item.create")]
    assert [(i["type"], i.get("call_id")) for i in replayed] == [
        ("message", None),
        ("function_call", "call_a"),
        ("function_call_output", "call_a"),
        ("function_call", "call_b"),
        ("function_call_output", "call_b"),
    ]
    assert replayed[0]["content"] == [{"type": "output_text", "text": "Got it."}]
    assert replayed[1]["name"] == "save_field"
    assert json.loads(replayed[1]["arguments"]) == SAVE_NAME
    assert replayed[4]["output"] == '{"ok": true, "n": 2}'
    first_ids = [i.id for i in peer.connections[0].items]
    assert [i["id"] for i in replayed[:4]] == first_ids[:4]
    # The session came back with the tools, and the model sees the whole exchange.
    assert [t["name"] for t in second.session["tools"]] == ["save_field", "end_call"]
    assert responder.conversations[2][-1].text == '{"ok": true, "n": 2}'
    said = next(
        e for e in got["after"] if getattr(e, "type", "") == "response.output_audio_transcript.done"
    )
    assert getattr(said, "transcript", "") == "5 items"


def test_a_call_cut_by_a_cancel_is_not_run_and_not_replayed() -> None:
    long_value = "x" * 1000  # about 64 argument deltas, 20 ms each at pace 1
    responder = scripted_responder(
        [
            [CallFunction("save_field", {"name": "reason", "value": long_value}, call_id="call_c")],
            [CallFunction("end_call", {"reason": "caller_goodbye"}, call_id="call_d")],
        ]
    )
    got: dict[str, Any] = {}

    async def body(peer: RealtimePeer, link: RealtimeLink, events: asyncio.Queue[Event]) -> None:
        await link.create_response()
        await next_of(events, kind("response.function_call_arguments.delta"))
        await link.cancel_response()  # a barge-in while the model writes the arguments
        turn = await until_done(events)
        got["cut"] = turn
        got["requests"] = [r for r in map(function_call_request, turn) if r is not None]
        await link.send_function_output("call_c", "{}")  # a careless client answers anyway
        await next_of(events, kind("conversation.item.done"))
        await link.create_response()
        got["requests"] += [r for r in map(function_call_request, await until_done(events)) if r]
        await peer.drop_connections()
        await next_of(events, lambda e: isinstance(e, LinkReconnected))

    peer = with_link(body, responder, pace=1.0)
    cut: list[Event] = got["cut"]
    # arguments.done still comes (the API sends it for cut calls too), with partial JSON...
    args_done = next(e for e in cut if isinstance(e, ResponseFunctionCallArgumentsDoneEvent))
    with pytest.raises(json.JSONDecodeError):
        json.loads(args_done.arguments)
    # ...but output_item.done says incomplete, so the call is not run.
    item_done = next(e for e in cut if isinstance(e, ResponseOutputItemDoneEvent))
    assert isinstance(item_done.item, RealtimeConversationItemFunctionCall)
    assert item_done.item.status == "incomplete"
    done = cut[-1]
    assert isinstance(done, ResponseDoneEvent)
    assert done.response.status == "cancelled"
    assert [r.call_id for r in got["requests"]] == ["call_d"]
    # The replay holds neither the cut call nor its output; call_d has no output yet.
    replayed = [e["item"] for e in peer.connections[1].received("conversation.item.create")]
    assert [(i["type"], i["call_id"]) for i in replayed] == [("function_call", "call_d")]
    assert peer.errors == []


# --- the peer's checks ------------------------------------------------------------------


def _function(name: str = "save_field", **parameters: Any) -> dict[str, Any]:
    schema = parameters or {"type": "object", "properties": {}}
    return {"type": "function", "name": name, "description": "d", "parameters": schema}


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        (
            {"tools": [{"type": "function", "description": "no name", "parameters": {}}]},
            "missing_required_parameter",
            "session.tools[0].name",
        ),
        ({"tools": [_function("bad name")]}, "invalid_value", "session.tools[0].name"),
        (
            {"tools": [{"type": "function", "name": "f", "description": "d"}]},
            "missing_required_parameter",
            "session.tools[0].parameters",
        ),
        (
            {"tools": [_function(type="string")]},
            "invalid_function_parameters",
            "session.tools[0].parameters",
        ),
        (
            {"tools": [_function(type="object", properties=["name"])]},
            "invalid_function_parameters",
            "session.tools[0].parameters",
        ),
        (
            {"tools": [{"name": "f", "parameters": {"type": "object"}}]},
            "missing_required_parameter",
            "session.tools[0].type",
        ),
        ({"tools": [_function("f"), _function("f")]}, "invalid_value", "session.tools[1].name"),
        (
            {"tools": [_function("f")], "tool_choice": {"type": "function", "name": "g"}},
            "invalid_value",
            "session.tool_choice.name",
        ),
        ({"tools": [_function("f")], "tool_choice": "sometimes"}, "invalid_value", None),
    ],
)
def test_peer_rejects_malformed_tool_definitions(
    session: dict[str, Any], code: str, param: str | None
) -> None:
    async def main() -> RealtimePeer:
        async with RealtimePeer() as peer:
            client = AsyncOpenAI(api_key="sk-test", websocket_base_url=peer.url)
            async with client.realtime.connect(model="gpt-realtime") as conn:
                raw = {"type": "session.update", "session": {"type": "realtime", **session}}
                await conn.send_raw(json.dumps(raw))
                error = await _until(conn, "error")
                assert isinstance(error, RealtimeErrorEvent)
                assert error.error.code == code
                if param is not None:
                    assert error.error.param == param
            await client.close()
            return peer

    peer = asyncio.run(main())
    record = peer.connections[0]
    assert "session.updated" not in record.sent_types()
    assert record.session["tools"] == []  # a refused update changes nothing


def test_peer_checks_per_response_tools_too() -> None:
    async def main() -> RealtimePeer:
        async with RealtimePeer() as peer:
            client = AsyncOpenAI(api_key="sk-test", websocket_base_url=peer.url)
            async with client.realtime.connect(model="gpt-realtime") as conn:
                bad = {"type": "response.create", "response": {"tools": [_function(type="array")]}}
                await conn.send_raw(json.dumps(bad))
                error = await _until(conn, "error")
                assert isinstance(error, RealtimeErrorEvent)
                assert error.error.param == "response.tools[0].parameters"
                tool: RealtimeFunctionToolParam = {
                    "type": "function",
                    "name": "lookup",
                    "parameters": {"type": "object", "properties": {}},
                }
                await conn.response.create(response={"tools": [tool]})
                await _until(conn, "response.done")
            await client.close()
            return peer

    peer = asyncio.run(main())
    assert len(peer.errors) == 1
    assert peer.connections[0].sent_types().count("response.created") == 1


def test_peer_accepts_the_form_tools_and_a_named_tool_choice() -> None:
    async def main() -> RealtimePeer:
        async with RealtimePeer() as peer:
            client = AsyncOpenAI(api_key="sk-test", websocket_base_url=peer.url)
            async with client.realtime.connect(model="gpt-realtime") as conn:
                session = build_session(native_settings())
                session["tool_choice"] = {"type": "function", "name": "end_call"}
                await conn.session.update(session=session)
                await _until(conn, "session.updated")
                # A client-made function call can be answered and read back.
                await conn.conversation.item.create(
                    item={
                        "type": "function_call",
                        "call_id": "call_x",
                        "name": "end_call",
                        "arguments": "{}",
                        "id": "item_fc1",
                    }
                )
                await conn.conversation.item.create(
                    item={"type": "function_call_output", "call_id": "call_x", "output": "ok"}
                )
                await conn.conversation.item.retrieve(item_id="item_fc1")
                retrieved = await _until(conn, "conversation.item.retrieved")
                item = getattr(retrieved, "item", None)
                assert isinstance(item, RealtimeConversationItemFunctionCall)
                assert item.call_id == "call_x"
            await client.close()
            return peer

    peer = asyncio.run(main())
    assert peer.errors == []
    assert peer.connections[0].session["tool_choice"] == {"type": "function", "name": "end_call"}
    assert [i.type for i in peer.connections[0].items] == [
        "function_call",
        "function_call_output",
    ]


def test_link_open_fails_when_the_session_tools_are_refused() -> None:
    broken = FunctionTool("broken", "d", {"type": "object", "properties": ["x"]})

    async def main() -> None:
        async with RealtimePeer() as peer:
            link = RealtimeLink(
                native_settings(peer), call_sid="CA_bad", tools=[broken], session_timeout_s=1.0
            )
            with pytest.raises(RealtimeLinkError, match="broken"):
                await link.open()

    asyncio.run(main())


def test_scripted_responder_falls_back_after_the_script() -> None:
    responder = scripted_responder(["one"], then=lambda conversation: ("after", b"\xff" * 80))
    conversation: Sequence[PeerItem] = (PeerItem("item_1", "user", "hi"),)
    first = responder(conversation)
    assert isinstance(first, PeerReply)
    assert first.outputs == (Say("one"),)
    assert responder(conversation) == ("after", b"\xff" * 80)
    assert responder.played == 2
    assert responder.conversations[0][0].text == "hi"


async def _until(conn: AsyncRealtimeConnection, name: str) -> RealtimeServerEvent:
    async with asyncio.timeout(3):
        while True:
            event = await conn.recv()
            if event.type == name:
                return event
