"""Whole conversations on the Realtime path, through the real server.

A caller who takes turns (Twilio's Media Streams side), the real callgate app under
uvicorn, and the local Realtime peer playing a scripted model that fills the lead form
with the ``save_field`` / ``end_call`` tools. The caller's audio is synthetic speech;
the peer's transcriber supplies what the caller "said", one scripted line per committed
turn. Twilio's REST hang-up is a fake that records the call it was asked to end.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np
import numpy.typing as npt

from callgate.conversation.form import load_form
from callgate.peers.realtime_records import (
    CallFunction,
    ConnectionRecord,
    PeerOptions,
    Say,
    ScriptTurn,
    scripted_responder,
)
from callgate.peers.realtime_server import RealtimePeer
from callgate.peers.realtime_validation import tone
from callgate.peers.twilio_caller import (
    CallerTurns,
    CallResult,
    _Player,
    place_call,
)
from callgate.server.app import create_app
from callgate.server.call import CallStats
from tests.bridge_harness import running_app
from tests.conftest import to_pcm, voiced, white
from tests.test_bridge import bridge_settings, ws_url

ROOM_DBFS = -58
AUTH = {"Authorization": "Bearer test-token"}
FORM = load_form(None)


def said(text: str, seconds: float = 0.6, hz: float = 440.0) -> Say:
    """An agent line with ``seconds`` of audio (a tone: only its length matters here)."""
    return Say(text, tone(seconds, freq_hz=hz))


def utterance(seed: int, seconds: float = 0.6, dbfs: float = -22) -> npt.NDArray[np.int16]:
    """One burst of speech-like sound, with the room under it."""
    rng = np.random.default_rng(seed)
    return to_pcm(
        voiced(seconds, dbfs, rng, pitch_hz=150 + 10 * (seed % 5)) + white(seconds, ROOM_DBFS, rng)
    )


def room() -> npt.NDArray[np.int16]:
    return to_pcm(white(1.0, ROOM_DBFS, np.random.default_rng(99)))


@dataclass
class TimedCaller(CallerTurns):
    """:class:`CallerTurns` with one gap per utterance; a negative gap starts that many ms
    before the agent's queued audio ends, so the caller talks over the agent. The peer
    sends audio faster than real time, so the end is known once no audio has arrived for
    ``settle_ms``. Only the first utterance starts after ``first_wait_ms`` of agent
    silence; the others wait for the agent's answer (up to ``answer_wait_ms``)."""

    gaps: Sequence[float] = ()
    answer_wait_ms: float = 6000.0
    settle_ms: float = 200.0

    def start_rule(self, k: int, player: _Player, idle_since: float) -> Callable[[float], bool]:
        gap = self.gaps[k] if k < len(self.gaps) else self.gap_ms
        wait = self.first_wait_ms if k == 0 else self.answer_wait_ms
        heard_agent = player.end_ms > idle_since
        end_ms, settled_at = player.end_ms, -1.0

        def ready(now: float) -> bool:
            nonlocal heard_agent, end_ms, settled_at
            if settled_at < 0 or player.end_ms != end_ms:
                end_ms, settled_at = player.end_ms, now
            settled = gap >= 0 or now - settled_at >= self.settle_ms
            heard_agent = heard_agent or player.end_ms > idle_since
            if heard_agent:
                return settled and now >= player.end_ms + gap
            return now - idle_since >= wait

        return ready


@dataclass
class Conversation:
    """What one call did, seen from every side."""

    result: CallResult
    record: ConnectionRecord
    stored: dict[str, Any]
    stats: CallStats
    hangups: list[str]
    hang_ms: list[float]
    """When ``hang_up`` was called, on the caller's clock (ms since its socket opened)."""
    transcribed: list[bytes] = field(default_factory=list)

    @property
    def outputs(self) -> list[dict[str, Any]]:
        """The ``function_call_output`` items the server sent the model, in order."""
        return [
            p["item"]
            for p in self.record.received("conversation.item.create")
            if p["item"]["type"] == "function_call_output"
        ]

    @property
    def fields(self) -> dict[str, str]:
        return {f["name"]: f["value"] for f in self.stored["fields"]}

    @property
    def turns(self) -> list[tuple[str, str]]:
        return [(t["speaker"], t["text"]) for t in self.stored["turns"]]


