"""The Twilio caller peer against a tiny local WebSocket server.

Only ordering and counts are asserted, plus "never early" bounds that the player emulation
guarantees by construction; wall-clock pacing belongs to benchmarks.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import ServerConnection, serve

from callgate.audio.codec import ulaw_to_pcm16
from callgate.peers.twilio_caller import CallResult, place_call
from callgate.telephony import Mark, Media, Start, Stop, TwilioStream

AGENT_ULAW = bytes(range(256)) * 7  # 1792 bytes = 224 ms of agent audio


@dataclass
class Recorder:
    messages: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)


Behaviour = Callable[[ServerConnection, TwilioStream, Recorder], Awaitable[None]]


async def run_call(
    behaviour: Behaviour, pcm: npt.NDArray[np.int16], **kw: Any
) -> tuple[CallResult, Recorder]:
    recorder = Recorder()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        recorder.headers = {k.lower(): v for k, v in ws.request.headers.raw_items()}
        stream = TwilioStream()
        await behaviour(ws, stream, recorder)

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        result = await place_call(f"ws://127.0.0.1:{port}/twilio/media", pcm, **kw)
    return result, recorder


async def record_until_closed(ws: ServerConnection, recorder: Recorder) -> None:
    async for raw in ws:
        recorder.messages.append(json.loads(raw))


def tone(ms: int) -> npt.NDArray[np.int16]:
    t = np.arange(ms * 8) / 8000
    return (3000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


def test_messages_in_order_and_mark_echoed_after_audio() -> None:
    async def behaviour(ws: ServerConnection, stream: TwilioStream, rec: Recorder) -> None:
        async for raw in ws:
            rec.messages.append(json.loads(raw))
            for event in stream.receive_text(str(raw)):
                if isinstance(event, Start):
                    for frame in stream.media(AGENT_ULAW):
                        await ws.send(frame)
                    await ws.send(stream.mark("m1"))

    result, rec = asyncio.run(
        run_call(
            behaviour,
            tone(290),  # 15 frames, the last one padded
            tail_ms=400,
            custom_parameters={"From": "+15550100"},
            headers={"X-Twilio-Signature": "sig"},
        )
    )
    events = [m["event"] for m in rec.messages]
    assert events[:2] == ["connected", "start"]
    assert events[-1] == "stop"
    media = [m for m in rec.messages if m["event"] == "media"]
    assert len(media) == result.frames_sent == 15 + 20
    assert [int(m["media"]["chunk"]) for m in media] == list(range(1, 36))
    assert [int(m["media"]["timestamp"]) for m in media] == [20 * i for i in range(35)]
    seqs = [int(m["sequenceNumber"]) for m in rec.messages if "sequenceNumber" in m]
    assert seqs == list(range(1, len(seqs) + 1))
    assert rec.messages[1]["start"]["customParameters"] == {"From": "+15550100"}
    assert rec.messages[1]["start"]["mediaFormat"] == {
        "encoding": "audio/x-mulaw",
        "sampleRate": 8000,
        "channels": 1,
    }
    assert rec.headers.get("x-twilio-signature") == "sig"

    # The mark comes back once, after all 224 ms of audio before it have played.
    echoed = [m for m in rec.messages if m["event"] == "mark"]
    assert [m["mark"]["name"] for m in echoed] == ["m1"]
    first_media_ms = next(e.at_ms for e in result.events if e.kind == "media")
    [(name, echoed_ms)] = result.marks_echoed
    assert name == "m1"
    assert echoed_ms >= first_media_ms + len(AGENT_ULAW) / 8 - 1
    assert result.agent_played_ms == len(AGENT_ULAW) / 8
    np.testing.assert_array_equal(result.agent_audio, ulaw_to_pcm16(AGENT_ULAW))
    assert result.received_ulaw_bytes == len(AGENT_ULAW)
    assert result.close_code == 1000
    assert result.clears_ms == []


def test_clear_drops_unplayed_audio_and_echoes_marks() -> None:
    long_audio = b"\x10" * 16_000  # 2 s

    async def behaviour(ws: ServerConnection, stream: TwilioStream, rec: Recorder) -> None:
        media_seen = 0
        async for raw in ws:
            rec.messages.append(json.loads(raw))
            for event in stream.receive_text(str(raw)):
                if isinstance(event, Start):
                    for frame in stream.media(long_audio):
                        await ws.send(frame)
                    await ws.send(stream.mark("long"))
                elif isinstance(event, Media):
                    media_seen += 1
                    if media_seen == 8:  # ~160 ms into the agent's turn: barge-in
                        await ws.send(stream.clear())

    result, rec = asyncio.run(run_call(behaviour, tone(400), tail_ms=200))
    assert len(result.clears_ms) == 1
    clear_ms = result.clears_ms[0]
    [(name, echoed_ms)] = result.marks_echoed
    assert name == "long"
    assert echoed_ms >= clear_ms
    first_media_ms = next(e.at_ms for e in result.events if e.kind == "media")
    assert echoed_ms < first_media_ms + 2000  # echoed on clear, not after the 2 s played
    kinds = [e.kind for e in result.events]
    assert kinds.index("clear") < kinds.index("mark_echoed")
    assert 0 < result.agent_played_ms < 2000
    assert result.agent_played_ms <= clear_ms - first_media_ms + 1
    assert [m["mark"]["name"] for m in rec.messages if m["event"] == "mark"] == ["long"]


def test_server_closing_early_ends_the_call_cleanly() -> None:
    async def behaviour(ws: ServerConnection, stream: TwilioStream, rec: Recorder) -> None:
        async for raw in ws:
            rec.messages.append(json.loads(raw))
            if any(isinstance(e, Start) for e in stream.receive_text(str(raw))):
                await ws.close(1011, "model unavailable")

    result, rec = asyncio.run(run_call(behaviour, tone(3000)))
    assert result.close_code == 1011
    assert result.close_reason == "model unavailable"
    assert result.frames_sent < 150
    assert result.events[-1].kind == "closed"
    assert "stop" not in [m["event"] for m in rec.messages]


def test_fast_mode_keeps_order_and_pads_last_frame() -> None:
    async def behaviour(ws: ServerConnection, stream: TwilioStream, rec: Recorder) -> None:
        await record_until_closed(ws, rec)

    pcm = tone(1100)[:8170]  # 51 frames and 10 samples
    result, rec = asyncio.run(run_call(behaviour, pcm, realtime=False, tail_ms=0))
    stream = TwilioStream()
    events = [e for m in rec.messages for e in stream.receive_text(json.dumps(m))]
    media = [e for e in events if isinstance(e, Media)]
    assert result.frames_sent == len(media) == 52
    assert all(len(m.payload) == 160 for m in media)
    assert [m.chunk for m in media] == list(range(1, 53))
    assert isinstance(events[-1], Stop)
    assert stream.stopped
    assert not any(isinstance(e, Mark) for e in events)
    assert result.agent_played_ms == 0
    assert result.close_code == 1000
