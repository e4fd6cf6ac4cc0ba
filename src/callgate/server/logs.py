"""Structured logs that carry the call SID.

Every log record made while a call is being handled carries that call's SID through a
context variable, so records from concurrent calls can be told apart. No logger has to be
passed around for this. Records are written as one JSON object per line when
``json_logs`` is set, and as readable text otherwise.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager

call_sid_var: contextvars.ContextVar[str] = contextvars.ContextVar("call_sid", default="-")


class _CallContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "call_sid") or record.call_sid in (None, "-"):
            record.call_sid = call_sid_var.get()
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "call_sid": getattr(record, "call_sid", "-"),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


def configure_logging(level: str = "INFO", *, json_logs: bool = False) -> None:
    """Install the call-aware handler on the root logger (idempotent)."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_callgate", False):
            root.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    handler._callgate = True  # type: ignore[attr-defined]
    handler.addFilter(_CallContext())
    handler.setFormatter(
        _JsonFormatter()
        if json_logs
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(call_sid)s] %(message)s")
    )
    root.addHandler(handler)
    root.setLevel(level.upper())


@contextmanager
def call_context(call_sid: str) -> Iterator[None]:
    """Tag every record made inside the block (and tasks started in it) with ``call_sid``."""
    token = call_sid_var.set(call_sid)
    try:
        yield
    finally:
        call_sid_var.reset(token)
