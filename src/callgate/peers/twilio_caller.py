"""A stand-in for Twilio's side of a Media Stream: a caller that dials our WebSocket.

Tests, benchmarks and ``callgate call`` use :func:`place_call` to play a recording into the
server exactly as Twilio would ("Media Streams - WebSocket Messages",
https://www.twilio.com/docs/voice/media-streams/websocket-messages): ``connected``,
``start``, then one ``media`` message per 20 ms (160 mu-law bytes), then ``stop``.

It also emulates Twilio's player for the agent's side: outbound ``media`` plays in real time
from when it arrives, each outbound ``mark`` is echoed back when the audio queued before it
has finished playing, and ``clear`` drops unplayed audio and echoes pending marks at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import websockets
from websockets.asyncio.client import ClientConnection

from callgate.audio.codec import pcm16_to_ulaw, ulaw_to_pcm16
from callgate.telephony.media_streams import (
    ULAW_BYTES_PER_MS,
    Clear,
    Connected,
    Mark,
    Media,
    OutboundMark,
    OutboundMedia,
    OutboundMessage,
    ProtocolViolation,
    Start,
    Stop,
    parse_outbound,
)

FRAME_MS = 20
FRAME_BYTES = FRAME_MS * ULAW_BYTES_PER_MS  # 160 mu-law bytes per Twilio media message
ULAW_SILENCE = b"\xff"  # mu-law code for PCM 0

TimelineKind = Literal["media", "mark", "clear", "violation", "mark_echoed", "closed"]
OnMessage = Callable[[float, OutboundMessage | ProtocolViolation], None]


@dataclass(frozen=True, slots=True)
class TimelineEvent:
    """Something that happened on the call, ``at_ms`` after the socket opened."""

    at_ms: float
    kind: TimelineKind
    detail: str = ""


@dataclass(frozen=True, slots=True)
class PlayedSegment:
    """Agent audio that actually played: mu-law bytes starting at ``start_ms``."""

    start_ms: float
    ulaw: bytes


@dataclass
class CallResult:
    """What the caller sent, heard and saw."""

    call_sid: str
    stream_sid: str
    frames_sent: int = 0
    events: list[TimelineEvent] = field(default_factory=list)
    played: list[PlayedSegment] = field(default_factory=list)
    clears_ms: list[float] = field(default_factory=list)
    marks_echoed: list[tuple[str, float]] = field(default_factory=list)
    received_ulaw_bytes: int = 0
    caller_ulaw: bytearray = field(default_factory=bytearray)
    """Every caller frame as sent (after any echo was mixed in), in order."""
    close_code: int | None = None
    close_reason: str = ""

    @property
    def agent_audio(self) -> npt.NDArray[np.int16]:
        """The played agent audio as PCM16 at 8 kHz, segments joined without gaps."""
        return ulaw_to_pcm16(b"".join(s.ulaw for s in self.played))

    @property
    def agent_played_ms(self) -> float:
        return sum(len(s.ulaw) for s in self.played) / ULAW_BYTES_PER_MS


@dataclass
class _Queued:
    start_ms: float
    ulaw: bytes

    @property
    def end_ms(self) -> float:
        return self.start_ms + len(self.ulaw) / ULAW_BYTES_PER_MS


class _Player:
    """Twilio's outbound player, driven by arrival times. No I/O."""

    def __init__(self) -> None:
        self.queue: list[_Queued] = []
        self.schedule: list[_Queued] = []
        """Everything that plays or played, never cut by playback; trimmed by ``clear``."""
        self.marks: list[tuple[str, float]] = []  # (name, due_ms), due times never decrease
        self.end_ms = 0.0

    def media(self, ulaw: bytes, now_ms: float) -> None:
        start = max(now_ms, self.end_ms)
        self.queue.append(_Queued(start, ulaw))
        self.schedule.append(_Queued(start, ulaw))
        self.end_ms = start + len(ulaw) / ULAW_BYTES_PER_MS

    def mark(self, name: str, now_ms: float) -> None:
        self.marks.append((name, max(now_ms, self.end_ms)))

    def clear(self, now_ms: float) -> list[PlayedSegment]:
        """Stop at ``now_ms``; returns what played. Pending marks become due now."""
        played = self.cut(now_ms)
        self.queue.clear()
        kept = [q for q in self.schedule if q.start_ms < now_ms]
        if kept and kept[-1].end_ms > now_ms:
            head = kept[-1]
            kept[-1] = _Queued(
                head.start_ms, head.ulaw[: int((now_ms - head.start_ms) * ULAW_BYTES_PER_MS)]
            )
        self.schedule = kept
        self.end_ms = now_ms
        self.marks = [(name, now_ms) for name, _ in self.marks]
        return played

    def playing(self, from_ms: float, to_ms: float) -> npt.NDArray[np.int16]:
        """The agent audio heard between two times, as PCM16 (silence where none played)."""
        n = round((to_ms - from_ms) * ULAW_BYTES_PER_MS)
        out = np.zeros(n, dtype=np.int16)
        for q in reversed(self.schedule):
            if q.end_ms <= from_ms:
                break
            if q.start_ms >= to_ms:
                continue
            offset = round((q.start_ms - from_ms) * ULAW_BYTES_PER_MS)
            pcm = ulaw_to_pcm16(q.ulaw)
            lo, hi = max(0, offset), min(n, offset + pcm.size)
            if lo < hi:
                out[lo:hi] = pcm[lo - offset : hi - offset]
        return out

    def cut(self, now_ms: float) -> list[PlayedSegment]:
        """Move audio that has played by ``now_ms`` out of the queue."""
        played: list[PlayedSegment] = []
        while self.queue and self.queue[0].start_ms < now_ms:
            head = self.queue[0]
            if head.end_ms <= now_ms:
                played.append(PlayedSegment(head.start_ms, head.ulaw))
                self.queue.pop(0)
                continue
            n = int((now_ms - head.start_ms) * ULAW_BYTES_PER_MS)
            played.append(PlayedSegment(head.start_ms, head.ulaw[:n]))
            self.queue[0] = _Queued(head.start_ms + n / ULAW_BYTES_PER_MS, head.ulaw[n:])
            break
        return played


