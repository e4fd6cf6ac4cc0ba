"""RealtimeLink over the official SDK against the local peer: flow, drops, replay, failure."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest
from openai.types.realtime import RealtimeServerEvent

from callgate.config import Settings, load_settings
from callgate.peers.realtime_server import PeerOptions, RealtimePeer
from callgate.realtime.link import (
    LinkEvent,
    LinkFailed,
    LinkReconnected,
    RealtimeLink,
    RealtimeLinkError,
)

Event = RealtimeServerEvent | LinkEvent


def settings_for(peer: RealtimePeer, reconnects: int = 2) -> Settings:
    return load_settings(
        {"openai_websocket_base_url": peer.url, "realtime_max_reconnects": reconnects},
        env_file=None,
    )


def make_link(peer: RealtimePeer, reconnects: int = 2) -> RealtimeLink:
    return RealtimeLink(
        settings_for(peer, reconnects),
        call_sid="CA_test",
        backoff_initial_s=0.02,
        backoff_max_s=0.05,
        session_timeout_s=1.0,
    )


async def next_of(events: asyncio.Queue[Event], want: Callable[[Event], bool]) -> Event:
    async with asyncio.timeout(2):
        while True:
            event = await events.get()
            if want(event):
                return event


def kind(name: str) -> Callable[[Event], bool]:
    return lambda e: getattr(e, "type", None) == name


async def with_link(
    body: Callable[[RealtimePeer, RealtimeLink, asyncio.Queue[Event]], Awaitable[None]],
    reconnects: int = 2,
) -> RealtimePeer:
    """Open a link to a fresh peer, pump its events into a queue, run ``body``, close."""
    async with RealtimePeer(PeerOptions(transcriber=lambda audio: "hello there")) as peer:
        await pumped(peer, make_link(peer, reconnects), body)
        return peer


async def pumped(
    peer: RealtimePeer,
    link: RealtimeLink,
    body: Callable[[RealtimePeer, RealtimeLink, asyncio.Queue[Event]], Awaitable[None]],
) -> None:
    """Open ``link``, pump its events into a queue, run ``body`` (5 s at most), close."""
    await link.open()
    queue: asyncio.Queue[Event] = asyncio.Queue()

    async def pump() -> None:
        async for event in link.events():
            queue.put_nowait(event)

    pump_task = asyncio.create_task(pump())
    try:
        await asyncio.wait_for(body(peer, link, queue), 5)
    finally:
        await link.close()
        await asyncio.wait_for(pump_task, 1)


async def one_turn(link: RealtimeLink, events: asyncio.Queue[Event]) -> None:
    await link.append_audio(b"\x30" * 1600)
    await link.commit()
    await next_of(events, kind("conversation.item.input_audio_transcription.completed"))
    await link.create_response()
    await next_of(events, kind("response.done"))


def test_open_configures_the_session_and_a_turn_flows() -> None:
    seen: list[str] = []

    async def body(peer: RealtimePeer, link: RealtimeLink, events: asyncio.Queue[Event]) -> None:
        assert link.connected
        await link.append_audio(b"\x30" * 1600)
        await link.commit()
        await link.create_response()
        async with asyncio.timeout(2):
            while not seen or seen[-1] != "response.done":
                seen.append(str(getattr(await events.get(), "type", "")))

    peer = asyncio.run(with_link(body))
    assert seen[:2] == ["session.created", "session.updated"]
    assert seen.count("response.output_audio.delta") == 15  # 1.5 s tone in 100 ms deltas
    record = peer.connections[0]
    assert record.events[0].type == "session.update"
    assert record.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert record.audio == b"\x30" * 1600
    assert record.headers["authorization"] == "Bearer sk-local"
    assert peer.errors == []


def test_history_records_both_sides_in_order() -> None:
    history: list[tuple[str, str]] = []

    async def body(peer: RealtimePeer, link: RealtimeLink, events: asyncio.Queue[Event]) -> None:
        await one_turn(link, events)
        history.extend((h.role, h.text) for h in link.history)

    asyncio.run(with_link(body))
    assert history == [("user", "hello there"), ("assistant", "This is the local peer speaking.")]


def test_drop_reconnects_resends_session_and_replays_history() -> None:
    outage: dict[str, object] = {}

    async def body(peer: RealtimePeer, link: RealtimeLink, events: asyncio.Queue[Event]) -> None:
        await one_turn(link, events)
        await link.add_text_item("system", "The caller's name is Dana.")
        await next_of(events, kind("conversation.item.done"))
        await peer.drop_connections()
        async with asyncio.timeout(1):
            while link.connected:
                await asyncio.sleep(0.001)
        await link.append_audio(b"\x30" * 160)
        await link.commit()
        outage["dropped"] = (link.dropped_appends, link.dropped_sends)
        marker = await next_of(events, lambda e: isinstance(e, LinkReconnected | LinkFailed))
        outage["marker"] = marker
        await one_turn(link, events)  # the call goes on over the new connection

    peer = asyncio.run(with_link(body))
    assert outage["dropped"] == (1, 1)
    assert outage["marker"] == LinkReconnected(attempt=1, replayed_items=3)
    assert len(peer.connections) == 2
    second = peer.connections[1]
    types = [e.type for e in second.events]
    assert types[:4] == ["session.update"] + ["conversation.item.create"] * 3
    replayed = [e["item"] for e in second.received("conversation.item.create")]
    assert [(i["role"], i["content"][0]["text"]) for i in replayed] == [
        ("user", "hello there"),
        ("assistant", "This is the local peer speaking."),
        ("system", "The caller's name is Dana."),
    ]
    assert [i["content"][0]["type"] for i in replayed] == [
        "input_text",
        "output_text",
        "input_text",
    ]
    first_ids = [item.id for item in peer.connections[0].items]
    assert [i["id"] for i in replayed] == first_ids
    assert second.session["model"] == "gpt-realtime"
    assert second.session["audio"]["input"]["turn_detection"] is None
    assert second.audio == b"\x30" * 1600
    assert peer.errors == []


def test_drop_with_every_handshake_refused_ends_with_link_failed() -> None:
    tail: list[Event] = []
    counts: dict[str, int] = {}

    async def body(peer: RealtimePeer, link: RealtimeLink, events: asyncio.Queue[Event]) -> None:
        peer.refuse_next(100)
        await peer.drop_connections()
        tail.append(await next_of(events, lambda e: isinstance(e, LinkReconnected | LinkFailed)))
        await link.append_audio(b"\xff" * 160)
        await link.cancel_response()
        counts["appends"] = link.dropped_appends
        counts["sends"] = link.dropped_sends

    peer = asyncio.run(with_link(body, reconnects=3))
    assert isinstance(tail[0], LinkFailed)
    assert "3/3" in tail[0].reason
    assert len(peer.refused) == 3
    assert counts == {"appends": 1, "sends": 1}


def test_no_reconnects_allowed_fails_at_once() -> None:
    tail: list[Event] = []

    async def body(peer: RealtimePeer, link: RealtimeLink, events: asyncio.Queue[Event]) -> None:
        await peer.drop_connections()
        tail.append(await next_of(events, lambda e: isinstance(e, LinkReconnected | LinkFailed)))

    peer = asyncio.run(with_link(body, reconnects=0))
    assert isinstance(tail[0], LinkFailed)
    assert len(peer.connections) == 1


def test_open_fails_loudly_when_the_first_connection_is_refused() -> None:
    async def main() -> None:
        async with RealtimePeer() as peer:
            peer.refuse_next(1)
            link = make_link(peer)
            with pytest.raises(RealtimeLinkError, match="503"):
                await link.open()

    asyncio.run(main())


def test_logs_carry_the_call_sid(caplog: pytest.LogCaptureFixture) -> None:
    async def body(peer: RealtimePeer, link: RealtimeLink, events: asyncio.Queue[Event]) -> None:
        await peer.drop_connections()
        await next_of(events, lambda e: isinstance(e, LinkReconnected))

    with caplog.at_level(logging.INFO, logger="callgate.realtime.link"):
        asyncio.run(with_link(body))
    mine = [r for r in caplog.records if r.name == "callgate.realtime.link"]
    assert any("reconnected" in r.getMessage() for r in mine)
    assert {getattr(r, "call_sid", None) for r in mine} == {"CA_test"}
