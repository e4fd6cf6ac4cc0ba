"""Replay a recording through a gate and say what would have reached the Realtime model.

This is the non-UI half of ``callgate analyze``: feed the call in 20 ms chunks as Twilio
would, turn the per-frame decisions into a final "sent" mask (pre-roll included), and
summarise it as plain data (:class:`Summary`) that the CLI prints and tests assert on.
Files are written atomically so a failed run never leaves half an output behind.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from callgate.audio.codec import SAMPLE_RATE_HZ, Pcm16
from callgate.audio.decision import (
    FrameDecision,
    FrameGate,
    GateState,
    run_in_frames,
    sent_mask,
)
from callgate.config import Settings, VadKind

GateKind = VadKind
"""``gate``: the SNR speech gate; ``legacy``: the energy VAD of the fallback path."""

Mask = npt.NDArray[np.bool_]

CSV_COLUMNS: tuple[str, ...] = (
    "t_ms",
    "state",
    "sent",
    "snr_db",
    "level_dbfs",
    "noise_dbfs",
    "music",
    "gain_db",
    "start_threshold_db",
    "stop_threshold_db",
    "voicing",
    "reason",
    "onset",
    "lookback_frames",
    "residual_snr_db",
)
"""Columns of ``--frames-csv``, one row per frame."""

SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of consecutive frames, in seconds from the start of the call."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        """Length of the stretch in seconds."""
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class Summary:
    """What the gate did with one recording, and what withholding the rest saves."""

    name: str
    """The input's file name."""
    duration_s: float
    """Length of the analysed frames, in seconds (a trailing partial frame is not counted)."""
    frames: int
    """Number of analysis frames."""
    frame_ms: float
    """Length of one frame in ms."""
    sent_frames: int
    """Frames sent to the model, pre-roll and hangover included."""
    sent_segments: tuple[Segment, ...]
    """Runs of sent frames: what the model hears."""
    speech_segments: tuple[Segment, ...]
    """Runs of frames in the SPEECH state."""
    music_share: float
    """Share of frames during which music was detected, 0..1."""
    withheld_tokens: float
    """Realtime audio input tokens not billed because the audio was withheld."""
    withheld_usd: float
    """Dollars not billed for this recording."""
    withheld_usd_per_call_hour: float
    """Dollars not billed per hour of calls with the same sent/withheld ratio."""

    @property
    def sent_share(self) -> float:
        """Share of frames sent, 0..1."""
        return self.sent_frames / self.frames if self.frames else 0.0

    @property
    def sent_s(self) -> float:
        """Seconds of audio sent."""
        return self.sent_frames * self.frame_ms / 1000.0

    @property
    def withheld_s(self) -> float:
        """Seconds of audio never sent."""
        return (self.frames - self.sent_frames) * self.frame_ms / 1000.0


@dataclass(frozen=True, slots=True)
class Analysis:
    """Decisions for every frame of one recording, the final sent mask and the summary."""

    decisions: tuple[FrameDecision, ...]
    sent: Mask
    """Per frame: the audio reached the model (live or as pre-roll)."""
    summary: Summary


def segments(mask: npt.ArrayLike, frame_ms: float) -> tuple[Segment, ...]:
    """Runs of true frames as (start, end) seconds; ``end`` is the end of the last frame."""
    flags = np.asarray(mask, dtype=np.int8)
    if flags.size == 0:
        return ()
    edges = np.diff(np.concatenate(([0], flags, [0])))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1)
    scale = frame_ms / 1000.0
    return tuple(
        Segment(float(s * scale), float(e * scale)) for s, e in zip(starts, ends, strict=True)
    )


def summarize(
    name: str, decisions: Sequence[FrameDecision], mask: Mask, frame_ms: float, settings: Settings
) -> Summary:
    """Pure summary of one run; the money is ``withheld seconds x tokens/s x $/Mtok``."""
    frames = len(decisions)
    sent_frames = int(np.count_nonzero(mask))
    speech = np.array([d.state is GateState.SPEECH for d in decisions], dtype=np.bool_)
    music = sum(1 for d in decisions if d.music)
    withheld_s = (frames - sent_frames) * frame_ms / 1000.0
    usd_per_token = settings.realtime_audio_input_usd_per_mtok / 1e6
    tokens = withheld_s * settings.realtime_audio_tokens_per_s
    withheld_share = (frames - sent_frames) / frames if frames else 0.0
    per_hour_tokens = withheld_share * SECONDS_PER_HOUR * settings.realtime_audio_tokens_per_s
    return Summary(
        name=name,
        duration_s=frames * frame_ms / 1000.0,
        frames=frames,
        frame_ms=frame_ms,
        sent_frames=sent_frames,
        sent_segments=segments(mask, frame_ms),
        speech_segments=segments(speech, frame_ms),
        music_share=music / frames if frames else 0.0,
        withheld_tokens=tokens,
        withheld_usd=tokens * usd_per_token,
        withheld_usd_per_call_hour=per_hour_tokens * usd_per_token,
    )