@dataclass
class CallerTurns:
    """A caller who takes turns: each utterance starts once the agent has finished speaking.

    Used instead of a fixed recording when the far end is a conversation: utterance ``k``
    starts when the agent has spoken since utterance ``k-1`` and its audio has been quiet
    for ``gap_ms`` (or after ``first_wait_ms`` if the agent says nothing). ``bed`` (noise,
    looped) runs under the whole call. After the last utterance the line stays open for
    ``hold_ms``, for the agent's closing words and hang-up, then the caller hangs up.
    """

    utterances: Sequence[npt.NDArray[np.int16]]
    bed: npt.NDArray[np.int16] | None = None
    gap_ms: float = 700.0
    first_wait_ms: float = 6000.0
    hold_ms: float = 15000.0
    started_ms: list[float] = field(default_factory=list)
    """When each utterance started (call time), filled in as the call runs."""

    def frames(self, player: _Player, now_ms: Callable[[], float]) -> Iterator[bytes]:
        """One mu-law frame per step; the caller paces them in real time."""
        bed_frames = _frames(self.bed) if self.bed is not None and self.bed.size else None
        step = 0
        quiet = np.zeros(FRAME_MS * 8, dtype=np.int16)
        idle_since = 0.0
        for k, utterance in enumerate(self.utterances):
            ready = self.start_rule(k, player, idle_since)
            while not ready(now_ms()):
                yield self._mix(quiet, bed_frames, step)
                step += 1
            self.started_ms.append(now_ms())
            for start in range(0, utterance.size, FRAME_MS * 8):
                chunk = utterance[start : start + FRAME_MS * 8]
                chunk = np.pad(chunk, (0, FRAME_MS * 8 - chunk.size))
                yield self._mix(chunk, bed_frames, step)
                step += 1
            idle_since = now_ms()
        for _ in range(int(self.hold_ms // FRAME_MS)):
            yield self._mix(quiet, bed_frames, step)
            step += 1

    def start_rule(self, k: int, player: _Player, idle_since: float) -> Callable[[float], bool]:
        """When utterance ``k`` may start: a test of the call time, made fresh for each
        utterance (``idle_since``: when the previous one ended). Subclasses time it their
        own way; the frames around it stay the same."""
        heard_agent = False

        def ready(now: float) -> bool:
            nonlocal heard_agent
            heard_agent = heard_agent or player.end_ms > idle_since
            if heard_agent:
                return now >= player.end_ms + self.gap_ms
            return now - idle_since >= self.first_wait_ms

        return ready

    @staticmethod
    def _mix(pcm: npt.NDArray[np.int16], bed: list[bytes] | None, step: int) -> bytes:
        if bed is None:
            return pcm16_to_ulaw(pcm)
        noise = ulaw_to_pcm16(bed[step % len(bed)]).astype(np.int32)
        return pcm16_to_ulaw(np.clip(pcm.astype(np.int32) + noise, -32768, 32767))


def new_sid(prefix: str) -> str:
    """A Twilio-style SID: ``prefix`` and 32 hex digits (CA... for calls, MZ... for streams)."""
    return prefix + secrets.token_hex(16)


def _frames(pcm16_8k: npt.NDArray[np.int16]) -> list[bytes]:
    ulaw = pcm16_to_ulaw(np.asarray(pcm16_8k, dtype=np.int16).ravel())
    if len(ulaw) % FRAME_BYTES:
        ulaw += ULAW_SILENCE * (FRAME_BYTES - len(ulaw) % FRAME_BYTES)
    return [ulaw[i : i + FRAME_BYTES] for i in range(0, len(ulaw), FRAME_BYTES)]


class _Call:
    def __init__(
        self,
        ws: ClientConnection,
        result: CallResult,
        params: Mapping[str, str],
        on_message: OnMessage | None,
    ) -> None:
        self.ws = ws
        self.params = dict(params)
        self.result = result
        self.on_message = on_message
        self.player = _Player()
        self.loop = asyncio.get_running_loop()
        self.t0 = self.loop.time()
        self.seq = 0
        self.send_lock = asyncio.Lock()
        self.wake = asyncio.Event()
        self.echo_gain = 0.0

    def now_ms(self) -> float:
        return (self.loop.time() - self.t0) * 1000.0

    def log(self, kind: TimelineKind, detail: str = "") -> None:
        self.result.events.append(TimelineEvent(self.now_ms(), kind, detail))

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    async def send(self, build: Callable[[int], str]) -> None:
        """Send one Twilio message; numbering and sending are atomic so order holds."""
        async with self.send_lock:
            await self.ws.send(build(self.next_seq()))

    async def send_audio(
        self, frames: list[bytes] | CallerTurns, tail_frames: int, realtime: bool
    ) -> None:
        sid, call = self.result.stream_sid, self.result.call_sid
        account = "AC" + "0" * 32
        await self.ws.send(Connected().serialize())
        await self.send(
            lambda n: Start(
                sequence_number=n,
                stream_sid=sid,
                account_sid=account,
                call_sid=call,
                custom_parameters=self.params,
            ).serialize()
        )
        all_frames: Sequence[bytes] | Iterator[bytes]
        if isinstance(frames, CallerTurns):
            all_frames, frames, realtime = frames.frames(self.player, self.now_ms), [], True
        else:
            all_frames = frames + [ULAW_SILENCE * FRAME_BYTES] * tail_frames
        start = tail_start = self.loop.time()
        for i, caller_payload in enumerate(all_frames):
            payload = caller_payload
            # A monotonic schedule: frame i leaves at start + i*20 ms, so delays never add up.
            # The silent tail is always paced: it is the time the server gets to answer.
            if realtime:
                await self._sleep_until(start + i * FRAME_MS / 1000.0)
            elif i >= len(frames):
                if i == len(frames):
                    tail_start = self.loop.time()
                await self._sleep_until(tail_start + (i - len(frames)) * FRAME_MS / 1000.0)
            elif i % 50 == 0:
                await asyncio.sleep(0)  # let the reader run during a fast burst

            if self.echo_gain:
                # The agent's voice leaking back into the caller's microphone.
                now = self.now_ms()
                leak = self.player.playing(now - FRAME_MS, now).astype(np.float64) * self.echo_gain
                mixed = ulaw_to_pcm16(payload).astype(np.float64) + leak
                payload = pcm16_to_ulaw(np.clip(mixed, -32768, 32767).astype(np.int16))

            def media(n: int, i: int = i, payload: bytes = payload) -> str:
                return Media(
                    sequence_number=n,
                    stream_sid=sid,
                    payload=payload,
                    chunk=i + 1,
                    timestamp_ms=i * FRAME_MS,
                ).serialize()

            await self.send(media)
            self.result.frames_sent += 1
            self.result.caller_ulaw += payload
        await self.send(
            lambda n: Stop(
                sequence_number=n, stream_sid=sid, account_sid=account, call_sid=call
            ).serialize()
        )

    def _echo(self, name: str) -> Callable[[int], str]:
        sid = self.result.stream_sid
        return lambda n: Mark(sequence_number=n, stream_sid=sid, name=name).serialize()

    async def _sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self.loop.time()))

    async def read(self) -> None:
        async for raw in self.ws:
            now = self.now_ms()
            text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
            message = parse_outbound(text)
            if self.on_message is not None:
                self.on_message(now, message)
            if isinstance(message, ProtocolViolation):
                self.log("violation", f"{message.kind}: {message.detail}")
            elif isinstance(message, OutboundMedia):
                self.result.received_ulaw_bytes += len(message.payload)
                self.player.media(message.payload, now)
                self.log("media", f"{len(message.payload)} bytes")
            elif isinstance(message, OutboundMark):
                self.player.mark(message.name, now)
                self.log("mark", message.name)
                self.wake.set()
            elif isinstance(message, Clear):
                self.result.played.extend(self.player.clear(now))
                self.result.clears_ms.append(now)
                self.log("clear")
                self.wake.set()

    async def echo_marks(self) -> None:
        """Echo each mark when the audio before it has played (or at once after clear)."""
        while True:
            if not self.player.marks:
                self.wake.clear()
                await self.wake.wait()
                continue
            name, due = self.player.marks[0]
            wait_s = (due - self.now_ms()) / 1000.0
            if wait_s > 0:
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), wait_s)
                continue  # re-read: a clear may have moved the due time
            self.player.marks.pop(0)
            self.result.played.extend(self.player.cut(self.now_ms()))
            await self.send(self._echo(name))
            self.result.marks_echoed.append((name, self.now_ms()))
            self.log("mark_echoed", name)


