"""``callgate call --turns``: a caller who converses, with the live transcript and the lead.

A fixed recording cannot follow an agent whose replies vary in length, so this caller
takes turns (:class:`~callgate.peers.twilio_caller.CallerTurns`): each sentence starts
once the agent has finished speaking. The sentences are spoken by the Piper voice (or
espeak-ng), through the telephone channel, over a noise scene.

Twilio carries no transcript, so with the server's API token the live transcript and, at
the end, the stored lead come from ``GET /calls/{sid}``, polled while the call runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt
import soxr
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from callgate.audio.codec import SAMPLE_RATE_HZ, float_to_pcm16, pcm16_to_float, ulaw_to_pcm16
from callgate.cli.call import (
    SPEECH_PEAK,
    CallError,
    check_noise,
    media_ws_url,
    signature_headers,
    stereo_call,
)
from callgate.peers.twilio_caller import CallerTurns, CallResult, new_sid, place_call
from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import NOISE_BEDS, mix_at_snr
from callgate.synth.speech import speak

POLL_S = 0.5


@dataclass
class Conversation:
    """The finished call: what the caller did and what the server stored."""

    result: CallResult
    stereo: npt.NDArray[np.int16]
    caller_pcm: npt.NDArray[np.int16]
    record: dict[str, Any] | None = None
    printed_turns: int = 0
    lines: list[str] = field(default_factory=list)


def voice_clips(texts: Sequence[str], voice: str) -> list[npt.NDArray[np.float64]]:
    """The caller's sentences at 8 kHz (float, peak ``SPEECH_PEAK``): Piper or espeak-ng."""
    clips: list[npt.NDArray[np.float64]] = []
    if voice == "piper":
        clips = [pcm16_to_float(piper_caller(text)) for text in texts]
    else:
        try:
            clips = [speak(text, voice=voice, sample_rate_hz=SAMPLE_RATE_HZ) for text in texts]
        except (RuntimeError, OSError, ValueError) as error:
            raise CallError(f"espeak-ng failed with voice {voice!r}: {error}") from None
    out = []
    for text, clip in zip(texts, clips, strict=True):
        if clip.size == 0:
            raise CallError(f"no audio was synthesized for {text!r}")
        out.append(clip * SPEECH_PEAK / max(float(np.max(np.abs(clip))), 1e-9))
    return out


def piper_caller(text: str, length_scale: float = 1.15) -> npt.NDArray[np.int16]:
    """``text`` in the bundled Piper voice, a little slower than the agent's, at 8 kHz."""
    from callgate.speech.tts import PiperTTS  # noqa: PLC0415  (loads onnxruntime)

    tts = PiperTTS(noise_scale=0.0, noise_w_scale=0.0)  # the same audio on every run
    speech = tts.render(text, length_scale=length_scale)
    resampled = soxr.resample(pcm16_to_float(speech), tts.sample_rate_hz, SAMPLE_RATE_HZ)
    return float_to_pcm16(resampled)


def turn_taking_caller(
    texts: Sequence[str], *, voice: str, noise: str | None, snr_db: float, seed: int = 7
) -> CallerTurns:
    """Sentences on a phone line, with a noise bed at ``snr_db`` below the speech."""
    if not texts:
        raise CallError("--turns needs one or more --say sentences")
    check_noise(noise)
    clips = voice_clips(texts, voice)
    bed = None
    if noise is not None:
        rng = np.random.default_rng(seed)
        speech = np.concatenate(clips)
        noise_bed = NOISE_BEDS[noise](speech.size / SAMPLE_RATE_HZ + 0.1, SAMPLE_RATE_HZ, rng)
        mix = mix_at_snr(speech, noise_bed[: speech.size], snr_db, SAMPLE_RATE_HZ)
        bed = telephone_channel(mix - speech, SAMPLE_RATE_HZ)
    utterances = [telephone_channel(clip, SAMPLE_RATE_HZ) for clip in clips]
    return CallerTurns(utterances, bed=bed)