def converse(
    script: Sequence[ScriptTurn],
    lines: Sequence[str],
    caller: CallerTurns,
    **overrides: str,
) -> Conversation:
    """Run one call: ``lines[k]`` is the transcript of the caller's k-th committed turn."""
    transcribed: list[bytes] = []

    def transcriber(audio: bytes) -> str:
        transcribed.append(audio)
        k = len(transcribed) - 1
        return lines[k] if k < len(lines) else f"(unscripted turn {k + 1})"

    responder = scripted_responder(script)
    options = PeerOptions(transcriber=transcriber, responder=responder)

    async def scenario() -> Conversation:
        loop = asyncio.get_running_loop()
        hangups: list[str] = []
        hang_loop_ms: list[float] = []
        offsets: list[float] = []

        async def hang_up(call_sid: str) -> None:
            hangups.append(call_sid)
            hang_loop_ms.append(loop.time() * 1000.0)

        def on_message(now_ms: float, _message: object) -> None:
            if not offsets:  # the caller's clock: loop time minus its own ms
                offsets.append(loop.time() * 1000.0 - now_ms)

        async with RealtimePeer(options) as peer:
            settings = bridge_settings(
                peer.url,
                SILENCE_TIMEOUT_MS="0",
                END_OF_TURN_SILENCE_MS="400",
                **overrides,
            )
            app = create_app(settings, hang_up=hang_up)
            async with running_app(app) as base, httpx.AsyncClient(base_url=base) as client:
                result = await asyncio.wait_for(
                    place_call(ws_url(base), caller, on_message=on_message), timeout=40
                )
                await asyncio.sleep(0.3)
                stored = (await client.get(f"/calls/{result.call_sid}", headers=AUTH)).json()
            stats = app.state.registry.finished[0]
            return Conversation(
                result,
                peer.connections[0],
                stored,
                stats,
                hangups,
                [t - offsets[0] for t in hang_loop_ms],
                transcribed,
            )

    return asyncio.run(scenario())


def played_end_ms(result: CallResult) -> float:
    last = result.played[-1]
    return last.start_ms + len(last.ulaw) / 8


def assert_tool_rounds(c: Conversation, final_call_id: str | None) -> None:
    """Every function call got its output, and each output but the final end_call was
    followed by exactly one ``response.create`` (after the response that made the call)."""
    kinds = [
        (e.type, e.payload.get("item", {}).get("call_id"))
        for e in c.record.events
        if e.type in ("response.create", "conversation.item.create")
    ]
    calls = [i.call_id for i in c.record.items if i.type == "function_call"]
    assert [o["call_id"] for o in c.outputs] == calls
    for n, (kind, call_id) in enumerate(kinds):
        if kind != "conversation.item.create":
            continue
        after = [k for k, _ in kinds[n + 1 :]]
        if call_id == final_call_id:
            assert "response.create" not in after  # the call is ending: nothing more to say
        else:
            assert after[:1] == ["response.create"], (call_id, kinds)


# --- 1. English: the whole lead, confirmed, then a polite hang-up ---------------------

CLOSING_EN = FORM.closing["en"]


def english_script() -> list[ScriptTurn]:
    return [
        said(FORM.greeting["en"] + " May I have your full name?", 0.8),  # greeting
        CallFunction("save_field", {"name": "full_name", "value": "Dana Cohen"}, "call_name"),
        said("Thanks, Dana. What is the best phone number to reach you?"),
        CallFunction("save_field", {"name": "phone", "value": "212 555 2368"}, "call_phone"),
        said("I have two one two, five five five, two three six eight. Is that right?"),
        CallFunction(
            "save_field",
            {"name": "phone", "value": "212 555 2368", "confirmed": True},
            "call_confirm",
        ),
        said("Great. How can we help you?"),
        CallFunction("save_field", {"name": "reason", "value": "a new roof"}, "call_reason"),
        [
            said(CLOSING_EN, 1.5, hz=330.0),
            CallFunction("end_call", {"reason": "lead_complete"}, "call_end"),
        ],
    ]


ENGLISH_LINES = [
    "My name is Dana Cohen.",
    "It's 212 555 2368.",
    "Yes, correct.",
    "I need a new roof on my house.",
]


