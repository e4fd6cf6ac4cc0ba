"""The real callgate app between a Twilio-side caller and a Realtime-protocol peer.

Everything runs over real WebSockets on 127.0.0.1: the caller speaks Twilio's Media
Streams format, and the official ``openai`` SDK inside callgate connects to the peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import websockets
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from callgate.audio.codec import pcm16_to_ulaw
from callgate.audio.gate import SpeechGate
from callgate.config import Settings, load_settings
from callgate.peers.realtime_records import PeerOptions
from callgate.peers.realtime_server import RealtimePeer
from callgate.peers.twilio_caller import CallResult, place_call
from callgate.server import app as server_app
from callgate.server.app import create_app
from callgate.telephony.twiml import dial_twiml
from tests.bridge_harness import running_app
from tests.conftest import to_pcm, voiced, white

TAIL_MS = 1200


def bridge_settings(peer_url: str, **overrides: str) -> Settings:
    values = {
        "OPENAI_API_KEY": "sk-local",
        "OPENAI_WEBSOCKET_BASE_URL": peer_url,
        "OPENAI_BASE_URL": peer_url.replace("ws://", "http://"),
        "TWILIO_VALIDATE_SIGNATURES": "false",
        "REALTIME_MAX_RECONNECTS": "2",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='callgate-')}/calls.db",
        "API_TOKEN": "test-token",
        # These tests drive the bridge itself; the agent's greeting and the silence rule
        # have their own tests (test_conversation_e2e.py).
        "AGENT_GREETS_FIRST": "false",
        "SILENCE_TIMEOUT_MS": "0",
        **overrides,
    }
    return load_settings(values, env_file=None)


def ws_url(base: str) -> str:
    return base.replace("http://", "ws://") + "/twilio/media"


def speech_call(seed: int = 1) -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    room = -58
    return to_pcm(
        np.concatenate(
            [
                white(1.0, room, rng),
                voiced(0.8, -22, rng) + white(0.8, room, rng),
                white(1.0, room, rng),
                voiced(0.6, -24, rng, pitch_hz=190) + white(0.6, room, rng),
                white(0.3, room, rng),
            ]
        )
    )


def gate_reference(settings: Settings, pcm: npt.NDArray[np.int16], tail_ms: int) -> bytes:
    """What the gate sends for this call, computed offline with the same settings."""
    gate = SpeechGate(settings.gate_options())
    ulaw = pcm16_to_ulaw(np.concatenate([pcm, np.zeros(tail_ms * 8, dtype=np.int16)]))
    return b"".join(pcm16_to_ulaw(d.audio) for d in gate.process_ulaw(ulaw) if d.audio.size)


async def run_call(
    pcm: npt.NDArray[np.int16],
    peer_options: PeerOptions | None = None,
    *,
    realtime: bool = False,
    tail_ms: int = TAIL_MS,
    **overrides: str,
) -> tuple[CallResult, Any, Settings, Any]:
    async with RealtimePeer(peer_options or PeerOptions()) as peer:
        settings = bridge_settings(peer.url, **overrides)
        app = create_app(settings)
        async with running_app(app) as base:
            result = await place_call(ws_url(base), pcm, realtime=realtime, tail_ms=tail_ms)
            await asyncio.sleep(0.2)
        return result, peer, settings, app.state.registry


def test_appended_audio_is_exactly_what_the_gate_sent() -> None:
    pcm = speech_call()
    result, peer, settings, registry = asyncio.run(run_call(pcm, ECHO_GUARD_DB="0"))
    expected = gate_reference(settings, pcm, TAIL_MS)
    assert len(expected) > 8000  # more than a second of speech went through
    assert peer.connections[0].audio == expected
    stats = registry.finished[0]
    assert stats.frames_sent * 160 == len(expected)
    assert stats.frames_in == stats.frames_sent + stats.frames_withheld
    # The caller paused long enough after each utterance: two turns, two answers played.
    assert stats.commits == 2
    assert result.agent_played_ms > 0
    assert len(peer.connections[0].received("input_audio_buffer.commit")) == 2
    assert len(peer.connections[0].received("response.create")) == 2


def test_a_noise_only_call_appends_nothing() -> None:
    rng = np.random.default_rng(3)
    fan = to_pcm(white(4.0, -40, rng))
    _, peer, _, registry = asyncio.run(run_call(fan))
    assert peer.connections[0].audio == b""
    assert not peer.connections[0].received("input_audio_buffer.commit")
    assert registry.finished[0].commits == 0


def test_the_call_record_names_the_end_reason() -> None:
    _, _, _, registry = asyncio.run(run_call(speech_call(2)))
    assert registry.finished[0].end_reason == "caller hung up"
    assert registry.finished[0].call_sid.startswith("CA")


@pytest.mark.parametrize("mode", ["server_vad", "semantic_vad"])
def test_server_turn_modes_pad_with_digital_silence_only(mode: str) -> None:
    pcm = speech_call(4)
    _, peer, settings, _ = asyncio.run(
        run_call(pcm, TURN_DETECTION=mode, ECHO_GUARD_DB="0", TURN_SILENCE_PADDING_MS="500")
    )
    record = peer.connections[0]
    assert not record.received("input_audio_buffer.commit")  # the model ends the turn
    gated = gate_reference(settings, pcm, TAIL_MS)
    # What was appended is the gate's audio with 500 ms of 0xFF after each utterance.
    audio = record.audio
    assert audio.replace(b"\xff" * 4000, b"") == gated.replace(b"\xff" * 4000, b"")
    assert audio.count(b"\xff" * 4000) >= 2
    assert record.session["audio"]["input"]["turn_detection"]["type"] == mode


def test_barge_in_clears_cancels_and_truncates_to_the_heard_audio() -> None:
    rng = np.random.default_rng(8)
    room = -58
    pcm = to_pcm(
        np.concatenate(
            [
                white(1.0, room, rng),
                voiced(0.8, -22, rng) + white(0.8, room, rng),
                white(1.4, room, rng),  # the turn ends; the agent starts answering
                voiced(0.8, -20, rng, pitch_hz=200) + white(0.8, room, rng),  # talks over it
                white(0.6, room, rng),
            ]
        )
    )

    def long_answer(_items: object) -> tuple[str, bytes]:
        return "A long answer that the caller interrupts.", b"\x10" * 8 * 3000

    result, peer, _, registry = asyncio.run(
        run_call(pcm, PeerOptions(responder=long_answer, pace=1.0, chunk_ms=100), realtime=True)
    )
    stats = registry.finished[0]
    assert stats.barge_ins == 1
    assert len(result.clears_ms) == 1
    record = peer.connections[0]
    truncates = record.received("conversation.item.truncate")
    assert len(truncates) == 1
    assert len(record.received("response.cancel")) == 1
    heard = truncates[0]["audio_end_ms"]
    # The caller heard the agent from its first audio until the clear; marks every 20 ms
    # make the truncate name that audio to within a frame (plus loopback transit).
    clear_ms = result.clears_ms[0]
    played_before_clear = sum(
        min(len(s.ulaw) / 8, clear_ms - s.start_ms) for s in result.played if s.start_ms < clear_ms
    )
    assert 0 < heard <= played_before_clear + 1
    assert played_before_clear - heard <= 30  # measured 8-13 ms here
    # Cancel and truncate went out before the audio of the interrupting utterance.
    kinds = [e.type for e in record.events]
    first_cancel = kinds.index("response.cancel")
    appends_before = kinds[:first_cancel].count("input_audio_buffer.append")
    appends_total = kinds.count("input_audio_buffer.append")
    assert appends_total > appends_before
    assert kinds.index("conversation.item.truncate") < len(kinds)
    # The interrupting speech was committed as a new turn and answered once.
    assert stats.commits == 2


async def _call_with_model_drop(
    refuse_after_drop: int, apologies: list[str] | None = None
) -> tuple[CallResult, Any, Any]:
    async def apologize(call_sid: str) -> None:
        if apologies is not None:
            apologies.append(call_sid)

    async with RealtimePeer(PeerOptions()) as peer:
        settings = bridge_settings(peer.url, REALTIME_MAX_RECONNECTS="2")
        app = create_app(settings, apologize=apologize)
        async with running_app(app) as base:
            call = asyncio.create_task(
                place_call(ws_url(base), speech_call(5), realtime=True, tail_ms=800)
            )
            await peer.wait_for_connections(1)
            await asyncio.sleep(1.2)
            peer.refuse_next(refuse_after_drop)
            await peer.drop_connections()
            result = await asyncio.wait_for(call, timeout=30)
            await asyncio.sleep(0.2)
        return result, peer, app.state.registry


def test_a_dropped_model_connection_is_restored_and_the_call_goes_on() -> None:
    apologies: list[str] = []
    _, peer, registry = asyncio.run(_call_with_model_drop(1, apologies))
    assert apologies == []
    stats = registry.finished[0]
    assert stats.model_reconnects == 1
    assert stats.end_reason == "caller hung up"
    second = peer.connections[-1]
    assert second.received("session.update")  # configuration restored on the new socket
    assert second.received("input_audio_buffer.append")  # and the call carried on


def test_a_model_that_never_comes_back_ends_the_call_with_a_reason() -> None:
    apologies: list[str] = []
    result, _, registry = asyncio.run(_call_with_model_drop(10, apologies))
    stats = registry.finished[0]
    assert stats.end_reason.startswith("model connection lost")
    assert result.close_code == 1011
    assert apologies == [result.call_sid]  # Twilio was asked to apologise and hang up
    assert stats.apologized


def test_bad_messages_are_survived_and_other_calls_are_unaffected() -> None:
    async def scenario() -> tuple[CallResult, Any, list[str]]:
        async with RealtimePeer(PeerOptions()) as peer:
            app = create_app(bridge_settings(peer.url))
            async with running_app(app) as base:
                good = asyncio.create_task(place_call(ws_url(base), speech_call(6), tail_ms=800))
                async with websockets.connect(ws_url(base)) as bad:
                    for junk in [
                        "{not json",
                        '{"event": "media", "media": {"payload": "AAAA"}}',
                        '{"event": "dance"}',
                        '{"event": "start", "start": {}}',
                        "x" * 70_000,
                    ]:
                        await bad.send(junk)
                    await asyncio.sleep(0.3)
                result = await good
                await asyncio.sleep(0.2)
                return (
                    result,
                    app.state.registry,
                    [s.end_reason for s in app.state.registry.finished],
                )

    result, registry, reasons = asyncio.run(scenario())
    good_stats = next(s for s in registry.finished if s.call_sid == result.call_sid)
    bad_stats = next(s for s in registry.finished if s.call_sid != result.call_sid)
    assert good_stats.end_reason == "caller hung up"
    assert good_stats.frames_sent > 0
    assert bad_stats.protocol_errors >= 3
    assert len(reasons) == 2


def test_signatures_are_required_unless_turned_off() -> None:
    async def scenario() -> tuple[int, int, str, int]:
        settings = load_settings(
            {
                "TWILIO_AUTH_TOKEN": "secret",
                "PUBLIC_URL": "https://calls.example.com",
                "DATABASE_URL": f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/calls.db",
            },
            env_file=None,
        )

        async def no_model(_s: Settings, _sid: str) -> Any:
            raise RuntimeError("not needed")

        app = create_app(settings, open_link=no_model)
        form = {"CallSid": "CA" + "1" * 32, "From": "+15550001111", "To": "+15550002222"}
        signature = RequestValidator("secret").compute_signature(
            "https://calls.example.com/twilio/voice", form
        )
        async with running_app(app) as base, httpx.AsyncClient(base_url=base) as client:
            unsigned = await client.post("/twilio/voice", data=form)
            signed = await client.post(
                "/twilio/voice", data=form, headers={"X-Twilio-Signature": signature}
            )
            try:
                async with websockets.connect(ws_url(base)):
                    ws_status = 101
            except websockets.InvalidStatus as refused:
                ws_status = refused.response.status_code
        return unsigned.status_code, signed.status_code, signed.text, ws_status

    unsigned, signed, twiml, ws_status = asyncio.run(scenario())
    assert ws_status == 403
    assert unsigned == 403
    assert signed == 200
    assert "wss://calls.example.com/twilio/media" in twiml
    assert 'name="From" value="+15550001111"' in twiml


def test_metrics_count_frames_and_time_each_append() -> None:
    async def scenario() -> tuple[str, Any]:
        async with RealtimePeer(PeerOptions()) as peer:
            app = create_app(bridge_settings(peer.url))
            async with running_app(app) as base:
                await place_call(ws_url(base), speech_call(9), tail_ms=800)
                await asyncio.sleep(0.2)
                async with httpx.AsyncClient(base_url=base) as client:
                    text = (await client.get("/metrics")).text
            return text, app.state.registry

    text, registry = asyncio.run(scenario())
    stats = registry.finished[0]
    values = {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line and not line.startswith("#")
    }
    assert values["callgate_frames_sent_total"] == stats.frames_sent
    assert values["callgate_frames_in_total"] == stats.frames_in
    assert values["callgate_frames_listened_total"] == stats.frames_listened == 0  # no listener
    assert values["callgate_frame_to_append_seconds_count"] == stats.appends
    assert values['callgate_calls_total{reason="caller hung up"}'] == 1
    assert values["callgate_live_calls"] == 0


def test_the_voice_webhook_opens_the_model_connection_before_the_stream() -> None:
    async def scenario() -> tuple[int, int, CallResult]:
        async with RealtimePeer(PeerOptions()) as peer:
            app = create_app(bridge_settings(peer.url))
            call_sid = "CA" + "7" * 32
            async with running_app(app) as base, httpx.AsyncClient(base_url=base) as client:
                answer = await client.post(
                    "/twilio/voice", data={"CallSid": call_sid, "From": "+15550001111"}
                )
                await peer.wait_for_connections(1)  # configured before Twilio dials the stream
                connections_before = len(peer.connections)
                result = await place_call(
                    ws_url(base), speech_call(10), call_sid=call_sid, tail_ms=600
                )
                await asyncio.sleep(0.2)
            assert answer.status_code == 200
            return connections_before, len(peer.connections), result

    before, after, result = asyncio.run(scenario())
    assert before == 1
    assert after == 1  # the stream used the connection the webhook opened
    assert result.close_code == 1000


def test_shutdown_ends_live_calls_and_keeps_their_records() -> None:
    async def scenario() -> tuple[CallResult, Any]:
        async with RealtimePeer(PeerOptions()) as peer:
            app = create_app(bridge_settings(peer.url))
            async with running_app(app) as base:
                call = asyncio.create_task(
                    place_call(ws_url(base), speech_call(11), realtime=True, tail_ms=5000)
                )
                await peer.wait_for_connections(1)
                await asyncio.sleep(1.0)
            result = await asyncio.wait_for(call, timeout=15)
            return result, app.state.registry

    result, registry = asyncio.run(scenario())
    assert len(registry.finished) == 1
    stats = registry.finished[0]
    assert stats.end_reason == "server shutting down"
    assert stats.frames_in > 0
    assert result.close_code == 1001


def test_a_stream_in_the_wrong_audio_format_is_refused_with_a_reason() -> None:
    start = {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": "MZ" + "1" * 32,
        "start": {
            "accountSid": "AC" + "2" * 32,
            "streamSid": "MZ" + "1" * 32,
            "callSid": "CA" + "3" * 32,
            "tracks": ["inbound"],
            "customParameters": {},
            "mediaFormat": {"encoding": "audio/l16", "sampleRate": 16000, "channels": 1},
        },
    }

    async def scenario() -> tuple[int | None, Any]:
        async with RealtimePeer(PeerOptions()) as peer:
            app = create_app(bridge_settings(peer.url))
            async with running_app(app) as base:
                async with websockets.connect(ws_url(base)) as ws:
                    await ws.send('{"event": "connected", "protocol": "Call", "version": "1.0.0"}')
                    await ws.send(json.dumps(start))
                    with contextlib.suppress(websockets.ConnectionClosed):
                        await asyncio.wait_for(ws.recv(), timeout=5)
                    code = ws.close_code
                await asyncio.sleep(0.2)
            return code, app.state.registry

    code, registry = asyncio.run(scenario())
    assert code == 1003
    assert registry.finished[0].end_reason.startswith("unsupported media format")


def _echo_call(echo_db: float, **overrides: str) -> tuple[CallResult, Any, Any]:
    rng = np.random.default_rng(12)
    room = -58
    pcm = to_pcm(
        np.concatenate(
            [
                white(1.0, room, rng),
                voiced(1.2, -22, rng) + white(1.2, room, rng),
                white(3.5, room, rng),  # the agent answers here; only its echo comes back
            ]
        )
    )
    answer = pcm16_to_ulaw(to_pcm(voiced(2.0, -20, np.random.default_rng(13), pitch_hz=160)))

    def responder(_items: object) -> tuple[str, bytes]:
        return "An answer whose echo comes back down the line.", answer

    async def scenario() -> tuple[CallResult, Any, Any]:
        async with RealtimePeer(PeerOptions(responder=responder, pace=1.0)) as peer:
            app = create_app(bridge_settings(peer.url, **overrides))
            async with running_app(app) as base:
                result = await place_call(
                    ws_url(base), pcm, realtime=True, tail_ms=300, echo_db=echo_db
                )
                await asyncio.sleep(0.2)
            return result, peer, app.state.registry

    return asyncio.run(scenario())


def test_the_agents_own_echo_does_not_interrupt_it() -> None:
    # A handset echo 25 dB below the agent's voice: still 13 dB above the room.
    result, peer, registry = _echo_call(-25.0)
    stats = registry.finished[0]
    assert result.agent_played_ms > 1500
    assert stats.barge_ins == 0
    assert result.clears_ms == []
    assert stats.commits == 1
    assert not peer.connections[0].received("response.cancel")


def test_a_loud_echo_without_the_guards_would_interrupt() -> None:
    # The control: the same call with an echo as loud as a speakerphone and no echo guard.
    # It proves the echo really reaches the gate, so the test above can fail.
    result, _, registry = _echo_call(-2.0, ECHO_GUARD_DB="0")
    assert registry.finished[0].barge_ins >= 1
    assert result.clears_ms


def test_a_pre_opened_connection_whose_stream_never_comes_is_closed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server_app, "PREWARM_TTL_S", 0.3)

    async def scenario() -> tuple[bool, int]:
        async with RealtimePeer(PeerOptions()) as peer:
            app = create_app(bridge_settings(peer.url))
            async with running_app(app) as base, httpx.AsyncClient(base_url=base) as client:
                await client.post("/twilio/voice", data={"CallSid": "CA" + "8" * 32})
                record = await peer.wait_for_connections(1)
                await asyncio.sleep(1.0)
                return record.closed, len(app.state.registry.prewarmed)

    closed, waiting = asyncio.run(scenario())
    assert closed
    assert waiting == 0


@pytest.mark.parametrize("store_process", ["false", "true"])
def test_the_call_is_stored_as_it_goes_and_served_by_the_api(store_process: str) -> None:
    rng = np.random.default_rng(8)
    room = -58
    pcm = to_pcm(
        np.concatenate(
            [
                white(1.0, room, rng),
                voiced(0.8, -22, rng) + white(0.8, room, rng),
                white(1.4, room, rng),
                voiced(0.8, -20, rng, pitch_hz=200) + white(0.8, room, rng),  # barges in
                white(0.6, room, rng),
            ]
        )
    )

    def long_answer(_items: object) -> tuple[str, bytes]:
        return "One two three four five six seven eight nine ten.", b"\x10" * 8 * 3000

    async def scenario() -> tuple[CallResult, list[int], dict[str, Any], list[Any]]:
        async with RealtimePeer(PeerOptions(responder=long_answer, pace=1.0)) as peer:
            app = create_app(bridge_settings(peer.url, STORE_PROCESS=store_process))
            async with running_app(app) as base, httpx.AsyncClient(base_url=base) as client:
                result = await place_call(ws_url(base), pcm, realtime=True, tail_ms=1500)
                await asyncio.sleep(0.3)
                auth = {"Authorization": "Bearer test-token"}
                codes = [
                    (await client.get(f"/calls/{result.call_sid}")).status_code,
                    (
                        await client.get(
                            f"/calls/{result.call_sid}", headers={"Authorization": "Bearer x"}
                        )
                    ).status_code,
                    (await client.get("/calls/CAnope", headers=auth)).status_code,
                ]
                record = (await client.get(f"/calls/{result.call_sid}", headers=auth)).json()
                listing = (await client.get("/calls", headers=auth)).json()
            return result, codes, record, listing

    result, codes, record, listing = asyncio.run(scenario())
    assert codes == [401, 401, 404]
    assert [c["call_sid"] for c in listing] == [result.call_sid]
    turns = record["turns"]
    speakers = [t["speaker"] for t in turns]
    assert speakers.count("caller") == 2
    assert "agent" in speakers
    cut = [t for t in turns if t["speaker"] == "agent" and t["interrupted"]]
    assert len(cut) == 1
    full = "One two three four five six seven eight nine ten."
    assert full.startswith(cut[0]["text"])
    assert 0 < len(cut[0]["text"]) < len(full)
    assert [e["kind"] for e in record["events"]] == ["barge_in"]
    assert record["call"]["end_reason"] == "caller hung up"
    assert record["call"]["stats"]["frames_sent"] > 0
    assert record["call"]["stats"]["est_cost_saved_usd"] > 0


def three_turns(seed: int) -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(seed)
    room = -58
    pieces = [white(1.0, room, rng)]
    for k in range(3):
        pieces += [
            voiced(0.7, -22, rng, pitch_hz=140 + 30 * k) + white(0.7, room, rng),
            white(1.6, room, rng),
        ]
    return to_pcm(np.concatenate(pieces))


async def _stored_call(
    pcm: npt.NDArray[np.int16], options: PeerOptions, **overrides: str
) -> tuple[Any, dict[str, Any]]:
    async with RealtimePeer(options) as peer:
        app = create_app(bridge_settings(peer.url, **overrides))
        async with running_app(app) as base, httpx.AsyncClient(base_url=base) as client:
            result = await place_call(ws_url(base), pcm, realtime=True, tail_ms=800)
            await asyncio.sleep(0.3)
            record = (
                await client.get(
                    f"/calls/{result.call_sid}", headers={"Authorization": "Bearer test-token"}
                )
            ).json()
        return peer, record


def test_an_agent_that_repeats_itself_is_told_to_rephrase() -> None:
    # The local peer answers every turn with the same sentence.
    peer, record = asyncio.run(_stored_call(three_turns(21), PeerOptions(), LOOP_REPEATS="3"))
    items = peer.connections[0].received("conversation.item.create")
    system = [i for i in items if i["item"]["role"] == "system"]
    assert len(system) == 1
    assert "repeated yourself" in system[0]["item"]["content"][0]["text"]
    loops = [e for e in record["events"] if e["kind"] == "loop"]
    assert len(loops) == 1
    assert loops[0]["detail"]["count"] == 3


def test_the_agents_echo_transcribed_as_the_caller_is_dropped() -> None:
    said: list[bytes] = []

    def transcriber(audio: bytes) -> str:
        said.append(audio)
        # The second "caller" turn is the agent's last words coming back down the line.
        return "This is the local peer speaking." if len(said) == 2 else f"turn {len(said)}"

    _, record = asyncio.run(_stored_call(three_turns(22), PeerOptions(transcriber=transcriber)))
    caller_turns = [t["text"] for t in record["turns"] if t["speaker"] == "caller"]
    assert caller_turns == ["turn 1", "turn 3"]
    assert [e["kind"] for e in record["events"]].count("echo") == 1


def test_a_loop_can_transfer_the_caller_to_a_person() -> None:
    transfers: list[tuple[str, str]] = []

    async def transfer(call_sid: str, number: str) -> None:
        transfers.append((call_sid, number))

    async def scenario() -> tuple[CallResult, Any]:
        async with RealtimePeer(PeerOptions()) as peer:
            settings = bridge_settings(
                peer.url, LOOP_ACTION="transfer", TRANSFER_NUMBER="+14155552671"
            )
            app = create_app(settings, transfer=transfer)
            async with running_app(app) as base:
                result = await place_call(ws_url(base), three_turns(23), tail_ms=800)
                await asyncio.sleep(0.3)
            return result, app.state.registry

    result, registry = asyncio.run(scenario())
    assert transfers == [(result.call_sid, "+14155552671")]
    assert registry.finished[0].end_reason == "loop: transferred to +14155552671"


def test_dial_twiml_connects_the_number() -> None:
    twiml = dial_twiml("+14155552671", say="Connecting you to a colleague.")
    assert "<Dial>+14155552671</Dial>" in twiml
    assert twiml.index("<Say>") < twiml.index("<Dial>")
