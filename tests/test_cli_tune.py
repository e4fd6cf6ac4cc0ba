"""``callgate analyze --labels`` and ``callgate tune`` end to end, on the demo recordings
that ``callgate sample --labels`` writes with their true speech spans."""

from __future__ import annotations

import csv
import itertools
from pathlib import Path

import pytest
from typer.testing import CliRunner

from callgate.cli.app import app
from callgate.cli.recording import load_recording
from callgate.cli.tune import load_labelled, rank, run_trial
from callgate.tuning.grid import Trial
from callgate.tuning.labels import read_labels


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty folder so no stray ``.env`` or environment changes the settings."""
    monkeypatch.chdir(tmp_path)
    for name in ("SNR_START_NORMAL", "SNR_STOP_NORMAL", "AUDIO_PREROLL_MS"):
        monkeypatch.delenv(name, raising=False)


DEAF_MUSIC = ("--set", "SNR_START_MUSIC=40", "--set", "SNR_STOP_MUSIC=30")
"""Music thresholds above every tried normal pair, which they may not be below."""


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.stdout + result.stderr


def tune_folder(folder: Path, *args: str) -> tuple[int, str]:
    """``callgate tune`` on every recording of ``folder``, labelled by ``folder/<name>.txt``."""
    return run("tune", str(folder), "--labels", str(folder), *args)


@pytest.fixture(scope="module")
def calls(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two labelled demo calls: a normal street and a quiet fan at 5 dB."""
    folder = tmp_path_factory.mktemp("calls")
    for name, noise in (("street", "street"), ("fan", "fan")):
        wav, txt = folder / f"{name}.wav", folder / f"{name}.txt"
        code, out = run("sample", str(wav), "--noise", noise, "--snr", "5", "--labels", str(txt))
        assert code == 0, out
    return folder


def test_sample_labels_are_the_spoken_sentences(calls: Path) -> None:
    spans = read_labels(calls / "street.txt")
    assert len(spans) == 3
    assert spans[0].start_s == pytest.approx(1.5, abs=0.05)  # after the 1.5 s lead-in
    assert all(0.8 < s.end_s - s.start_s < 4.0 for s in spans)
    assert all(a.end_s < b.start_s for a, b in itertools.pairwise(spans))


def test_analyze_with_labels_scores_and_marks_the_csv(calls: Path, tmp_path: Path) -> None:
    out_csv = tmp_path / "street.csv"
    code, out = run(
        "analyze",
        str(calls / "street.wav"),
        "--labels",
        str(calls / "street.txt"),
        "--frames-csv",
        str(out_csv),
        "--plot",
        str(tmp_path / "street.png"),
    )
    assert code == 0, out
    assert "street.wav against its labels" in out
    assert "frame F1" in out
    assert "utterances heard" in out
    assert "false triggers (s)" in out
    with out_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    labelled = [int(row["t_ms"]) for row in rows if row["label"] == "1"]
    first = read_labels(calls / "street.txt")[0]
    assert labelled[0] == pytest.approx(first.start_s * 1000, abs=20)
    assert (tmp_path / "street.png").stat().st_size > 0


def test_analyze_a_folder_with_labels_prints_the_total(calls: Path) -> None:
    code, out = run("analyze", str(calls), "--labels", str(calls))
    assert code == 0, out
    assert "all 2 recordings against their labels" in out
    assert "utterances heard" in out


