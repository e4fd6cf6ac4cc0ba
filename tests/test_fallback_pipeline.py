"""The fallback pipeline's protocol, with stand-in speech engines (fast and exact).

The real engines (faster-whisper, Piper) run in test_fallback_e2e.py through the server;
here the point is the order of events, sentence-by-sentence speech, cancellation and
the carry-over of audio that was cut before it was transcribed.
"""

from __future__ import annotations

import asyncio
import base64
import functools
from collections.abc import Callable, Coroutine
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from callgate.conversation.agents.base import AgentReply, EndCall
from callgate.conversation.agents.local import LocalFormAgent
from callgate.conversation.form import load_form
from callgate.fallback.pipeline import AgentTurn, PipelineEvent, PipelineLink


def synchronous(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


ULAW_SPEECH = b"\x10" * 8000  # one second of loud mu-law


class ScriptedStt:
    """Returns queued texts; can be held to test cancellation mid-transcription."""

    name = "scripted"
    languages: frozenset[str] | None = None

    def __init__(self, texts: list[str] | dict[int, str]) -> None:
        self.texts = texts
        """A list: returned in order; a dict: the text for an utterance of that many samples."""
        self.heard_samples: list[int] = []
        self.prompts: list[str | None] = []
        self.finished = 0
        self.hold = asyncio.Event()
        self.hold.set()
        self.fail = False

    async def transcribe(
        self, pcm16: npt.NDArray[np.int16], language: str | None = None, prompt: str | None = None
    ) -> str:
        self.heard_samples.append(pcm16.size)
        self.prompts.append(prompt)
        await self.hold.wait()
        self.finished += 1
        if self.fail:
            raise RuntimeError("stt backend down")
        if isinstance(self.texts, dict):
            return self.texts.get(pcm16.size, "")
        return self.texts.pop(0) if self.texts else ""


class ScriptedTts:
    """10 ms of audio per character; can be slowed to cancel mid-reply."""

    name = "scripted"
    languages: frozenset[str] | None = None

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.said: list[tuple[str, str]] = []

    async def synthesize(self, text: str, language: str = "en") -> bytes:
        await asyncio.sleep(self.delay_s)
        self.said.append((text, language))
        return b"\x7f" * (80 * len(text))


async def drain(link: PipelineLink, until_done: int = 1) -> list[PipelineEvent | AgentTurn]:
    events: list[PipelineEvent | AgentTurn] = []
    done = 0
    async for event in link.events():
        events.append(event)
        if isinstance(event, PipelineEvent) and event.type == "response.done":
            done += 1
            if done == until_done:
                break
    return events


def kinds(events: list[PipelineEvent | AgentTurn]) -> list[str]:
    return [e.type if isinstance(e, PipelineEvent) else "agent" for e in events]


def of_type(events: list[PipelineEvent | AgentTurn], kind: str) -> list[PipelineEvent]:
    return [e for e in events if isinstance(e, PipelineEvent) and e.type == kind]


def agent() -> LocalFormAgent:
    return LocalFormAgent(load_form(), language="en")


@synchronous
async def test_the_greeting_is_spoken_sentence_by_sentence() -> None:
    tts = ScriptedTts()
    link = PipelineLink(agent(), ScriptedStt([]), tts)
    await link.open()
    events = await drain(link)
    assert kinds(events)[:2] == ["response.created", "agent"]
    deltas = [e for e in events if isinstance(e, PipelineEvent) and e.type.endswith("audio.delta")]
    assert len(deltas) == len(tts.said) >= 2  # greeting sentences and the first question
    assert {d.item_id for d in deltas} == {deltas[0].item_id}
    done = next(
        e for e in events if isinstance(e, PipelineEvent) and e.type.endswith("transcript.done")
    )
    assert done.transcript == " ".join(text for text, _ in tts.said)
    assert kinds(events)[-1] == "response.done"
    await link.close()


@synchronous
async def test_a_turn_is_transcribed_answered_and_its_fields_reported() -> None:
    stt = ScriptedStt(["My name is Dana Cohen."])
    link = PipelineLink(agent(), stt, ScriptedTts(), greet=False, speculate_after_ms=0)
    await link.append_audio(ULAW_SPEECH)
    await link.commit()
    await link.create_response()
    events = await drain(link)
    caller = [
        e for e in events if isinstance(e, PipelineEvent) and e.type.startswith("conversation.item")
    ]
    assert [c.transcript for c in caller] == ["My name is Dana Cohen."]
    turns = [e for e in events if isinstance(e, AgentTurn)]
    assert turns[0].field_updates == {"full_name": "Dana Cohen"}
    assert stt.heard_samples == [8000]
    assert link.stats.timings[0].first_audio_s >= link.stats.timings[0].stt_s > 0
    await link.close()


@synchronous
async def test_a_barge_in_keeps_only_the_sentences_already_queued() -> None:
    tts = ScriptedTts(delay_s=0.05)
    link = PipelineLink(agent(), ScriptedStt([]), tts)
    await link.open()
    seen: list[PipelineEvent | AgentTurn] = []
    async for event in link.events():
        seen.append(event)
        if isinstance(event, PipelineEvent) and event.type.endswith("audio.delta"):
            break
    await link.cancel_response()
    seen += await drain(link)
    done = [e for e in seen if isinstance(e, PipelineEvent) and e.type.endswith("transcript.done")]
    assert len(done) == 1
    assert done[0].transcript == tts.said[0][0]  # only the first sentence was spoken
    assert link.stats.cancelled == 1
    await link.close()


@synchronous
async def test_audio_cut_before_transcription_is_heard_with_the_next_words() -> None:
    stt = ScriptedStt(["I would like a quote for a new roof."])
    stt.hold.clear()
    link = PipelineLink(agent(), stt, ScriptedTts(), greet=False)
    await link.append_audio(ULAW_SPEECH)
    await link.commit()
    await link.create_response()
    await asyncio.sleep(0.01)
    await link.cancel_response()  # the caller went on before the first words were transcribed
    stt.hold.set()
    await drain(link)
    await link.append_audio(ULAW_SPEECH[:4000])
    await link.commit()
    await link.create_response()
    await drain(link)
    assert stt.heard_samples == [8000, 12000]  # the second transcription got both fragments
    await link.close()


@synchronous
async def test_clicks_are_not_transcribed() -> None:
    stt = ScriptedStt(["never"])
    link = PipelineLink(agent(), stt, ScriptedTts(), greet=False)
    await link.append_audio(b"\x10" * 400)  # 50 ms
    await link.commit()
    await link.create_response()
    events = await drain(link)
    assert kinds(events) == ["response.created", "response.done"]
    assert stt.heard_samples == []
    assert link.stats.empty_utterances == 1
    await link.close()


@synchronous
async def test_a_failing_engine_apologises_and_asks_to_end() -> None:
    stt = ScriptedStt([])
    stt.fail = True
    tts = ScriptedTts()
    link = PipelineLink(agent(), stt, tts, greet=False)
    await link.append_audio(ULAW_SPEECH)
    await link.commit()
    await link.create_response()
    events = await drain(link)
    turns = [e for e in events if isinstance(e, AgentTurn)]
    assert turns == [AgentTurn({}, EndCall("agent_error"), "en")]
    assert tts.said
    assert "sorry" in tts.said[0][0].lower()
    await link.close()


@synchronous
async def test_the_silence_prompt_follows_the_callers_language() -> None:
    tts = ScriptedTts()
    link = PipelineLink(agent(), ScriptedStt([]), tts, greet=False)
    link.language = "he"
    await link.prompt_silence()
    await drain(link)
    assert tts.said[0][1] == "he"
    await link.close()


@pytest.mark.parametrize("reply_language", ["en", "he"])
@synchronous
async def test_replies_are_spoken_in_the_agents_language(reply_language: str) -> None:
    class OneLiner:
        async def start(self) -> AgentReply:
            return AgentReply("Hello there.", reply_language)

        async def on_caller_turn(self, text: str) -> AgentReply:
            return AgentReply("Ok.", reply_language)

        def instruct(self, text: str) -> None:
            pass

    tts = ScriptedTts()
    link = PipelineLink(OneLiner(), ScriptedStt([]), tts)
    await link.open()
    events = await drain(link)
    assert [lang for _, lang in tts.said] == [reply_language]
    assert base64.b64decode(
        next(e.delta for e in events if isinstance(e, PipelineEvent) and e.delta)
    )
    await link.close()
