"""Printing scores against labels: ``callgate analyze --labels`` and ``callgate tune``.

The computing half is :mod:`callgate.cli.tune`; this file parses the tune command's
options, shows progress and prints tables.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from callgate.audio.codec import SAMPLE_RATE_HZ
from callgate.cli.analyze import Mask
from callgate.cli.common import (
    ChannelOption,
    FormatOption,
    VadChoice,
    VadOption,
    fail,
    parse_overrides,
    progress_bar,
    read_inputs,
    settings_from,
)
from callgate.cli.recording import InputFormat
from callgate.cli.tune import (
    OBJECTIVES,
    LabelledRecording,
    TrialResult,
    load_labelled,
    rank,
    run_trials,
    score_mask,
    write_results_csv,
)
from callgate.config import ConfigError, Settings, load_settings
from callgate.tuning.grid import GridError, Trial, parse_tries, trials
from callgate.tuning.labels import LabelError
from callgate.tuning.score import (
    ClippedUtterance,
    FrameScore,
    clipped_utterances,
    false_triggers,
)

MAX_LISTED = 8
"""Clipped utterances and false triggers listed per recording; the rest are counted."""


def _times(ranges: list[tuple[float, float]], extra: int) -> str:
    shown = ", ".join(f"{a:.2f}-{b:.2f}" for a, b in ranges) or "none"
    return shown + (f" ... {extra} more" if extra > 0 else "")


def score_table(title: str, score: FrameScore) -> Table:
    """The totals against the labels: F1, heard utterances, clipped onsets, false triggers."""
    table = Table(title=title, show_header=False, title_justify="left", expand=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row(
        "frame F1",
        f"{score.f1:.3f} (precision {score.precision:.3f}, recall {score.recall:.3f})",
    )
    table.add_row(
        "utterances heard", f"{score.utterances_heard} of {score.utterances} (>= 90% sent)"
    )
    table.add_row("first 100 ms lost", f"{score.first_100ms_lost} of {score.utterances}")
    table.add_row(
        "false triggers",
        f"{score.false_triggers}, {score.false_trigger_s:.2f} s sent with no labelled speech",
    )
    table.add_row("audio sent", f"{score.sent_share:.1%}")
    return table


def _how(clipped: ClippedUtterance, frame_ms: float) -> str:
    if clipped.missed:
        return "(missed)"
    if clipped.delay_frames:
        return f"({clipped.delay_frames * frame_ms:.0f} ms late)"
    return "(a gap in its first 100 ms)"


def print_label_report(
    console: Console, name: str, sent: Mask, labels: Mask, frame_ms: float
) -> FrameScore:
    """One recording against its labels, with where to look: the clipped utterances (and
    by how much) and the false triggers, in seconds."""
    score = score_mask(sent, labels, frame_ms)
    console.print(score_table(f"{name} against its labels", score))
    scale = frame_ms / 1000.0
    clipped = clipped_utterances(sent, labels, round(frame_ms))
    described = [
        f"{c.start * scale:.2f}-{c.end * scale:.2f} {_how(c, frame_ms)}"
        for c in clipped[:MAX_LISTED]
    ]
    more = len(clipped) - MAX_LISTED
    console.print(
        "[bold]clipped or missed utterances (s)[/]: "
        + (", ".join(described) or "none")
        + (f" ... {more} more" if more > 0 else ""),
        soft_wrap=True,
    )
    triggers = false_triggers(sent, labels)
    console.print(
        "[bold]false triggers (s)[/]: "
        + _times(
            [(a * scale, b * scale) for a, b in triggers[:MAX_LISTED]], len(triggers) - MAX_LISTED
        ),
        soft_wrap=True,
    )
    return score


def labelled_inputs(
    inputs: list[Path], labels: Path, fmt: InputFormat, settings: Settings, channel: int = 1
) -> list[LabelledRecording]:
    """Read the recordings and their labels, or exit 2 naming the bad file."""
    recordings = read_inputs(inputs, fmt, channel)
    try:
        return load_labelled(recordings, labels, float(settings.audio_frame_size_ms))
    except LabelError as error:
        fail(str(error))


def _results_table(
    ranked: list[TrialResult], objective: str, shown: int, names: list[str], settings: Settings
) -> Table:
    """One row per combination, one column per tried setting; ``base`` marks the current
    settings (their values shown as they are now)."""
    table = Table(title=f"settings tried, best {objective} first", title_justify="left")
    table.add_column("#", justify="right", no_wrap=True)
    for name in names:
        # Spaces let a narrow terminal wrap the long names; the .env lines spell them out.
        table.add_column(name.replace("_", " "), justify="right", overflow="fold")
    for header in ("F1", "heard", "lost 100 ms", "false (s)", "sent"):
        table.add_column(header, justify="right", no_wrap=True)
    for position, result in enumerate(ranked[:shown], start=1):
        s = result.score
        if s is None:
            continue
        base = not result.trial.values
        values = [
            str(getattr(settings, name.lower()) if base else result.trial.values[name])
            for name in names
        ]
        table.add_row(
            "base" if base else str(position),
            *values,
            f"{s.f1:.3f}",
            f"{s.utterances_heard}/{s.utterances}",
            f"{s.first_100ms_lost}/{s.utterances}",
            f"{s.false_triggers} ({s.false_trigger_s:.1f})",
            f"{s.sent_share:.0%}",
        )
    return table


def _same_as_base(trial: Trial, base: dict[str, str], settings: Settings) -> bool:
    """A tried combination that ends up as the current settings (``8`` where the base is
    ``8.0``): it would only repeat the base row."""
    if not trial.values:
        return False
    try:
        return load_settings({**base, **trial.values}) == settings
    except ConfigError:
        return False  # reported when it runs


def tune(
    *,
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="Labelled recordings (WAV or raw mu-law) or folders of them.", show_default=False
        ),
    ],
    labels: Annotated[
        Path,
        typer.Option(
            "--labels",
            help="Audacity label track(s) marking the caller's speech: a file for one "
            "recording, or a folder with <name>.txt per recording.",
            show_default=False,
        ),
    ],
    tries: Annotated[
        list[str] | None,
        typer.Option(
            "--try",
            metavar="NAME=V1,V2,...",
            help="Values to try for a setting (repeatable); every combination is run.",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set", metavar="NAME=VALUE", help="Fixed override for every run (repeatable)."
        ),
    ] = None,
    objective: Annotated[
        str, typer.Option("--sort", help=f"Rank by: {', '.join(OBJECTIVES)}.")
    ] = "f1",
    top: Annotated[int, typer.Option("--top", min=1, help="Rows of the table to show.")] = 15,
    results_csv: Annotated[
        Path | None, typer.Option("--csv", help="Write every combination's scores to a CSV.")
    ] = None,
    vad: VadOption = VadChoice.GATE,
    fmt: FormatOption = InputFormat.AUTO,
    channel: ChannelOption = 1,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            min=0,
            help="Combinations replayed at once, each in its own process (0: one per CPU).",
        ),
    ] = 1,
) -> None:
    """Try settings on labelled recordings and rank them: clipped words, misses, false triggers.

    Label where callers speak in a few real calls (Audacity: Edit > Labels, then File >
    Export > Export Labels), then for example: callgate tune calls/ --labels calls/
    --try SNR_START_NORMAL=6,7,8,9 --try SNR_STOP_NORMAL=4,5. The current settings (the
    environment, .env and --set) are always the first row, "(base)".
    """
    if objective not in OBJECTIVES:
        fail(f"--sort {objective!r} is not one of {', '.join(OBJECTIVES)}")
    base = parse_overrides(overrides or [])
    settings = settings_from(overrides or [])
    try:
        axes = parse_tries(tries or [])
        combos = trials(axes)
    except GridError as error:
        fail(str(error))
    unknown = [name for name in axes if name.lower() not in Settings.model_fields]
    if unknown:
        fail(f"--try names unknown setting(s) {', '.join(unknown)}; see the README for the list")
    combos = [trial for trial in combos if not _same_as_base(trial, base, settings)]
    recordings = labelled_inputs(inputs, labels, fmt, settings, channel)

    console = Console()
    workers = jobs or os.cpu_count() or 1
    done: dict[int, TrialResult] = {}
    with progress_bar(console) as progress:
        task = progress.add_task(
            f"replaying {len(combos)} combination(s) x {len(recordings)} recording(s)"
            + (f" on {workers} processes" if workers > 1 else ""),
            total=len(combos),
        )
        for index, result in run_trials(combos, base, recordings, vad.value, jobs=workers):
            done[index] = result
            progress.advance(task)
    results = [done[index] for index in range(len(combos))]
    failed = [r for r in results if r.score is None]
    if len(failed) == len(results):
        fail(f"no combination could run; the first: {failed[0].trial.label}: {failed[0].error}")
    ranked = rank(results, objective)
    labelled_s = sum(r.recording.pcm.size for r in recordings) / SAMPLE_RATE_HZ
    console.print(
        f"{len(recordings)} recording(s), {labelled_s:.1f} s; {len(results) - len(failed)} "
        f"combination(s) run" + (f", {len(failed)} invalid" if failed else ""),
        soft_wrap=True,
    )
    console.print(_results_table(ranked, objective, top, list(axes), settings))
    for result in failed[:MAX_LISTED]:
        console.print(f"[yellow]skipped[/] {result.trial.label}: {result.error}", soft_wrap=True)
    best = ranked[0]
    if best.trial.values:
        console.print("[bold]best: put in .env[/]", soft_wrap=True)
        for name, value in best.trial.values.items():
            console.print(f"  {name}={value}", soft_wrap=True, highlight=False)
    else:
        console.print("[bold]best: the current settings[/] (no tried combination beats them)")
    if results_csv is not None:
        write_results_csv(results_csv, results)
        console.print(f"results CSV: {results_csv}", soft_wrap=True)
