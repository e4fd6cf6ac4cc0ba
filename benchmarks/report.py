"""Writing benchmark results into docs/benchmarks.md, one marked section per benchmark."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from pathlib import Path


def command_line(module: str, argv: list[str] | None, python: str = "python") -> str:
    """The command that reproduces this run, for the "Generated ... by" line."""
    shown = sys.argv[1:] if argv is None else argv
    return f"{python} -m {module} {shlex.join(shown)}".strip()


def utc_minute() -> str:
    """Now, to the minute, as the benchmark sections date their runs."""
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def write_section(path: Path, name: str, body: str, heading: str = "") -> None:
    """Replace the ``<!-- NAME:start -->`` ... ``<!-- NAME:end -->`` section of ``path``.

    A missing section is appended under ``heading``, so reruns of a benchmark update its
    numbers in place and leave the hand-written reading around them alone.
    """
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    section = f"{start}\n{body}\n{end}"
    if start in text and end in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + section + tail
    else:
        title = f"## {heading}\n\n" if heading else ""
        text = text.rstrip("\n") + "\n\n" + title + section + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