async def _poll_transcript(
    http: httpx.AsyncClient, sid: str, convo: Conversation, console: Console
) -> None:
    while True:
        await asyncio.sleep(POLL_S)
        with contextlib.suppress(httpx.HTTPError, ValueError):
            response = await http.get(f"/calls/{sid}")
            if response.status_code == 200:
                convo.record = response.json()
                _print_new_turns(convo, console)


def _print_new_turns(convo: Conversation, console: Console) -> None:
    turns = (convo.record or {}).get("turns", [])
    for turn in turns[convo.printed_turns :]:
        who = "[bold cyan]caller[/]" if turn["speaker"] == "caller" else "[bold green]agent [/]"
        cut = " [dim](interrupted)[/]" if turn.get("interrupted") else ""
        console.print(f"{who} {escape(turn['text'])}{cut}", soft_wrap=True)
    convo.printed_turns = len(turns)


async def run_conversation(
    url: str,
    caller: CallerTurns,
    *,
    console: Console,
    api_token: str | None,
    sign_token: str | None = None,
) -> Conversation:
    """Place the call; print the transcript as the server stores it (with a token)."""
    ws_url = media_ws_url(url)
    base = ws_url.replace("ws://", "http://").replace("wss://", "https://").split("/twilio")[0]
    sid = new_sid("CA")
    console.print(f"dialling {escape(ws_url)} as {sid}", soft_wrap=True)
    headers = {"Authorization": f"Bearer {api_token}"} if api_token else {}
    convo = Conversation(CallResult(sid, ""), np.zeros((0, 2), np.int16), np.zeros(0, np.int16))
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=5.0) as http:
        poller = (
            asyncio.create_task(_poll_transcript(http, sid, convo, console)) if api_token else None
        )
        try:
            result = await place_call(
                ws_url,
                caller,
                call_sid=sid,
                headers=signature_headers(ws_url, sign_token),
                custom_parameters={"From": "+12125550100", "To": "+12125550199"},
            )
        except (OSError, TimeoutError) as error:
            raise CallError(f"{ws_url}: cannot connect ({error})") from None
        finally:
            if poller is not None:
                poller.cancel()
                await asyncio.gather(poller, return_exceptions=True)
        if api_token:
            await asyncio.sleep(0.5)  # the server writes the call's end as it closes
            with contextlib.suppress(httpx.HTTPError, ValueError):
                response = await http.get(f"/calls/{sid}")
                if response.status_code == 200:
                    convo.record = response.json()
            _print_new_turns(convo, console)
    convo.result = result
    convo.caller_pcm = ulaw_to_pcm16(bytes(result.caller_ulaw))
    convo.stereo = stereo_call(convo.caller_pcm, result.played, offset_ms=0.0)
    return convo


def print_lead(console: Console, convo: Conversation, wav: Path, plot: Path | None) -> None:
    """The collected lead, the end reason, what the gate withheld, and the output files."""
    record = convo.record
    if record is None:
        console.print("(no call record: pass --api-token to read it from the server)")
    else:
        call, stats = record["call"], record["call"]["stats"]
        table = Table(title=f"lead collected on {call['call_sid']}")
        table.add_column("field")
        table.add_column("value")
        for item in record["fields"]:
            table.add_row(item["name"], item["value"])
        console.print(table)
        total = stats["audio_sent_s"] + stats["audio_withheld_s"]
        share = stats["audio_withheld_s"] / total if total else 0.0
        console.print(
            f"end reason: [bold]{escape(str(call['end_reason']))}[/]; the gate withheld "
            f"{share:.0%} of the caller's audio ({stats['audio_withheld_s']:.1f} of "
            f"{total:.1f} s, saved ${stats['est_cost_saved_usd']:.4f})",
            soft_wrap=True,
        )
    console.print(f"call recording: {escape(str(wav))} (left: caller, right: agent)")
    if plot is not None:
        console.print(f"gate timeline: {escape(str(plot))}")
