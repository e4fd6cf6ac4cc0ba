"""One live call: Twilio media in, through the gate, to the Realtime model, and back.

This is the asyncio edge around the sans-I/O cores. :class:`TwilioStream` parses Twilio's
messages, the gate (:class:`SpeechGate`, or the legacy VAD on the fallback path) decides
what is speech, and :class:`TurnController` turns
decisions and model events into actions. Only this file waits on sockets. Two loops run
per call:

- the caller loop reads Twilio messages, feeds media to the gate and the controller, and
  carries out the resulting actions (appends, commits, barge-ins);
- the model loop reads Realtime events, queues agent audio to Twilio with marks, and
  tracks responses.

Sends to Twilio from both loops go through one lock, so media and marks keep their order.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

from callgate.audio.decision import SILENCE, FrameGate
from callgate.config import Settings
from callgate.conversation.agents.base import EndCall
from callgate.conversation.call_transcript import CallTranscript
from callgate.conversation.hangup import HangUp, HangupOptions, HangupPolicy, PromptSilence
from callgate.conversation.loops import LoopDetector, LoopOptions
from callgate.conversation.tools import FormTools
from callgate.conversation.transcripts import TranscriptOptions, cut_text
from callgate.fallback.pipeline import AgentTurn
from callgate.realtime.end_of_turn import TurnModelRunner, shared_runner
from callgate.realtime.link import (
    FunctionCallRequest,
    LinkFailed,
    LinkReconnected,
    function_call_request,
)
from callgate.realtime.turns import (
    Action,
    AppendAudio,
    CancelResponse,
    ClearPlayback,
    CommitInput,
    CreateResponse,
    PlayAudio,
    PredictTurnEnd,
    TruncateItem,
    TurnController,
    TurnOptions,
)
from callgate.server.logs import call_sid_var
from callgate.server.metrics import BridgeMetrics
from callgate.server.recorder import CallRecorder
from callgate.telephony import media_streams as ms

log = logging.getLogger("callgate.call")


class ModelLink(Protocol):
    """What a call needs from the Realtime connection (``callgate.realtime.link``)."""

    async def append_audio(self, pcmu: bytes) -> None: ...
    async def commit(self) -> None: ...
    async def create_response(self) -> None: ...
    async def cancel_response(self) -> None: ...
    async def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None: ...
    async def add_text_item(
        self, role: Literal["user", "assistant", "system"], text: str
    ) -> None: ...
    def events(self) -> Any: ...
    async def close(self) -> None: ...


SILENCE_INSTRUCTION = (
    "The caller has been silent for a while. Briefly ask whether they are still on the line."
)


class TwilioSocket(Protocol):
    """The Twilio side of the call: a WebSocket that sends and receives text."""

    async def send_text(self, data: str) -> None: ...
    async def receive_text(self) -> str: ...
    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


@dataclass
class CallStats:
    """What the call did, for logs, metrics and the call record."""

    call_sid: str = "-"
    stream_sid: str = "-"
    started_at: float = field(default_factory=time.time)
    frames_in: int = 0
    frames_sent: int = 0
    frames_withheld: int = 0
    frames_listened: int = 0
    appends: int = 0
    commits: int = 0
    barge_ins: int = 0
    barge_in_frames: list[int] = field(default_factory=list)
    protocol_errors: int = 0
    model_reconnects: int = 0
    apologized: bool = False
    loops: int = 0
    end_reason: str = ""
    hung_up: bool = False
    """callgate hung the call up through Twilio's REST API (smart hang-up)."""
    transcript: list[tuple[str, str]] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)
    """Lead fields collected, normalized."""


def _reason_label(reason: str) -> str:
    """A low-cardinality label for the end reason (details stay in the logs)."""
    for known in (
        "caller hung up",
        "model connection",
        "twilio socket closed",
        "server shutting down",
    ):
        if reason.startswith(known):
            return known
    return "other"


def hangup_options(settings: Settings) -> HangupOptions:
    """The ending rules' limits from the settings."""
    return HangupOptions(
        silence_timeout_ms=settings.silence_timeout_ms,
        max_duration_ms=settings.max_call_duration_s * 1000,
        grace_ms=settings.hangup_grace_ms,
        frame_ms=settings.audio_frame_size_ms,
    )


