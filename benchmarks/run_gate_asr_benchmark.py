"""What the recognizer hears through the gate, against the whole clip.

    python -m benchmarks.run_gate_asr_benchmark [--quick] [--conditions NAME ...]
        [--variant OPTIONS ...] [--out FILE]

The gate benchmark scores frames against labels taken from the clean speech's energy. It
cannot see a word whose soft end the gate dropped, which is what a caller loses. This
benchmark speaks the speech benchmark's sentences with Piper, puts each on a phone line in
noise after 1 s of the noise alone (the gate calibrates on it), and transcribes with the
local recognizer (faster-whisper tiny.en):

- the whole clip (what an ungated line would give);
- the audio the gate sent, for the defaults and for each ``--variant``: comma-separated
  GateOptions overrides, dotted for nested options (``machine.max_unvoiced_frames=15``).

It reports the word error rate, the share of sentences whose last word the recognizer
got, and the share of the audio sent.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import numpy.typing as npt
from rich.progress import Progress

from benchmarks.detectors import with_overrides
from benchmarks.report import command_line, utc_minute, write_section
from benchmarks.run_gate_benchmark import parse_gate_options
from benchmarks.run_speech_benchmark import (
    CONDITIONS,
    NoiseBank,
    corpus,
    normalize_words,
    speak_piper,
    word_error_rate,
)
from callgate.audio import GateOptions, SpeechGate
from callgate.config import load_settings
from callgate.speech.stt import LocalWhisperSTT, WhisperOptions
from callgate.speech.tts import PiperTTS
from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import mix_at_snr, set_level_dbfs

RATE = 8000
LEAD_S, TAIL_S = 1.0, 0.6


def line_clip(
    speech: npt.NDArray[np.float64], bank: NoiseBank, condition: str
) -> npt.NDArray[np.int16]:
    """1 s of noise alone, the sentence at -22 dBFS, then 0.6 s of noise, on a phone line."""
    clean = np.concatenate(
        [np.zeros(int(LEAD_S * RATE)), set_level_dbfs(speech, -22.0), np.zeros(int(TAIL_S * RATE))]
    )
    bed, snr = CONDITIONS[condition]
    return telephone_channel(mix_at_snr(clean, bank.cut(bed, clean.size), snr, RATE), RATE)


def gate_options(variant: str) -> GateOptions:
    """The settings' gate defaults with one variant's overrides."""
    defaults = load_settings({}, env_file=None).gate_options()
    items = [item for item in variant.split(",") if item.strip()]
    return with_overrides(defaults, parse_gate_options(items)) if items else defaults


def gated(pcm: npt.NDArray[np.int16], options: GateOptions) -> npt.NDArray[np.int16]:
    gate = SpeechGate(options)
    sent = [d.audio for d in gate.process_pcm16(pcm) if d.audio.size]
    return np.concatenate(sent) if sent else np.zeros(0, dtype=np.int16)


def last_word_kept(reference: str, heard: str) -> bool:
    ref, hyp = normalize_words(reference), normalize_words(heard)
    return bool(ref) and bool(hyp) and hyp[-1] == ref[-1]


async def run(args: argparse.Namespace) -> str:
    stt = LocalWhisperSTT(workers=1, cpu_threads=1, options=WhisperOptions())
    # Without sampling noise: every run hears the same voice, so runs can be compared.
    piper = PiperTTS(noise_scale=0.0, noise_w_scale=0.0)
    bank = NoiseBank(np.random.default_rng(5))
    items = corpus(args.quick)
    conditions = args.conditions or list(CONDITIONS)
    options = [gate_options(v) for v in args.variant]
    variants = ["whole clip", *(f"gate, {v or 'defaults'}" for v in args.variant)]
    errors: dict[tuple[str, str], list[float]] = defaultdict(list)
    last: dict[tuple[str, str], list[bool]] = defaultdict(list)
    sent_share: dict[tuple[str, str], list[float]] = defaultdict(list)
    speech = [speak_piper(piper, item.text) for item in items]
    with Progress() as progress:
        total = len(items) * len(conditions) * args.repeats
        task = progress.add_task("transcribing", total=total)
        for condition, _ in itertools.product(CONDITIONS, range(args.repeats)):
            for item, voice in zip(items, speech, strict=True):
                # Every clip is cut from the noise bank, so a subset hears the same noise.
                pcm = line_clip(voice, bank, condition)
                if condition not in conditions:
                    continue
                audios = [pcm, *(gated(pcm, o) for o in options)]
                for variant, audio in zip(variants, audios, strict=True):
                    heard = await stt.transcribe(audio) if audio.size else ""
                    key = (condition, variant)
                    errors[key].append(word_error_rate(item.text, heard))
                    last[key].append(last_word_kept(item.text, heard))
                    sent_share[key].append(audio.size / pcm.size)
                progress.advance(task)
    rows = [
        "| condition | audio | WER | last word heard | audio passed on |",
        "|---|---|---|---|---|",
    ]
    for condition in conditions:
        for variant in variants:
            key = (condition, variant)
            rows.append(
                f"| {condition} | {variant} | {100 * np.mean(errors[key]):.1f}% | "
                f"{sum(last[key])}/{len(last[key])} | {100 * np.mean(sent_share[key]):.0f}% |"
            )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller corpus")
    parser.add_argument(
        "--conditions", nargs="+", choices=list(CONDITIONS), help="a subset of the conditions"
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="each sentence this many times, in new noise"
    )
    parser.add_argument(
        "--variant",
        nargs="+",
        default=[""],
        help="gate variants: comma-separated GateOptions overrides ('' = the defaults)",
    )
    parser.add_argument("--out", type=Path, help="replace the gate-asr section of this file")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    table = asyncio.run(run(args))
    command = command_line("benchmarks.run_gate_asr_benchmark", argv)
    date = utc_minute()
    body = (
        f"Generated {date} by `{command}` on the shared 2-core machine in "
        f"{time.perf_counter() - started:.0f} s. The speech benchmark's sentences in Piper's "
        "voice (without sampling noise), after 1 s of the noise alone, recognized by "
        "faster-whisper tiny.en (beam 5, no prompts); each gate row names its overrides of "
        "the defaults.\n\n" + table
    )
    print(body)
    if args.out:
        write_section(
            args.out, "gate-asr-benchmark", body, "What the recognizer hears through the gate"
        )


if __name__ == "__main__":
    main()