async def place_call(
    url: str,
    pcm16_8k: npt.NDArray[np.int16] | CallerTurns,
    *,
    headers: Mapping[str, str] | None = None,
    custom_parameters: Mapping[str, str] | None = None,
    realtime: bool = True,
    call_sid: str | None = None,
    tail_ms: int = 1000,
    on_message: OnMessage | None = None,
    echo_db: float | None = None,
) -> CallResult:
    """Dial ``url`` as Twilio would and stream ``pcm16_8k`` (int16, 8 kHz mono) as the caller.

    ``pcm16_8k`` may instead be a :class:`CallerTurns`: a caller who answers the agent turn
    by turn, paced in real time.

    ``realtime=False`` sends the caller's frames as fast as possible (still in order); the
    ``tail_ms`` of silence after them is always paced in real time so the server can answer.
    ``headers`` go on the upgrade request (e.g. X-Twilio-Signature). ``on_message`` sees
    every server message with its arrival time in ms. ``echo_db`` mixes the agent's audio
    back into the caller's frames at that level (e.g. -25 dB), as a line or handset echo
    would. Returns when the call is over: after
    ``stop`` and our close, or as soon as the server closes (recorded in the result, not
    raised). Connection failures (refused, bad handshake) do raise.
    """
    result = CallResult(call_sid=call_sid or new_sid("CA"), stream_sid=new_sid("MZ"))
    frames = pcm16_8k if isinstance(pcm16_8k, CallerTurns) else _frames(pcm16_8k)
    async with websockets.connect(url, additional_headers=dict(headers or {})) as ws:
        call = _Call(ws, result, custom_parameters or {}, on_message)
        if echo_db is not None:
            call.echo_gain = 10.0 ** (echo_db / 20.0)
        reader = asyncio.create_task(call.read())
        echoer = asyncio.create_task(call.echo_marks())
        sender = asyncio.create_task(call.send_audio(frames, -(-tail_ms // FRAME_MS), realtime))
        with contextlib.suppress(websockets.ConnectionClosed):
            # Whichever ends first: we finished sending, or the server hung up.
            await asyncio.wait({sender, reader}, return_when=asyncio.FIRST_COMPLETED)
            if sender.done():
                sender.result()
                await ws.close()
        end_ms = call.now_ms()
        for task in (sender, echoer):
            task.cancel()
        await asyncio.gather(sender, echoer, return_exceptions=True)
        with contextlib.suppress(websockets.ConnectionClosed):
            await reader
        # Audio still queued when the call ended was never heard.
        result.played.extend(call.player.cut(end_ms))
        result.close_code = ws.close_code
        result.close_reason = ws.close_reason or ""
        call.log("closed", f"{result.close_code} {result.close_reason}".strip())
    return result
