"""``callgate call``: dial a running callgate server as Twilio would, and record the call.

The caller's audio is a WAV file or sentences spoken by espeak-ng (optionally in a noise
scene, always through the telephone channel). :func:`place_call` streams it over the Media
Streams protocol; while it runs a live timeline is printed, and at the end a stereo WAV is
written: left = the caller as sent, right = the agent as Twilio's player would have played it.

Alignment of the two channels. ``place_call`` measures every time from when the socket
opened (``t0``); with real-time pacing, caller frame ``i`` leaves at ``t0 + i * 20 ms`` (the
``connected``/``start`` messages before it take well under a millisecond locally), so caller
sample ``n`` and agent audio played at ``start_ms`` share one timeline with ``n = start_ms * 8``.
With ``--fast`` the caller's frames leave in a burst and only the silent tail is paced, so
wall-clock time means nothing inside the burst: the agent channel is shifted so that the end
of the burst lines up with the end of the caller's audio (see :func:`agent_offset_ms`).
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import numpy.typing as npt
import websockets
from rich.console import Console
from rich.markup import escape
from scipy.io import wavfile

from callgate.audio.codec import (
    SAMPLE_RATE_HZ,
    Pcm16,
    pcm16_to_float,
    ulaw_to_pcm16,
)
from callgate.cli.analyze import write_atomic
from callgate.cli.recording import RecordingError, load_recording
from callgate.peers.twilio_caller import (
    FRAME_MS,
    CallResult,
    PlayedSegment,
    place_call,
)
from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import NOISE_BEDS, mix_at_snr
from callgate.synth.speech import speak
from callgate.telephony.media_streams import (
    Clear,
    OutboundMedia,
    OutboundMessage,
    ProtocolViolation,
)

FloatAudio = npt.NDArray[np.float64]
SAMPLES_PER_MS = SAMPLE_RATE_HZ // 1000
LEAD_IN_MS = 1000
"""Silence (or noise) before the first sentence: the gate calibrates its noise floor on it."""
SPEECH_PEAK = 0.5
"""Peak of the speech alone: a normal talker on a phone, well below full scale."""
MIX_PEAK = 0.89
"""Largest sample of the mix before the channel, so it never clips."""
AGENT_GAP_MS = 400.0
"""No agent media for this long ends an "agent speaking" span on the live timeline."""
MEDIA_PATH = "/twilio/media"


class CallError(Exception):
    """The call cannot be made or its audio built; the message names the problem."""


@dataclass(frozen=True, slots=True)
class Utterance:
    """One stretch of caller speech on the caller's timeline (ms from the first frame)."""

    text: str
    start_ms: float
    end_ms: float


@dataclass(frozen=True, slots=True)
class CallerAudio:
    """What the caller sends (8 kHz int16) and where its sentences are."""

    pcm: Pcm16
    utterances: tuple[Utterance, ...]

    @property
    def duration_ms(self) -> float:
        return len(self.pcm) / SAMPLES_PER_MS


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """The finished call, the recording built from it and the shift used to align it."""

    result: CallResult
    stereo: npt.NDArray[np.int16]
    agent_offset_ms: float
    end_reason: str


def media_ws_url(url: str) -> str:
    """Base URL or media URL -> the media WebSocket URL (http->ws, https->wss)."""
    parts = urlsplit(url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme.lower())
    if scheme is None or not parts.netloc:
        raise CallError(f"{url!r} is not an http(s):// or ws(s):// URL with a host")
    path = parts.path if parts.path.strip("/") else MEDIA_PATH
    return urlunsplit((scheme, parts.netloc, path, parts.query, ""))


def signature_headers(ws_url: str, token: str | None) -> dict[str, str]:
    """``X-Twilio-Signature`` for the upgrade, as Twilio signs it (URL, no form params)."""
    if not token:
        return {}
    from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]  # noqa: PLC0415

    return {"X-Twilio-Signature": str(RequestValidator(token).compute_signature(ws_url, {}))}


def check_noise(noise: str | None) -> None:
    """A bad scene name is a :class:`CallError`, raised before any slow synthesis."""
    if noise is not None and noise not in NOISE_BEDS:
        raise CallError(f"--noise {noise!r} is not a scene; choose one of {', '.join(NOISE_BEDS)}")


