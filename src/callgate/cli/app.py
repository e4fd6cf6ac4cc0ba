"""The ``callgate`` command line: a thin typer layer over ``analyze``, ``plot`` and ``sample``.

Everything that computes lives in the sibling modules; this file parses options, reports
progress and prints. User errors (a broken file, a bad ``--set``) print one line naming the
culprit and exit with code 2, before any output file is written.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from callgate.cli.analyze import (
    Mask,
    Segment,
    Summary,
    analyze_pcm,
    build_gate,
    changed_settings,
    output_paths,
    write_atomic,
    write_frames_csv,
)
from callgate.cli.call import (
    CallerAudio,
    CallError,
    print_call_summary,
    run_call,
    spoken_caller,
    wav_caller,
    write_stereo,
)
from callgate.cli.common import (
    ChannelOption,
    FormatOption,
    VadChoice,
    VadOption,
    fail,
    progress_bar,
    read_inputs,
    settings_from,
)
from callgate.cli.crm import crm_app
from callgate.cli.plot import render_timeline
from callgate.cli.recording import (
    InputFormat,
    Recording,
)
from callgate.cli.sample import make_sample, write_sample
from callgate.cli.scoring import labelled_inputs, print_label_report, score_table, tune
from callgate.config import ConfigError, Settings
from callgate.synth.scenes import NOISE_BEDS
from callgate.tuning.labels import format_labels
from callgate.tuning.score import FrameScore

MAX_LISTED_SEGMENTS = 12

app = typer.Typer(
    name="callgate",
    help="AI phone agents on Twilio lines, with a noise-robust speech gate.",
    no_args_is_help=True,
    add_completion=False,
)


app.add_typer(crm_app, name="crm")
app.command()(tune)


@app.callback()
def _root() -> None:
    """AI phone agents on Twilio lines, with a noise-robust speech gate."""


def _fmt_segments(segments: tuple[Segment, ...]) -> str:
    shown = [f"{s.start_s:.2f}-{s.end_s:.2f}" for s in segments[:MAX_LISTED_SEGMENTS]]
    if len(segments) > MAX_LISTED_SEGMENTS:
        shown.append(f"... {len(segments) - MAX_LISTED_SEGMENTS} more")
    return ", ".join(shown) if shown else "none"


def print_summary(console: Console, summary: Summary, source: str = "") -> None:
    """The per-input report: timing, segments, share sent and what withholding saves;
    ``source`` says which channel of a multi-channel file was analysed."""
    table = Table(title=summary.name, show_header=False, title_justify="left", expand=False)
    table.add_column("what", style="bold")
    table.add_column("value", overflow="fold")
    if source:
        table.add_row("source", source)
    table.add_row("duration", f"{summary.duration_s:.2f} s ({summary.frames} frames)")
    table.add_row(
        "sent to model",
        f"{summary.sent_s:.2f} s = {summary.sent_share:.1%} of the audio"
        f" in {len(summary.sent_segments)} segment(s)",
    )
    table.add_row("sent segments (s)", _fmt_segments(summary.sent_segments))
    table.add_row("SPEECH segments (s)", _fmt_segments(summary.speech_segments))
    table.add_row("music detected", f"{summary.music_share:.1%} of frames")
    table.add_row("withheld", f"{summary.withheld_s:.2f} s")
    table.add_row(
        "not billed",
        f"{summary.withheld_tokens:,.0f} audio tokens = ${summary.withheld_usd:.4f};"
        f" ${summary.withheld_usd_per_call_hour:.2f} per hour of calls at this ratio",
    )
    console.print(table)


def _print_settings(console: Console, settings: Settings, kind: VadChoice) -> None:
    changed = changed_settings(settings).items()
    described = ", ".join(f"{name}={new} (default {old})" for name, (old, new) in changed)
    console.print(
        f"[bold]vad[/]: {kind.value}; [bold]settings changed[/]: {described or 'none (defaults)'}",
        soft_wrap=True,
    )


@app.command()
def analyze(
    *,
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="WAV files (any rate/channels, int or float), raw 8 kHz mu-law files "
            "(.ulaw/.mulaw/.raw) or folders of them.",
            show_default=False,
        ),
    ],
    frames_csv: Annotated[
        Path | None,
        typer.Option(
            "--frames-csv",
            help="Write one CSV row per 20 ms frame. With several inputs or a folder this is "
            "a directory and each file is named after its input (call1.csv).",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(
            "--plot",
            help="Write a timeline PNG. With several inputs or a folder this is a directory "
            "and each file is named after its input (call1.png).",
        ),
    ] = None,
    overrides: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="NAME=VALUE",
            help="Override a setting for this run, e.g. --set SNR_START_NORMAL=7 (repeatable).",
        ),
    ] = None,
    vad: VadOption = VadChoice.GATE,
    fmt: FormatOption = InputFormat.AUTO,
    channel: ChannelOption = 1,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Score against the caller's speech marked in an Audacity label track: a "
            "file for one recording, or a folder with <name>.txt per recording.",
        ),
    ] = None,
) -> None:
    """Replay recorded calls through the speech gate and show what the model would receive.

    Each input is converted to what Twilio delivers (8 kHz mono, one mu-law round trip) and
    fed to the gate in 20 ms chunks, exactly as on a live call. The summary shows the speech
    segments, the share of audio sent and the Realtime audio cost that withholding saves.
    With --labels it also scores the gate against them and lists the clipped utterances
    and the false triggers. Exit code 2 means a bad input, label file or setting; nothing
    is written then.
    """
    settings = settings_from(overrides or [])
    if labels is not None:
        labelled = labelled_inputs(inputs, labels, fmt, settings, channel)
        recordings = [item.recording for item in labelled]
        masks: list[Mask | None] = [
            item.labels(float(settings.audio_frame_size_ms)) for item in labelled
        ]
    else:
        recordings = read_inputs(inputs, fmt, channel)
        masks = [None] * len(recordings)
    paths = [recording.path for recording in recordings]
    as_directory = len(inputs) > 1 or any(path.is_dir() for path in inputs)
    csv_paths = output_paths(paths, frames_csv, ".csv", as_directory)
    png_paths = output_paths(paths, plot, ".png", as_directory)

    console = Console()
    _print_settings(console, settings, vad)
    if len(recordings) == 1:
        _analyze_one(
            console,
            recording=recordings[0],
            settings=settings,
            vad=vad,
            csv_path=csv_paths[0],
            png_path=png_paths[0],
            labels=masks[0],
        )
        return
    total = FrameScore(frame_ms=settings.audio_frame_size_ms)
    with progress_bar(console) as progress:
        task = progress.add_task("analysing", total=len(recordings))
        jobs = zip(recordings, csv_paths, png_paths, masks, strict=True)
        for recording, csv_path, png_path, mask in jobs:
            progress.update(task, description=f"analysing {recording.path.name}")
            score = _analyze_one(
                progress.console,
                recording=recording,
                settings=settings,
                vad=vad,
                csv_path=csv_path,
                png_path=png_path,
                labels=mask,
            )
            if score is not None:
                total.merge(score)
            progress.advance(task)
    if labels is not None:
        console.print(score_table(f"all {len(recordings)} recordings against their labels", total))


def _analyze_one(
    console: Console,
    *,
    recording: Recording,
    settings: Settings,
    vad: VadChoice,
    csv_path: Path | None,
    png_path: Path | None,
    labels: Mask | None = None,
) -> FrameScore | None:
    """Analyse one recording, print its summary (and its score against ``labels``), then
    write its CSV and plot."""
    try:
        gate = build_gate(settings, vad.value)
    except (ConfigError, RuntimeError, ValueError) as error:
        fail(f"cannot build the {vad.value} VAD: {error}")
    result = analyze_pcm(recording.path.name, recording.pcm, settings, gate)
    print_summary(console, result.summary, recording.channel_note)
    score = None
    if labels is not None:
        frame_ms = result.summary.frame_ms
        score = print_label_report(console, recording.path.name, result.sent, labels, frame_ms)
    if csv_path is not None:
        write_frames_csv(csv_path, result, labels)
        console.print(f"frames CSV: {csv_path}", soft_wrap=True)
    if png_path is not None:
        render_timeline(recording.pcm, result, settings, vad.value, png_path, labels=labels)
        console.print(f"timeline plot: {png_path}", soft_wrap=True)
    return score


@app.command()
def sample(
    out: Annotated[Path, typer.Argument(help="WAV file to write (8 kHz mono 16-bit).")],
    noise: Annotated[
        str, typer.Option("--noise", help=f"Noise scene: {', '.join(NOISE_BEDS)}.")
    ] = "street",
    snr: Annotated[float, typer.Option("--snr", help="Speech-to-noise ratio in dB.")] = 10.0,
    seed: Annotated[int, typer.Option("--seed", help="Random seed of the noise scene.")] = 7,
    labels: Annotated[
        Path | None,
        typer.Option(
            "--labels",
            help="Also write where the caller speaks as an Audacity label track, for "
            "analyze --labels and tune.",
        ),
    ] = None,
) -> None:
    """Write the demo recording: a caller saying three sentences in a noisy place, by phone.

    Try: callgate sample out/sample.wav && callgate analyze out/sample.wav
    --frames-csv out/sample.csv --plot out/sample.png
    """
    if noise not in NOISE_BEDS:
        fail(f"--noise {noise!r} is not a scene; choose one of {', '.join(NOISE_BEDS)}")
    call = make_sample(noise=noise, snr_db=snr, seed=seed)
    write_sample(out, call)
    if labels is not None:
        text = format_labels(list(call.speech_spans_s))
        write_atomic(labels, lambda temp: temp.write_text(text, encoding="utf-8"))
    spans = ", ".join(f"{start:.2f}-{end:.2f}" for start, end in call.speech_spans_s)
    voice = "espeak-ng" if call.used_espeak else "speech-like synthesis (espeak-ng not found)"
    Console().print(
        f"wrote {out}: {len(call.pcm) / 8000:.1f} s, {noise} noise at {snr:g} dB SNR, "
        f"{voice}; speech at {spans} s",
        soft_wrap=True,
    )


@app.command()
def serve(
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="NAME=VALUE", help="Override a setting (repeatable)."),
    ] = None,
    json_logs: Annotated[
        bool, typer.Option("--json-logs", help="One JSON object per log line.")
    ] = False,
) -> None:
    """Run the call server: Twilio's voice webhook and media stream, bridged to the model.

    HOST, PORT and PUBLIC_URL come from the settings. SIGTERM or Ctrl-C closes live calls
    and shuts down cleanly.
    """
    import uvicorn  # noqa: PLC0415

    from callgate.server.app import CallgateServer, create_app  # noqa: PLC0415
    from callgate.server.logs import configure_logging  # noqa: PLC0415

    settings = settings_from(set_ or [])
    configure_logging(json_logs=json_logs)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_config=None,
        ws_max_size=settings.max_media_message_bytes,
        ws_per_message_deflate=False,  # base64 mu-law barely compresses; deflate costs CPU
    )
    CallgateServer(config).run()


@app.command()
def call(
    *,
    url: Annotated[
        str,
        typer.Argument(
            help="The server: its base URL (http://127.0.0.1:8080) or the media WebSocket "
            "URL (ws://host/twilio/media).",
            show_default=False,
        ),
    ],
    wav: Annotated[
        Path | None,
        typer.Option("--wav", help="Play this recording as the caller (WAV or raw mu-law)."),
    ] = None,
    say: Annotated[
        list[str] | None,
        typer.Option(
            "--say",
            metavar="TEXT",
            help="Speak this sentence with espeak-ng (repeatable; spoken in order).",
        ),
    ] = None,
    noise: Annotated[
        str | None,
        typer.Option("--noise", help=f"Mix in a noise scene: {', '.join(NOISE_BEDS)}."),
    ] = None,
    snr: Annotated[
        float, typer.Option("--snr", help="Speech-to-noise ratio with --noise, in dB.")
    ] = 10.0,
    fast: Annotated[
        bool,
        typer.Option(
            "--fast",
            help="Send the caller's audio as fast as possible (the silent tail stays paced).",
        ),
    ] = False,
    out: Annotated[
        Path, typer.Option("--out", help="Stereo WAV to write: left caller, right agent.")
    ] = Path("out/call.wav"),
    pause_ms: Annotated[
        int, typer.Option("--pause-ms", min=0, help="Silence between --say sentences, in ms.")
    ] = 1500,
    voice: Annotated[str, typer.Option("--voice", help="espeak-ng voice for --say.")] = "en-us",
    tail_ms: Annotated[
        int,
        typer.Option(
            "--tail-ms", min=0, help="Silence after the caller's audio: time for the answer."
        ),
    ] = 6000,
    sign_with_token: Annotated[
        str | None,
        typer.Option(
            "--sign-with-token",
            metavar="TOKEN",
            help="Twilio auth token: send X-Twilio-Signature for servers that validate it.",
        ),
    ] = None,
    turns: Annotated[
        bool,
        typer.Option(
            "--turns",
            help="Converse: speak each --say sentence once the agent has finished speaking "
            "(--voice piper for the Piper voice), and hang up 15 s after the last one.",
        ),
    ] = False,
    api_token: Annotated[
        str | None,
        typer.Option(
            "--api-token",
            metavar="TOKEN",
            help="The server's API_TOKEN: show the live transcript and the stored lead.",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="With --turns: the gate's timeline of the caller (PNG)."),
    ] = None,
) -> None:
    """Call a running callgate server as Twilio would and record the conversation.

    The caller is a recording (--wav) or sentences spoken by espeak-ng (--say), optionally
    in a noise scene, sent as Twilio Media Streams over the WebSocket. A live timeline shows
    when the caller speaks, when agent audio arrives and barge-ins. Twilio carries no
    transcript, so the agent's words are only in the server's log. At the end a stereo WAV
    is written (left: caller as sent, right: agent as played, on one timeline; with --fast
    the agent side is shifted so the end of the burst meets the end of the caller's audio).
    Exit code 2: bad input, or the server is unreachable or refuses the call.
    """
    if (wav is None) == (not say):
        fail("give either --wav FILE or one or more --say TEXT")
    if turns:
        _converse(url, say or [], voice, noise, snr, out, plot, api_token, sign_with_token)
        return
    try:
        caller: CallerAudio
        if wav is not None:
            caller = wav_caller(wav, noise=noise, snr_db=snr)
        else:
            caller = spoken_caller(
                say or [], voice=voice, pause_ms=pause_ms, noise=noise, snr_db=snr
            )
        console = Console(highlight=False)
        outcome = asyncio.run(
            run_call(
                url, caller, console=console, fast=fast, tail_ms=tail_ms, token=sign_with_token
            )
        )
    except CallError as error:
        fail(str(error))
    try:
        write_stereo(out, outcome.stereo)
    except OSError as error:
        fail(f"{out}: cannot write ({error.strerror or error})")
    print_call_summary(console, outcome, out)


def _converse(  # noqa: PLR0917  (the command's own options, passed straight through)
    url: str,
    texts: list[str],
    voice: str,
    noise: str | None,
    snr: float,
    out: Path,
    plot: Path | None,
    api_token: str | None,
    sign_token: str | None,
) -> None:
    """``callgate call --turns``: see :mod:`callgate.cli.conversation`."""
    from callgate.cli.conversation import (  # noqa: PLC0415
        print_lead,
        run_conversation,
        turn_taking_caller,
    )

    console = Console(highlight=False)
    try:
        caller = turn_taking_caller(texts, voice=voice, noise=noise, snr_db=snr)
        convo = asyncio.run(
            run_conversation(
                url, caller, console=console, api_token=api_token, sign_token=sign_token
            )
        )
    except CallError as error:
        fail(str(error))
    try:
        write_stereo(out, convo.stereo)
        if plot is not None:
            settings = settings_from([])
            gate = settings.build_gate("gate")
            analysis = analyze_pcm(out.name, convo.caller_pcm, settings, gate)
            render_timeline(convo.caller_pcm, analysis, settings, "gate", plot)
    except OSError as error:
        fail(f"cannot write the call's files ({error.strerror or error})")
    print_lead(console, convo, out, plot)


@app.command()
def peer(
    port: Annotated[int, typer.Option("--port", help="Port to listen on (127.0.0.1).")] = 9000,
    realtime: Annotated[
        bool, typer.Option("--realtime/--fast", help="Stream answers in real time.")
    ] = True,
) -> None:
    """Run the local Realtime-protocol peer, to try callgate serve without an OpenAI account.

    It answers every turn with a short tone. Point the server at it with
    --set OPENAI_WEBSOCKET_BASE_URL=ws://127.0.0.1:PORT/v1 --set OPENAI_BASE_URL=http://127.0.0.1:PORT/v1
    """
    from callgate.peers.realtime_records import PeerOptions  # noqa: PLC0415
    from callgate.peers.realtime_server import RealtimePeer  # noqa: PLC0415

    async def run() -> None:
        async with RealtimePeer(PeerOptions(pace=1.0 if realtime else 0.0), port=port) as server:
            Console().print(f"Realtime peer listening at {server.url} (Ctrl-C to stop)")
            await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


def main() -> None:
    """Entry point of the ``callgate`` console script."""
    app()