def lead_caller(seed: int, n: int = 4) -> CallerTurns:
    return CallerTurns(
        [utterance(seed + k) for k in range(n)],
        bed=room(),
        gap_ms=300,
        first_wait_ms=3000,
        hold_ms=6000,
    )


def test_a_whole_english_lead_is_saved_and_the_call_hangs_up_after_the_goodbye() -> None:
    c = converse(english_script(), ENGLISH_LINES, lead_caller(10), AGENT_GREETS_FIRST="true")
    sid = c.result.call_sid

    assert c.fields == {"full_name": "Dana Cohen", "phone": "+12125552368", "reason": "a new roof"}
    assert c.stats.fields == c.fields
    # The phone was read back and confirmed (the form asks for it); the others need not be.
    assert {f["name"]: f["confirmed"] for f in c.stored["fields"]} == {
        "full_name": False,
        "phone": True,
        "reason": False,
    }
    assert c.hangups == [sid]
    assert c.stats.hung_up
    assert c.stored["call"]["end_reason"] == "lead_complete"
    assert c.result.close_reason == "lead_complete"

    # The goodbye was heard in full before the line went down.
    assert c.result.clears_ms == []
    agent_audio_ms = sum(i.audio_ms for i in c.record.items if i.role == "assistant")
    assert c.result.agent_played_ms == agent_audio_ms  # every line, the goodbye too, in full
    end_of_goodbye = played_end_ms(c.result)
    assert c.result.marks_echoed[-1][1] >= end_of_goodbye - 1
    assert end_of_goodbye - 1 <= c.hang_ms[0] <= end_of_goodbye + 600

    # The transcript reads as the conversation went.
    assert c.turns == [
        ("agent", FORM.greeting["en"] + " May I have your full name?"),
        ("caller", ENGLISH_LINES[0]),
        ("agent", "Thanks, Dana. What is the best phone number to reach you?"),
        ("caller", ENGLISH_LINES[1]),
        ("agent", "I have two one two, five five five, two three six eight. Is that right?"),
        ("caller", ENGLISH_LINES[2]),
        ("agent", "Great. How can we help you?"),
        ("caller", ENGLISH_LINES[3]),
        ("agent", CLOSING_EN),
    ]

    # The model got a result for every call, and one new response after each tool round.
    outputs = {o["call_id"]: json.loads(o["output"]) for o in c.outputs}
    assert list(outputs) == [
        "call_name",
        "call_phone",
        "call_confirm",
        "call_reason",
        "call_end",
    ]
    assert all(o["ok"] for o in outputs.values())
    assert outputs["call_phone"]["value"] == "+12125552368"
    assert outputs["call_phone"]["needs_confirmation"] is True
    assert outputs["call_confirm"]["needs_confirmation"] is False
    assert outputs["call_reason"]["missing"] == []
    assert outputs["call_end"]["ending"] == "lead_complete"
    assert_tool_rounds(c, "call_end")
    # greeting + 4 caller turns + 4 tool rounds (the end_call round gets none)
    assert len(c.record.received("response.create")) == 9
    assert c.stats.commits == 4


# --- 2. Hebrew ------------------------------------------------------------------------

HEBREW_LINES = [
    "קוראים לי דנה כהן.",
    "המספר שלי אפס חמש אפס, שתיים שלוש ארבע, חמש שש שבע שמונה.",
    "כן, נכון.",
    "אני צריכה גג חדש.",
]
CLOSING_HE = FORM.closing["he"]


def hebrew_script() -> list[ScriptTurn]:
    return [
        said(FORM.greeting["he"] + " " + FORM.fields[0].prompt["he"], 0.8),
        CallFunction("save_field", {"name": "full_name", "value": "דנה כהן"}, "call_name"),
        said("תודה דנה. " + FORM.fields[1].prompt["he"]),
        CallFunction("save_field", {"name": "phone", "value": "050-234-5678"}, "call_phone"),
        said("רשמתי 050-234-5678. נכון?"),
        CallFunction(
            "save_field",
            {"name": "phone", "value": "050-234-5678", "confirmed": True},
            "call_confirm",
        ),
        said(FORM.fields[2].prompt["he"]),
        CallFunction("save_field", {"name": "reason", "value": "גג חדש"}, "call_reason"),
        [
            said(CLOSING_HE, 1.2, hz=330.0),
            CallFunction("end_call", {"reason": "lead_complete"}, "call_end"),
        ],
    ]