def analyze_pcm(name: str, pcm: Pcm16, settings: Settings, gate: FrameGate) -> Analysis:
    """Run a fresh ``gate`` over a whole call and summarise it."""
    gate.reset()
    decisions = run_in_frames(gate, pcm)
    mask = sent_mask(decisions)
    frame_ms = 1000.0 * gate.frame_samples / SAMPLE_RATE_HZ
    summary = summarize(name, decisions, mask, frame_ms, settings)
    return Analysis(decisions=tuple(decisions), sent=mask, summary=summary)


def build_gate(settings: Settings, kind: GateKind) -> FrameGate:
    """A fresh gate for one recording, exactly as the call bridge would build it."""
    return settings.build_gate(kind)


def changed_settings(settings: Settings) -> dict[str, tuple[Any, Any]]:
    """Settings whose value differs from the built-in default: NAME -> (default, value)."""
    changed: dict[str, tuple[Any, Any]] = {}
    for field, info in type(settings).model_fields.items():
        value = getattr(settings, field)
        if value != info.default:
            changed[field.upper()] = (info.default, value)
    return changed


def _number(value: float) -> str:
    return f"{value:.2f}"


def frames_csv_text(
    decisions: Sequence[FrameDecision], mask: Mask, labels: Mask | None = None
) -> str:
    """The ``--frames-csv`` content: one row per frame, floats with 2 decimals; with
    ``labels``, a last column ``label`` (1 where the operator marked speech)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS if labels is None else (*CSV_COLUMNS, "label"))
    for index, (decision, sent) in enumerate(zip(decisions, mask, strict=True)):
        extra = () if labels is None else (int(bool(labels[index])),)
        writer.writerow(
            (
                decision.t_ms,
                decision.state.value,
                int(bool(sent)),
                _number(decision.snr_db),
                _number(decision.level_dbfs),
                _number(decision.noise_dbfs),
                int(decision.music),
                _number(decision.gain_db),
                _number(decision.start_threshold_db),
                _number(decision.stop_threshold_db),
                _number(decision.voicing),
                decision.reason,
                int(decision.onset),
                decision.lookback_frames,
                _number(decision.residual_snr_db),
                *extra,
            )
        )
    return buffer.getvalue()


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Call ``write(temp)`` on a temp file beside ``path``, then rename it into place.

    On any failure the temp file is removed and ``path`` is untouched, so an operator never
    mistakes half a CSV or PNG for a result.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    temp = Path(temp_name)
    try:
        write(temp)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_frames_csv(path: Path, analysis: Analysis, labels: Mask | None = None) -> None:
    """Write the per-frame CSV of one analysis atomically."""
    text = frames_csv_text(analysis.decisions, analysis.sent, labels)
    write_atomic(path, lambda temp: temp.write_text(text, encoding="utf-8"))


def output_paths(
    inputs: Sequence[Path], option: Path | None, suffix: str, as_directory: bool
) -> list[Path | None]:
    """Where each input's CSV/PNG goes.

    One input: ``option`` is the file. Several inputs (or a folder): ``option`` is a
    directory and each file is named after its input (``call1.csv``); inputs sharing a stem
    keep their full name (``call1.wav.csv``), then a number, so no output overwrites another.
    """
    if option is None:
        return [None] * len(inputs)
    if not as_directory:
        return [option]
    stems = [path.stem for path in inputs]
    taken: set[str] = set()
    outputs: list[Path | None] = []
    for path in inputs:
        base = path.stem if stems.count(path.stem) == 1 else path.name
        name, number = base + suffix, 2
        while name in taken:
            name, number = f"{base}-{number}{suffix}", number + 1
        taken.add(name)
        outputs.append(option / name)
    return outputs
