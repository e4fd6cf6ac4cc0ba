"""Load recorded calls into the exact signal the gate sees on a live Twilio call.

A recording becomes 8 kHz mono PCM16 that has been through mu-law once, because that is
what Twilio Media Streams deliver: the caller alone. WAV files are converted to float,
reduced to one channel (the first by default: a two-channel call recording keeps each
party on its own channel, and the gate must not hear the agent), resampled to 8 kHz and
round-tripped through mu-law; raw mu-law files are decoded as they are. Every failure is
a :class:`RecordingError` whose message names the file and the problem, so the CLI can
print one line and stop before writing anything.
"""

from __future__ import annotations

import enum
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy.io import wavfile

from callgate.audio.codec import (
    SAMPLE_RATE_HZ,
    Pcm16,
    float_to_pcm16,
    ulaw_round_trip,
    ulaw_to_pcm16,
)
from callgate.audio.resample import resample, to_mono

ULAW_SUFFIXES = frozenset({".ulaw", ".mulaw", ".raw"})
"""File endings read as raw 8 kHz mono mu-law bytes (Twilio's ``audio/x-mulaw``)."""
WAV_SUFFIXES = frozenset({".wav", ".wave"})
"""File endings read as WAV."""


class InputFormat(enum.StrEnum):
    """How to read an input file: by its ending, or forced."""

    AUTO = "auto"
    WAV = "wav"
    ULAW = "ulaw"


MIX = 0
"""``channel`` value that averages all channels instead of picking one."""


def parse_channel(text: str) -> int:
    """``--channel``: ``mix`` or a 1-based channel number; raises ValueError otherwise."""
    value = text.strip().lower()
    if value == "mix":
        return MIX
    if value.isdigit() and int(value) >= 1:
        return int(value)
    raise ValueError(f"--channel must be a channel number (1, 2, ...) or 'mix', got {text!r}")


class RecordingError(Exception):
    """A recording cannot be read. The message names the file and says what is wrong."""


@dataclass(frozen=True, slots=True)
class Recording:
    """One call as the gate would receive it, plus where it came from."""

    path: Path
    """The file it was read from."""
    pcm: Pcm16
    """8 kHz mono PCM16 after one mu-law round trip."""
    source_rate_hz: int
    """Sample rate of the file (8000 for mu-law)."""
    source_channels: int
    """Channel count of the file, before mixing to mono."""
    source_format: str
    """A short description of the stored samples, e.g. ``int16`` or ``mu-law``."""
    channel: int = 1
    """The channel analysed (1-based), or :data:`MIX` when all were averaged."""

    @property
    def channel_note(self) -> str:
        """What was taken from a multi-channel file, for the report; empty for mono."""
        if self.source_channels == 1:
            return ""
        taken = "all mixed" if self.channel == MIX else f"channel {self.channel} analysed"
        return f"{self.source_channels} channels, {taken} (--channel)"

    @property
    def duration_s(self) -> float:
        """Length of the 8 kHz signal in seconds."""
        return len(self.pcm) / SAMPLE_RATE_HZ


def is_audio_file(path: Path, fmt: InputFormat = InputFormat.AUTO) -> bool:
    """True if a folder scan should pick this file up."""
    if not path.is_file() or path.name.startswith("."):
        return False
    suffix = path.suffix.lower()
    if fmt is InputFormat.ULAW:
        return suffix in ULAW_SUFFIXES
    if fmt is InputFormat.WAV:
        return suffix in WAV_SUFFIXES
    return suffix in ULAW_SUFFIXES | WAV_SUFFIXES