def turn_options(settings: Settings) -> TurnOptions:
    """The turn controller's options from the settings."""
    return TurnOptions(
        mode=settings.turn_detection,
        end_of_turn_silence_ms=settings.end_of_turn_silence_ms,
        padding_ms=settings.turn_silence_padding_ms,
        frame_ms=settings.audio_frame_size_ms,
        early_end_ms=(
            settings.end_of_turn_min_silence_ms
            if settings.end_of_turn_model != "none"
            or settings.end_of_turn_clean_pause_snr_db is not None
            else None
        ),
        ask_model=settings.end_of_turn_model != "none",
        model_threshold=settings.end_of_turn_model_threshold,
        clean_pause_snr_db=settings.end_of_turn_clean_pause_snr_db,
    )


class CallSession:
    """Runs one call from Twilio's ``start`` to its ``stop`` (or a failure)."""

    def __init__(
        self,
        settings: Settings,
        socket: TwilioSocket,
        open_link: Callable[[str], Awaitable[ModelLink]],
        *,
        metrics: BridgeMetrics | None = None,
        apologize: Callable[[str], Awaitable[None]] | None = None,
        recorder: CallRecorder | None = None,
        transfer: Callable[[str, str], Awaitable[None]] | None = None,
        hang_up: Callable[[str], Awaitable[None]] | None = None,
        tools: FormTools | None = None,
        gate: FrameGate | None = None,
        greet: bool = False,
        turn_model: TurnModelRunner | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics or BridgeMetrics()
        self._apologize = apologize
        self.recorder = recorder
        self._transfer = transfer
        self._hang_up_call = hang_up
        self.tools = tools
        """The form's tools, when the model fills the lead by function calls."""
        self._greet = greet
        self._tool_calls_pending = False
        self._confirmed: set[str] = set()
        """Lead fields whose current value the caller confirmed."""
        self._ending = False
        self.hangup = HangupPolicy(hangup_options(settings))
        self.loops = LoopDetector(
            LoopOptions(
                similarity=settings.loop_similarity,
                repeats=settings.loop_repeats,
                action=settings.loop_action,
                echo_similarity=settings.echo_similarity,
            )
        )
        self.socket = socket
        self._open_link = open_link
        self.stream = ms.TwilioStream(max_message_bytes=settings.max_media_message_bytes)
        self.gate: FrameGate = gate or settings.build_gate("gate")
        self.turns = TurnController(turn_options(settings))
        self._turn_model = turn_model
        self._predictions: set[asyncio.Task[None]] = set()
        self.transcript = CallTranscript(
            TranscriptOptions(merge_gap_ms=settings.transcript_merge_gap_ms)
        )
        """What the call record stores: turns in spoken order, cut where the caller barged in."""
        self.stats = CallStats()
        self._send_lock = asyncio.Lock()
        self._link: ModelLink | None = None
        self._model_task: asyncio.Task[None] | None = None
        self._stream_origin: float | None = None
        self._echo_guard_db = settings.echo_guard_db
        self.ended = asyncio.Event()

    async def send(self, *messages: str) -> None:
        """Send Twilio messages in order, never interleaved with another loop's."""
        async with self._send_lock:
            for message in messages:
                await self.socket.send_text(message)

    async def end(self, reason: str, code: int = 1000) -> None:
        """End the call from our side: the caller loop wakes up as the socket closes."""
        if not self.stats.end_reason:
            self.stats.end_reason = reason
        self.ended.set()
        with contextlib.suppress(Exception):
            await self.socket.close(code=code, reason=reason[:120])

    async def run(self) -> CallStats:
        """Handle the call until Twilio stops it, the socket closes, or the model fails."""
        try:
            await self._caller_loop()
        finally:
            if self._model_task is not None:
                self._model_task.cancel()
                await asyncio.gather(self._model_task, return_exceptions=True)
            if self._link is not None:
                await self._link.close()
            for prediction in list(self._predictions):
                prediction.cancel()
            await asyncio.gather(*self._predictions, return_exceptions=True)
            self.stats.frames_in = self.gate.frames_seen
            self.stats.frames_sent = self.gate.frames_sent
            self.stats.frames_withheld = self.gate.frames_withheld
            self.stats.frames_listened = self.gate.frames_listened
            self.stats.commits = self.turns.commits
            self.stats.barge_ins = len(self.turns.barge_ins)
            self.stats.barge_in_frames = [b.frame_index for b in self.turns.barge_ins]
            m = self.metrics
            m.frames_in.inc(self.stats.frames_in)
            m.frames_sent.inc(self.stats.frames_sent)
            m.frames_withheld.inc(self.stats.frames_withheld)
            m.frames_listened.inc(self.stats.frames_listened)
            m.barge_ins.inc(self.stats.barge_ins)
            m.calls.labels(reason=_reason_label(self.stats.end_reason)).inc()
            self.ended.set()
            if self.recorder is not None:
                await self.recorder.finished(
                    self.stats.end_reason or "closed",
                    self.stats.frames_in,
                    self.stats.frames_sent,
                    self.stats.frames_withheld,
                )
            log.info(
                "call ended: %s; frames in %d, sent %d, withheld %d, listened %d; "
                "commits %d, barge-ins %d",
                self.stats.end_reason or "closed",
                self.stats.frames_in,
                self.stats.frames_sent,
                self.stats.frames_withheld,
                self.stats.frames_listened,
                self.stats.commits,
                self.stats.barge_ins,
            )
        return self.stats

    async def _caller_loop(self) -> None:
        while not self.ended.is_set():
            try:
                text = await self.socket.receive_text()
                received_at = time.perf_counter()
            except Exception as exc:  # the socket closed or broke: the call is over
                if not self.stats.end_reason:
                    self.stats.end_reason = f"twilio socket closed ({type(exc).__name__})"
                return
            for event in self.stream.receive_text(text):
                if isinstance(event, ms.ProtocolViolation):
                    self.stats.protocol_errors += 1
                    self.metrics.protocol_errors.inc()
                    log.warning("twilio protocol: %s: %s", event.kind, event.detail)
                    if event.kind == "bad_media_format":
                        # Not 8 kHz mu-law: nothing we could send the model would be right.
                        await self.end(f"unsupported media format: {event.detail}", code=1003)
                        return
                elif isinstance(event, ms.Start):
                    await self._on_start(event.call_sid, event.stream_sid)
                elif isinstance(event, ms.Media):
                    await self._on_media(
                        event.payload, self._arrival(received_at, event.timestamp_ms)
                    )
                elif isinstance(event, ms.Mark):
                    self.turns.on_mark(event.name)
                elif isinstance(event, ms.Stop):
                    self.stats.end_reason = self.stats.end_reason or "caller hung up"
                    return

    async def _on_start(self, call_sid: str, stream_sid: str) -> None:
        self.stats.call_sid = call_sid
        self.stats.stream_sid = stream_sid
        call_sid_var.set(call_sid)
        log.info("stream %s started", stream_sid)
        if self.recorder is not None:
            await self.recorder.started(call_sid, stream_sid, self.stream.custom_parameters)
        try:
            self._link = await self._open_link(call_sid)
        except Exception as exc:
            log.error("cannot open the model connection: %s", exc)
            await self._say_sorry()
            await self.end(f"model connection failed at start: {exc}", code=1011)
            return
        self._model_task = asyncio.create_task(self._model_loop(self._link))
        if self._greet:
            # The agent speaks first: the instructions open with the form's greeting.
            self.turns.on_response_created()
            await self._link.create_response()

    def _arrival(self, received_at: float, timestamp_ms: int) -> float:
        """When this frame reached us if we had been waiting for it.

        Twilio stamps each frame with its time since the stream started. The earliest
        ``received - timestamp`` seen is the stream's start on our clock, so a frame's
        due time is that plus its timestamp. A server that falls behind reads frames late,
        and the delay then shows, which it would not if measured from the read itself.
        """
        offset = received_at - timestamp_ms / 1000.0
        if self._stream_origin is None or offset < self._stream_origin:
            self._stream_origin = offset
        return self._stream_origin + timestamp_ms / 1000.0

    async def _on_media(self, payload: bytes, received_at: float) -> None:
        for decision in self.gate.process_ulaw(payload):
            self.gate.start_boost_db = self._echo_guard_db if self.turns.agent_audible else 0.0
            barge_ins = len(self.turns.barge_ins)
            actions = self.turns.on_frame(decision)
            await self._execute(actions)
            if len(self.turns.barge_ins) > barge_ins:
                self.hangup.on_barge_in()
                cut = self.turns.barge_ins[-1]
                if cut.item_id is not None:
                    self.transcript.interrupted(cut.item_id, cut.heard_ms)
                    await self._store_transcript()
                if self.recorder is not None:
                    detail = {
                        "item_id": cut.item_id,
                        "heard_ms": cut.heard_ms,
                        "cancelled": cut.cancelled,
                    }
                    await self.recorder.event("barge_in", decision.t_ms, detail)
            if decision.audio.size and self._link is not None:
                self.metrics.frame_to_append.observe(time.perf_counter() - received_at)
            if self._link is not None:
                await self._check_ending(decision.t_ms, decision.state is not SILENCE)
            if self.ended.is_set():
                return

    async def _check_ending(self, t_ms: int, caller_speaking: bool) -> None:
        """Smart hang-up, silence and duration (see :mod:`callgate.conversation.hangup`)."""
        t = self.turns
        for action in self.hangup.on_frame(
            t_ms,
            caller_speaking=caller_speaking,
            agent_busy=t.response_active or t.agent_audible,
            unheard_ms=t.unheard_ms,
        ):
            if isinstance(action, PromptSilence):
                await self._prompt_silence()
            elif isinstance(action, HangUp):
                await self.hang_up(action.reason)

    async def _prompt_silence(self) -> None:
        link = self._link
        if link is None:
            return
        log.info("the caller is silent: asking whether they are still there")
        if self.recorder is not None:
            await self.recorder.event("silence_prompt", self._now_ms(), {})
        self.turns.on_response_created()
        prompt = getattr(link, "prompt_silence", None)
        if prompt is not None:
            await prompt()
        else:
            await link.add_text_item("system", SILENCE_INSTRUCTION)
            await link.create_response()

    async def hang_up(self, reason: str) -> None:
        """End the call from our side: Twilio hangs up the phone line, then the stream ends."""
        if self._ending:
            return
        self._ending = True
        self.stats.end_reason = self.stats.end_reason or reason
        log.info("hanging up: %s", reason)
        if self._hang_up_call is not None and self.stats.call_sid != "-":
            try:
                await self._hang_up_call(self.stats.call_sid)
                self.stats.hung_up = True
            except Exception as exc:
                log.error("Twilio hang-up failed (%s); closing the media stream", exc)
        await self.end(reason)

    async def _apply_agent(
        self,
        field_updates: dict[str, str],
        end_call: EndCall | None,
        source: str,
        confirmed: frozenset[str] = frozenset(),
    ) -> None:
        """Lead fields learned or confirmed, and end requests, whichever backend produced them.

        A new value is unconfirmed unless the same turn confirmed it (the form's rule).
        """
        for name in sorted(field_updates.keys() | (confirmed & self.stats.fields.keys())):
            value = field_updates.get(name, self.stats.fields.get(name, ""))
            self.stats.fields[name] = value
            if name in confirmed:
                self._confirmed.add(name)
            else:
                self._confirmed.discard(name)
            log.info(
                "field %s = %r%s (%s)", name, value, " confirmed" * (name in confirmed), source
            )
            if self.recorder is not None:
                await self.recorder.field(name, value, confirmed=name in self._confirmed)
        if end_call is not None:
            log.info("the agent asked to end the call: %s", end_call.reason)
            self.hangup.request_end(end_call.reason)

    async def _on_function_call(self, link: ModelLink, item: FunctionCallRequest) -> None:
        """Run one of the form's tools for the model and hand it the result."""
        if self.tools is None:
            log.warning("the model called %r but no tools are configured", item.name)
            return
        outcome = self.tools.call(item.name, item.arguments or "{}")
        if not outcome.ok:
            log.info("tool %s refused: %s", item.name, outcome.output)
        await self._apply_agent(
            outcome.field_updates, outcome.end_call, f"tool {item.name}", outcome.confirmed
        )
        send = getattr(link, "send_function_output", None)
        if send is not None:
            await send(item.call_id, outcome.output)
        # The model answers the tool's result in a new response, after this one is done;
        # once the call is ending there is nothing more to say.
        self._tool_calls_pending = True

    async def _execute(self, actions: list[Action]) -> None:
        link = self._link
        for action in actions:
            if isinstance(action, PlayAudio):
                await self.send(*self.stream.media(action.pcmu), self.stream.mark(action.mark))
            elif isinstance(action, ClearPlayback):
                await self.send(self.stream.clear())
            elif link is None:
                continue  # before the model connection exists nothing can be sent to it
            elif isinstance(action, AppendAudio):
                await link.append_audio(action.pcmu)
                self.stats.appends += 1
                if not action.padding:
                    self.transcript.caller_audio(self._now_ms(), len(action.pcmu) // 8)
            elif isinstance(action, CommitInput):
                await link.commit()
                self.transcript.caller_committed(self._now_ms())
            elif isinstance(action, CreateResponse):
                await link.create_response()
            elif isinstance(action, CancelResponse):
                await link.cancel_response()
            elif isinstance(action, TruncateItem):
                await link.truncate(action.item_id, action.content_index, action.audio_end_ms)
            elif isinstance(action, PredictTurnEnd):
                task = asyncio.create_task(self._predict_turn_end(action))
                self._predictions.add(task)
                task.add_done_callback(self._predictions.discard)

    async def _predict_turn_end(self, action: PredictTurnEnd) -> None:
        """Ask the end-of-turn model on its worker thread; the controller drops late answers."""
        runner = self._turn_model or shared_runner()
        try:
            # Asked on the worker thread just before the model runs: a request still queued
            # when the call ends, or when the turn has moved on, is skipped.
            p = await runner.predict(
                action.pcm16,
                lambda: not self.ended.is_set() and self.turns.prediction_wanted(action.request_id),
            )
        except Exception as exc:  # the silence timeout still ends the turn
            log.warning("end-of-turn model failed: %s", exc)
            return
        if p is not None and not self.ended.is_set():
            await self._execute(self.turns.on_turn_prediction(action.request_id, p))

    def _now_ms(self) -> int:
        return self.gate.frames_seen * self.settings.audio_frame_size_ms

    async def _store_transcript(self) -> None:
        if self.recorder is not None and (turns := self.transcript.changed()) is not None:
            await self.recorder.transcript(turns)

    async def _on_caller_text(self, item_id: str, text: str) -> None:
        echo = self.loops.caller_said(text, self._now_ms())
        if echo is not None:
            # The agent's own voice came back and was transcribed as the caller: drop it.
            log.warning("echo of the agent dropped: %r", text)
            if self.recorder is not None:
                await self.recorder.event("echo", echo.at_ms, asdict(echo))
            return
        self.stats.transcript.append(("caller", text))
        log.info("caller: %s", text)
        self.transcript.caller_text(item_id, text, self._now_ms())
        await self._store_transcript()

    async def _on_agent_text(self, link: ModelLink, item_id: str, transcript: str) -> None:
        text, interrupted = self._heard_text(item_id, transcript)
        if interrupted and (set_text := getattr(link, "set_history_text", None)) is not None:
            set_text(item_id, text)  # a replay after a reconnect holds what was heard
        self.stats.transcript.append(("agent", text))
        log.info("agent: %s%s", text, " (interrupted)" if interrupted else "")
        self.transcript.agent_text(item_id, transcript, self._now_ms())
        await self._store_transcript()
        loop = self.loops.agent_said(text, self._now_ms())
        if loop is None:
            return
        self.stats.loops += 1
        log.warning("agent loop (%d repeats), action %s", loop.count, loop.action)
        if self.recorder is not None:
            await self.recorder.event("loop", loop.at_ms, asdict(loop))
        if loop.action == "rephrase" and loop.instruction:
            await link.add_text_item("system", loop.instruction)
        elif loop.action == "end":
            await self.end("loop: the agent kept repeating itself")
        elif loop.action == "transfer":
            await self._transfer_call("loop")

    async def _transfer_call(self, why: str) -> None:
        """Hand the caller to a person at TRANSFER_NUMBER (Twilio <Dial>), then end our side."""
        number = self.settings.transfer_number
        if self._transfer is None or not number or self.stats.call_sid == "-":
            await self.end(f"{why}: no transfer possible (TRANSFER_NUMBER or Twilio credentials)")
            return
        try:
            await self._transfer(self.stats.call_sid, number)
        except Exception as exc:
            log.error("transfer to %s failed: %s", number, exc)
            await self.end(f"{why}: transfer to {number} failed")
            return
        await self.end(f"{why}: transferred to {number}")

    def _heard_text(self, item_id: str, text: str) -> tuple[str, bool]:
        """The agent's words as the caller heard them: cut where a barge-in stopped them."""
        for cut in self.turns.barge_ins:
            if cut.item_id == item_id and cut.audio_ms:
                return cut_text(text, cut.heard_ms, cut.audio_ms), True
        return text, False

    async def _say_sorry(self) -> None:
        """Have Twilio apologise and hang up, when there are credentials to ask it with."""
        if self._apologize is None or self.stats.call_sid == "-":
            return
        try:
            await self._apologize(self.stats.call_sid)
            self.stats.apologized = True
        except Exception as exc:
            log.error("could not play the apology: %s", exc)

    async def _model_loop(self, link: ModelLink) -> None:
        async for event in link.events():
            if isinstance(event, LinkReconnected):
                self.stats.model_reconnects += 1
                self.metrics.model_reconnects.inc()
                if self.recorder is not None:
                    await self.recorder.event(
                        "reconnect", self.gate.frames_seen * 20, {"attempt": event.attempt}
                    )
                log.warning("model connection restored (attempt %d)", event.attempt)
                continue
            if isinstance(event, LinkFailed):
                log.error("model connection lost for good: %s", event.reason)
                await self._say_sorry()
                await self.end(f"model connection lost: {event.reason}", code=1011)
                return
            if isinstance(event, AgentTurn):
                await self._apply_agent(
                    event.field_updates, event.end_call, "agent", event.confirmed
                )
                continue
            kind = getattr(event, "type", "")
            if kind == "response.created":
                self.turns.on_response_created()
            elif kind == "response.output_audio.delta":
                pcmu = base64.b64decode(event.delta)
                queued_ms = self.turns.unheard_ms
                actions = self.turns.on_agent_audio(event.item_id, event.content_index, pcmu)
                if played := sum(len(a.pcmu) for a in actions if isinstance(a, PlayAudio)):
                    self.transcript.agent_audio(
                        event.item_id, played // 8, self._now_ms(), queued_ms
                    )
                await self._execute(actions)
            elif kind == "response.done":
                self.turns.on_response_done()
                await self._store_transcript()  # the agent's audio length is final
                tools_ran, self._tool_calls_pending = self._tool_calls_pending, False
                if tools_ran and not self._ending and self.hangup.pending_reason is None:
                    self.turns.on_response_created()
                    await link.create_response()
            elif (request := function_call_request(event)) is not None:
                await self._on_function_call(link, request)
            elif kind == "input_audio_buffer.committed":
                self.transcript.caller_item(event.item_id, self._now_ms())
            elif kind == "conversation.item.input_audio_transcription.completed":
                await self._on_caller_text(event.item_id, event.transcript)
            elif kind == "response.output_audio_transcript.done":
                await self._on_agent_text(link, event.item_id, event.transcript)
            elif kind == "error":
                error = getattr(event, "error", event)
                if getattr(error, "code", "") == "response_cancel_not_active":
                    # A barge-in raced the end of the response; nothing was lost.
                    log.debug("cancel after the response had finished")
                else:
                    log.warning("model error: %s", error)
