"""Speech labels for a recording: an Audacity label track, read and turned into frames.

Operators mark where the caller speaks in the editor they already use. Audacity's
"Export Labels" writes one label a line, ``start<TAB>end<TAB>text``, in seconds; a
spectral selection adds a line starting with a backslash, which carries no time span and is
skipped, and so is a point label (start = end): it marks a moment, not speech. Each other
label marks caller speech, whatever its text says.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

LABEL_SUFFIX = ".txt"
"""A recording's labels in a folder: ``call1.wav`` -> ``call1.txt``."""


class LabelError(ValueError):
    """A label file that cannot be used; the message names the file and the line."""


@dataclass(frozen=True, slots=True)
class Span:
    """One labelled stretch of caller speech, in seconds."""

    start_s: float
    end_s: float
    text: str = ""


def parse_labels(text: str, source: str = "labels") -> list[Span]:
    """The spans of an Audacity label track, sorted by start; ``source`` names it in errors."""
    spans: list[Span] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("\\", "#")):
            continue
        fields = line.split("\t") if "\t" in line else line.split(None, 2)
        where = f"{source} line {number}"
        if len(fields) < 2:
            raise LabelError(
                f"{where}: expected 'start<TAB>end[<TAB>text]' in seconds, got {raw!r}"
            )
        try:
            start, end = float(fields[0]), float(fields[1])
        except ValueError:
            raise LabelError(
                f"{where}: start and end must be numbers of seconds, got {raw!r}"
            ) from None
        if not (math.isfinite(start) and math.isfinite(end)) or start < 0:
            raise LabelError(f"{where}: times must be finite and not negative, got {raw!r}")
        if end < start:
            raise LabelError(f"{where}: ends at {end:g} s, before it starts at {start:g} s")
        if end == start:
            continue  # a point label: a marker, not a stretch of speech
        spans.append(Span(start, end, fields[2].strip() if len(fields) > 2 else ""))
    return sorted(spans, key=lambda span: span.start_s)


def read_labels(path: Path) -> list[Span]:
    """Parse a label file; an unreadable or malformed one raises :class:`LabelError`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise LabelError(f"{path}: cannot read labels ({error})") from None
    return parse_labels(text, str(path))


def labels_for(recording: Path, labels: Path, *, single: bool) -> Path:
    """The label file of ``recording``: ``labels`` itself when it is a file and there is one
    recording, else ``labels/<recording stem>.txt``."""
    if labels.is_dir():
        candidate = labels / (recording.stem + LABEL_SUFFIX)
        if not candidate.is_file():
            raise LabelError(f"{recording}: no labels at {candidate}")
        return candidate
    if not labels.is_file():
        raise LabelError(f"{labels}: no such label file or folder")
    if not single:
        raise LabelError(
            f"{labels} is one file but there are several recordings: give a folder with a "
            f"<name>{LABEL_SUFFIX} per recording"
        )
    return labels


def label_mask(
    spans: list[Span], frames: int, frame_ms: float, source: str = "labels"
) -> npt.NDArray[np.bool_]:
    """Per frame: a label covers the middle of it.

    A label that starts after the recording ends is an error: the label file most likely
    belongs to another recording. One that runs past the end is cut there.
    """
    mask = np.zeros(frames, dtype=bool)
    duration_s = frames * frame_ms / 1000.0
    frame_s = frame_ms / 1000.0
    for span in spans:
        if span.start_s >= duration_s:
            raise LabelError(
                f"{source}: a label starts at {span.start_s:g} s, after the recording ends at "
                f"{duration_s:g} s; is it the right label file?"
            )
        # Frame k covers [k, k + 1) * frame_s; it is speech when the span covers its middle.
        first = math.ceil(span.start_s / frame_s - 0.5)
        last = math.floor(span.end_s / frame_s - 0.5)
        mask[max(0, first) : min(frames, last + 1)] = True
    return mask


def format_labels(spans: list[tuple[float, float]], text: str = "speech") -> str:
    """An Audacity label track for ``(start, end)`` seconds, one label per span."""
    return "".join(f"{start:.6f}\t{end:.6f}\t{text}\n" for start, end in spans)