def _noisy(signal: FloatAudio, noise: str | None, snr_db: float, seed: int) -> FloatAudio:
    """Mix a noise bed under ``signal`` (8 kHz float) and keep the mix below clipping."""
    check_noise(noise)
    if noise is None:
        return signal
    rng = np.random.default_rng(seed)
    bed = NOISE_BEDS[noise](signal.size / SAMPLE_RATE_HZ + 0.1, SAMPLE_RATE_HZ, rng)
    mix = mix_at_snr(signal, bed, snr_db, SAMPLE_RATE_HZ)
    return mix * min(1.0, MIX_PEAK / max(float(np.max(np.abs(mix))), 1e-9))


def place_utterances(
    speech: Sequence[FloatAudio],
    texts: Sequence[str],
    *,
    pause_ms: int = 1500,
    lead_in_ms: int = LEAD_IN_MS,
    noise: str | None = None,
    snr_db: float = 10.0,
    seed: int = 7,
) -> CallerAudio:
    """Lay 8 kHz float sentences out after ``lead_in_ms``, ``pause_ms`` apart; add noise at
    ``snr_db`` if asked; pass through the telephone channel. Pure given its inputs."""
    if not speech or len(speech) != len(texts):
        raise CallError("need one or more sentences, each with its text")
    gaps = [lead_in_ms] + [pause_ms] * (len(speech) - 1)
    total = sum(g * SAMPLES_PER_MS for g in gaps) + sum(s.size for s in speech)
    signal = np.zeros(total, dtype=np.float64)
    utterances: list[Utterance] = []
    position = 0
    for gap, text, clip in zip(gaps, texts, speech, strict=True):
        position += gap * SAMPLES_PER_MS
        signal[position : position + clip.size] = clip
        end = position + clip.size
        utterances.append(Utterance(text, position / SAMPLES_PER_MS, end / SAMPLES_PER_MS))
        position = end
    signal *= SPEECH_PEAK / max(float(np.max(np.abs(signal))), 1e-9)
    mix = _noisy(signal, noise, snr_db, seed)
    return CallerAudio(telephone_channel(mix, SAMPLE_RATE_HZ), tuple(utterances))


def spoken_caller(
    texts: Sequence[str],
    *,
    voice: str = "en-us",
    pause_ms: int = 1500,
    noise: str | None = None,
    snr_db: float = 10.0,
    seed: int = 7,
) -> CallerAudio:
    """Speak ``texts`` with espeak-ng and lay them out as :func:`place_utterances` does."""
    check_noise(noise)
    try:
        speech = [speak(text, voice=voice, sample_rate_hz=SAMPLE_RATE_HZ) for text in texts]
    except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as error:
        raise CallError(f"espeak-ng failed with voice {voice!r}: {error}") from None
    empty = [text for text, clip in zip(texts, speech, strict=True) if clip.size == 0]
    if empty:
        raise CallError(f"espeak-ng produced no audio for {empty[0]!r}")
    return place_utterances(speech, texts, pause_ms=pause_ms, noise=noise, snr_db=snr_db, seed=seed)


def wav_caller(
    path: Path, *, noise: str | None = None, snr_db: float = 10.0, seed: int = 7
) -> CallerAudio:
    """A recording as the caller (as Twilio would deliver it), optionally with added noise."""
    try:
        recording = load_recording(path)
    except RecordingError as error:
        raise CallError(str(error)) from None
    pcm = recording.pcm
    if noise is not None:
        pcm = telephone_channel(_noisy(pcm16_to_float(pcm), noise, snr_db, seed), SAMPLE_RATE_HZ)
    duration = len(pcm) / SAMPLES_PER_MS
    return CallerAudio(pcm, (Utterance("", 0.0, duration),))


def agent_offset_ms(result: CallResult, caller_frames: int, *, realtime: bool) -> float:
    """Add this to ``PlayedSegment.start_ms`` to place agent audio on the caller's timeline.

    Real time: 0 (frame ``i`` leaves at ``i * 20`` ms on place_call's clock). Fast: the caller
    frames left in a burst, then the tail was paced at 20 ms a frame until the socket closed,
    so the burst ended about ``tail frames * 20`` ms before the close; that moment is mapped to
    the caller position reached by then (the end of the caller's audio, unless the server hung
    up first). Error: the close handshake, a few ms locally.
    """
    if realtime:
        return 0.0
    closed = [e.at_ms for e in result.events if e.kind == "closed"]
    end_ms = closed[-1] if closed else max((e.at_ms for e in result.events), default=0.0)
    tail_sent = max(0, result.frames_sent - caller_frames)
    burst_end_ms = max(0.0, end_ms - tail_sent * FRAME_MS)
    caller_ms = min(result.frames_sent, caller_frames) * FRAME_MS
    return caller_ms - burst_end_ms


