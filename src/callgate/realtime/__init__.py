"""The OpenAI Realtime edge: the session payload (``session``) and one call's link (``link``).

``session`` is pure and builds the GA ``session.update`` payload from :class:`Settings`.
``link`` wraps the official ``openai`` SDK connection for one call, with reconnection and
conversation replay. Local tests run both against :mod:`callgate.peers.realtime_server`.
"""

from callgate.realtime.link import (
    HistoryEntry,
    LinkEvent,
    LinkFailed,
    LinkReconnected,
    RealtimeLink,
    RealtimeLinkError,
)
from callgate.realtime.session import (
    FunctionTool,
    build_session,
    server_silence_ms,
    session_update_event,
    turn_detection_config,
)

__all__ = [
    "FunctionTool",
    "HistoryEntry",
    "LinkEvent",
    "LinkFailed",
    "LinkReconnected",
    "RealtimeLink",
    "RealtimeLinkError",
    "build_session",
    "server_silence_ms",
    "session_update_event",
    "turn_detection_config",
]
