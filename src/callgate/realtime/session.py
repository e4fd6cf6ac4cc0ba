"""The GA Realtime ``session.update`` payload, built from callgate's settings.

Pure functions, no I/O. Every key is checked by mypy against the SDK's own TypedDicts
(``openai.types.realtime.RealtimeSessionCreateRequestParam`` and friends), and the tests
validate the result against the SDK's Pydantic models, so a renamed field breaks the build
rather than a live call.

Audio is ``audio/pcmu`` both ways: Twilio's 8 kHz mu-law goes to the model untouched and the
model's audio goes back to Twilio untouched (OpenAI Realtime guide, "audio formats").

Turn detection follows ``Settings.turn_detection`` (see the mission, "Turn-taking on a gated
stream"):

* ``client``: ``turn_detection`` is ``null``; callgate commits the buffer and sends
  ``response.create`` itself after ``END_OF_TURN_SILENCE_MS`` of gate silence.
* ``server_vad``: the model closes the turn, but it only ever sees the gated audio plus
  ``TURN_SILENCE_PADDING_MS`` of digital silence after each utterance. Its
  ``silence_duration_ms`` must therefore be shorter than that padding, or the turn never
  closes; :func:`server_silence_ms` picks it.
* ``semantic_vad``: the model's semantic end-of-turn detector, fed the same padded audio.

In both server modes ``interrupt_response`` is off by default: barge-in belongs to callgate,
which knows what the caller heard (Twilio marks) and filters the agent's own echo.

**The Realtime-native agent** (``realtime_path`` and ``agent_kind == "realtime"``, see
:func:`realtime_native`): the speech model collects the lead itself. :func:`build_session`
then declares the form's two function tools (``save_field``, ``end_call``, from
:func:`callgate.conversation.tools.tool_schemas`) with ``tool_choice: "auto"`` and sets
the instructions to :func:`~callgate.conversation.tools.form_instructions` of the form in
``TRANSCRIPTION_LANGUAGE`` (else the form's first language), with ``AGENT_INSTRUCTIONS``
as their first paragraph. The form is ``FORM_PATH`` or the built-in one, loaded once per
path (:func:`session_form`). Any other backend gets the session as before: no tools,
``AGENT_INSTRUCTIONS``. Nothing here sends a first ``response.create``; for the model to
greet first, the call asks for a response once the link is open.

``noise_reduction`` is left out: the SDK's ``RealtimeAudioConfigInputParam`` types it as a
non-optional object, so ``null`` cannot be written without a cast, and a new GA session
starts with noise reduction off anyway (``session.created`` shows ``null``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from openai.types.realtime import (
    AudioTranscriptionParam,
    RealtimeAudioConfigInputParam,
    RealtimeAudioConfigParam,
    RealtimeAudioInputTurnDetectionParam,
    RealtimeFunctionToolParam,
    RealtimeSessionCreateRequestParam,
    SessionUpdateEventParam,
)
from openai.types.realtime.realtime_audio_input_turn_detection_param import SemanticVad, ServerVad

from callgate.config import Settings
from callgate.conversation.form import Form, load_form
from callgate.conversation.tools import form_instructions, tool_schemas

__all__ = [
    "SERVER_VAD_MARGIN_MS",
    "FunctionTool",
    "build_session",
    "form_function_tools",
    "realtime_native",
    "server_silence_ms",
    "session_form",
    "session_update_event",
    "turn_detection_config",
]

SERVER_VAD_MARGIN_MS = 100
"""How much shorter than the silence padding the model's ``silence_duration_ms`` is, in ms."""

MIN_SERVER_SILENCE_MS = 100
"""The shortest ``silence_duration_ms`` callgate asks for, in ms."""

Eagerness = Literal["low", "medium", "high", "auto"]


@dataclass(frozen=True)
class FunctionTool:
    """One function the model may call (GA ``session.tools[]`` entry of type ``function``)."""

    name: str
    """Function name the model calls; letters, digits, ``_`` and ``-`` only."""
    description: str
    """When and why the model should call it; the model reads this."""
    parameters: Mapping[str, object] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    """JSON Schema of the arguments object."""

    def __post_init__(self) -> None:
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"tool name {self.name!r} must be non-empty [A-Za-z0-9_-]")
        if self.parameters.get("type") != "object":
            raise ValueError(f"tool {self.name!r}: parameters must be a JSON schema of type object")

    def to_param(self) -> RealtimeFunctionToolParam:
        """The SDK's ``RealtimeFunctionToolParam`` for this tool."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }


def realtime_native(settings: Settings) -> bool:
    """True when the Realtime model itself collects the lead with function tools."""
    return settings.realtime_path and settings.agent_kind == "realtime"


@functools.lru_cache(maxsize=8)
def _form_at(path: str) -> Form:
    return load_form(Path(path) if path else None)


def session_form(settings: Settings) -> Form:
    """The lead form of these settings: ``FORM_PATH``, or the built-in form when it is empty.

    Loaded once per path and shared (a :class:`Form` is immutable), so building a session
    per call does no file I/O. Raises :class:`~callgate.conversation.form.FormError` for an
    unusable file. Pass the same form to :class:`~callgate.conversation.tools.FormTools`.
    """
    return _form_at(settings.form_path)


def form_function_tools(form: Form) -> tuple[FunctionTool, ...]:
    """The form's ``save_field`` and ``end_call`` tools as :class:`FunctionTool`s."""
    return tuple(
        FunctionTool(schema["name"], schema["description"], schema["parameters"])
        for schema in tool_schemas(form)
    )


