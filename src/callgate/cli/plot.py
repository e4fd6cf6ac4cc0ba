"""The ``--plot`` timeline: what the gate heard, measured and sent, frame by frame.

Stacked panels share one time axis so an operator can line up a missed word or a false
start with its SNR, noise floor, thresholds and music flag. Matplotlib runs on the Agg
backend: no display is needed, which matters on servers and in CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import numpy.typing as npt
from matplotlib.colors import ListedColormap
from matplotlib.patches import Patch

from callgate.audio.codec import SAMPLE_RATE_HZ, Pcm16
from callgate.audio.decision import GateState
from callgate.cli.analyze import Analysis, Mask, changed_settings, write_atomic
from callgate.config import Settings

STATE_COLORS: dict[GateState, str] = {
    GateState.SILENCE: "#d9d9d9",
    GateState.MAYBE_SPEECH: "#f4b942",
    GateState.SPEECH: "#2e9d5b",
}
"""Colours of the state band, in the order of ``GateState``."""
SENT_COLOR = "#7cc4f2"
MUSIC_COLOR = "#c792ea"
LABEL_COLOR = "#222222"
DBFS_FLOOR = -100.0
"""Lower limit for level plots: digital silence is -inf dBFS, which cannot be drawn."""


def _shade(
    axis: Any,
    times: npt.NDArray[np.float64],
    mask: Mask,
    width: float,
    color: str,
    *,
    band: tuple[float, float] = (0.0, 1.0),
    alpha: float = 0.35,
) -> None:
    """Shade runs of true frames as vertical spans (over ``band`` of the axis height)."""
    flags = np.asarray(mask, dtype=np.int8)
    edges = np.diff(np.concatenate(([0], flags, [0])))
    for start, end in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        axis.axvspan(times[start], times[end - 1] + width, *band, color=color, alpha=0.35, lw=0)


def _title(name: str, settings: Settings, kind: str) -> str:
    key = (
        f"SNR start/stop {settings.snr_start_normal:g}/{settings.snr_stop_normal:g} dB"
        f" (music {settings.snr_start_music:g}/{settings.snr_stop_music:g}),"
        f" pre-roll {settings.audio_preroll_ms} ms, hangover {settings.audio_hangover_frames}"
    )
    changed = ", ".join(f"{k}={v}" for k, (_, v) in changed_settings(settings).items())
    lines = [f"{name} - {kind}", key]
    if changed:
        lines.append(f"changed: {changed}")
    return "\n".join(lines)


def render_timeline(
    pcm: Pcm16,
    analysis: Analysis,
    settings: Settings,
    kind: str,
    out: str | Path,
    *,
    labels: Mask | None = None,
) -> None:
    """Draw the timeline of one analysed recording to a PNG file at ``out``; ``labels``
    (the operator's speech marks) show as a bar along the bottom of the waveform."""
    decisions = analysis.decisions
    frame_s = analysis.summary.frame_ms / 1000.0
    times = np.array([d.t_ms / 1000.0 for d in decisions], dtype=np.float64)
    snr = np.array([d.snr_db for d in decisions], dtype=np.float64)
    level = np.maximum([d.level_dbfs for d in decisions], DBFS_FLOOR)
    noise = np.maximum([d.noise_dbfs for d in decisions], DBFS_FLOOR)
    start = np.array([d.start_threshold_db for d in decisions], dtype=np.float64)
    stop = np.array([d.stop_threshold_db for d in decisions], dtype=np.float64)
    music = np.array([d.music for d in decisions], dtype=np.bool_)
    order = list(GateState)
    states = np.array([[order.index(d.state) for d in decisions]], dtype=np.int8)

    figure, axes = plt.subplots(
        5,
        1,
        sharex=True,
        figsize=(14, 9),
        gridspec_kw={"height_ratios": [3, 2.5, 2.5, 0.6, 0.6]},
        layout="constrained",
    )
    wave_ax, snr_ax, level_ax, state_ax, music_ax = axes
    try:
        wave_t = np.arange(len(pcm), dtype=np.float64) / SAMPLE_RATE_HZ
        wave_ax.plot(wave_t, pcm.astype(np.float64) / 32768.0, lw=0.4, color="#333333")
        if len(decisions):
            _shade(wave_ax, times, analysis.sent, frame_s, SENT_COLOR)
        peak = float(np.max(np.abs(pcm))) / 32768.0 if len(pcm) else 0.0
        limit = min(1.0, max(0.02, 1.1 * peak))
        wave_ax.set_ylim(-limit, limit)
        wave_ax.set_ylabel("waveform")
        handles = [Patch(color=SENT_COLOR, alpha=0.35, label="sent to model")]
        if labels is not None and len(decisions):
            _shade(wave_ax, times, labels, frame_s, LABEL_COLOR, band=(0.0, 0.05), alpha=0.8)
            handles.append(Patch(color=LABEL_COLOR, alpha=0.8, label="labelled speech"))
        wave_ax.legend(handles=handles, loc="upper right")

        edges = np.append(times, times[-1] + frame_s) if len(times) else times
        snr_ax.plot(times + frame_s / 2, snr, lw=0.8, color="#1f5fa8", label="SNR")
        if len(times):
            snr_ax.stairs(
                start, edges, color="#c0392b", lw=1.0, baseline=None, label="start threshold"
            )
            snr_ax.stairs(
                stop, edges, color="#e67e22", lw=1.0, ls="--", baseline=None, label="stop threshold"
            )
        snr_ax.axhline(0.0, color="#999999", lw=0.5)
        snr_ax.set_ylabel("SNR (dB)")
        snr_ax.legend(loc="upper right", fontsize="small", ncols=3)

        level_ax.plot(times + frame_s / 2, level, lw=0.8, color="#1f5fa8", label="level")
        level_ax.plot(times + frame_s / 2, noise, lw=1.2, color="#7f8c8d", label="noise floor")
        level_ax.set_ylabel("dBFS")
        level_ax.legend(loc="upper right", fontsize="small", ncols=2)

        extent = (0.0, float(edges[-1]) if len(edges) else 0.0, 0.0, 1.0)
        state_ax.imshow(
            states,
            aspect="auto",
            extent=extent,
            cmap=ListedColormap([STATE_COLORS[s] for s in order]),
            vmin=0,
            vmax=len(order) - 1,
            interpolation="nearest",
        )
        state_ax.set_yticks([])
        state_ax.set_ylabel("state", rotation=0, ha="right", va="center")
        state_ax.legend(
            handles=[Patch(color=STATE_COLORS[s], label=s.value) for s in order],
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            fontsize="small",
        )

        if music.any():
            _shade(music_ax, times, music, frame_s, MUSIC_COLOR)
        else:
            music_ax.text(
                0.5,
                0.5,
                "no music detected",
                transform=music_ax.transAxes,
                ha="center",
                va="center",
                fontsize="small",
                color="#777777",
            )
        music_ax.set_yticks([])
        music_ax.set_ylabel("music", rotation=0, ha="right", va="center")
        music_ax.set_xlabel("time (s)")
        music_ax.set_xlim(0.0, max(extent[1], len(pcm) / SAMPLE_RATE_HZ))

        figure.suptitle(_title(analysis.summary.name, settings, kind), fontsize="medium")
        write_atomic(Path(out), lambda temp: figure.savefig(temp, format="png", dpi=100))
    finally:
        plt.close(figure)