def stereo_call(
    caller_pcm: Pcm16,
    played: Sequence[PlayedSegment],
    *,
    offset_ms: float = 0.0,
    min_samples: int = 0,
) -> npt.NDArray[np.int16]:
    """(n, 2) int16: left = caller, right = each played segment at ``start_ms + offset_ms``.

    Both channels are padded with silence to the longer of the two (and ``min_samples``).
    Segment audio before sample 0 (only possible with a --fast estimate) is dropped.
    """
    placed: list[tuple[int, Pcm16]] = []
    for segment in played:
        audio = ulaw_to_pcm16(segment.ulaw)
        start = round((segment.start_ms + offset_ms) * SAMPLES_PER_MS)
        if start < 0:
            audio, start = audio[-start:], 0
        if audio.size:
            placed.append((start, audio))
    n = max([len(caller_pcm), min_samples] + [s + a.size for s, a in placed])
    out = np.zeros((n, 2), dtype=np.int16)
    out[: len(caller_pcm), 0] = caller_pcm
    for start, audio in placed:
        out[start : start + audio.size, 1] = audio
    return out


def write_stereo(path: Path, stereo: npt.NDArray[np.int16]) -> None:
    """8 kHz 16-bit stereo WAV, written to a temp file and renamed into place."""
    write_atomic(path, lambda temp: wavfile.write(temp, SAMPLE_RATE_HZ, stereo))


class LiveTimeline:
    """Prints one line per call event as it happens; the clock is place_call's (ms)."""

    def __init__(self, console: Console, caller: CallerAudio, *, realtime: bool) -> None:
        self.console = console
        self.caller = caller
        self.realtime = realtime
        self.loop = asyncio.get_running_loop()
        self.origin = self.loop.time()
        self.skew_ms = 0.0  # our clock minus place_call's (its t0 is after the handshake)
        self.speaking_since: float | None = None
        self.last_media_ms = 0.0
        self.play_end_ms = 0.0  # when the queued agent audio finishes playing
        self.span_bytes = 0

    def now_ms(self) -> float:
        return (self.loop.time() - self.origin) * 1000.0 - self.skew_ms

    def line(self, at_ms: float, who: str, text: str) -> None:
        self.console.print(f"[dim]{at_ms / 1000:7.2f}s[/] {who} {text}", soft_wrap=True)

    def caller_line(self, utterance: Utterance, starts: bool) -> None:
        if utterance.text:
            what = f'"{escape(utterance.text)}"' if starts else "stops speaking"
        else:
            what = "recording starts" if starts else "recording ends"
        at = utterance.start_ms if starts else utterance.end_ms
        self.line(at, "[bold cyan]caller[/]", what)

    async def caller_lines(self) -> None:
        """Caller sentences at the times their frames are sent (all at once with --fast)."""
        for utterance in self.caller.utterances:
            for starts in (True, False):
                if self.realtime:
                    at = utterance.start_ms if starts else utterance.end_ms
                    await asyncio.sleep(max(0.0, (at - self.now_ms()) / 1000.0))
                self.caller_line(utterance, starts)

    def on_message(self, at_ms: float, message: OutboundMessage | ProtocolViolation) -> None:
        self.skew_ms = (self.loop.time() - self.origin) * 1000.0 - at_ms
        if isinstance(message, OutboundMedia):
            if self.speaking_since is None:
                self.speaking_since = at_ms
                self.span_bytes = 0
                self.line(at_ms, "[bold green]agent[/]", "speaking (audio arriving)")
            self.last_media_ms = at_ms
            self.span_bytes += len(message.payload)
            # Twilio plays media back to back from when it arrives, as place_call's player.
            self.play_end_ms = max(at_ms, self.play_end_ms) + len(message.payload) / SAMPLES_PER_MS
        elif isinstance(message, Clear):
            self.end_span(at_ms)
            self.line(at_ms, "[bold yellow]server[/]", "barge-in: agent audio cleared")
        elif isinstance(message, ProtocolViolation):
            self.line(at_ms, "[bold red]server[/]", escape(f"protocol violation: {message}"))

    def end_span(self, cut_ms: float | None = None) -> None:
        """Print the end of an "agent speaking" span: when it stopped playing (or was cut)."""
        if self.speaking_since is None:
            return
        received = self.span_bytes / (SAMPLES_PER_MS * 1000)
        end = self.play_end_ms if cut_ms is None else min(cut_ms, self.play_end_ms)
        how = "cut off" if end < self.play_end_ms else "stops"
        arrived = f"{received:.1f} s of audio arrived by {self.last_media_ms / 1000:.2f}s"
        self.line(end, "[bold green]agent[/]", f"{how}: {arrived}")
        self.speaking_since = None
        self.play_end_ms = end

    async def watch_agent(self) -> None:
        """End an "agent speaking" span once media stopped arriving and the audio has played."""
        while True:
            await asyncio.sleep(0.05)
            now = self.now_ms()
            quiet = now - self.last_media_ms > AGENT_GAP_MS
            if self.speaking_since is not None and quiet and now >= self.play_end_ms:
                self.end_span()


