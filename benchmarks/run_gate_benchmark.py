"""Run every detector over the labelled telephone corpus and print markdown tables.

    python -m benchmarks.run_gate_benchmark [--quick] [--out docs/benchmarks.md]
        [--only DETECTOR ...] [--gate-option key=value ...]

With ``--out`` the tables replace the section between the gate-benchmark markers of that
file, so the published numbers always come from one command that anyone can rerun.
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import os
import sys
from pathlib import Path
from typing import Any

from rich.progress import Progress

from benchmarks.corpus import FAMILY_SNRS, TALKER_LEVELS_DBFS, Clip, corpus_specs, load_clip
from benchmarks.detectors import DETECTOR_NAMES, build_detectors, timed_run
from benchmarks.metrics import DetectorResult
from benchmarks.report import command_line, write_section
from callgate.tuning.score import FrameScore


def parse_value(text: str) -> Any:
    """'7' -> 7, '7.5' -> 7.5, 'true' -> True, 'none' -> None, else the string."""
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_gate_options(items: list[str]) -> dict[str, Any]:
    """``key=value`` pairs to GateOptions keyword arguments."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--gate-option needs key=value, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def _num(x: float, digits: int = 3) -> str:
    return "n/a" if math.isnan(x) else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _voice_tables(results: list[DetectorResult]) -> list[str]:
    """By speech source: espeak-ng's voices against Piper's neural one, overall and per
    noise family (the per-family table is Piper's clips alone)."""
    per_voice = [r.by_voice for r in results]  # summed once per detector, not per cell
    voices = [v for v in ("espeak", "piper") if any(v in tallies for tallies in per_voice)]
    if len(voices) < 2:  # a comparison needs both
        return []
    out = [
        "F1 / utterance recall / lost first 100 ms by voice (clips with speech; espeak-ng's "
        "voices, and Piper's neural joe voice):",
        "",
    ]
    rows = []
    for voice in voices:
        cells = []
        for tallies in per_voice:
            c = tallies.get(voice)
            cells.append(
                "n/a"
                if c is None
                else f"{_num(c.f1)} / {_pct(c.utterance_recall)} / {_pct(c.first_100ms_lost_share)}"
            )
        count = next(tallies[voice].utterances for tallies in per_voice if voice in tallies)
        rows.append([f"{voice} ({count} utt.)", *cells])
    out += [_table(["voice"] + [r.name for r in results], rows), ""]
    out += ["F1 by noise family, Piper's voice alone:", ""]
    rows = [
        [f] + [
            _num(r.by_voice_family[("piper", f)].f1) if ("piper", f) in r.by_voice_family
            else "n/a"
            for r in results
        ]
        for f in FAMILY_SNRS
        if any(("piper", f) in r.by_voice_family for r in results)
    ]  # fmt: skip
    out += [_table(["family"] + [r.name for r in results], rows), ""]
    return out


