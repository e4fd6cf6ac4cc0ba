"""Response delay of the local fallback pipeline, through the real server, one call and N.

    python -m benchmarks.run_pipeline_benchmark [--calls 3] [--levels 1 2 4 6 8] [--out FILE]

The server is the real app (``create_app``) under uvicorn, in this process, on the
embedded default path (no OPENAI_API_KEY): the speech gate, faster-whisper tiny.en, the
local form agent and Piper TTS. The callers are Piper voices on a phone line in room noise
(``CallerTurns``: each answer starts once the agent has finished speaking), paced in real
time, so a call takes as long as it would on the phone.

For every caller utterance the response delay is the time from the end of the caller's
speech (utterance start + its length) to the first agent media message that arrives after
it, on the caller's clock. The server's side of each turn (``PipelineLink.stats.timings``:
STT, agent and first-sentence TTS from the commit) is matched to it, so the table shows
where the time goes; "end of speech → commit" is the gate's end-of-turn silence
(END_OF_TURN_SILENCE_MS) plus its detection lag. The links are the server's own: the app
gets ``open_link`` wrapping ``backends.pipeline_opener``, which keeps each link it opens.

Part 1 runs ``--calls`` calls one after another (a 6-answer lead form each). Part 2 runs N
calls at once (a 3-answer script, starts staggered over ``--stagger`` seconds) for each N
in ``--levels``, and stops after the level where the p50 delay is more than twice the
N=1 p50 or a call fails. The callers and the server share this process and the machine's
cores.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from benchmarks.report import command_line, utc_minute, write_section
from callgate.audio.codec import pcm16_to_float
from callgate.cli.conversation import piper_caller
from callgate.config import Settings, load_settings
from callgate.fallback.pipeline import PipelineLink
from callgate.peers.twilio_caller import CallerTurns, CallResult, place_call
from callgate.server import backends
from callgate.server.app import create_app
from callgate.server.call import ModelLink
from callgate.speech import warm_up
from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import db_to_amp
from tests.bridge_harness import running_app

FRAME_MS = 20
LEAD_LINES = (
    "My name is Dana Cohen.",
    "My number is two one two, five five five, two three six eight.",
    "Yes, that's right.",
    "I need a quote for a new roof.",
    "No, thank you.",
    "Tomorrow at ten in the morning.",
)
SHORT_LINES = LEAD_LINES[:3]


# --- server side: every PipelineLink the app opens, kept for its timings -------------------


LINKS: list[PipelineLink] = []


def recording_opener(
    settings: Settings, *, speculate: bool = True
) -> tuple[backends.LinkOpener, backends.SpeechEngines]:
    """The server's own pipeline opener (``backends.pipeline_opener``), passed to
    ``create_app`` as its ``open_link``; every link it opens is kept, so its
    ``stats.timings`` (STT, agent, first audio per answer) can be read after the call."""
    engines = backends.speech_engines(settings)
    opener = backends.pipeline_opener(settings, backends.call_form(settings), engines)

    async def open_link(settings: Settings, call_sid: str) -> ModelLink:
        link = await opener(settings, call_sid)
        if isinstance(link, PipelineLink):
            if not speculate:
                link.speculate_after_ms = 0  # transcribe after the commit only (A/B runs)
            LINKS.append(link)
        return link

    return open_link, engines


# --- caller side -----------------------------------------------------------------------------


def caller_voice(lines: Sequence[str]) -> list[npt.NDArray[np.int16]]:
    """The caller's answers: Piper speech, slower than the agent's, on a phone line."""
    return [telephone_channel(pcm16_to_float(piper_caller(line)) * 0.6, 8000) for line in lines]


def room_noise(seconds: float = 3.0, dbfs: float = -55.0) -> npt.NDArray[np.int16]:
    rng = np.random.default_rng(11)
    noise = rng.standard_normal(int(seconds * 8000)) * db_to_amp(dbfs)
    return telephone_channel(noise, 8000)


def fallback_settings() -> Settings:
    """The embedded default, as in tests/test_fallback_e2e.py."""
    values = {
        "OPENAI_API_KEY": "",
        "TWILIO_VALIDATE_SIGNATURES": "false",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tempfile.mkdtemp(prefix='callgate-')}/calls.db",
        "API_TOKEN": "bench-token",
        "TRANSCRIPTION_LANGUAGE": "en",
        "MIN_SPEECH_RMS": "600",
    }
    return load_settings(values, env_file=None)


@dataclass
class Turn:
    """One caller answer and the agent's reaction (ms on the caller's clock)."""

    end_ms: float
    delay_ms: float | None
    """End of speech → first agent media after it; None: no reply before the next answer."""
    overlap: bool
    """Agent media arrived while the caller was still speaking (an early commit)."""
    commit_ms: float | None = None
    stt_ms: float | None = None
    agent_ms: float | None = None
    tts_ms: float | None = None
    server_ms: float | None = None
    """Commit → first reply audio handed to the call (``first_audio_s``)."""
    speculative: bool = False
    """The transcript came from a transcription started before the commit."""


@dataclass
class CallOutcome:
    turns: list[Turn] = field(default_factory=list)
    error: str = ""


def _turns(
    result: CallResult,
    caller: CallerTurns,
    lengths_ms: Sequence[float],
    link: PipelineLink | None,
    perf_offset_ms: float,
) -> list[Turn]:
    media = [e.at_ms for e in result.events if e.kind == "media"]
    starts = caller.started_ms
    timings = list(link.stats.timings) if link else []
    turns: list[Turn] = []
    for k, start in enumerate(starts):
        end = start + lengths_ms[k]
        upper = starts[k + 1] if k + 1 < len(starts) else float("inf")
        after = [t for t in media if end < t < upper]
        overlap = any(start < t <= end for t in media)
        turn = Turn(end, after[0] - end if after else None, overlap)
        # The server's timing for this answer: the first commit after its end of speech.
        for timing in timings:
            commit = timing.committed_at * 1000 - perf_offset_ms
            if end <= commit < upper:
                turn.commit_ms = commit - end
                turn.stt_ms = 1000 * timing.stt_s
                turn.agent_ms = 1000 * timing.agent_s
                turn.server_ms = 1000 * timing.first_audio_s
                turn.speculative = timing.speculative
                if timing.first_audio_s:
                    turn.tts_ms = 1000 * (timing.first_audio_s - timing.stt_s - timing.agent_s)
                break
        turns.append(turn)
    return turns


def speech_end_ms(utterance: npt.NDArray[np.int16]) -> float:
    """Where the voice ends in a clip: the last 10 ms within 40 dB of its loudest 10 ms.

    Piper clips end in a few hundred ms of near-silence; the caller has stopped speaking
    there, so the delay is measured from the voice's end, not the clip's.
    """
    n = utterance.size // 80
    frames = utterance[: n * 80].astype(np.float64).reshape(n, 80)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (-40 / 20))
    return float(10 * (loud[-1] + 1)) if loud.size else 0.0


async def one_call(
    base: str, utterances: list[npt.NDArray[np.int16]], bed: npt.NDArray[np.int16], hold_ms: float
) -> CallOutcome:
    caller = CallerTurns(utterances, bed=bed, hold_ms=hold_ms)
    lengths = [speech_end_ms(u) for u in utterances]
    offsets: list[float] = []

    def on_message(at_ms: float, _message: object) -> None:
        if not offsets:  # the caller's clock (ms since the socket opened) vs perf_counter
            offsets.append(time.perf_counter() * 1000 - at_ms)

    try:
        result = await place_call(
            base.replace("http://", "ws://") + "/twilio/media",
            caller,
            custom_parameters={"From": "+12125550100"},
            on_message=on_message,
        )
    except Exception as exc:  # a failed call is a result of the benchmark, not a crash
        return CallOutcome(error=f"{type(exc).__name__}: {exc}")
    mine = [link for link in LINKS if link.call_sid == result.call_sid]
    link = mine[0] if mine else None
    outcome = CallOutcome(_turns(result, caller, lengths, link, offsets[0] if offsets else 0.0))
    if len(caller.started_ms) < len(utterances):
        outcome.error = f"only {len(caller.started_ms)} of {len(utterances)} answers were given"
    return outcome


# --- statistics and tables ---------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Level:
    calls: int
    turns: list[Turn]
    failures: list[str]
    wall_s: float

    @property
    def delays(self) -> list[float]:
        return [t.delay_ms for t in self.turns if t.delay_ms is not None]

    @property
    def missed(self) -> int:
        return sum(t.delay_ms is None for t in self.turns)

    @property
    def p50(self) -> float:
        return pct(self.delays, 0.5)


def _ms(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.0f}"


def breakdown_table(turns: list[Turn]) -> str:
    matched = [t for t in turns if t.commit_ms is not None and t.delay_ms is not None]
    rows = [
        "| stage (per answer, one call at a time) | p50 ms | p95 ms |",
        "|---|---|---|",
    ]

    def row(name: str, values: list[float]) -> None:
        rows.append(f"| {name} | {_ms(pct(values, 0.5))} | {_ms(pct(values, 0.95))} |")

    row("end of speech → commit (gate end-of-turn silence + detection)", _vals(matched, "commit"))
    row("commit → transcript (faster-whisper tiny.en, started at the pause)", _vals(matched, "stt"))
    row("transcript → reply text (local form agent)", _vals(matched, "agent"))
    row("reply text → first sentence audio (Piper)", _vals(matched, "tts"))
    transport = [
        t.delay_ms - t.commit_ms - t.server_ms
        for t in matched
        if t.delay_ms is not None and t.commit_ms is not None and t.server_ms is not None
    ]
    row("first audio handed to the call → first media at the caller", transport)
    row("**end of speech → first reply media (total)**", [t.delay_ms or 0.0 for t in matched])
    return "\n".join(rows)


def _vals(turns: list[Turn], name: str) -> list[float]:
    values = [getattr(t, f"{name}_ms") for t in turns]
    return [float(v) for v in values if v is not None]


def level_table(levels: list[Level], lines: int) -> str:
    rows = [
        f"| concurrent calls ({lines} answers each) | answers | no reply | agent spoke over "
        "caller | delay p50 ms | p95 ms | p50 vs N=1 | STT p50 ms | failed calls |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    base = levels[0].p50 if levels else float("nan")
    for lv in levels:
        stt = pct(_vals(lv.turns, "stt"), 0.5)
        rows.append(
            f"| {lv.calls} | {len(lv.turns)} | {lv.missed} | "
            f"{sum(t.overlap for t in lv.turns)} | {_ms(lv.p50)} | {_ms(pct(lv.delays, 0.95))} | "
            f"×{lv.p50 / base:.2f} | {_ms(stt)} | {len(lv.failures)} |"
        )
    return "\n".join(rows)


# --- the run -------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> tuple[Level, list[Level]]:
    bed = room_noise()
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} calls"),
        TimeElapsedColumn(),
    )
    with progress:
        voices = progress.add_task("caller voices (Piper)", total=1)
        lead = caller_voice(LEAD_LINES)
        short = lead[: len(SHORT_LINES)]
        progress.update(voices, completed=1)

        settings = fallback_settings()
        open_link, engines = recording_opener(settings, speculate=not args.no_speculation)
        await asyncio.to_thread(warm_up, engines.stt, engines.tts)  # as create_app does
        app = create_app(settings, open_link=open_link, hang_up=_no_hang_up)
        async with running_app(app) as base:
            seq_task = progress.add_task("one call at a time", total=args.calls)
            t0 = time.monotonic()
            seq_turns: list[Turn] = []
            seq_fail: list[str] = []
            for _ in range(args.calls):
                outcome = await one_call(base, lead, bed, hold_ms=4000)
                seq_turns += outcome.turns
                if outcome.error:
                    seq_fail.append(outcome.error)
                progress.advance(seq_task)
            sequential = Level(1, seq_turns, seq_fail, time.monotonic() - t0)

            levels: list[Level] = []
            conc_task = progress.add_task("concurrent calls", total=sum(args.levels))
            for n in args.levels:
                t0 = time.monotonic()

                async def staggered(k: int, n: int = n) -> CallOutcome:
                    await asyncio.sleep(k * args.stagger / n)
                    outcome = await one_call(base, short, bed, hold_ms=2000)
                    progress.advance(conc_task)
                    return outcome

                outcomes = await asyncio.gather(*(staggered(k) for k in range(n)))
                level = Level(
                    n,
                    [t for o in outcomes for t in o.turns],
                    [o.error for o in outcomes if o.error],
                    time.monotonic() - t0,
                )
                levels.append(level)
                progress.console.print(level_table(levels, len(SHORT_LINES)).splitlines()[-1])
                if level.failures or level.p50 > 2 * levels[0].p50:
                    break
                await asyncio.sleep(1.0)
    return sequential, levels


async def _no_hang_up(call_sid: str) -> None:
    """Smart hang-up would call Twilio's REST API; here the call simply ends."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--calls", type=int, default=3, help="sequential calls (6 answers each)")
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 2, 4, 6, 8])
    parser.add_argument("--stagger", type=float, default=3.0, help="spread of call starts, s")
    parser.add_argument(
        "--no-speculation",
        action="store_true",
        help="transcribe only after the commit (the pipeline before speculative STT)",
    )
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)

    wall0 = time.monotonic()
    load_before = os.getloadavg()[0]
    sequential, levels = asyncio.run(run(args))
    wall = time.monotonic() - wall0
    load_after = os.getloadavg()[0]

    delays = sequential.delays
    p50, p95 = pct(delays, 0.5), pct(delays, 0.95)
    target_met = p50 < 1200
    doubled = next((lv.calls for lv in levels[1:] if lv.p50 > 2 * levels[0].p50), None)
    failed_at = next((lv.calls for lv in levels if lv.failures), None)
    if doubled is not None:
        limit = f"the p50 delay more than doubled at N = {doubled} concurrent calls"
    elif failed_at is not None:
        limit = f"calls failed at N = {failed_at}"
    else:
        limit = f"the p50 delay had not doubled by N = {levels[-1].calls if levels else 0}"
    command = command_line("benchmarks.run_pipeline_benchmark", argv, python=".venv/bin/python")
    date = utc_minute()
    failures = sequential.failures + [f for lv in levels for f in lv.failures]
    body = "\n".join(
        [
            f"Generated {date} by `{command}` on the shared 2-core machine "
            f"({os.cpu_count()} CPUs seen; server and callers in one process), in "
            f"{wall / 60:.1f} min; 1-minute load average {load_before:.2f} at the start, "
            f"{load_after:.2f} at the end. Embedded default path (no OPENAI_API_KEY): speech gate, "
            "faster-whisper tiny.en, local form agent, Piper; caller = Piper voice on a phone "
            "line in -55 dBFS room noise, `MIN_SPEECH_RMS=600` as in "
            "tests/test_fallback_e2e.py. Delay = end of the caller's speech → first agent "
            "media message at the caller.",
            "",
            f"**One call at a time** ({args.calls} calls × {len(LEAD_LINES)} answers, "
            f"{len(sequential.turns)} answers, {sequential.missed} without a reply, "
            f"{sum(t.overlap for t in sequential.turns)} with agent audio during the answer): "
            f"p50 **{_ms(p50)} ms**, p95 **{_ms(p95)} ms**. Target p50 < 1200 ms: "
            f"**{'met' if target_met else 'not met'}**.",
            "",
            breakdown_table(sequential.turns),
            "",
            ("Speculative transcription off (`--no-speculation`). " if args.no_speculation else "")
            + f"Speculative transcription: {sum(t.speculative for t in sequential.turns)} of "
            f"{len(sequential.turns)} answers were answered from a transcription started when "
            "the caller's audio paused (150 ms), before the commit; the others were "
            "transcribed after it (audio arrived after the pause, or the STT was busy).",
            "",
            f"**Concurrent calls** ({len(SHORT_LINES)} answers each, starts spread over "
            f"{args.stagger:g} s; stops after the level where p50 doubles or a call fails): "
            f"{limit}.",
            "",
            level_table(levels, len(SHORT_LINES)),
        ]
        + ([""] + [f"- failure: {f}" for f in failures] if failures else [])
    )
    print(body)
    if args.out:
        write_section(args.out, "pipeline-benchmark", body, "Fallback pipeline response delay")


if __name__ == "__main__":
    main()