def end_reason(result: CallResult, total_frames: int) -> str:
    """Who ended the call, and the close code/reason."""
    code = f"close code {result.close_code}" + (
        f" {result.close_reason!r}" if result.close_reason else ""
    )
    who = (
        "caller hung up after its audio"
        if result.frames_sent >= total_frames
        else "server ended the call"
    )
    return f"{who} ({code})"


async def run_call(
    url: str,
    caller: CallerAudio,
    *,
    console: Console,
    fast: bool = False,
    tail_ms: int = 6000,
    token: str | None = None,
) -> CallOutcome:
    """Dial ``url``, stream ``caller`` with a live timeline, and return the aligned recording.

    Connection failures (refused, unreachable, handshake rejected) become :class:`CallError`.
    """
    ws_url = media_ws_url(url)
    timeline = LiveTimeline(console, caller, realtime=not fast)
    caller_frames = -(-len(caller.pcm) // (FRAME_MS * SAMPLES_PER_MS))
    tail_frames = -(-tail_ms // FRAME_MS)
    console.print(
        f"dialling {escape(ws_url)}"
        + (" (--fast: caller audio sent in a burst; agent times are wall clock)" if fast else ""),
        soft_wrap=True,
    )
    tasks = [
        asyncio.create_task(timeline.caller_lines()),
        asyncio.create_task(timeline.watch_agent()),
    ]
    try:
        result = await place_call(
            ws_url,
            caller.pcm,
            realtime=not fast,
            tail_ms=tail_ms,
            on_message=timeline.on_message,
            headers=signature_headers(ws_url, token),
        )
    except websockets.InvalidStatus as error:
        status = error.response.status_code
        raise CallError(
            f"{ws_url}: server refused the WebSocket handshake (HTTP {status})"
        ) from None
    except (websockets.InvalidHandshake, websockets.InvalidURI) as error:
        raise CallError(f"{ws_url}: WebSocket handshake failed: {error}") from None
    except (OSError, TimeoutError) as error:
        detail = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise CallError(f"{ws_url}: cannot connect ({detail})") from None
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    closed_at = result.events[-1].at_ms if result.events else 0.0
    timeline.end_span(closed_at)  # audio still queued at the end was never heard
    reason = end_reason(result, caller_frames + tail_frames)
    timeline.line(closed_at, "[bold]end[/]", escape(reason))
    offset = agent_offset_ms(result, caller_frames, realtime=not fast)
    # Left channel: what actually went out, i.e. the caller's audio, then the silent tail,
    # cut where the server hung up if it did.
    frame = FRAME_MS * SAMPLES_PER_MS
    sent = np.concatenate([caller.pcm, np.zeros(tail_frames * frame, dtype=np.int16)])
    stereo = stereo_call(sent[: result.frames_sent * frame], result.played, offset_ms=offset)
    return CallOutcome(result, stereo, offset, reason)


def print_call_summary(console: Console, outcome: CallOutcome, out: Path) -> None:
    """Duration, agent audio heard, barge-ins, end reason and where the WAV went."""
    result = outcome.result
    console.print(
        f"duration {len(outcome.stereo) / SAMPLE_RATE_HZ:.1f} s; "
        f"agent audio played {result.agent_played_ms / 1000:.1f} s; "
        f"barge-ins {len(result.clears_ms)}; "
        f"{escape(outcome.end_reason)}; "
        f"call {result.call_sid}",
        soft_wrap=True,
    )
    console.print(f"wrote {escape(str(out))} (left: caller, right: agent, 8 kHz)", soft_wrap=True)
