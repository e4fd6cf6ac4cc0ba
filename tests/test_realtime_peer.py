"""The local Realtime peer, driven by the official ``openai`` SDK over 127.0.0.1."""

from __future__ import annotations

import asyncio
import base64
import random
from collections.abc import Awaitable, Callable, Sequence

import pytest
from openai import AsyncOpenAI
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import RealtimeServerEvent
from websockets.exceptions import ConnectionClosed, InvalidStatus

from callgate.config import load_settings
from callgate.peers.realtime_server import PeerItem, PeerOptions, RealtimePeer, tone
from callgate.realtime.session import build_session

MODEL = "gpt-realtime"
Body = Callable[[RealtimePeer, AsyncRealtimeConnection], Awaitable[None]]


def run(body: Body, options: PeerOptions | None = None, mode: str = "client") -> RealtimePeer:
    """Start a peer, connect the SDK, configure the session, run ``body``; return the peer."""

    async def main() -> RealtimePeer:
        async with RealtimePeer(options or PeerOptions()) as peer:
            client = AsyncOpenAI(api_key="sk-test", websocket_base_url=peer.url)
            async with client.realtime.connect(model=MODEL) as conn:
                settings = load_settings({"turn_detection": mode}, env_file=None)
                await conn.session.update(session=build_session(settings))
                await until(conn, "session.updated")
                await asyncio.wait_for(body(peer, conn), 5)
            await client.close()
            return peer

    return asyncio.run(main())


async def until(conn: AsyncRealtimeConnection, kind: str) -> list[RealtimeServerEvent]:
    """Events up to and including the first of type ``kind``."""
    seen: list[RealtimeServerEvent] = []
    async with asyncio.timeout(3):
        while not seen or seen[-1].type != kind:
            seen.append(await conn.recv())
    return seen


def test_handshake_and_session_are_recorded() -> None:
    async def body(peer: RealtimePeer, conn: AsyncRealtimeConnection) -> None:
        pass

    peer = run(body)
    record = peer.connections[0]
    assert record.path == f"/v1/realtime?model={MODEL}"
    assert record.headers["authorization"] == "Bearer sk-test"
    assert record.sent_types()[:2] == ["session.created", "session.updated"]
    assert record.session["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert record.session["audio"]["input"]["turn_detection"] is None
    assert record.session["audio"]["output"]["voice"] == "marin"
    assert peer.errors == []


def test_appended_audio_arrives_byte_exact_and_in_order() -> None:
    rng = random.Random(7)
    chunks = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400))) for _ in range(40)]

    async def body(peer: RealtimePeer, conn: AsyncRealtimeConnection) -> None:
        for chunk in chunks:
            await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
        await conn.input_audio_buffer.clear()
        await until(conn, "input_audio_buffer.cleared")

    record = run(body).connections[0]
    assert [a.audio for a in record.appends] == chunks
    assert record.audio == b"".join(chunks)
    times = [a.at for a in record.appends]
    assert times == sorted(times)


def test_commit_and_response_stream_the_responders_audio() -> None:
    voice = tone(0.45)

    def responder(conversation: Sequence[PeerItem]) -> tuple[str, bytes]:
        return f"I heard {conversation[-1].text}", voice

    options = PeerOptions(responder=responder, transcriber=lambda audio: f"{len(audio)} bytes")
    got: list[RealtimeServerEvent] = []

    async def body(peer: RealtimePeer, conn: AsyncRealtimeConnection) -> None:
        await conn.input_audio_buffer.append(audio=base64.b64encode(b"\x20" * 1600).decode())
        await conn.input_audio_buffer.commit()
        got.extend(await until(conn, "conversation.item.input_audio_transcription.completed"))
        await conn.response.create()
        got.extend(await until(conn, "response.done"))

    run(body, options)
    kinds = [e.type for e in got]
    assert kinds[:3] == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    transcript = next(e for e in got if e.type.endswith("transcription.completed"))
    assert getattr(transcript, "transcript", None) == "1600 bytes"
    audio = b"".join(
        base64.b64decode(getattr(e, "delta", ""))
        for e in got
        if e.type == "response.output_audio.delta"
    )
    assert audio == voice
    said = next(e for e in got if e.type == "response.output_audio_transcript.done")
    assert getattr(said, "transcript", None) == "I heard 1600 bytes"
    done = got[-1]
    assert done.type == "response.done"
    assert done.response.status == "completed"


