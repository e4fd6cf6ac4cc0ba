"""Concurrent simulated calls through one ``callgate serve`` process.

    python -m benchmarks.run_bridge_benchmark [--calls 50 100 200] [--seconds 10] [--out FILE]

The server runs as its own process, so its CPU time can be read from /proc. This process
runs the Realtime-protocol peer and N Twilio-side callers on loopback. Each caller streams
a call of speech and pauses in real time (20 ms frames). The report covers:

- calls held: calls that ended normally;
- the delay from a media frame's arrival at the server to its audio being handed to the
  model connection (p50/p99, from the server's Prometheus histogram);
- dropped frames: frames the callers sent that the gate never analysed;
- the server's CPU per call, as a share of one core.

This process shares the same 2 cores with the server, so at high load the load generator
itself competes for CPU; the table says so rather than hiding it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt

from benchmarks.report import command_line, utc_minute, write_section
from callgate.peers.realtime_records import PeerOptions
from callgate.peers.realtime_server import RealtimePeer
from callgate.peers.twilio_caller import CallResult, place_call
from callgate.synth.channel import telephone_channel
from callgate.synth.scenes import NOISE_BEDS, mix_at_snr
from callgate.synth.speech import speak

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class LoadResult:
    """One load level."""

    calls: int
    held: int
    p50_ms: float
    p99_ms: float
    dropped_frames: int
    frames: int
    cpu_share_per_call: float


def call_audio(seconds: float) -> npt.NDArray[np.int16]:
    """A caller talking in a street: sentences with pauses, at 15 dB SNR."""
    rng = np.random.default_rng(11)
    pieces = [np.zeros(8000)]
    texts = ["Hello, I'm calling about my order.", "It was supposed to arrive on Monday."]
    k = 0
    while sum(p.size for p in pieces) < seconds * 8000:
        pieces += [speak(texts[k % 2]) * 0.3, np.zeros(12000)]
        k += 1
    speech = np.concatenate(pieces)[: int(seconds * 8000)]
    noisy = mix_at_snr(speech, NOISE_BEDS["street"](seconds, 8000, rng), 15.0, 8000)
    return telephone_channel(noisy, 8000)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Quantile from cumulative histogram buckets (upper bound, count), interpolated."""
    total = buckets[-1][1]
    if total == 0:
        return float("nan")
    target = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= target:
            if upper == float("inf"):
                return lower
            return lower + (upper - lower) * (target - below) / max(count - below, 1e-9)
        lower, below = upper, count
    return lower


def _scrape(text: str) -> tuple[dict[str, float], list[tuple[float, float]]]:
    values: dict[str, float] = {}
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, value = line.rsplit(" ", 1)
        if name.startswith("callgate_frame_to_append_seconds_bucket"):
            le = name.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(value)))
        else:
            values[name] = float(value)
    return values, buckets


async def _serve_peer(port: int) -> None:
    """Run the Realtime peer until killed (its own process, off the callers' core time)."""
    async with RealtimePeer(PeerOptions(pace=1.0, check_own_events=False), port=port):
        await asyncio.Event().wait()


async def _run_level(
    n_calls: int, seconds: float, audio: npt.NDArray[np.int16], port: int, log_file: Path
) -> LoadResult:
    peer_url = f"ws://127.0.0.1:{port + 1}/v1"
    peer = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.run_bridge_benchmark", "--serve-peer", str(port + 1)],
        cwd=ROOT,
    )
    try:
        env = {
            **os.environ,
            "PORT": str(port),
            "HOST": "127.0.0.1",
            "OPENAI_API_KEY": "sk-local",
            "OPENAI_WEBSOCKET_BASE_URL": peer_url,
            "OPENAI_BASE_URL": peer_url.replace("ws://", "http://"),
            "TWILIO_VALIDATE_SIGNATURES": "false",
            "DATABASE_URL": f"sqlite+aiosqlite:///{log_file.with_suffix('.db').resolve()}",
        }
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/callgate"), "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log_file.open("w"),
        )
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base) as client:
                for _ in range(200):
                    try:
                        if (await client.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.05)
                cpu0 = _cpu_seconds(server.pid)
                wall0 = time.monotonic()

                async def one(k: int) -> CallResult:
                    await asyncio.sleep(k * 1.0 / n_calls)  # stagger the starts over 1 s
                    return await place_call(
                        base.replace("http", "ws") + "/twilio/media", audio, tail_ms=500
                    )

                results = await asyncio.gather(
                    *(one(k) for k in range(n_calls)), return_exceptions=True
                )
                await asyncio.sleep(0.5)
                cpu = _cpu_seconds(server.pid) - cpu0
                wall = time.monotonic() - wall0
                values, buckets = _scrape((await client.get("/metrics")).text)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    finally:
        peer.kill()
        peer.wait()
    ok = [r for r in results if isinstance(r, CallResult)]
    failures = [r for r in results if not isinstance(r, CallResult)]
    for failure in failures[:3]:
        print(f"caller failed: {type(failure).__name__}: {failure}", file=sys.stderr)
    sent = sum(r.frames_sent for r in ok)
    return LoadResult(
        calls=n_calls,
        held=int(values.get('callgate_calls_total{reason="caller hung up"}', 0)),
        p50_ms=1000 * _quantile(buckets, 0.5),
        p99_ms=1000 * _quantile(buckets, 0.99),
        dropped_frames=int(sent - values.get("callgate_frames_in_total", 0)),
        frames=sent,
        cpu_share_per_call=cpu / wall / n_calls,
    )


def table(results: list[LoadResult], seconds: float) -> str:
    """The results as a markdown table."""
    rows = [
        f"| concurrent calls ({seconds:g} s each) | held | frame → append p50 ms | p99 ms "
        "| dropped frames | server CPU per call (share of one core) |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r.calls} | {r.held} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.dropped_frames} of {r.frames} | {100 * r.cpu_share_per_call:.2f}% |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--port", type=int, default=18080)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--serve-peer", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_peer:
        asyncio.run(_serve_peer(args.serve_peer))
        return
    audio = call_audio(args.seconds)
    results = []
    for n in args.calls:
        log_file = Path(f"out/bridge-benchmark-server-{n}.log")
        log_file.parent.mkdir(exist_ok=True)
        result = asyncio.run(_run_level(n, args.seconds, audio, args.port, log_file))
        print(table([result], args.seconds).splitlines()[-1], flush=True)
        results.append(result)
    command = command_line("benchmarks.run_bridge_benchmark", argv)
    date = utc_minute()
    body = (
        f"Generated {date} by `{command}` on the shared 2-core machine. The server is "
        "one `callgate serve` process; the Realtime peer (its own process) and the callers (the "
        "benchmark process) share the same 2 cores. p99 1000 means 1 s or more "
        "(the top bucket).\n\n" + table(results, args.seconds)
    )
    print(body)
    if args.out:
        write_section(args.out, "bridge-benchmark", body, "Call bridge under load")


if __name__ == "__main__":
    main()
