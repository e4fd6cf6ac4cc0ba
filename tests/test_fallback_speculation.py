"""Speculative transcription in the fallback pipeline: reuse, redo, cancel, one at a time.

The link starts transcribing when appends pause for ``speculate_after_ms`` and, on the
commit, answers from that result only if nothing changed since. Stand-in engines from
test_fallback_pipeline.py; the pause is 10 ms and every wait is far longer, so the order
of events is fixed by the event loop, not by the machine's speed.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from callgate.conversation.agents.base import AgentReply
from callgate.fallback.pipeline import AgentTurn, PipelineEvent, PipelineLink
from tests.test_fallback_pipeline import (
    ULAW_SPEECH,
    ScriptedStt,
    ScriptedTts,
    agent,
    drain,
    of_type,
    synchronous,
)

PAUSE_MS = 10
LONGER = 0.1  # seconds: well past the pause


def link_with(stt: ScriptedStt, the_agent: object | None = None) -> PipelineLink:
    return PipelineLink(
        the_agent or agent(),  # type: ignore[arg-type]
        stt,
        ScriptedTts(),
        greet=False,
        speculate_after_ms=PAUSE_MS,
    )


def caller_text(events: list[PipelineEvent | AgentTurn]) -> list[str]:
    kind = "conversation.item.input_audio_transcription.completed"
    return [e.transcript for e in of_type(events, kind)]


@synchronous
async def test_a_pause_starts_the_transcription_and_the_commit_reuses_it() -> None:
    stt = ScriptedStt({8000: "My name is Dana Cohen."})
    link = link_with(stt)
    await link.append_audio(ULAW_SPEECH)
    await asyncio.sleep(LONGER)  # the end-of-turn wait: the speculation runs and finishes
    assert stt.finished == 1
    await link.commit()
    await link.create_response()
    events = await drain(link)
    assert stt.heard_samples == [8000]  # transcribed once, before the commit
    assert caller_text(events) == ["My name is Dana Cohen."]
    assert link.stats.speculations == link.stats.speculations_used == 1
    assert link.stats.timings[0].speculative
    await link.close()


@synchronous
async def test_an_early_commit_waits_for_the_speculation_under_way() -> None:
    stt = ScriptedStt({8000: "My name is Dana Cohen."})
    stt.hold.clear()
    link = link_with(stt)
    await link.append_audio(ULAW_SPEECH)
    await asyncio.sleep(LONGER)
    await link.commit()  # before the transcription finished
    await link.create_response()
    await asyncio.sleep(LONGER)
    stt.hold.set()
    events = await drain(link)
    assert stt.heard_samples == [8000]
    assert caller_text(events) == ["My name is Dana Cohen."]
    await link.close()


@synchronous
async def test_audio_after_the_speculation_makes_the_commit_transcribe_again() -> None:
    stt = ScriptedStt({8000: "My name is", 12000: "My name is Dana Cohen."})
    link = link_with(stt)
    await link.append_audio(ULAW_SPEECH)
    await asyncio.sleep(LONGER)  # a pause mid-sentence: speculation on the first part
    await link.append_audio(ULAW_SPEECH[:4000])  # the caller goes on
    await link.commit()  # committed at once: no pause for a second speculation
    await link.create_response()
    events = await drain(link)
    assert stt.heard_samples == [8000, 12000]
    assert caller_text(events) == ["My name is Dana Cohen."]  # not the stale "My name is"
    assert link.stats.speculations == 1
    assert link.stats.speculations_used == 0
    assert not link.stats.timings[0].speculative
    await link.close()


@synchronous
async def test_a_later_pause_speculates_again_on_all_the_audio() -> None:
    stt = ScriptedStt({8000: "My name is", 12000: "My name is Dana Cohen."})
    link = link_with(stt)
    await link.append_audio(ULAW_SPEECH)
    await asyncio.sleep(LONGER)
    await link.append_audio(ULAW_SPEECH[:4000])
    await asyncio.sleep(LONGER)
    await link.commit()
    await link.create_response()
    events = await drain(link)
    assert stt.heard_samples == [8000, 12000]
    assert caller_text(events) == ["My name is Dana Cohen."]
    assert (link.stats.speculations, link.stats.speculations_used) == (2, 1)
    await link.close()


@synchronous
async def test_a_stale_speculation_runs_out_beside_one_newer_then_the_newest_waits() -> None:
    stt = ScriptedStt({8000: "My", 12000: "My name is", 16000: "My name is Dana Cohen."})
    stt.hold.clear()
    link = link_with(stt)
    await link.append_audio(ULAW_SPEECH)
    await asyncio.sleep(LONGER)  # pause 1: speculation on 8000 samples
    await link.append_audio(ULAW_SPEECH[:4000])
    await asyncio.sleep(LONGER)  # pause 2: the first is stale and runs out beside a new one
    assert stt.heard_samples == [8000, 12000]
    await link.append_audio(ULAW_SPEECH[:4000])
    await asyncio.sleep(LONGER)  # pause 3: two are running already, so this one waits
    assert stt.heard_samples == [8000, 12000]
    stt.hold.set()
    await asyncio.sleep(LONGER)  # the current one finished: the newest audio is speculated
    assert stt.heard_samples == [8000, 12000, 16000]
    await link.commit()
    await link.create_response()
    events = await drain(link)
    assert stt.heard_samples == [8000, 12000, 16000]
    assert caller_text(events) == ["My name is Dana Cohen."]
    assert (link.stats.speculations, link.stats.speculations_used) == (3, 1)
    await link.close()


@synchronous
async def test_a_changed_prompt_makes_the_commit_transcribe_again() -> None:
    class Prompted:
        """An agent whose STT prompt changes between the speculation and the commit."""

        prompt = "Name:"

        def stt_prompt(self) -> str | None:
            return self.prompt

        async def start(self) -> AgentReply:
            return AgentReply("Hello.", "en")

        async def on_caller_turn(self, text: str) -> AgentReply:
            return AgentReply("Thanks.", "en")

    stt = ScriptedStt(["stale", "fresh"])
    the_agent = Prompted()
    link = link_with(stt, the_agent)
    await link.append_audio(ULAW_SPEECH)
    await asyncio.sleep(LONGER)
    the_agent.prompt = "My number is 212-555-0100."
    await link.commit()
    await link.create_response()
    events = await drain(link)
    assert stt.prompts == ["Name:", "My number is 212-555-0100."]
    assert caller_text(events) == ["fresh"]
    await link.close()


@synchronous
async def test_a_barge_in_during_a_reused_transcription_keeps_the_audio() -> None:
    stt = ScriptedStt({8000: "never heard", 12000: "I need a quote for a new roof."})
    stt.hold.clear()
    link = link_with(stt)
    await link.append_audio(ULAW_SPEECH)
    await asyncio.sleep(LONGER)
    await link.commit()
    await link.create_response()
    await asyncio.sleep(LONGER)
    await link.cancel_response()  # the caller went on before the transcript was ready
    stt.hold.set()
    first = await drain(link)
    assert caller_text(first) == []
    await link.append_audio(ULAW_SPEECH[:4000])
    await link.commit()
    await link.create_response()
    events = await drain(link)
    assert stt.heard_samples[-1] == 12000  # the cut fragment was heard with the next words
    assert caller_text(events) == ["I need a quote for a new roof."]
    assert link.stats.cancelled == 1
    await link.close()


@synchronous
async def test_close_during_a_speculation_ends_cleanly() -> None:
    stt = ScriptedStt({8000: "hello"})
    stt.hold.clear()
    link = link_with(stt)
    await link.append_audio(ULAW_SPEECH)
    await asyncio.sleep(LONGER)
    await link.close()
    await asyncio.sleep(LONGER)
    assert stt.finished == 0  # cancelled, not run to its end
    assert [e async for e in link.events()] == []


@synchronous
async def test_an_unused_failed_speculation_is_not_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stt = ScriptedStt({})
    stt.fail = True
    link = link_with(stt)
    await link.append_audio(ULAW_SPEECH)
    await asyncio.sleep(LONGER)  # fails while the caller is silent
    stt.fail = False
    stt.texts = {12000: "My name is Dana Cohen."}
    await link.append_audio(ULAW_SPEECH[:4000])
    await link.commit()
    await link.create_response()
    with caplog.at_level(logging.ERROR):
        events = await drain(link)
    assert caller_text(events) == ["My name is Dana Cohen."]
    assert "never retrieved" not in caplog.text
    assert not [e for e in events if isinstance(e, AgentTurn) and e.end_call is not None]
    await link.close()


@synchronous
async def test_a_used_failed_speculation_apologises() -> None:
    stt = ScriptedStt({})
    stt.fail = True
    tts = ScriptedTts()
    link = PipelineLink(agent(), stt, tts, greet=False, speculate_after_ms=PAUSE_MS)
    await link.append_audio(ULAW_SPEECH)
    await asyncio.sleep(LONGER)
    await link.commit()
    await link.create_response()
    await drain(link)
    assert stt.heard_samples == [8000]
    assert "sorry" in tts.said[0][0].lower()
    await link.close()


@synchronous
async def test_no_speculation_when_turned_off_or_too_short() -> None:
    stt = ScriptedStt({8000: "hello"})
    off = PipelineLink(agent(), stt, ScriptedTts(), greet=False, speculate_after_ms=0)
    await off.append_audio(ULAW_SPEECH)
    short = link_with(stt)
    await short.append_audio(b"\x10" * 400)  # 50 ms: a click
    await asyncio.sleep(LONGER)
    assert stt.heard_samples == []
    assert off.stats.speculations == short.stats.speculations == 0
    await off.close()
    await short.close()
    with pytest.raises(ValueError, match="speculate_after_ms"):
        PipelineLink(agent(), stt, ScriptedTts(), speculate_after_ms=-1)


@synchronous
async def test_the_form_agent_prompts_the_stt_for_the_field_it_asked() -> None:
    stt = ScriptedStt(["My name is Dana Cohen.", "It's 212 555 0198."])
    link = link_with(stt)
    for _ in range(2):
        await link.append_audio(ULAW_SPEECH)
        await link.commit()
        await link.create_response()
        await drain(link)
    assert stt.prompts[0] is None  # asked for the name: no prompt
    assert "212-555-0100" in (stt.prompts[1] or "")
    assert len(link.stats.timings) == 2
    await link.close()


@synchronous
async def test_no_speculation_while_the_stt_is_busy() -> None:
    stt = ScriptedStt({8000: "My name is Dana Cohen."})
    stt.busy = True  # type: ignore[attr-defined]  # every worker taken by other calls
    link = link_with(stt)
    await link.append_audio(ULAW_SPEECH)
    await asyncio.sleep(LONGER)
    assert stt.heard_samples == []
    assert link.stats.speculations == 0
    await link.commit()
    await link.create_response()
    events = await drain(link)
    assert caller_text(events) == ["My name is Dana Cohen."]  # transcribed after the commit
    assert not link.stats.timings[0].speculative
    await link.close()
