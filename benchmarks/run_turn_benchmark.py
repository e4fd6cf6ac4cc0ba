"""End-of-turn benchmark for the ``client`` turn mode, on the labelled corpus.

    python -m benchmarks.run_turn_benchmark [--quick] [--silence-ms 300 400 ...] [--out FILE]

For each value of END_OF_TURN_SILENCE_MS, every speech clip is run through the gate and
the turn controller in 20 ms steps, as on a live call. For each labelled utterance the
script finds the first commit after its last labelled frame and before the next one
starts, and measures the delay. A commit that falls inside a labelled utterance is
premature: the caller was still talking. An utterance with no commit before the next one
is merged into it. That is not an error in itself, since the caller may go on, but it is
reported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import Progress

from benchmarks.corpus import Clip, corpus_specs, load_clip
from benchmarks.metrics import FRAME_MS, utterances
from benchmarks.report import write_section
from callgate.audio.gate import SpeechGate
from callgate.realtime.turns import CommitInput, TurnController, TurnOptions


@dataclass
class TurnScore:
    """Commit timing for one END_OF_TURN_SILENCE_MS value."""

    silence_ms: int
    delays_ms: list[int] = field(default_factory=list)
    premature: int = 0
    commits: int = 0
    merged: int = 0
    missed: int = 0


def commit_frames(clip: Clip, silence_ms: int) -> list[int]:
    """Frame indices at which the controller commits, feeding 20 ms chunks."""
    gate = SpeechGate()
    turns = TurnController(TurnOptions(mode="client", end_of_turn_silence_ms=silence_ms))
    commits: list[int] = []
    for start in range(0, clip.pcm16.size, 160):
        for decision in gate.process_pcm16(clip.pcm16[start : start + 160]):
            if any(isinstance(a, CommitInput) for a in turns.on_frame(decision)):
                commits.append(decision.index)
    return commits


def score_clip(clip: Clip, silence_ms: int, score: TurnScore) -> None:
    """Add one clip's commits to ``score``."""
    commits = commit_frames(clip, silence_ms)
    score.commits += len(commits)
    spans = utterances(clip.labels)
    for k, (start, end) in enumerate(spans):
        score.premature += sum(start < c < end - 1 for c in commits)
        limit = spans[k + 1][0] if k + 1 < len(spans) else clip.frames + 10_000
        after = [c for c in commits if end - 1 <= c < limit]
        if after:
            score.delays_ms.append((after[0] - (end - 1)) * FRAME_MS)
        elif k + 1 < len(spans):
            score.merged += 1
        else:
            score.missed += 1


def run(silences: list[int], quick: bool) -> list[TurnScore]:
    """Score every silence value on the speech clips of the corpus."""
    specs = [s for s in corpus_specs(quick=quick) if s.kind in ("speech", "speech_jump")]
    scores = [TurnScore(ms) for ms in silences]
    with Progress() as progress:
        task = progress.add_task("turn benchmark", total=len(specs) * len(silences))
        for spec in specs:
            clip = load_clip(spec)
            for score in scores:
                score_clip(clip, score.silence_ms, score)
                progress.advance(task)
    return scores


def table(scores: list[TurnScore]) -> str:
    """The results as a markdown table."""
    rows = [
        "| END_OF_TURN_SILENCE_MS | commits | end of speech → commit, median ms | p95 ms "
        "| premature commits | utterances merged into the next | no commit at clip end |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in scores:
        delays = np.array(s.delays_ms or [0])
        share = s.premature / s.commits if s.commits else 0.0
        rows.append(
            f"| {s.silence_ms} | {s.commits} | {np.median(delays):.0f} | "
            f"{np.percentile(delays, 95):.0f} | {s.premature} ({share:.1%}) | {s.merged} | "
            f"{s.missed} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="use the quick corpus subset")
    parser.add_argument("--silence-ms", type=int, nargs="+", default=[250, 300, 400, 500, 600, 800])
    parser.add_argument("--out", type=Path, help="replace the turn section of this file")
    args = parser.parse_args(argv)
    scores = run(args.silence_ms, args.quick)
    command = "python -m benchmarks.run_turn_benchmark " + shlex.join(argv or sys.argv[1:])
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    body = (
        f"Generated {date} by `{command.strip()}` on the shared 2-core machine "
        "(gate defaults, client turn mode, corpus speech clips).\n\n" + table(scores)
    )
    print(body)
    if args.out:
        write_section(args.out, "turn-benchmark", body, "End of turn (client mode)")


if __name__ == "__main__":
    main()