def _agent_instructions(settings: Settings, form: Form) -> str:
    language = settings.transcription_language or form.languages[0]
    return form_instructions(form, language, base=settings.agent_instructions)


def server_silence_ms(settings: Settings) -> int:
    """``silence_duration_ms`` for ``server_vad``: shorter than the digital-silence padding.

    The gate sends nothing in silence, so the model's VAD only sees the padding; a silence
    duration longer than the padding would never elapse. Raises ``ValueError`` when the
    padding is too short to leave any room.
    """
    room = settings.turn_silence_padding_ms - SERVER_VAD_MARGIN_MS
    if room < MIN_SERVER_SILENCE_MS:
        raise ValueError(
            f"TURN_SILENCE_PADDING_MS ({settings.turn_silence_padding_ms}) must be at least "
            f"{MIN_SERVER_SILENCE_MS + SERVER_VAD_MARGIN_MS} ms with TURN_DETECTION="
            f"{settings.turn_detection}: the model's VAD must see silence to end the turn"
        )
    return min(settings.end_of_turn_silence_ms, room)


def turn_detection_config(
    settings: Settings,
    *,
    interrupt_response: bool = False,
    create_response: bool = True,
    eagerness: Eagerness = "auto",
) -> RealtimeAudioInputTurnDetectionParam | None:
    """``audio.input.turn_detection`` for the configured mode; ``None`` (JSON null) = client."""
    mode = settings.turn_detection
    if mode == "client":
        return None
    if mode == "server_vad":
        server: ServerVad = {
            "type": "server_vad",
            "silence_duration_ms": server_silence_ms(settings),
            "create_response": create_response,
            "interrupt_response": interrupt_response,
        }
        return server
    if mode == "semantic_vad":
        server_silence_ms(settings)  # same padding requirement: the model needs silence
        semantic: SemanticVad = {
            "type": "semantic_vad",
            "eagerness": eagerness,
            "create_response": create_response,
            "interrupt_response": interrupt_response,
        }
        return semantic
    raise ValueError(f"unknown TURN_DETECTION {mode!r}")


def _transcription(settings: Settings) -> AudioTranscriptionParam:
    config: AudioTranscriptionParam = {"model": settings.transcription_model}
    if settings.transcription_language:
        config["language"] = settings.transcription_language
    return config


def build_session(
    settings: Settings,
    tools: Sequence[FunctionTool] = (),
    *,
    instructions: str | None = None,
    interrupt_response: bool = False,
    form: Form | None = None,
) -> RealtimeSessionCreateRequestParam:
    """The GA ``session`` object for ``session.update``.

    With the Realtime-native backend (:func:`realtime_native`) and no ``tools`` given, the
    tools are the form's and the default instructions are the form's (``form``, else
    :func:`session_form`). ``instructions`` overrides the default instructions (e.g.
    per-call context); ``tools`` overrides the default tools. Raises ``ValueError`` when
    the turn settings cannot work (see :func:`server_silence_ms`), ``FormError`` when the
    form file is unusable.
    """
    default_instructions = settings.agent_instructions
    if realtime_native(settings) and not tools:
        form = form or session_form(settings)
        tools = form_function_tools(form)
        default_instructions = _agent_instructions(settings, form)
    audio_input: RealtimeAudioConfigInputParam = {
        "format": {"type": "audio/pcmu"},
        "transcription": _transcription(settings),
        "turn_detection": turn_detection_config(settings, interrupt_response=interrupt_response),
    }
    audio: RealtimeAudioConfigParam = {
        "input": audio_input,
        "output": {"format": {"type": "audio/pcmu"}, "voice": settings.openai_voice},
    }
    session: RealtimeSessionCreateRequestParam = {
        "type": "realtime",
        "model": settings.openai_realtime_model,
        "instructions": default_instructions if instructions is None else instructions,
        "output_modalities": ["audio"],
        "audio": audio,
        "tools": [tool.to_param() for tool in tools],
    }
    if tools:
        session["tool_choice"] = "auto"
    return session


def session_update_event(
    settings: Settings,
    tools: Sequence[FunctionTool] = (),
    *,
    instructions: str | None = None,
    interrupt_response: bool = False,
    form: Form | None = None,
) -> SessionUpdateEventParam:
    """The whole ``session.update`` client event, for senders that want the envelope."""
    return {
        "type": "session.update",
        "session": build_session(
            settings,
            tools,
            instructions=instructions,
            interrupt_response=interrupt_response,
            form=form,
        ),
    }