def test_cancel_stops_the_audio() -> None:
    async def body(peer: RealtimePeer, conn: AsyncRealtimeConnection) -> None:
        await conn.response.create()
        await until(conn, "response.output_audio.delta")
        await conn.response.cancel()
        events = await until(conn, "response.done")
        done = events[-1]
        assert done.type == "response.done"
        assert done.response.status == "cancelled"

    # Real-time pacing: 1.5 s of tone in 100 ms deltas would be 15 deltas.
    record = run(body, PeerOptions(pace=1.0)).connections[0]
    deltas = [e for e in record.sent if e["type"] == "response.output_audio.delta"]
    assert 1 <= len(deltas) <= 3
    assert record.items[-1].audio_ms == 100 * len(deltas)


def test_truncate_is_validated() -> None:
    async def body(peer: RealtimePeer, conn: AsyncRealtimeConnection) -> None:
        await conn.response.create()
        events = await until(conn, "response.done")
        item_id = next(getattr(e, "item_id", "") for e in events if e.type.endswith("audio.done"))
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=9999)
        error = (await until(conn, "error"))[-1]
        assert error.type == "error"
        assert error.error.param == "audio_end_ms"
        await conn.conversation.item.truncate(item_id=item_id, content_index=0, audio_end_ms=700)
        truncated = (await until(conn, "conversation.item.truncated"))[-1]
        assert getattr(truncated, "audio_end_ms", None) == 700
        await conn.conversation.item.truncate(item_id="item_nope", content_index=0, audio_end_ms=0)
        assert (await until(conn, "error"))[-1].type == "error"

    peer = run(body)
    assert [e["error"]["param"] for e in peer.errors] == ["audio_end_ms", "item_id"]
    assert peer.connections[0].items[-1].truncated_ms == 700


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("not json", "invalid_json"),
        ('{"type": "input_audio_buffer.shout"}', "invalid_value"),
        ('{"type": "input_audio_buffer.append", "audio": "***"}', "invalid_value"),
        ('{"type": "conversation.item.truncate", "item_id": "x"}', "missing_required_parameter"),
        (
            '{"type": "session.update", "session": {"type": "realtime", "voise": "x"}}',
            "unknown_parameter",
        ),
        ('{"type": "input_audio_buffer.commit"}', "input_audio_buffer_commit_empty"),
        ('{"type": "response.cancel"}', "response_cancel_not_active"),
    ],
)
def test_malformed_events_get_error_events(raw: str, code: str) -> None:
    async def body(peer: RealtimePeer, conn: AsyncRealtimeConnection) -> None:
        await conn.send_raw(raw)
        error = (await until(conn, "error"))[-1]
        assert error.type == "error"
        assert error.error.code == code

    peer = run(body)
    assert len(peer.errors) == 1
    assert peer.errors[0]["error"]["code"] == code


def test_server_vad_commits_and_answers_on_its_own() -> None:
    lead_in = b"\xff" * 8 * 1000  # 1 s of digital silence
    speech = tone(0.4)
    trail = b"\xff" * 8 * 600
    audio = lead_in + speech + trail

    async def body(peer: RealtimePeer, conn: AsyncRealtimeConnection) -> None:
        for start in range(0, len(audio), 160):
            frame = audio[start : start + 160]
            await conn.input_audio_buffer.append(audio=base64.b64encode(frame).decode())
        await until(conn, "response.done")

    record = run(body, mode="server_vad").connections[0]
    kinds = [k for k in record.sent_types() if k.startswith(("input_audio", "response.created"))]
    assert kinds[:4] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "response.created",
    ]
    started = next(e for e in record.sent if e["type"].endswith("speech_started"))
    assert started["audio_start_ms"] == 1000 - 300  # onset minus the default prefix padding
    stopped = next(e for e in record.sent if e["type"].endswith("speech_stopped"))
    detection = record.session["audio"]["input"]["turn_detection"]
    assert detection["silence_duration_ms"] == 400
    assert stopped["audio_end_ms"] == 1000 + 400 + 400
    assert stopped["item_id"] == started["item_id"]


def test_hooks_refuse_and_drop() -> None:
    async def main() -> RealtimePeer:
        async with RealtimePeer() as peer:
            client = AsyncOpenAI(api_key="sk-test", websocket_base_url=peer.url)
            peer.refuse_next(1)
            with pytest.raises(InvalidStatus):
                await client.realtime.connect(model=MODEL).enter()
            conn = await client.realtime.connect(model=MODEL).enter()
            await until(conn, "session.created")
            await peer.drop_connections()
            with pytest.raises(ConnectionClosed):
                await conn.recv()
            await conn.close()
            await client.close()
            return peer

    peer = asyncio.run(main())
    assert len(peer.refused) == 1
    assert len(peer.connections) == 1
    assert peer.connections[0].closed