def render(results: list[DetectorResult], clips: list[Clip], notes: list[str]) -> str:
    """The markdown report: summary, F1 by noise family, F1 by talker level."""
    minutes = sum(c.frames for c in clips) * 0.02 / 60
    kinds = {
        k: sum(1 for c in clips if c.spec.kind == k)
        for k in ("speech", "speech_jump", "noise_only", "music_only")
    }
    out = [
        f"Corpus: {len(clips)} clips, {minutes:.1f} min of 8 kHz mu-law audio "
        f"({kinds['speech'] + kinds['speech_jump']} with speech, {kinds['noise_only']} noise-only, "
        f"{kinds['music_only']} music-only); "
        f"{results[0].speech.utterances if results else 0} labelled utterances.",
        "",
        "Summary (F1/precision/recall: all clips; utterance and onset metrics: clips with speech). "
        "CPU is single-threaded process time per 20 ms frame on the same audio.",
        "",
    ]
    header = ["detector", "F1", "precision", "recall", "utt. recall", "onset clip p50/p90 ms",
              "lost first 100 ms", "quiet: lost first 100 ms", "noise-only sent",
              "music-only sent", "audio sent", "CPU µs/frame"]  # fmt: skip
    rows = []
    for r in results:
        quiet = r.by_talker.get("quiet", FrameScore())
        rows.append(
            [
                r.name,
                _num(r.overall.f1),
                _num(r.overall.precision),
                _num(r.overall.recall),
                _pct(r.speech.utterance_recall),
                f"{r.speech.onset_clip_ms(50):.0f} / {r.speech.onset_clip_ms(90):.0f}",
                _pct(r.speech.first_100ms_lost_share),
                _pct(quiet.first_100ms_lost_share),
                _pct(r.noise_only.sent_share),
                _pct(r.music_only.sent_share),
                _pct(r.overall.sent_share),
                f"{r.cpu_us_per_frame:.1f}",
            ]
        )
    out += [_table(header, rows), ""]
    silero = next((r for r in results if r.name == "silero-vad"), None)
    if silero is not None:
        ratios = ", ".join(
            f"{r.name} {r.cpu_us_per_frame / silero.cpu_us_per_frame:.3f}"
            for r in results
            if r.name.startswith("gate")
        )
        out += [f"CPU per frame as a share of Silero VAD's, same run: {ratios}.", ""]
    out += ["F1 by noise family (clips with speech):", ""]
    fams = [f for f in FAMILY_SNRS if any(f in r.by_family for r in results)]
    rows = [
        [f] + [_num(r.by_family[f].f1) if f in r.by_family else "n/a" for r in results]
        for f in fams
    ]
    out += [_table(["family"] + [r.name for r in results], rows), ""]
    out += ["F1 and utterance recall by talker level (clips with speech):", ""]
    rows = []
    for lvl, dbfs in TALKER_LEVELS_DBFS.items():
        cells = []
        for r in results:
            c = r.by_talker.get(lvl)
            cells.append("n/a" if c is None else f"{_num(c.f1)} / {_pct(c.utterance_recall)}")
        rows.append([f"{lvl} ({dbfs:.0f} dBFS)", *cells])
    out += [_table(["talker"] + [r.name for r in results], rows), ""]
    out += _voice_tables(results)
    out += [
        "Share of audio sent on clips without caller speech, by first noise bed (false "
        "triggers; babble and tv contain other people's speech):",
        "",
    ]
    fams = sorted({f for r in results for f in r.no_speech_by_family})
    rows = [
        [f] + [_pct(r.no_speech_by_family[f].sent_share) if f in r.no_speech_by_family else "n/a"
               for r in results]
        for f in fams
    ]  # fmt: skip
    out += [_table(["no-speech scene"] + [r.name for r in results], rows)]
    if notes:
        out += ["", "Notes:", ""] + [f"- {n}" for n in notes]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="~5 minute subset for iteration")
    ap.add_argument("--out", type=Path, help="markdown file whose benchmark section to replace")
    ap.add_argument(
        "--only", nargs="+", metavar="DETECTOR", help=f"subset of {', '.join(DETECTOR_NAMES)}"
    )
    ap.add_argument(
        "--gate-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="GateOptions field for the gate detectors (repeatable); dotted for nested "
        "options, e.g. normal.start_db=7",
    )
    args = ap.parse_args(argv)
    gate_options = parse_gate_options(args.gate_option)

    detectors, notes = build_detectors(args.only, gate_options)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    if not detectors:
        print("no detector could be built", file=sys.stderr)
        return 1
    specs = corpus_specs(quick=args.quick)
    results = {d.name: DetectorResult(d.name) for d in detectors}
    clips: list[Clip] = []
    with Progress(transient=True) as progress:
        build = progress.add_task("corpus", total=len(specs))
        for spec in specs:
            clips.append(load_clip(spec))
            progress.advance(build)
        task = progress.add_task("detectors", total=len(clips) * len(detectors))
        for clip in clips:
            for d in detectors:
                sent, ns = timed_run(d, clip.pcm16)
                res = results[d.name]
                res.cpu_ns += ns
                res.frames += clip.frames
                res.add_clip(
                    clip.spec.kind,
                    clip.spec.family,
                    clip.spec.talker,
                    sent,
                    clip.labels,
                    clip.spec.voice,
                )
                progress.advance(task)
    if any(d.name.startswith("gate") and d.name != "gate-fixed-preroll" for d in detectors):
        notes = [
            *notes,
            "The gate rows use the gate's onset lookback: at confirmation the gate also sends "
            "audio from before the shared 200 ms pre-roll where the signal shows the speech "
            "began earlier (an earlier syllable of the caller or a soft start, at most "
            "AUDIO_ONSET_LOOKBACK_MS, 480 ms by default, before the onset). The other VADs "
            "get the fixed 200 ms pre-roll only. `gate-fixed-preroll` is the gate with the "
            "lookback off (AUDIO_ONSET_LOOKBACK_MS=0), for a comparison on equal padding.",
        ]
    if gate_options:
        notes = [*notes, f"gate options: {gate_options}"]
    body = render(list(results.values()), clips, notes)
    print(body)
    if args.out is not None:
        now = dt.datetime.now(dt.UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
        cmd = command_line("benchmarks.run_gate_benchmark", argv)
        header = (
            f"Generated {now} by `{cmd}` on a shared {os.cpu_count()}-core machine "
            "(all detectors single-threaded, timed in the same run on the same audio).\n"
        )
        write_section(args.out, "gate-benchmark", header + "\n" + body)
        print(f"\nwrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
