"""Records and options of the local Realtime peer.

A :class:`ConnectionRecord` holds what one connection received (events, audio) and sent,
for tests to assert on; :class:`PeerOptions` says how the peer behaves. The protocol itself
is in :mod:`.realtime_protocol`.

The model is a :data:`Responder`: it gets the conversation so far (every
:class:`PeerItem`: user transcripts, assistant replies, function calls and the outputs the
client sent for them) and returns either ``(transcript, audio)``, one spoken message, or
a :class:`PeerReply`, several output items in order: :class:`Say` (an audio message with
its transcript) and :class:`CallFunction` (a ``function_call`` item). For scripted tests,
:func:`scripted_responder` plays a list of turns, one per ``response.create``::

    responder = scripted_responder([
        [Say("Hi! What is your name?")],
        [CallFunction("save_field", {"name": "full_name", "value": "Dana Levi"})],
        lambda conversation: [Say(f"Saved: {conversation[-1].text}")],
    ])
    PeerOptions(responder=responder)
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from callgate.peers.realtime_validation import (
    new_id,
    tone,
)

__all__ = [
    "AudioAppend",
    "CallFunction",
    "ConnectionRecord",
    "PeerItem",
    "PeerOptions",
    "PeerOutput",
    "PeerReply",
    "ReceivedEvent",
    "Responder",
    "Say",
    "ScriptTurn",
    "ScriptedResponder",
    "Transcriber",
    "reply_outputs",
    "scripted_responder",
]

Transcriber = Callable[[bytes], str]
"""Committed user audio (session input format) -> transcript."""


@dataclass
class PeerItem:
    """One conversation item as the peer holds it.

    ``type`` is ``message``, ``function_call`` or ``function_call_output``. ``role`` is the
    message role, or the item type for the other two.
    """

    id: str
    role: str
    text: str = ""
    """Transcript (audio items), text (text items) or output (``function_call_output``)."""
    audio_ms: int = 0
    """Assistant audio generated so far, in ms: the bound for ``conversation.item.truncate``."""
    truncated_ms: int | None = None
    type: str = "message"
    call_id: str = ""
    """``function_call`` / ``function_call_output``: the call's id."""
    name: str = ""
    """``function_call``: the function's name."""
    arguments: str = ""
    """``function_call``: the arguments (JSON text) streamed so far."""


@dataclass(frozen=True)
class Say:
    """One spoken assistant message: ``text`` is the transcript.

    ``audio`` is in the session's output format; ``None`` makes a 440 Hz tone of 50 ms
    per character (0.3 to 3 s) in that format.
    """

    text: str
    audio: bytes | None = None


@dataclass(frozen=True)
class CallFunction:
    """One ``function_call`` output item. ``arguments`` may be a mapping (JSON-encoded
    here) or the exact JSON text; ``call_id`` defaults to a fresh ``call_…`` id."""

    name: str
    arguments: str | Mapping[str, Any] = "{}"
    call_id: str | None = None

    @property
    def arguments_json(self) -> str:
        """The arguments as the model writes them: JSON text."""
        if isinstance(self.arguments, str):
            return self.arguments
        return json.dumps(dict(self.arguments), ensure_ascii=False)


PeerOutput = Say | CallFunction


@dataclass(frozen=True)
class PeerReply:
    """A whole response: its output items, in order (``output_index`` 0, 1, ...)."""

    outputs: tuple[PeerOutput, ...]

    def __init__(self, outputs: Iterable[PeerOutput]) -> None:
        object.__setattr__(self, "outputs", tuple(outputs))


Responder = Callable[[Sequence[PeerItem]], tuple[str, bytes] | PeerReply]
"""Conversation so far -> ``(assistant transcript, audio in the output format)`` or a
:class:`PeerReply`."""


def reply_outputs(reply: tuple[str, bytes] | PeerReply) -> tuple[PeerOutput, ...]:
    """A responder's answer as output items: a plain ``(text, audio)`` is one :class:`Say`."""
    if isinstance(reply, PeerReply):
        return reply.outputs
    text, audio = reply
    return (Say(text, audio),)


ScriptTurn = (
    str
    | PeerOutput
    | Sequence[PeerOutput]
    | PeerReply
    | Callable[[Sequence[PeerItem]], tuple[str, bytes] | PeerReply | Sequence[PeerOutput]]
)
"""One scripted response: text to say, one output, a list of outputs, a :class:`PeerReply`,
or a function of the conversation returning any of those (or ``(text, audio)``)."""


class ScriptedResponder:
    """A :data:`Responder` that plays scripted turns in order, one per response.

    :attr:`conversations` keeps a copy of the conversation each turn was given, so a test
    can check what the "model" saw (e.g. the function outputs the client sent). After the
    last turn, ``then`` answers.
    """

    def __init__(self, turns: Iterable[ScriptTurn], then: Responder | None = None) -> None:
        self.turns = list(turns)
        self.then = then or default_responder
        self.conversations: list[tuple[PeerItem, ...]] = []

    @property
    def played(self) -> int:
        """How many responses have been made so far."""
        return len(self.conversations)

    def __call__(self, conversation: Sequence[PeerItem]) -> tuple[str, bytes] | PeerReply:
        index = len(self.conversations)
        self.conversations.append(tuple(dataclasses.replace(i) for i in conversation))
        if index >= len(self.turns):
            return self.then(conversation)
        turn = self.turns[index]
        made = turn(conversation) if callable(turn) else turn
        return _as_reply(made)


def _as_reply(
    made: str | PeerOutput | Sequence[PeerOutput] | PeerReply | tuple[str, bytes],
) -> tuple[str, bytes] | PeerReply:
    if isinstance(made, PeerReply):
        return made
    if isinstance(made, str):
        return PeerReply([Say(made)])
    if isinstance(made, Say | CallFunction):
        return PeerReply([made])
    if len(made) == 2 and isinstance(made[0], str) and isinstance(made[1], bytes):
        return (made[0], made[1])
    outputs = [o for o in made if isinstance(o, Say | CallFunction)]
    if len(outputs) != len(made):
        raise TypeError(f"a script turn must hold Say/CallFunction outputs, got {made!r}")
    return PeerReply(outputs)


def scripted_responder(
    turns: Iterable[ScriptTurn], then: Responder | None = None
) -> ScriptedResponder:
    """A responder that answers the n-th ``response.create`` with ``turns[n]``.

    Each turn lists the response's outputs in order, e.g. ``[Say("Thanks, Dana."),
    CallFunction("save_field", {"name": "full_name", "value": "Dana"})]``; a plain string is
    one :class:`Say`; a callable gets the conversation (user transcripts, function calls
    and outputs as :class:`PeerItem`) and returns the outputs. After the last turn,
    ``then`` (default: :func:`default_responder`) answers.
    """
    return ScriptedResponder(turns, then)


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
    """Sleep per audio chunk as a fraction of its duration: 1.0 = real time, 0 = no wait.
    Function call arguments stream at 20 ms per delta times ``pace``."""
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
