"""A conversation backend on the OpenAI Agents SDK, over the Chat Completions API.

One :class:`AgentsSdkAgent` per call. Each caller turn is one ``Runner.run`` of an SDK
``Agent`` whose model is ``OpenAIChatCompletionsModel`` (so any OpenAI-compatible
``POST /v1/chat/completions`` endpoint works) and whose two tools are the form tools of
:mod:`callgate.conversation.tools` (``save_field``, ``end_call``), with their exact JSON
schemas. The conversation history is kept between turns (``result.to_input_list()``).

- :meth:`AgentsSdkAgent.start` needs no model call: the form's greeting and first question,
  recorded in the history as the assistant's first message.
- ``say`` is every assistant text of the turn (a model may speak beside a tool call), in
  order; usually that is just the model's final text.
- An accepted ``end_call`` ends the run at once (no further model call) and the reply
  carries ``EndCall``; without text from the model, the form's closing line is said.
- A failed turn (API error, network, timeout, ``max_turns`` overrun, bad model output) is
  retried once from the same history; then the reply is a short apology in the caller's
  language with ``EndCall("agent_error")``. Nothing is raised to the server.

Tracing is off unless asked for: the SDK's trace exporter would upload callers' personal
data, and it needs api.openai.com, which a local or third-party endpoint does not provide.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any

from agents import (
    Agent,
    FunctionTool,
    FunctionToolResult,
    ItemHelpers,
    MessageOutputItem,
    Model,
    ModelSettings,
    OpenAIChatCompletionsModel,
    RunConfig,
    RunContextWrapper,
    Runner,
    ToolsToFinalOutputResult,
    TResponseInputItem,
)
from agents.tool_context import ToolContext
from openai import AsyncOpenAI

from callgate.config import Settings
from callgate.conversation.agents.base import AgentReply, EndCall
from callgate.conversation.extract import detect_language
from callgate.conversation.form import Form, LeadState
from callgate.conversation.tools import FormTools, form_instructions, tool_schemas
from callgate.realtime.link import openai_client

logger = logging.getLogger(__name__)

_PHRASES: dict[str, dict[str, str]] = {
    "en": {
        "apology": "Sorry, we are having technical difficulties. Please call again later.",
        "bye": "Thank you for calling. Goodbye!",
    },
    "he": {
        "apology": "סליחה, יש לנו תקלה טכנית. אנא התקשרו שוב מאוחר יותר.",
        "bye": "תודה שהתקשרת, להתראות!",
    },
}


class AgentsSdkAgent:
    """Fills a :class:`Form` with a chat model through the Agents SDK. Implements ``Agent``.

    ``model`` is any Agents SDK model (see :meth:`from_settings` for the usual one).
    ``language`` fixes the language; None follows the caller (Hebrew letters -> "he") among
    the form's languages and starts in ``default_language`` (None: the form's first).
    ``max_turns`` bounds model calls per caller turn; ``turn_timeout_s`` bounds one attempt.
    ``apology`` overrides the apology text per language. Read ``lead`` for the result.
    """

    def __init__(
        self,
        form: Form,
        model: Model,
        *,
        instructions: str = "",
        language: str | None = None,
        default_language: str | None = None,
        region: str = "US",
        clock: Callable[[], datetime] = datetime.now,
        max_turns: int = 6,
        turn_timeout_s: float = 20.0,
        retries: int = 1,
        apology: Mapping[str, str] | None = None,
        model_settings: ModelSettings | None = None,
        tracing: bool = False,
    ) -> None:
        if max_turns < 1:
            raise ValueError("max_turns must be >= 1")
        if retries < 0:
            raise ValueError("retries must be >= 0")
        self.form = form
        self.model = model
        self.tools = FormTools(form, region=region, clock=clock)
        self.history: list[TResponseInputItem] = []
        """The conversation as Agents SDK input items (what the next run starts from)."""
        fixed = language if language in form.languages else None
        self.language = fixed or (
            default_language if default_language in form.languages else form.languages[0]
        )
        self._language_locked = fixed is not None
        self._instructions = instructions
        self._max_turns = max_turns
        self._turn_timeout_s = turn_timeout_s
        self._retries = retries
        self._apology = dict(apology or {})
        self._model_settings = model_settings or ModelSettings()
        self._run_config = RunConfig(tracing_disabled=not tracing)
        self._function_tools = [self._function_tool(s) for s in tool_schemas(form)]
        self._agents: dict[str, Agent[None]] = {}
        self._turn_end: EndCall | None = None
        self._ended: AgentReply | None = None
        self._reported: dict[str, str] = {}  # the lead as the server knows it from our replies
        self._reported_confirmed: set[str] = set()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        form: Form,
        client: AsyncOpenAI | None = None,
        *,
        clock: Callable[[], datetime] = datetime.now,
        max_turns: int = 6,
        turn_timeout_s: float = 20.0,
    ) -> AgentsSdkAgent:
        """The agent for one call: ``AGENT_MODEL`` over Chat Completions on ``client``.

        ``client`` None builds one with :func:`~callgate.realtime.link.openai_client`; pass
        the server's shared client instead (building one costs ~20 ms of blocking work).
        """
        model = OpenAIChatCompletionsModel(
            model=settings.agent_model, openai_client=client or openai_client(settings)
        )
        english_apology = settings.apology_text.strip()
        return cls(
            form,
            model,
            instructions=settings.agent_instructions,
            language=settings.transcription_language or None,
            region=settings.default_region,
            clock=clock,
            max_turns=max_turns,
            turn_timeout_s=turn_timeout_s,
            apology={"en": english_apology} if english_apology else None,
        )

    @property
    def lead(self) -> LeadState:
        """The lead collected so far (normalized values, confirmations, rejected answers)."""
        return self.tools.lead

    # --- Agent protocol -----------------------------------------------------------------

    async def start(self) -> AgentReply:
        """The greeting and first question; no model call. Recorded in the history."""
        first = next((f for f in self.form.fields if f.required), self.form.fields[0])
        say = f"{self._form_text(self.form.greeting)} {self._form_text(first.prompt)}"
        self.history.append({"role": "assistant", "content": say})
        return AgentReply(say, self.language)

    async def on_caller_turn(self, text: str) -> AgentReply:
        """One model run over the caller's words; failures end the call with an apology."""
        if self._ended is not None:
            # The caller spoke after the goodbye (it was cut off): say it again, end again.
            return replace(self._ended, field_updates={}, confirmed=frozenset())
        lang = detect_language(text)
        if not self._language_locked and lang in self.form.languages:
            self.language = lang
        turn_input: list[TResponseInputItem] = [*self.history, {"role": "user", "content": text}]
        self._turn_end = None
        said = await self._run(turn_input)
        # Against what was reported, not the lead at the start of this turn: a turn that
        # was cancelled (the caller barged in) still had its tool calls applied.
        lead = self.lead.as_dict()
        updates = {k: v for k, v in lead.items() if self._reported.get(k) != v}
        self._reported = lead
        confirmed = frozenset(self.lead.confirmed - self._reported_confirmed)
        self._reported_confirmed = set(self.lead.confirmed)
        end = self._turn_end
        if end is None and said is not None:
            return AgentReply(said, self.language, updates, confirmed=confirmed)
        # The call ends here: the model ended it, or every attempt failed.
        if said is None:
            self.history = turn_input
        if end is None:
            end = EndCall("agent_error")
            say = self._apology.get(self.language) or self._phrase("apology")
        elif said:
            say = said
        elif end.reason == "lead_complete":
            say = self._form_text(self.form.closing)
        else:
            say = self._phrase("bye")
        if not said:
            self.history.append({"role": "assistant", "content": say})
        self._ended = AgentReply(say, self.language, updates, end, confirmed)
        return self._ended

    def instruct(self, text: str) -> None:
        """The model reads it before its next reply (it joins the history)."""
        self.history.append({"role": "system", "content": text})

    async def _run(self, turn_input: list[TResponseInputItem]) -> str | None:
        """Run the turn, retrying; the assistant's texts joined, or None if every try failed.

        On success the history becomes the run's input list. An ``end_call`` accepted in a
        try that then failed still counts (the tool ran; the caller must not be kept).
        """
        for attempt in range(1, self._retries + 2):
            try:
                async with asyncio.timeout(self._turn_timeout_s):
                    result = await Runner.run(
                        self._agent(),
                        turn_input,
                        max_turns=self._max_turns,
                        run_config=self._run_config,
                    )
            except Exception as exc:
                final = attempt > self._retries or self._turn_end is not None
                logger.log(
                    logging.ERROR if final else logging.WARNING,
                    "agents sdk turn failed (attempt %d of %d): %s: %s",
                    attempt,
                    self._retries + 1,
                    type(exc).__name__,
                    exc,
                    exc_info=exc if final else None,
                )
                if final:
                    return None
                continue
            self.history = result.to_input_list()
            return " ".join(
                t
                for item in result.new_items
                if isinstance(item, MessageOutputItem)
                and (t := ItemHelpers.text_message_output(item).strip())
            )
        return None

    # --- the SDK agent and its tools ----------------------------------------------------

    def _agent(self) -> Agent[None]:
        """The SDK agent in the current language (instructions follow the language)."""
        agent = self._agents.get(self.language)
        if agent is None:
            agent = Agent[None](
                name="callgate",
                instructions=form_instructions(self.form, self.language, base=self._instructions),
                model=self.model,
                model_settings=self._model_settings,
                tools=list(self._function_tools),
                tool_use_behavior=self._stop_after_end_call,
            )
            self._agents[self.language] = agent
        return agent

    def _function_tool(self, schema: dict[str, Any]) -> FunctionTool:
        name: str = schema["name"]

        async def invoke(ctx: ToolContext[Any], arguments: str) -> str:
            outcome = self.tools.call(name, arguments)
            if outcome.end_call is not None:
                self._turn_end = outcome.end_call
            if not outcome.ok:
                logger.debug("tool %s refused: %s", name, outcome.output)
            return outcome.output

        # strict mode would rewrite the schema (every property required, no defaults), and
        # save_field's "confirmed" is optional: send the schema as tool_schemas() wrote it.
        return FunctionTool(
            name=name,
            description=schema["description"],
            params_json_schema=json.loads(json.dumps(schema["parameters"])),
            on_invoke_tool=invoke,
            strict_json_schema=False,
        )

    def _stop_after_end_call(
        self, ctx: RunContextWrapper[Any], results: list[FunctionToolResult]
    ) -> ToolsToFinalOutputResult:
        """After tools ran: an accepted end_call ends the run, else the model goes on."""
        if self._turn_end is not None:
            return ToolsToFinalOutputResult(is_final_output=True, final_output="")
        return ToolsToFinalOutputResult(is_final_output=False)

    # --- helpers ------------------------------------------------------------------------

    def _phrase(self, key: str) -> str:
        return _PHRASES.get(self.language, _PHRASES["en"])[key]

    def _form_text(self, texts: dict[str, str]) -> str:
        return texts.get(self.language) or texts[self.form.languages[0]]
