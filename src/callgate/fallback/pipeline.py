"""The fallback path: speech-to-text, the agent, and text-to-speech behind the model seam.

With ``USE_REALTIME_API=false`` (or no API key: the embedded default) a call has no
Realtime model. :class:`PipelineLink` stands in for it. It speaks the same protocol as
:class:`~callgate.realtime.link.RealtimeLink`, the ``ModelLink`` seam of
:mod:`callgate.server.call`: caller audio is appended and committed, ``create_response``
answers, ``cancel_response`` stops an answer, and :meth:`events` yields events shaped like
the Realtime API's (``type``, ``item_id``, ``delta``, ``transcript``). So the same call
code runs both paths: the gate, turn-taking, barge-in, marks, transcripts, loop rules,
storage and smart hang-up are shared, not copied.

One response: transcribe the committed utterance, give the text to the agent, then speak
the reply sentence by sentence, so the first sentence plays while the next one is still
being synthesized. A barge-in cancels the response: synthesis stops, the rest of the
reply is dropped, and the assistant transcript holds only the sentences that were queued
(the call then cuts it to what was heard). Audio that was cancelled before it was
transcribed is kept and heard again with the caller's next words, so fragments of one
thought get one answer, as on the Realtime path.

Speculative transcription: the caller's turn is committed only after
``END_OF_TURN_SILENCE_MS`` of gate silence (or whenever the turn controller decides), but
the gate stops appending audio as soon as the caller stops talking. So once appends have
paused for ``speculate_after_ms``, the link starts transcribing what it has. On the commit
that result is used if no audio arrived since and the agent still expects the same thing
(the STT prompt); otherwise it is dropped and the committed audio is transcribed again.
That hides most of the STT time inside the end-of-turn wait, whatever the commit timing:
an early commit just waits for the speculation already under way. A stale speculation
cannot be stopped (it runs in a worker thread), so it runs out beside the new one, and a
call has at most two in flight: while a stale one still runs, a newer pause waits for
the current one to finish. None starts while the STT is ``busy`` (the local one: any
transcription of any call running or waiting): speculation uses idle time only, so with
many calls at once the pipeline falls back to transcribing after the commit instead of
taking cores from other calls' committed turns.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

from callgate.audio.codec import ulaw_to_pcm16
from callgate.conversation.agents.base import Agent, AgentReply, EndCall
from callgate.speech.stt import SpeechToText
from callgate.speech.tts import TextToSpeech, split_sentences

log = logging.getLogger("callgate.fallback")

SILENCE_PROMPTS = {
    "en": "Are you still there?",
    "he": "את או אתה עדיין על הקו?",
}
APOLOGIES = {
    "en": "Sorry, I'm having trouble right now. Please call again later.",
    "he": "סליחה, יש לי תקלה כרגע. אפשר להתקשר שוב מאוחר יותר.",
}
MIN_UTTERANCE_BYTES = 8 * 120
"""Utterances shorter than 120 ms are clicks, not words: not worth a transcription."""


@runtime_checkable
class PromptingAgent(Protocol):
    """An agent that tells the STT what it expects to hear next (e.g. a phone number)."""

    def stt_prompt(self) -> str | None:
        """Context text for the transcriber (Whisper's ``initial_prompt``), or None."""
        ...


@dataclass(frozen=True)
class PipelineEvent:
    """An event shaped like the Realtime API's server events the call dispatches on."""

    type: str
    item_id: str = ""
    content_index: int = 0
    delta: str = ""
    transcript: str = ""


@dataclass(frozen=True)
class AgentTurn:
    """The agent's reply to one turn: lead fields learned, and a request to end."""

    field_updates: dict[str, str]
    end_call: EndCall | None
    language: str
    confirmed: frozenset[str] = frozenset()


@dataclass
class ResponseTiming:
    """Where one response spent its time (seconds), for logs and the benchmark."""

    committed_at: float
    """``time.perf_counter()`` when the caller's turn was committed."""
    stt_s: float = 0.0
    """From the commit to the transcript (near 0 when a speculation had finished)."""
    speculative: bool = False
    """The transcript came from a speculation started before the commit."""
    agent_s: float = 0.0
    first_audio_s: float = 0.0
    """From the commit to the first reply audio handed to the call."""


@dataclass
class PipelineStats:
    """What the pipeline did in one call."""

    responses: int = 0
    cancelled: int = 0
    empty_utterances: int = 0
    speculations: int = 0
    """Speculative transcriptions started (used or not)."""
    speculations_used: int = 0
    """Commits answered from a speculation: no transcription after the commit."""
    timings: list[ResponseTiming] = field(default_factory=list)
    """One per answered caller turn, in order; read by the benchmark and the logs."""


@dataclass
class _Speculation:
    """A transcription started before the commit, and what it was started on."""

    audio: bytes
    prompt: str | None
    task: asyncio.Task[str]

    def fits(self, audio: bytes, prompt: str | None) -> bool:
        """Started on exactly this audio with this prompt: its text answers the turn."""
        return self.audio == audio and self.prompt == prompt


class PipelineLink:
    """One call's local model: implements the call's ``ModelLink`` protocol."""

    def __init__(
        self,
        agent: Agent,
        stt: SpeechToText,
        tts: TextToSpeech,
        *,
        call_sid: str = "-",
        stt_language: str | None = None,
        greet: bool = True,
        speculate_after_ms: int = 0,
    ) -> None:
        """``speculate_after_ms``: pause in appends that starts a speculative
        transcription (``Settings.early_stt_ms`` says why 150 ms with the local STT); 0, the
        default, turns speculation off (transcribe only after the commit)."""
        if speculate_after_ms < 0:
            raise ValueError("speculate_after_ms must be >= 0")
        self.agent = agent
        self.stt = stt
        self.tts = tts
        self.call_sid = call_sid
        self.stt_language = stt_language
        self.language = "en"
        self.stats = PipelineStats()
        self._greet = greet
        self._buffer = bytearray()
        self._committed = bytearray()
        self._carry = bytearray()
        self._queue: asyncio.Queue[PipelineEvent | AgentTurn | None] = asyncio.Queue()
        self._response: asyncio.Task[None] | None = None
        self._timing: ResponseTiming | None = None
        self._ids = itertools.count(1)
        self._closed = False
        self.speculate_after_ms = speculate_after_ms
        """Read at every append: set it to 0 to stop speculating (e.g. for an A/B run)."""
        self._timer: asyncio.TimerHandle | None = None
        self._speculation: _Speculation | None = None
        self._stale: set[asyncio.Task[str]] = set()

    # --- ModelLink ----------------------------------------------------------------------

    async def open(self) -> None:
        """Start the call: the agent's greeting is the first response."""
        if self._greet:
            self._start_response(self._greeting())

    async def append_audio(self, pcmu: bytes) -> None:
        self._buffer += pcmu
        self._arm_speculation()

    async def commit(self) -> None:
        self._committed += self._buffer
        self._buffer.clear()

    async def create_response(self) -> None:
        audio = bytes(self._carry + self._committed)
        self._carry.clear()
        self._committed.clear()
        speculation, self._speculation = self._speculation, None
        self._start_response(self._answer(audio, time.perf_counter(), speculation))

    async def cancel_response(self) -> None:
        task, self._response = self._response, None
        if task is not None and not task.done():
            task.cancel()
            self.stats.cancelled += 1
            await asyncio.gather(task, return_exceptions=True)

    async def truncate(self, item_id: str, content_index: int, audio_end_ms: int) -> None:
        """Nothing to do: a local agent keeps no audio; the call cuts the transcript."""
        log.debug("reply %s cut at %d ms", item_id, audio_end_ms)

    async def add_text_item(self, role: Literal["user", "assistant", "system"], text: str) -> None:
        """An instruction for the agent (the loop rule's rephrase); other roles are history
        the agents keep themselves."""
        if role == "system":
            self.agent.instruct(text)
        else:
            log.debug("%s text item not used on the fallback path: %s", role, text[:80])

    async def prompt_silence(self) -> None:
        """Ask the caller whether they are still there, in the call's language."""
        text = SILENCE_PROMPTS.get(self.language, SILENCE_PROMPTS["en"])
        self._start_response(self._speak_only(text))

    def events(self) -> AsyncIterator[PipelineEvent | AgentTurn]:
        return self._events()

    async def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        speculation, self._speculation = self._speculation, None
        if speculation is not None:
            speculation.task.cancel()
        for task in list(self._stale):
            task.cancel()
        await self.cancel_response()
        self._queue.put_nowait(None)

    # --- speculative transcription ------------------------------------------------------

    def _arm_speculation(self) -> None:
        """(Re)start the pause timer: every append postpones the speculation."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.speculate_after_ms > 0 and not self._closed:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(self.speculate_after_ms / 1000, self._speculate)

    def _speculate(self) -> None:
        """Appends have paused: transcribe everything the next commit would answer."""
        self._timer = None
        if self._closed:
            return
        audio = bytes(self._carry + self._committed + self._buffer)
        if len(audio) < MIN_UTTERANCE_BYTES:
            return
        prompt = self._stt_prompt()
        current = self._speculation
        if current is not None and current.fits(audio, prompt):
            return
        busy = bool(getattr(self.stt, "busy", False))
        running = current is not None and not current.task.done()
        if current is not None and running and (self._stale or busy):
            # Two of this call's run already, or the STT is busy: wait for this one.
            current.task.add_done_callback(self._speculate_again)
            return
        if busy:
            return  # idle time only: committed turns (of every call) come first
        if current is not None and running:
            self._set_aside(current.task)
        task = asyncio.ensure_future(self._transcribe(audio, prompt))
        task.add_done_callback(_retrieve)
        self._speculation = _Speculation(audio, prompt, task)
        self.stats.speculations += 1

    def _set_aside(self, task: asyncio.Task[str]) -> None:
        """Let a stale transcription run out (its thread cannot be stopped; it keeps its
        STT slot, so the process-wide STT_WORKERS limit still holds) without waiting."""
        self._stale.add(task)
        task.add_done_callback(self._stale.discard)

    def _speculate_again(self, _done: asyncio.Future[str]) -> None:
        """The speculation that a newer pause waited for finished: speculate on the newest
        audio if appends still pause (otherwise the armed timer does it later)."""
        if self._timer is None:
            self._speculate()

    def _stt_prompt(self) -> str | None:
        return self.agent.stt_prompt() if isinstance(self.agent, PromptingAgent) else None

    async def _transcribe(self, pcmu: bytes, prompt: str | None) -> str:
        return await self.stt.transcribe(ulaw_to_pcm16(pcmu), self.stt_language, prompt=prompt)

    # --- responses ----------------------------------------------------------------------

    async def _events(self) -> AsyncIterator[PipelineEvent | AgentTurn]:
        while (event := await self._queue.get()) is not None:
            yield event

    def _emit(self, event: PipelineEvent | AgentTurn) -> None:
        if not self._closed:
            self._queue.put_nowait(event)

    def _new_id(self, kind: str) -> str:
        return f"{kind}_{next(self._ids)}"

    def _start_response(self, work: AsyncIterator[str | AgentReply]) -> None:
        if self._response is not None and not self._response.done():
            self._response.cancel()  # a new turn supersedes an unfinished answer
        self._response = asyncio.create_task(self._run_response(work))

    async def _run_response(self, work: AsyncIterator[str | AgentReply]) -> None:
        """Drive one response: ``work`` yields the reply; this speaks it."""
        self.stats.responses += 1
        self._emit(PipelineEvent("response.created"))
        item_id = self._new_id("reply")
        spoken: list[str] = []
        try:
            async for reply in work:
                text = reply if isinstance(reply, str) else reply.say
                language = self.language if isinstance(reply, str) else reply.language
                await self._speak(item_id, text, language, spoken)
        except Exception as exc:  # (a cancellation is not an Exception: it passes through)
            log.error("fallback response failed: %s", exc)
            self._emit(AgentTurn({}, EndCall("agent_error"), self.language))
            with contextlib.suppress(Exception):
                apology = APOLOGIES.get(self.language, APOLOGIES["en"])
                await self._speak(item_id, apology, self.language, spoken)
        finally:
            if spoken:
                self._emit(
                    PipelineEvent(
                        "response.output_audio_transcript.done",
                        item_id=item_id,
                        transcript=" ".join(spoken),
                    )
                )
            self._emit(PipelineEvent("response.done"))

    async def _speak(self, item_id: str, text: str, language: str, spoken: list[str]) -> None:
        for sentence in split_sentences(text):
            pcmu = await self.tts.synthesize(sentence, language)
            spoken.append(sentence)
            timing, self._timing = self._timing, None
            if timing is not None:
                timing.first_audio_s = time.perf_counter() - timing.committed_at
            self._emit(
                PipelineEvent(
                    "response.output_audio.delta",
                    item_id=item_id,
                    delta=base64.b64encode(pcmu).decode("ascii"),
                )
            )

    async def _greeting(self) -> AsyncIterator[str | AgentReply]:
        reply = await self.agent.start()
        yield self._take(reply)

    async def _speak_only(self, text: str) -> AsyncIterator[str | AgentReply]:
        yield text

    async def _answer(
        self, pcmu: bytes, committed_at: float, speculation: _Speculation | None = None
    ) -> AsyncIterator[str | AgentReply]:
        timing = ResponseTiming(committed_at)
        if len(pcmu) < MIN_UTTERANCE_BYTES:
            self.stats.empty_utterances += 1
            return
        prompt = self._stt_prompt()
        try:
            if speculation is not None and speculation.fits(pcmu, prompt):
                timing.speculative = True
                self.stats.speculations_used += 1
                text = await speculation.task
            else:
                if speculation is not None and not speculation.task.done():
                    self._set_aside(speculation.task)  # runs out; its text is dropped
                text = await self._transcribe(pcmu, prompt)
        except asyncio.CancelledError:
            self._carry[:0] = pcmu  # the caller went on: hear this with their next words
            raise
        timing.stt_s = time.perf_counter() - committed_at
        if not text:
            self.stats.empty_utterances += 1
            return
        self._emit(
            PipelineEvent(
                "conversation.item.input_audio_transcription.completed",
                item_id=self._new_id("caller"),
                transcript=text,
            )
        )
        # Shielded: an agent step that saved fields must report them even if the caller
        # talks over its reply, or the lead and the agent's own state would disagree.
        step = asyncio.ensure_future(self.agent.on_caller_turn(text))
        try:
            reply = await asyncio.shield(step)
        except asyncio.CancelledError:
            step.add_done_callback(self._report_late)
            raise
        timing.agent_s = time.perf_counter() - committed_at - timing.stt_s
        self.stats.timings.append(timing)
        self._timing = timing
        yield self._take(reply)

    def _report_late(self, step: asyncio.Future[AgentReply]) -> None:
        if not step.cancelled() and step.exception() is None:
            reply = step.result()
            updates = dict(reply.field_updates)
            self._emit(AgentTurn(updates, reply.end_call, reply.language, reply.confirmed))

    def _take(self, reply: AgentReply) -> AgentReply:
        """Report what the reply changed before it is spoken; follow its language."""
        self.language = reply.language or self.language
        self._emit(
            AgentTurn(dict(reply.field_updates), reply.end_call, self.language, reply.confirmed)
        )
        return reply


def _retrieve(task: asyncio.Future[str]) -> None:
    """Mark a speculation's failure as seen: an unused one must not log "never retrieved"
    (a used one re-raises it in the response, which apologises)."""
    if not task.cancelled():
        task.exception()
