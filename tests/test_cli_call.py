"""``callgate call``: caller audio, channel alignment, and a real call against the real app."""

from __future__ import annotations

import asyncio
import contextlib
import io
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from scipy.io import wavfile
from typer.testing import CliRunner

from callgate.audio.codec import pcm16_to_ulaw
from callgate.cli.app import app
from callgate.cli.call import (
    CallError,
    agent_offset_ms,
    media_ws_url,
    place_utterances,
    run_call,
    signature_headers,
    spoken_caller,
    stereo_call,
)
from callgate.peers.realtime_records import PeerOptions
from callgate.peers.realtime_server import RealtimePeer
from callgate.peers.twilio_caller import CallResult, PlayedSegment, TimelineEvent
from callgate.server.app import create_app
from callgate.synth.scenes import active_level_dbfs, rms_dbfs
from callgate.synth.speech import espeak_available
from tests.bridge_harness import free_port, running_app
from tests.test_bridge import bridge_settings

needs_espeak = pytest.mark.skipif(not espeak_available(), reason="espeak-ng not installed")


def test_media_ws_url_from_base_or_media_url() -> None:
    assert media_ws_url("http://127.0.0.1:8080") == "ws://127.0.0.1:8080/twilio/media"
    assert media_ws_url("https://gate.example/") == "wss://gate.example/twilio/media"
    assert media_ws_url("ws://h:1/twilio/media") == "ws://h:1/twilio/media"
    with pytest.raises(CallError):
        media_ws_url("ftp://h")


def test_signature_header_signs_the_ws_url() -> None:
    from callgate.telephony.signature import validate_websocket  # noqa: PLC0415

    url = "wss://gate.example/twilio/media"
    header = signature_headers(url, "secret")["X-Twilio-Signature"]
    assert validate_websocket("secret", url, header)
    assert signature_headers(url, None) == {}


def _tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * 8000)) / 8000
    return np.asarray(0.3 * np.sin(2 * np.pi * 440 * t) * np.sin(2 * np.pi * 3 * t) ** 2)


def test_utterances_follow_the_lead_in_and_pauses() -> None:
    caller = place_utterances([_tone(0.5), _tone(0.75)], ["a", "b"], pause_ms=1500)
    assert len(caller.pcm) == 8000 + 4000 + 12000 + 6000
    assert [(u.start_ms, u.end_ms) for u in caller.utterances] == [
        (1000.0, 1500.0),
        (3000.0, 3750.0),
    ]
    assert np.max(np.abs(caller.pcm[:7600])) < 50  # lead-in is silence (filter edge aside)
    assert np.max(np.abs(caller.pcm[8000:12000])) > 5000


@needs_espeak
def test_spoken_caller_with_noise_has_roughly_the_asked_snr() -> None:
    texts = ["Hello, I am calling about my appointment.", "Tomorrow works."]
    clean = spoken_caller(texts, pause_ms=800)
    noisy = spoken_caller(texts, pause_ms=800, noise="babble", snr_db=10.0)
    assert len(clean.pcm) == len(noisy.pcm)
    assert clean.utterances[1].start_ms == clean.utterances[0].end_ms + 800
    speech = clean.pcm / 32768.0
    noise = noisy.pcm / 32768.0 - speech
    snr = active_level_dbfs(speech, 8000) - rms_dbfs(noise)
    assert 7.0 < snr < 13.0
    assert rms_dbfs(noise[:8000]) > -50  # the lead-in now holds the noise scene


def test_stereo_places_agent_audio_at_its_play_time() -> None:
    caller = np.full(16000, 1000, dtype=np.int16)
    agent = pcm16_to_ulaw(np.full(800, 8000, dtype=np.int16))
    stereo = stereo_call(caller, [PlayedSegment(500.0, agent), PlayedSegment(2000.0, agent)])
    assert stereo.shape == (16800, 2)
    right = stereo[:, 1]
    assert right[3999] == 0
    assert right[4000] != 0
    assert np.all(right[4000:4800] != 0)
    assert right[4800] == 0
    assert right[16000] != 0
    assert np.all(stereo[:16000, 0] == 1000)
    assert np.all(stereo[16000:, 0] == 0)  # the caller side is padded to the same length
    shifted = stereo_call(caller, [PlayedSegment(500.0, agent)], offset_ms=250.0)
    assert shifted[6000, 1] != 0
    assert shifted[5999, 1] == 0


def test_fast_offset_maps_the_burst_end_to_the_end_of_the_caller_audio() -> None:
    result = CallResult(call_sid="CA1", stream_sid="MZ1", frames_sent=150 + 50)
    result.events.append(TimelineEvent(1030.0, "closed", "1000"))
    # 150 caller frames (3 s) in a burst, then 50 paced tail frames (1 s): burst ended ~30 ms.
    assert agent_offset_ms(result, 150, realtime=False) == pytest.approx(3000.0 - 30.0)
    assert agent_offset_ms(result, 150, realtime=True) == 0.0