def expand_inputs(paths: Iterable[Path], fmt: InputFormat = InputFormat.AUTO) -> list[Path]:
    """Replace each folder by its audio files (sorted by name); keep files as given.

    A missing path or a folder without audio files is a :class:`RecordingError`, because
    silently analysing nothing would look like a successful run.
    """
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if is_audio_file(p, fmt))
            if not found:
                raise RecordingError(
                    f"{path}: folder holds no .wav or mu-law (.ulaw/.mulaw/.raw) files"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise RecordingError(f"{path}: no such file or folder")
    return files


def load_recording(path: Path, fmt: InputFormat = InputFormat.AUTO, channel: int = 1) -> Recording:
    """Read one file as WAV or raw mu-law (by ``fmt``, else by its ending); ``channel``
    (1-based, or :data:`MIX`) says which channel of a multi-channel WAV is the caller."""
    by_suffix = fmt is InputFormat.AUTO and path.suffix.lower() in ULAW_SUFFIXES
    if fmt is InputFormat.ULAW or by_suffix:
        if channel > 1:
            raise RecordingError(
                f"{path}: raw mu-law has one channel; --channel {channel} is not in it"
            )
        return _load_ulaw(path)
    return _load_wav(path, channel)


def _load_ulaw(path: Path) -> Recording:
    try:
        data = path.read_bytes()
    except OSError as error:
        raise RecordingError(f"{path}: cannot read file ({error.strerror or error})") from None
    if not data:
        raise RecordingError(f"{path}: mu-law file is empty (zero samples)")
    return Recording(
        path=path,
        pcm=ulaw_to_pcm16(data),
        source_rate_hz=SAMPLE_RATE_HZ,
        source_channels=1,
        source_format="mu-law",
    )


def _load_wav(path: Path, channel: int) -> Recording:
    rate, data = _read_wav(path)
    if rate <= 0:
        raise RecordingError(f"{path}: WAV header gives an invalid sample rate ({rate} Hz)")
    if data.ndim not in (1, 2):
        raise RecordingError(f"{path}: unexpected WAV data shape {data.shape}")
    channels = 1 if data.ndim == 1 else int(data.shape[1])
    if data.shape[0] == 0 or channels == 0:
        raise RecordingError(f"{path}: WAV file holds zero samples")
    if channel > channels:
        raise RecordingError(
            f"{path}: has {channels} channel(s); --channel {channel} is not one of them"
        )
    signal = wav_to_float(data, path)
    if signal.ndim == 2 and channel != MIX:  # (samples, channels)
        signal = signal[:, channel - 1]
    mono = resample(to_mono(signal), rate, SAMPLE_RATE_HZ)
    if mono.size == 0:
        raise RecordingError(f"{path}: recording is too short to resample to 8 kHz")
    return Recording(
        path=path,
        pcm=ulaw_round_trip(float_to_pcm16(mono)),
        source_rate_hz=rate,
        source_channels=channels,
        source_format=str(data.dtype),
        channel=channel if channels > 1 else 1,
    )


def _read_wav(path: Path) -> tuple[int, npt.NDArray[np.generic]]:
    """``scipy.io.wavfile.read`` with its many failure shapes turned into one error type."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", wavfile.WavFileWarning)
            rate, data = wavfile.read(path)
    except FileNotFoundError:
        raise RecordingError(f"{path}: no such file") from None
    except (ValueError, EOFError, struct.error, IndexError, OSError, TypeError) as error:
        detail = str(error).strip() or type(error).__name__
        if isinstance(error, struct.error | EOFError):
            detail = f"truncated header ({detail})"
        raise RecordingError(f"{path}: not a readable WAV file: {detail}") from None
    for warning in caught:
        message = str(warning.message)
        if "EOF" in message:
            raise RecordingError(f"{path}: truncated WAV data: {message}")
    return int(rate), np.asarray(data)


def wav_to_float(data: npt.NDArray[np.generic], path: Path) -> npt.NDArray[np.float64]:
    """Scale any WAV sample type to float in [-1, 1); reject NaN/inf and unknown types.

    Float samples beyond full scale are clipped later, as a phone line would clip them.

    scipy returns 8-bit WAV as unsigned, 24-bit left-justified in int32, so one divisor per
    dtype is right for every integer width.
    """
    if data.dtype == np.uint8:
        signal = (data.astype(np.float64) - 128.0) / 128.0
    elif data.dtype == np.int16:
        signal = data.astype(np.float64) / 32768.0
    elif data.dtype == np.int32:
        signal = data.astype(np.float64) / 2147483648.0
    elif data.dtype in (np.float32, np.float64):
        signal = data.astype(np.float64)
        if not np.all(np.isfinite(signal)):
            raise RecordingError(f"{path}: WAV data contains NaN or infinite samples")
    else:
        raise RecordingError(
            f"{path}: unsupported WAV sample type {data.dtype} (use 8/16/24/32-bit int or float)"
        )
    return signal