def test_a_whole_hebrew_lead_is_saved_and_normalized_for_israel() -> None:
    c = converse(
        hebrew_script(),
        HEBREW_LINES,
        lead_caller(20),
        AGENT_GREETS_FIRST="true",
        TRANSCRIPTION_LANGUAGE="he",
        DEFAULT_REGION="IL",
    )
    updates = c.record.received("session.update")
    assert updates
    instructions = updates[-1]["session"]["instructions"]
    assert FORM.greeting["he"] in instructions
    assert FORM.closing["he"] in instructions
    assert FORM.greeting["en"] not in instructions
    assert updates[-1]["session"]["audio"]["input"]["transcription"]["language"] == "he"

    assert c.fields == {"full_name": "דנה כהן", "phone": "+972502345678", "reason": "גג חדש"}
    assert c.hangups == [c.result.call_sid]
    assert c.stored["call"]["end_reason"] == "lead_complete"
    assert c.result.clears_ms == []
    assert played_end_ms(c.result) - 1 <= c.hang_ms[0]
    assert [t for t in c.turns if t[0] == "caller"] == [("caller", line) for line in HEBREW_LINES]
    assert c.turns[0] == ("agent", FORM.greeting["he"] + " " + FORM.fields[0].prompt["he"])
    assert c.turns[-1] == ("agent", CLOSING_HE)
    assert all(json.loads(o["output"])["ok"] for o in c.outputs)
    assert_tool_rounds(c, "call_end")


# --- 3. and 4. Refusals ---------------------------------------------------------------


def short_caller(seed: int, n: int = 1, hold_ms: float = 1500) -> CallerTurns:
    return CallerTurns(
        [utterance(seed + k) for k in range(n)],
        bed=room(),
        gap_ms=300,
        first_wait_ms=400,
        hold_ms=hold_ms,
    )


def test_an_early_lead_complete_is_refused_and_the_call_stays_up() -> None:
    script: list[ScriptTurn] = [
        [
            said("Thanks, we'll be in touch. Goodbye!"),
            CallFunction("end_call", {"reason": "lead_complete"}, "call_early"),
        ],
        said("Sorry, before you go: may I have your full name?"),
    ]
    c = converse(script, ["Hi, I need a plumber."], short_caller(30, hold_ms=2500))
    (output,) = c.outputs
    assert output["call_id"] == "call_early"
    result = json.loads(output["output"])
    assert result["ok"] is False
    assert set(result["missing"]) >= {"full_name", "phone", "reason"}
    assert c.hangups == []
    assert not c.stats.hung_up
    assert c.stored["call"]["end_reason"] == "caller hung up"
    # The refusal went back to the model, which answered it in a new response.
    assert_tool_rounds(c, None)
    assert len(c.record.received("response.create")) == 2
    assert c.turns[-1] == ("agent", "Sorry, before you go: may I have your full name?")


def test_an_invalid_phone_is_refused_and_not_stored() -> None:
    script: list[ScriptTurn] = [
        CallFunction("save_field", {"name": "phone", "value": "12"}, "call_bad_phone"),
        said("That number seems too short. Could you say it again?"),
    ]
    c = converse(script, ["My number is twelve."], short_caller(40))
    (output,) = c.outputs
    result = json.loads(output["output"])
    assert result["ok"] is False
    assert "phone" in result["error"]
    assert "phone" in result["missing"]
    assert "phone" not in c.fields
    assert c.stats.fields == {}
    assert c.hangups == []
    assert_tool_rounds(c, None)
    assert len(c.record.received("response.create")) == 2


# --- 5. A caller who talks over the goodbye -------------------------------------------

GOODBYE_1 = "No problem at all, thanks for calling and have a lovely day. Goodbye!"
GOODBYE_2 = "Of course, we will call you tomorrow. Goodbye!"


@functools.cache
def barge_into_goodbye() -> tuple[Conversation, list[float]]:
    """The caller says they must go, then talks over the agent's goodbye; run once and
    shared by the tests below. Returns the call and when each utterance started."""
    script: list[ScriptTurn] = [
        [
            said(GOODBYE_1, 2.5, hz=330.0),
            CallFunction("end_call", {"reason": "caller_goodbye"}, "call_bye_1"),
        ],
        [
            said(GOODBYE_2, 0.8, hz=550.0),
            CallFunction("end_call", {"reason": "caller_goodbye"}, "call_bye_2"),
        ],
    ]
    caller = TimedCaller(
        [utterance(50), utterance(51, 0.8, dbfs=-18)],
        bed=room(),
        first_wait_ms=400,
        hold_ms=5000,
        # The second utterance starts 1.8 s before the 2.5 s goodbye would have ended.
        gaps=[300, -1800],
    )
    c = converse(script, ["Sorry, I have to go.", "Wait, call me tomorrow!"], caller)
    return c, caller.started_ms


def test_barging_into_the_goodbye_cancels_the_hang_up_until_the_next_goodbye() -> None:
    c, started_ms = barge_into_goodbye()

    assert c.stats.barge_ins == 1
    assert len(c.result.clears_ms) == 1
    barge_at = started_ms[1]
    assert c.result.clears_ms[0] > barge_at
    # The first goodbye did not end the call: the hang-up came after the second one.
    assert c.hangups == [c.result.call_sid]
    assert c.hang_ms[0] > c.result.clears_ms[0] + 800 - 1
    assert c.hang_ms[0] >= played_end_ms(c.result) - 1
    assert c.stored["call"]["end_reason"] == "caller_goodbye"
    assert len(c.result.clears_ms) == 1  # the second goodbye played to its end
    kinds = [e["kind"] for e in c.stored["events"]]
    assert kinds == ["barge_in"]
    # Spoken order, whatever order the transcripts arrived in; the first goodbye is cut.
    turns = c.turns
    assert [speaker for speaker, _ in turns] == ["caller", "agent", "caller", "agent"]
    assert turns[0] == ("caller", "Sorry, I have to go.")
    assert turns[2:] == [("caller", "Wait, call me tomorrow!"), ("agent", GOODBYE_2)]
    assert [o["call_id"] for o in c.outputs] == ["call_bye_1", "call_bye_2"]
    assert len(c.record.received("conversation.item.truncate")) == 1
    # Two caller turns, two answers: no extra response for the first end_call's output.
    assert len(c.record.received("response.create")) == 2


def test_the_goodbye_talked_over_is_stored_as_cut_where_the_caller_spoke() -> None:
    # The model sends the goodbye's transcript before its audio has played, so the turn
    # is stored whole first; the barge-in that comes later must still cut it.
    c, _ = barge_into_goodbye()
    cut = c.stored["turns"][1]
    assert cut["speaker"] == "agent"
    assert cut["interrupted"] is True
    assert GOODBYE_1.startswith(cut["text"])
    assert 0 < len(cut["text"]) < len(GOODBYE_1)
    # Cut near where the caller spoke: the words of the 2.5 s goodbye heard until then.
    (truncate,) = c.record.received("conversation.item.truncate")
    heard_ms = truncate["audio_end_ms"]
    assert cut["end_ms"] - cut["start_ms"] == heard_ms
    share = len(cut["text"]) / len(GOODBYE_1)
    assert abs(share - heard_ms / 2500) < 0.2
    assert not c.stored["turns"][3]["interrupted"]


def test_after_a_cancelled_goodbye_the_next_answer_is_not_followed_by_another() -> None:
    script: list[ScriptTurn] = [
        [
            said(GOODBYE_1, 2.5, hz=330.0),
            CallFunction("end_call", {"reason": "caller_goodbye"}, "call_bye"),
        ],
        said("Sure, what is it?", 0.8, hz=550.0),
        said("An answer nobody asked for.", 0.5),
    ]
    caller = TimedCaller(
        [utterance(60), utterance(61, 0.8, dbfs=-18)],
        bed=room(),
        first_wait_ms=400,
        hold_ms=2500,
        gaps=[300, -1800],
    )
    c = converse(script, ["Sorry, I have to go.", "Wait, one more thing."], caller)
    assert c.stats.barge_ins == 1
    assert c.stats.commits == 2
    assert ("agent", "An answer nobody asked for.") not in c.turns
    assert len(c.record.received("response.create")) == 2