@contextlib.contextmanager
def served_app() -> Iterator[str]:
    """The real app and a local Realtime peer, served from a thread so CliRunner can call."""
    ready: list[str] = []
    started, stop = threading.Event(), threading.Event()

    async def serve() -> None:
        async with (
            RealtimePeer(PeerOptions()) as peer,
            running_app(create_app(bridge_settings(peer.url))) as base,
        ):
            ready.append(base)
            started.set()
            while not stop.is_set():
                await asyncio.sleep(0.05)

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    try:
        assert started.wait(20), "app did not start"
        yield ready[0]
    finally:
        stop.set()
        thread.join(20)


@needs_espeak
def test_call_command_records_the_agent_after_the_first_sentence(tmp_path: Path) -> None:
    out = tmp_path / "call.wav"
    with served_app() as base:
        result = CliRunner().invoke(
            app,
            [
                "call",
                base,
                "--say",
                "Hello, I am calling about my appointment.",
                "--say",
                "Tomorrow morning is better for me.",
                "--fast",
                "--tail-ms",
                "3000",
                "--out",
                str(out),
            ],
        )
    assert result.exit_code == 0, result.output
    assert "Hello, I am calling" in result.output
    assert "agent" in result.output
    rate, data = wavfile.read(out)
    assert rate == 8000
    assert data.ndim == 2
    assert data.shape[1] == 2
    left, right = data[:, 0], data[:, 1]
    first_end = int(np.flatnonzero(np.abs(left) > 2000)[0]) + 8000  # well into sentence one
    assert np.any(right[first_end:] != 0)
    assert not list(tmp_path.glob(".*.tmp"))


@needs_espeak
def test_run_call_in_real_time_puts_the_answer_after_the_caller() -> None:
    async def scenario() -> tuple[np.ndarray, str, float]:
        caller = spoken_caller(["Hello, can you hear me?"])
        stream = io.StringIO()
        async with (
            RealtimePeer(PeerOptions()) as peer,
            running_app(create_app(bridge_settings(peer.url))) as base,
        ):
            outcome = await run_call(
                base, caller, console=Console(file=stream, width=200), tail_ms=3000
            )
        return outcome.stereo, stream.getvalue(), caller.utterances[0].end_ms

    stereo, printed, speech_end_ms = asyncio.run(scenario())
    agent = np.flatnonzero(stereo[:, 1])
    assert agent.size > 8000  # the local peer answers with 1.5 s of tone
    assert agent[0] > speech_end_ms * 8  # it answered after the caller stopped talking
    assert "speaking (audio arriving)" in printed
    assert "caller hung up" in printed


def test_unreachable_server_exits_2_with_one_line(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    wav = tmp_path / "in.wav"
    wavfile.write(wav, 8000, np.zeros(8000, dtype=np.int16))
    result = CliRunner().invoke(
        app, ["call", url, "--wav", str(wav), "--out", str(tmp_path / "o.wav")]
    )
    assert result.exit_code == 2
    assert "cannot connect" in result.output
    assert not (tmp_path / "o.wav").exists()


def test_bad_wav_and_missing_audio_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF nonsense")
    result = CliRunner().invoke(app, ["call", "http://127.0.0.1:9", "--wav", str(bad)])
    assert result.exit_code == 2
    assert "bad.wav" in result.output
    result = CliRunner().invoke(app, ["call", "http://127.0.0.1:9"])
    assert result.exit_code == 2
    assert "--wav" in result.output


def test_unsigned_call_is_refused_and_a_signed_one_gets_through() -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"

    async def scenario() -> tuple[str, CallResult]:
        caller = place_utterances([_tone(0.2)], ["x"])
        quiet = Console(file=io.StringIO())
        async with RealtimePeer(PeerOptions()) as peer:
            settings = bridge_settings(
                peer.url,
                TWILIO_VALIDATE_SIGNATURES="true",
                TWILIO_AUTH_TOKEN="tok",
                PUBLIC_URL=base,
            )
            async with running_app(create_app(settings), port):
                with pytest.raises(CallError) as raised:
                    await run_call(base, caller, console=quiet, fast=True)
                signed = await run_call(
                    base, caller, console=quiet, fast=True, tail_ms=200, token="tok"
                )
        return str(raised.value), signed.result

    refused, signed = asyncio.run(scenario())
    assert "refused the WebSocket handshake (HTTP 403)" in refused
    assert signed.close_code == 1000
    assert signed.frames_sent > 0


def test_unknown_noise_scene_exits_2() -> None:
    result = CliRunner().invoke(app, ["call", "http://127.0.0.1:9", "--say", "hi", "--noise", "x"])
    assert result.exit_code == 2
    assert "--noise 'x' is not a scene" in result.output
