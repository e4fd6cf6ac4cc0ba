"""Which model, agent, speech engines and gate a call gets, from the settings.

Two paths share one call loop (:mod:`callgate.server.call`):

- the Realtime path: a :class:`~callgate.realtime.link.RealtimeLink` per call; the
  speech model fills the form through function tools (:class:`FormTools`);
- the fallback path (``USE_REALTIME_API=false``, or no API key: the embedded default): a
  :class:`~callgate.fallback.pipeline.PipelineLink` per call, with speech-to-text, an agent
  (the Agents SDK or the local form agent) and text-to-speech. The speech engines are
  loaded once per process and shared by every call.

The legacy energy VAD is built only here, only for the fallback path.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from callgate.audio.decision import FrameGate
from callgate.config import ConfigError, Settings
from callgate.conversation.agents.base import Agent
from callgate.conversation.agents.local import LocalFormAgent
from callgate.conversation.form import Form, FormError
from callgate.conversation.tools import FormTools
from callgate.fallback.pipeline import PipelineLink
from callgate.realtime.link import RealtimeLink, openai_client
from callgate.realtime.session import session_form
from callgate.speech.stt import SpeechToText, build_stt, unsupported_language
from callgate.speech.tts import TextToSpeech, build_tts

if TYPE_CHECKING:
    from callgate.server.call import ModelLink

log = logging.getLogger("callgate.server")

LinkOpener = Callable[[Settings, str], Awaitable["ModelLink"]]


def call_form(settings: Settings) -> Form:
    """The lead form: FORM_PATH, or the built-in one (the same object the session declares)."""
    try:
        return session_form(settings)
    except FormError as error:
        raise ConfigError(f"FORM_PATH: {error}") from None


def describe(settings: Settings) -> str:
    """One line that says which path and backends calls run on."""
    if settings.realtime_path:
        return (
            f"calls run on the OpenAI Realtime API ({settings.openai_realtime_model}); "
            f"the model fills the lead form with function tools"
        )
    line = (
        f"calls run on the fallback pipeline: {settings.fallback_vad} VAD, "
        f"{settings.stt_kind} speech-to-text, {settings.agent_kind} agent, "
        f"{settings.tts_kind} text-to-speech"
    )
    if not settings.openai_api_key.get_secret_value():
        line = "no OPENAI_API_KEY: embedded default, " + line + " (no cloud account needed)"
    return line


def agent_factory(settings: Settings, form: Form) -> Callable[[], Agent]:
    """Builds a fresh agent per call on the fallback path; cloud clients are shared."""
    if settings.agent_kind == "agents_sdk":
        # Imported here: the Agents SDK takes seconds to import, and only this backend needs it.
        from callgate.conversation.agents.sdk import AgentsSdkAgent  # noqa: PLC0415

        client = openai_client(settings)
        return lambda: AgentsSdkAgent.from_settings(settings, form, client)
    language = settings.transcription_language or None
    return lambda: LocalFormAgent(form, language=language, region=settings.default_region)


def call_gate(settings: Settings) -> FrameGate:
    """The gate of one call: the speech gate, or the legacy VAD on the fallback path only."""
    if settings.realtime_path:
        return settings.build_gate("gate")
    return settings.build_gate(settings.fallback_vad)


def call_tools(settings: Settings, form: Form) -> FormTools | None:
    """The form's tools for one call, when the Realtime model fills the form."""
    if settings.realtime_path and settings.agent_kind == "realtime":
        return FormTools(form, region=settings.default_region)
    return None


def realtime_opener(settings: Settings) -> LinkOpener:
    """The production opener: the official SDK against OPENAI_* settings, one shared client."""
    client = openai_client(settings)

    async def open_link(settings: Settings, call_sid: str) -> ModelLink:
        link = RealtimeLink(settings, call_sid=call_sid, client=client)
        await link.open()
        return link

    return open_link


@dataclass
class SpeechEngines:
    """The fallback path's speech engines, shared by all calls of the process."""

    stt: SpeechToText
    tts: TextToSpeech


def speech_engines(settings: Settings) -> SpeechEngines:
    """Build (not yet load) the speech engines; refuses a language the STT cannot do."""
    problem = unsupported_language(settings)
    if problem:
        raise ConfigError(problem)
    return SpeechEngines(build_stt(settings), build_tts(settings))


def pipeline_opener(settings: Settings, form: Form, engines: SpeechEngines) -> LinkOpener:
    """Opens a :class:`PipelineLink` per call; the agent greets when the stream starts."""
    new_agent = agent_factory(settings, form)

    async def open_link(settings: Settings, call_sid: str) -> ModelLink:
        link = PipelineLink(
            new_agent(),
            engines.stt,
            engines.tts,
            call_sid=call_sid,
            stt_language=settings.transcription_language or None,
            greet=settings.agent_greets_first,
            speculate_after_ms=settings.early_stt_ms,
        )
        await link.open()
        return link

    return open_link
