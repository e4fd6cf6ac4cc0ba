"""The store process: ``python -m callgate.storage.store_worker DATABASE_URL``.

Reads write jobs from stdin and answers each on stdout, one at a time, in order. A frame
is a 4-byte big-endian length and a pickle: a job is ``(job_id, method, args, kwargs)``
naming a :class:`~callgate.storage.repository.CallRepository` method, an answer is
``(job_id, error_text_or_None)``. Job 0's answer says the engine is open. The pipe is
private to the server that started this process, so pickle is safe here. Logs go to
stderr; stdout carries frames only.
"""

from __future__ import annotations

import asyncio
import pickle
import struct
import sys
from typing import Any, BinaryIO

from callgate.storage.db import make_engine, make_sessionmaker
from callgate.storage.repository import CallRepository

HEADER = struct.Struct(">I")
CLOSE = "__close__"
"""The method name that asks the worker to close its engine and exit."""


def write_frame(out: BinaryIO, message: object) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    out.write(HEADER.pack(len(data)) + data)
    out.flush()


def read_frame(source: BinaryIO) -> Any:
    """The next message, or None at the end of the stream."""
    header = source.read(HEADER.size)
    if len(header) < HEADER.size:
        return None
    (size,) = HEADER.unpack(header)
    return pickle.loads(source.read(size))


def serve(url: str, source: BinaryIO, out: BinaryIO) -> None:
    loop = asyncio.new_event_loop()
    engine = make_engine(url)
    repository = CallRepository(make_sessionmaker(engine))
    write_frame(out, (0, None))
    try:
        while (job := read_frame(source)) is not None:
            job_id, method, args, kwargs = job
            if method == CLOSE:
                break
            error: str | None = None
            try:
                loop.run_until_complete(getattr(repository, method)(*args, **kwargs))
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
            write_frame(out, (job_id, error))
    finally:
        loop.run_until_complete(engine.dispose())
        loop.close()


def main() -> None:
    frames_out = sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the frames
    serve(sys.argv[1], sys.stdin.buffer, frames_out)


if __name__ == "__main__":
    main()
