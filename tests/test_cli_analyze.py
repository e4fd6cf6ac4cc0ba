"""``callgate analyze`` end to end, through the real speech gate.

Each test runs the CLI (or the pure functions behind it) on synthetic recordings whose
answer is known: where the burst starts, how many frames there are, which file is broken.
"""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from scipy.io import wavfile
from typer.testing import CliRunner

from callgate.audio.codec import float_to_pcm16, pcm16_to_ulaw
from callgate.cli.analyze import analyze_pcm, build_gate, output_paths, segments
from callgate.cli.app import app
from callgate.cli.recording import load_recording
from callgate.config import load_settings

RATE = 16_000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder so no stray ``.env`` or environment changes the settings."""
    monkeypatch.chdir(tmp_path)
    for name in ("SNR_START_NORMAL", "SNR_STOP_NORMAL", "AUDIO_PREROLL_MS"):
        monkeypatch.delenv(name, raising=False)


def burst_signal(rate: int = RATE, seconds: float = 3.0) -> npt.NDArray[np.float64]:
    """1 s of low noise, then 1.2 s of a loud, syllable-modulated harmonic tone, then noise."""
    rng = np.random.default_rng(1)
    t = np.arange(round(rate * seconds)) / rate
    x = 0.002 * rng.standard_normal(t.size)
    voiced = sum(np.sin(2 * np.pi * 160.0 * h * t) / h for h in range(1, 12))
    envelope = 0.55 + 0.45 * np.sin(2 * np.pi * 4.0 * t)
    burst = (t >= 1.0) & (t < 2.2)
    return np.asarray(x + burst * 0.12 * voiced * envelope, dtype=np.float64)


def write_wav(path: Path, data: npt.NDArray[np.generic], rate: int = RATE) -> Path:
    wavfile.write(path, rate, data)
    return path


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


def test_single_wav_writes_one_row_per_frame_with_preroll(tmp_path: Path) -> None:
    stereo = np.stack([burst_signal(), burst_signal()], axis=1)
    source = write_wav(tmp_path / "call.wav", float_to_pcm16(stereo))
    code, output = run(
        "analyze", str(source), "--frames-csv", "out/call.csv", "--plot", "out/call.png"
    )
    assert code == 0, output
    rows = read_rows(tmp_path / "out/call.csv")
    assert len(rows) == 150  # 3 s / 20 ms
    assert list(rows[0])[:8] == [
        "t_ms", "state", "sent", "snr_db", "level_dbfs", "noise_dbfs", "music", "gain_db",
    ]  # fmt: skip
    assert [int(r["t_ms"]) for r in rows[:3]] == [0, 20, 40]
    first_speech = next(i for i, r in enumerate(rows) if r["state"] == "speech")
    assert 50 <= first_speech <= 56  # the burst starts at 1.00 s = frame 50
    onset = next(i for i, r in enumerate(rows) if r["state"] != "silence")
    assert onset <= first_speech
    sent = [int(r["sent"]) for r in rows]
    # 200 ms of pre-roll before the first candidate frame, then every frame up to speech.
    assert sent[onset - 10 : first_speech + 1] == [1] * (first_speech + 11 - onset)
    assert sent[onset - 11] == 0
    assert sum(sent[:40]) == 0  # the low noise before the burst is never sent
    assert list(rows[0])[-2:] == ["lookback_frames", "residual_snr_db"]
    # A hard onset from low noise: nothing to look back for.
    assert {r["lookback_frames"] for r in rows} == {"0"}
    # The music-removed SNR exists only while music was playing (the frame before).
    for before, row in itertools.pairwise(rows):
        if before["music"] == "0":
            assert row["residual_snr_db"] == "nan"
    assert rows[first_speech]["snr_db"].count(".") == 1
    assert len(rows[first_speech]["snr_db"].split(".")[1]) == 2
    assert "call.wav" in output
    assert (tmp_path / "out/call.png").read_bytes()[:8] == PNG_MAGIC


def test_summary_matches_the_csv(tmp_path: Path) -> None:
    source = write_wav(tmp_path / "mono8k.wav", burst_signal(8000).astype(np.float32), 8000)
    code, output = run("analyze", str(source), "--frames-csv", "f.csv")
    assert code == 0, output
    rows = read_rows(tmp_path / "f.csv")
    recording = load_recording(source)
    settings = load_settings()
    analysis = analyze_pcm(source.name, recording.pcm, settings, build_gate(settings, "gate"))
    summary = analysis.summary
    csv_sent = [int(r["sent"]) for r in rows]
    assert summary.frames == len(rows)
    assert summary.sent_frames == sum(csv_sent)
    assert summary.sent_share == pytest.approx(sum(csv_sent) / len(rows))
    assert f"{summary.sent_share:.1%}" in output
    assert 0.3 < summary.sent_share < 0.6  # 1.2 s burst + pre-roll + hangover of 3 s
    assert summary.withheld_s == pytest.approx(3.0 - summary.sent_s)
    assert summary.withheld_tokens == pytest.approx(summary.withheld_s * 10.0)
    assert summary.withheld_usd == pytest.approx(summary.withheld_tokens * 32.0 / 1e6)
    share_withheld = 1.0 - summary.sent_share
    assert summary.withheld_usd_per_call_hour == pytest.approx(share_withheld * 3600 * 320e-6)
    (start, end), *_ = [(s.start_s, s.end_s) for s in summary.sent_segments]
    assert 0.75 <= start <= 0.95
    assert 2.2 <= end <= 2.5


def test_raw_mu_law_and_legacy_vad(tmp_path: Path) -> None:
    pcm = float_to_pcm16(burst_signal(8000))
    source = tmp_path / "call.ulaw"
    source.write_bytes(pcm16_to_ulaw(pcm))
    for vad in ("gate", "legacy"):
        code, output = run("analyze", str(source), "--vad", vad, "--frames-csv", f"{vad}.csv")
        assert code == 0, output
        rows = read_rows(tmp_path / f"{vad}.csv")
        assert len(rows) == 150
        assert any(r["sent"] == "1" for r in rows[50:100])
        assert all(r["sent"] == "0" for r in rows[:30])


def test_folder_of_two_names_outputs_after_inputs(tmp_path: Path) -> None:
    folder = tmp_path / "calls"
    folder.mkdir()
    write_wav(folder / "b.wav", float_to_pcm16(burst_signal()))
    (folder / "a.ulaw").write_bytes(pcm16_to_ulaw(float_to_pcm16(burst_signal(8000, 2.0))))
    code, output = run(
        "analyze",
        str(folder),
        "--frames-csv",
        "csv",
        "--plot",
        "png",
        "--set",
        "SNR_START_NORMAL=9",
    )
    assert code == 0, output
    assert len(read_rows(tmp_path / "csv/a.csv")) == 100
    assert len(read_rows(tmp_path / "csv/b.csv")) == 150
    assert sorted(p.name for p in (tmp_path / "png").iterdir()) == ["a.png", "b.png"]
    assert output.index("a.ulaw") < output.index("b.wav")
    assert "SNR_START_NORMAL=9.0" in output
    rows = read_rows(tmp_path / "csv/b.csv")
    assert {r["start_threshold_db"] for r in rows if r["music"] == "0"} == {"9.00"}


def test_broken_wav_exits_2_and_writes_nothing(tmp_path: Path) -> None:
    good = write_wav(tmp_path / "good.wav", float_to_pcm16(burst_signal()))
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt ")
    out = tmp_path / "out"
    code, output = run(
        "analyze", str(good), str(broken), "--frames-csv", str(out), "--plot", str(out)
    )
    assert code == 2
    assert str(broken) in output
    assert len(output.strip().splitlines()) == 1
    assert not out.exists()
    code, output = run("analyze", str(broken), "--frames-csv", "single.csv")
    assert code == 2
    assert "broken.wav" in output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.wav", "good.wav"]


@pytest.mark.parametrize(
    ("override", "named"),
    [("SNR_START_NORMAL=3", "SNR_START_NORMAL"), ("FOO=1", "FOO"), ("NOEQUALS", "NAME=VALUE")],
)
def test_bad_settings_exit_2_naming_the_variable(tmp_path: Path, override: str, named: str) -> None:
    source = write_wav(tmp_path / "call.wav", float_to_pcm16(burst_signal()))
    code, output = run("analyze", str(source), "--set", override, "--frames-csv", "x.csv")
    assert code == 2
    assert named in output
    assert not (tmp_path / "x.csv").exists()


def test_segments_and_output_paths() -> None:
    found = segments([0, 1, 1, 0, 0, 1], 20.0)
    assert [(s.start_s, s.end_s) for s in found] == [(0.02, 0.06), (0.1, 0.12)]
    assert segments([], 20.0) == ()
    inputs = [Path("x/a.wav"), Path("y/a.ulaw"), Path("z/a.wav")]
    assert output_paths(inputs, Path("o"), ".csv", as_directory=True) == [
        Path("o/a.wav.csv"),
        Path("o/a.ulaw.csv"),
        Path("o/a.wav-2.csv"),
    ]
    assert output_paths(inputs[:1], Path("f.csv"), ".csv", as_directory=False) == [Path("f.csv")]
    assert output_paths(inputs, None, ".csv", as_directory=True) == [None, None, None]


def test_sample_then_analyze(tmp_path: Path) -> None:
    code, output = run("sample", "s.wav", "--noise", "fan", "--snr", "15")
    assert code == 0, output
    rate, data = wavfile.read(tmp_path / "s.wav")
    assert rate == 8000
    assert data.dtype == np.int16
    assert len(data) > 8000 * 8
    code, output = run("analyze", "s.wav", "--frames-csv", "s.csv")
    assert code == 0, output
    rows = read_rows(tmp_path / "s.csv")
    sent = np.array([int(r["sent"]) for r in rows])
    assert 0.2 < sent.mean() < 0.9
    assert sent[:40].sum() == 0  # lead-in noise (1.5 s) is withheld
    code, output = run("sample", "t.wav", "--noise", "jackhammer")
    assert code == 2
    assert "jackhammer" in output


def test_analyze_takes_the_caller_channel_of_a_call_recording(tmp_path: Path) -> None:
    """Left: a caller's burst; right: the agent talking all along. Only the left is heard
    by default, as on a live call, and --channel 2 hears the agent."""
    caller = burst_signal()
    agent = np.roll(burst_signal(), RATE)  # its burst a second later
    stereo = write_wav(tmp_path / "call.wav", float_to_pcm16(np.stack([caller, agent], axis=1)))
    out = {}
    for choice in ("1", "2"):
        csv_path = tmp_path / f"ch{choice}.csv"
        code, text = run("analyze", str(stereo), "--channel", choice, "--frames-csv", str(csv_path))
        assert code == 0, text
        assert f"channel {choice} analysed" in text
        rows = read_rows(csv_path)
        out[choice] = next(int(r["t_ms"]) for r in rows if r["onset"] == "1")
    assert out["1"] < 1300  # the caller's burst starts at 1.0 s
    assert out["2"] >= 2000  # the agent's at 2.0 s
    code, text = run("analyze", str(stereo), "--channel", "left")
    assert code == 2
    assert "--channel must be a channel number" in text