def test_analyze_with_a_broken_label_file_exits_2_and_writes_nothing(
    calls: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("1.5\t4.0\tok\n2.0\tlater\n")
    out_csv = tmp_path / "never.csv"
    code, out = run(
        "analyze", str(calls / "street.wav"), "--labels", str(bad), "--frames-csv", str(out_csv)
    )
    assert code == 2
    assert "bad.txt line 2" in out
    assert not out_csv.exists()


def test_a_label_file_of_a_longer_call_is_refused(calls: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.txt"
    other.write_text("30.0\t31.0\tspeech\n")
    code, out = run("analyze", str(calls / "street.wav"), "--labels", str(other))
    assert code == 2
    assert "after the recording ends" in out


def test_tune_ranks_the_tried_settings_and_writes_the_csv(calls: Path, tmp_path: Path) -> None:
    out_csv = tmp_path / "tune.csv"
    code, out = tune_folder(
        calls,
        *DEAF_MUSIC,
        "--try",
        "SNR_START_NORMAL=8,30",
        "--try",
        "SNR_STOP_NORMAL=5,25",
        "--csv",
        str(out_csv),
    )
    assert code == 0, out
    assert "2 recording(s)" in out
    with out_csv.open(newline="", encoding="utf-8") as handle:
        rows = {row["settings"]: row for row in csv.DictReader(handle)}
    # 8/5 is the base itself, so it is not run twice; 8/25 is invalid and says why.
    assert set(rows) == {
        "(base)",
        "SNR_START_NORMAL=8 SNR_STOP_NORMAL=25",
        "SNR_START_NORMAL=30 SNR_STOP_NORMAL=5",
        "SNR_START_NORMAL=30 SNR_STOP_NORMAL=25",
    }
    assert "must be >= SNR_STOP_NORMAL" in rows["SNR_START_NORMAL=8 SNR_STOP_NORMAL=25"]["error"]
    base, deaf = rows["(base)"], rows["SNR_START_NORMAL=30 SNR_STOP_NORMAL=25"]
    assert int(base["utterances"]) == 6
    assert int(base["heard"]) >= 3
    # Thresholds 20 dB above the speech at 5 dB SNR hear nothing at all.
    assert float(deaf["f1"]) == 0.0
    assert int(deaf["heard"]) == 0
    assert int(deaf["first_100ms_lost"]) == 6
    assert "best: the current settings" in out


def test_tune_reports_invalid_combinations_and_runs_the_rest(calls: Path) -> None:
    code, out = run(
        "tune",
        str(calls / "fan.wav"),
        "--labels",
        str(calls / "fan.txt"),
        "--try",
        "SNR_START_NORMAL=4,9",
        "--try",
        "SNR_STOP_NORMAL=6",
    )
    assert code == 0, out
    assert "1 invalid" in out
    assert "skipped SNR_START_NORMAL=4 SNR_STOP_NORMAL=6" in out
    assert "SNR_START_NORMAL (4.0) must be >= SNR_STOP_NORMAL (6.0)" in out


@pytest.mark.parametrize(
    ("tries", "says"),
    [
        (["NOT_A_SETTING=1,2"], "unknown setting(s) NOT_A_SETTING"),
        (["SNR_START_NORMAL"], "--try expects NAME=VALUE"),
    ],
)
def test_tune_bad_tries_exit_2(calls: Path, tries: list[str], says: str) -> None:
    args = ["tune", str(calls), "--labels", str(calls)]
    for item in tries:
        args += ["--try", item]
    code, out = run(*args)
    assert code == 2
    assert says in out


def test_tune_needs_labels_for_every_recording(calls: Path, tmp_path: Path) -> None:
    code, out = run("tune", str(calls), "--labels", str(tmp_path), "--try", "SNR_STOP_NORMAL=4")
    assert code == 2
    assert "no labels at" in out


def test_base_trial_scores_what_analyze_reports(calls: Path) -> None:
    """The sweep's base row is the same replay as analyze: same gate, same labels."""
    recording = load_recording(calls / "street.wav")
    labelled = load_labelled([recording], calls / "street.txt", 20.0)
    fixed = {"SNR_START_MUSIC": "40", "SNR_STOP_MUSIC": "30"}
    deaf = Trial({"SNR_START_NORMAL": "30", "SNR_STOP_NORMAL": "25"})
    base = run_trial(Trial({}), fixed, labelled, "gate", env_file=None)
    strict = run_trial(deaf, fixed, labelled, "gate", env_file=None)
    assert base.score is not None
    assert strict.score is not None
    assert base.score.utterances == 3
    assert rank([strict, base])[0] is base
    assert rank([strict, base], "onsets")[0] is base
    code, out = run(
        "analyze", str(calls / "street.wav"), "--labels", str(calls / "street.txt"), *DEAF_MUSIC
    )
    assert code == 0
    assert f"{base.score.f1:.3f}" in out


def test_tune_in_worker_processes_gives_the_same_results(calls: Path, tmp_path: Path) -> None:
    outputs = []
    for jobs in ("1", "2"):
        out_csv = tmp_path / f"jobs{jobs}.csv"
        code, out = tune_folder(
            calls, "--try", "SNR_STOP_NORMAL=3,4", "--jobs", jobs, "--csv", str(out_csv)
        )
        assert code == 0, out
        outputs.append(out_csv.read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1]
    assert outputs[0].count("\n") == 4  # header, base, two tried values
