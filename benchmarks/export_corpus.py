"""Write the gate benchmark's corpus as recordings an operator would have: one 8 kHz WAV
and one Audacity label track per clip, for ``callgate analyze --labels`` and
``callgate tune``::

    PYTHONPATH=$PWD/src python -m benchmarks.export_corpus out/corpus [--quick]
    callgate tune out/corpus --labels out/corpus --try SNR_START_NORMAL=7,8,9

Each label is a run of speech frames of the corpus labels, so the tune command scores a
clip exactly as the benchmark does (the same frames, the same utterances).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.progress import Progress
from scipy.io import wavfile

from benchmarks.corpus import FRAME_SAMPLES, Clip, corpus_specs, load_clip
from callgate.audio.codec import SAMPLE_RATE_HZ
from callgate.tuning.labels import format_labels
from callgate.tuning.score import runs

FRAME_S = FRAME_SAMPLES / SAMPLE_RATE_HZ


def clip_labels(clip: Clip) -> str:
    """The clip's speech frames as an Audacity label track, one label per utterance."""
    spans = [(a * FRAME_S, b * FRAME_S) for a, b in runs(clip.labels)]
    return format_labels(spans)


def export(out: Path, *, quick: bool = False) -> int:
    """Write every clip of the (quick) corpus to ``out``; returns how many."""
    out.mkdir(parents=True, exist_ok=True)
    specs = corpus_specs(quick=quick)
    with Progress() as progress:
        task = progress.add_task("exporting", total=len(specs))
        for spec in specs:
            clip = load_clip(spec)
            wavfile.write(out / f"{spec.name}.wav", SAMPLE_RATE_HZ, clip.pcm16)
            (out / f"{spec.name}.txt").write_text(clip_labels(clip), encoding="utf-8")
            progress.advance(task)
    return len(specs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for <clip>.wav and <clip>.txt")
    parser.add_argument("--quick", action="store_true", help="the quick corpus only")
    args = parser.parse_args(argv)
    count = export(args.out, quick=args.quick)
    print(f"wrote {count} recordings and their labels to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
