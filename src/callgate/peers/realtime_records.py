"""Records and options of the local Realtime peer.

A :class:`ConnectionRecord` holds what one connection received (events, audio) and sent,
for tests to assert on; :class:`PeerOptions` says how the peer behaves. The protocol itself
is in :mod:`.realtime_protocol`.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from callgate.peers.realtime_validation import (
    new_id,
    tone,
)

__all__ = [
    "AudioAppend",
    "ConnectionRecord",
    "PeerItem",
    "PeerOptions",
    "ReceivedEvent",
    "Responder",
    "Transcriber",
]

Transcriber = Callable[[bytes], str]
"""Committed user audio (session input format) -> transcript."""


@dataclass
class PeerItem:
    """One conversation item as the peer holds it."""

    id: str
    role: str
    text: str = ""
    """Transcript (audio items) or text (text items)."""
    audio_ms: int = 0
    """Assistant audio generated so far, in ms: the bound for ``conversation.item.truncate``."""
    truncated_ms: int | None = None


Responder = Callable[[Sequence[PeerItem]], tuple[str, bytes]]
"""Conversation so far -> (assistant transcript, assistant audio in the output format)."""


def default_transcriber(audio: bytes) -> str:
    """``[N ms of audio]`` for mu-law input (8 bytes per ms)."""
    return f"[{len(audio) // 8} ms of audio]"


def default_responder(_conversation: Sequence[PeerItem]) -> tuple[str, bytes]:
    """1.5 s of a 440 Hz mu-law tone with a fixed transcript."""
    return "This is the local peer speaking.", tone(1.5)


@dataclass(frozen=True)
class PeerOptions:
    """How the peer behaves; the defaults make a realistic but fast local API."""

    transcriber: Transcriber = default_transcriber
    responder: Responder = default_responder
    transcription_delay_s: float = 0.0
    """Delay before ``conversation.item.input_audio_transcription.completed``, in s."""
    pace: float = 0.0
    """Sleep per audio chunk as a fraction of its duration: 1.0 = real time, 0 = no wait."""
    chunk_ms: int = 100
    """Audio per ``response.output_audio.delta``, in ms."""
    vad_threshold_rms: float = 300.0
    """Server VAD: frame RMS (int16 scale) above which a 20 ms frame is speech."""
    semantic_silence_ms: int = 300
    """Silence that ends the turn in ``semantic_vad`` mode, in ms."""
    check_own_events: bool = True
    """Validate every sent event against the SDK's server-event models (peer self-test)."""


@dataclass(frozen=True)
class ReceivedEvent:
    """A client event as received: type, raw JSON payload, arrival time (monotonic s)."""

    type: str
    payload: dict[str, Any]
    at: float


@dataclass(frozen=True)
class AudioAppend:
    """The decoded bytes of one ``input_audio_buffer.append`` and its arrival time."""

    audio: bytes
    at: float


@dataclass
class ConnectionRecord:
    """Everything one connection saw, for assertions."""

    path: str
    headers: dict[str, str]
    model: str
    events: list[ReceivedEvent] = field(default_factory=list)
    appends: list[AudioAppend] = field(default_factory=list)
    sent: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    session: dict[str, Any] = field(default_factory=dict)
    items: list[PeerItem] = field(default_factory=list)
    closed: bool = False

    @property
    def audio(self) -> bytes:
        """All appended audio, concatenated in arrival order."""
        return b"".join(a.audio for a in self.appends)

    def received(self, kind: str) -> list[dict[str, Any]]:
        """Payloads of the received client events of one type."""
        return [e.payload for e in self.events if e.type == kind]

    def sent_types(self) -> list[str]:
        """Types of the server events sent, in order."""
        return [str(e["type"]) for e in self.sent]


def default_session(model: str) -> dict[str, Any]:
    """What ``session.created`` shows for a new GA session (server VAD, PCM 24 kHz)."""
    pcm = {"type": "audio/pcm", "rate": 24000}
    return {
        "type": "realtime",
        "object": "realtime.session",
        "id": new_id("sess"),
        "model": model,
        "output_modalities": ["audio"],
        "instructions": "",
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "prompt": None,
        "audio": {
            "input": {
                "format": dict(pcm),
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": {
                    "type": "server_vad",
                    "threshold": 0.5,
                    "prefix_padding_ms": 300,
                    "silence_duration_ms": 200,
                    "create_response": True,
                    "interrupt_response": True,
                },
            },
            "output": {"format": dict(pcm), "voice": "alloy", "speed": 1.0},
        },
    }


def merge_session(into: dict[str, Any], update: dict[str, Any]) -> None:
    """``session.update`` semantics: present keys replace, nested objects merge, null clears."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict) and key != "format":
            merge_session(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
