"""What every ``callgate`` command shares: the one-line error with exit code 2, and
settings from ``--set NAME=VALUE`` pairs."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from callgate.cli.recording import (
    InputFormat,
    Recording,
    RecordingError,
    expand_inputs,
    load_recording,
    parse_channel,
)
from callgate.config import ConfigError, Settings, load_settings

USAGE_ERROR = 2
"""Exit code of a user error: a bad input, setting or option. Nothing is written then."""


class VadChoice(enum.StrEnum):
    """Which frame classifier to replay: the SNR gate or the fallback's energy VAD."""

    GATE = "gate"
    LEGACY = "legacy"


VadOption = Annotated[VadChoice, typer.Option("--vad", help="Which classifier to replay.")]
FormatOption = Annotated[
    InputFormat,
    typer.Option("--format", help="Read inputs as WAV or raw mu-law; auto: by file ending."),
]


def _channel(value: str | int) -> int:
    if isinstance(value, int):  # the default comes through the parser as it is
        return value
    try:
        return parse_channel(value)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


ChannelOption = Annotated[
    int,
    typer.Option(
        "--channel",
        parser=_channel,
        metavar="N|mix",
        help="Which channel of a multi-channel WAV is the caller: 1 (the default: the caller "
        "in callgate call's and Twilio's dual-channel recordings), 2, ..., or mix.",
    ),
]


def fail(message: str) -> NoReturn:
    """One plain line on stderr (never wrapped, so the file name stays whole), exit 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(USAGE_ERROR)


def parse_overrides(pairs: list[str]) -> dict[str, str]:
    """``["SNR_START_NORMAL=7", ...]`` to a dict; a pair without ``=`` is a usage error."""
    overrides: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--set expects NAME=VALUE, got {pair!r}")
        overrides[name.strip()] = value.strip()
    return overrides


def read_inputs(inputs: list[Path], fmt: InputFormat, channel: int) -> list[Recording]:
    """Every recording the inputs name (folders expanded), or exit 2 naming the bad file."""
    try:
        return [load_recording(path, fmt, channel) for path in expand_inputs(inputs, fmt)]
    except RecordingError as error:
        fail(str(error))


def settings_from(pairs: list[str]) -> Settings:
    """The environment, ``.env`` and the ``--set`` pairs, validated; else exit 2."""
    try:
        return load_settings(parse_overrides(pairs))
    except ConfigError as error:
        fail(str(error))


def progress_bar(console: Console) -> Progress:
    """The bar every long command shows: what it is doing, how far, for how long."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )
