"""Loading recordings: every supported WAV shape and mu-law end up as the same phone signal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.io import wavfile

from callgate.audio.codec import float_to_pcm16, pcm16_to_ulaw, ulaw_round_trip
from callgate.cli.recording import (
    MIX,
    InputFormat,
    RecordingError,
    expand_inputs,
    load_recording,
    parse_channel,
)


def _tone(rate: int, seconds: float = 0.5, amplitude: float = 0.25) -> npt.NDArray[np.float64]:
    t = np.arange(round(rate * seconds)) / rate
    return amplitude * np.sin(2 * np.pi * 440.0 * t)


def _rms(x: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))


def test_8k_mono_int16_is_a_mu_law_round_trip(tmp_path: Path) -> None:
    pcm = float_to_pcm16(_tone(8000))
    wavfile.write(tmp_path / "a.wav", 8000, pcm)
    recording = load_recording(tmp_path / "a.wav")
    np.testing.assert_array_equal(recording.pcm, ulaw_round_trip(pcm))
    assert recording.source_rate_hz == 8000
    assert recording.source_channels == 1
    assert recording.duration_s == pytest.approx(0.5)


@pytest.mark.parametrize("dtype", [np.int16, np.int32, np.float32, np.uint8])
def test_16k_stereo_any_sample_type_becomes_8k_mono(tmp_path: Path, dtype: type) -> None:
    tone = _tone(16000)
    stereo = np.stack([tone, tone], axis=1)
    if dtype is np.int16:
        data: npt.NDArray[np.generic] = float_to_pcm16(stereo)
    elif dtype is np.int32:
        data = np.round(stereo * 2**31).astype(np.int32)
    elif dtype is np.uint8:
        data = np.round(stereo * 127 + 128).astype(np.uint8)
    else:
        data = stereo.astype(np.float32)
    wavfile.write(tmp_path / "b.wav", 16000, data)
    recording = load_recording(tmp_path / "b.wav")
    assert recording.source_channels == 2
    assert recording.source_rate_hz == 16000
    assert len(recording.pcm) == pytest.approx(4000, abs=2)
    # 0.25 amplitude sine: RMS 0.177 of full scale, whatever the stored width.
    assert _rms(recording.pcm[500:-500]) == pytest.approx(0.25 / np.sqrt(2) * 32768, rel=0.05)


def test_the_caller_channel_is_taken_alone_or_all_are_mixed(tmp_path: Path) -> None:
    """A call recording holds each party on its own channel: the caller must come alone."""
    caller, agent = _tone(8000, amplitude=0.2), np.zeros(4000)
    wavfile.write(tmp_path / "call.wav", 8000, float_to_pcm16(np.stack([caller, agent], axis=1)))
    first = load_recording(tmp_path / "call.wav")
    second = load_recording(tmp_path / "call.wav", channel=2)
    mixed = load_recording(tmp_path / "call.wav", channel=MIX)
    assert first.channel == 1
    assert _rms(first.pcm) == pytest.approx(0.2 / np.sqrt(2) * 32768, rel=0.05)
    assert _rms(second.pcm) < 10.0
    assert _rms(mixed.pcm) == pytest.approx(_rms(first.pcm) / 2, rel=0.05)
    assert first.channel_note == "2 channels, channel 1 analysed (--channel)"
    assert mixed.channel_note == "2 channels, all mixed (--channel)"
    with pytest.raises(RecordingError, match=r"call\.wav: has 2 channel\(s\); --channel 3"):
        load_recording(tmp_path / "call.wav", channel=3)


def test_channel_choices_parse() -> None:
    assert parse_channel("mix") == MIX
    assert parse_channel(" 2 ") == 2
    for bad in ("0", "-1", "left", ""):
        with pytest.raises(ValueError, match="--channel must be"):
            parse_channel(bad)


def test_raw_mu_law_is_decoded_as_is(tmp_path: Path) -> None:
    pcm = float_to_pcm16(_tone(8000))
    (tmp_path / "c.ulaw").write_bytes(pcm16_to_ulaw(pcm))
    recording = load_recording(tmp_path / "c.ulaw")
    np.testing.assert_array_equal(recording.pcm, ulaw_round_trip(pcm))
    assert recording.source_format == "mu-law"
    forced = tmp_path / "c.bin"
    forced.write_bytes(pcm16_to_ulaw(pcm))
    assert len(load_recording(forced, InputFormat.ULAW).pcm) == len(pcm)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"", "not a readable WAV"),
        (b"this is not audio at all" * 4, "not a readable WAV"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "truncated header"),
    ],
)
def test_broken_files_name_the_file(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(RecordingError, match=problem) as caught:
        load_recording(path)
    assert str(path) in str(caught.value)


def test_truncated_data_zero_samples_and_nan_are_errors(tmp_path: Path) -> None:
    wavfile.write(tmp_path / "full.wav", 8000, np.zeros(800, dtype=np.int16))
    (tmp_path / "cut.wav").write_bytes((tmp_path / "full.wav").read_bytes()[:200])
    wavfile.write(tmp_path / "zero.wav", 8000, np.zeros(0, dtype=np.int16))
    wavfile.write(tmp_path / "nan.wav", 8000, np.array([0.0, np.nan], dtype=np.float32))
    (tmp_path / "empty.ulaw").write_bytes(b"")
    for name, problem in [
        ("cut.wav", "truncated"),
        ("zero.wav", "zero samples"),
        ("nan.wav", "NaN"),
        ("empty.ulaw", "empty"),
    ]:
        with pytest.raises(RecordingError, match=problem):
            load_recording(tmp_path / name)


def test_folders_expand_to_sorted_audio_files(tmp_path: Path) -> None:
    for name in ["b.wav", "a.ulaw", "notes.txt", ".hidden.wav"]:
        (tmp_path / name).write_bytes(b"x")
    assert expand_inputs([tmp_path]) == [tmp_path / "a.ulaw", tmp_path / "b.wav"]
    with pytest.raises(RecordingError, match="no such file"):
        expand_inputs([tmp_path / "missing.wav"])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RecordingError, match="holds no"):
        expand_inputs([empty])
