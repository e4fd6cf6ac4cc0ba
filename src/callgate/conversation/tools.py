"""The lead form as model tools: ``save_field`` and ``end_call``, sans-I/O.

Both model-driven backends (the Agents SDK agent and the Realtime model with function
tools) get the same two tools and the same rules, so they cannot drift apart:

- ``save_field`` validates and normalizes the value (E.164, e-mail, ISO dates) before it
  counts. A value that does not validate is refused with the reason, so the model asks
  again instead of storing garbage.
- ``end_call`` is refused with reason ``lead_complete`` while a required field is missing
  or unconfirmed. ``caller_goodbye`` is always accepted: a caller who wants to go may go.

:class:`FormTools` never raises on what the model sends. Bad JSON, an unknown tool, an
unknown field: each gets an error result that names the problem, which the model reads.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callgate.conversation.agents.base import EndCall
from callgate.conversation.form import Form, Invalid, LeadState

END_REASONS = ("lead_complete", "caller_goodbye")


@dataclass(frozen=True)
class ToolOutcome:
    """What one tool call did: the text the model gets back, and what changed."""

    output: str
    """JSON text for the model (the function call's output)."""
    field_updates: dict[str, str] = field(default_factory=dict)
    end_call: EndCall | None = None
    ok: bool = True
    confirmed: frozenset[str] = frozenset()
    """Fields the caller confirmed with this call (as in ``AgentReply.confirmed``)."""


def tool_schemas(form: Form) -> list[dict[str, Any]]:
    """JSON-schema function definitions (name, description, parameters) of the two tools."""
    names = [f.name for f in form.fields]
    return [
        {
            "name": "save_field",
            "description": "Save one lead field the caller gave. The value is validated and "
            "normalized; if it is refused, ask the caller again. Set confirmed=true only "
            "after reading the value back and the caller agreeing.",
            "parameters": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "enum": names},
                    "value": {"type": "string", "description": "The value as the caller gave it."},
                    "confirmed": {"type": "boolean", "default": False},
                },
                "required": ["name", "value"],
                "additionalProperties": False,
            },
        },
        {
            "name": "end_call",
            "description": "End the call after your closing line has been spoken. "
            "lead_complete is refused while required fields are missing.",
            "parameters": {
                "type": "object",
                "properties": {"reason": {"type": "string", "enum": list(END_REASONS)}},
                "required": ["reason"],
                "additionalProperties": False,
            },
        },
    ]


def form_instructions(form: Form, language: str, base: str = "") -> str:
    """Instructions that tell a model what to collect, from the form, in ``language``."""
    lang = language if language in form.languages else form.languages[0]
    lines = [base.strip()] if base.strip() else []
    lines += [
        "You are on a phone call, collecting a lead. Speak briefly, one question at a time.",
        f"Start with: {form.greeting[lang]}",
        "Collect these fields, in this order, with the save_field tool:",
    ]
    for f in form.fields:
        flags = ["required" if f.required else "optional"]
        if f.confirm:
            flags.append("read it back and save again with confirmed=true once the caller agrees")
        lines.append(f'- {f.name} ({f.type}; {", ".join(flags)}): ask "{f.prompt[lang]}"')
    lines += [
        "If save_field refuses a value, say why and ask again.",
        f'When every required field is saved, say "{form.closing[lang]}" and call end_call '
        "with reason lead_complete.",
        "If the caller wants to leave before that, ask once for what is missing; if they "
        "still want to go, say goodbye and call end_call with reason caller_goodbye.",
    ]
    return "\n".join(lines)


def _result(ok: bool, lead: LeadState, **extra: Any) -> str:
    return json.dumps({"ok": ok, **extra, "missing": lead.missing_required()}, ensure_ascii=False)


class FormTools:
    """One call's lead, driven by tool calls. Read :attr:`lead` for the result."""

    def __init__(
        self, form: Form, *, region: str = "US", clock: Callable[[], datetime] = datetime.now
    ) -> None:
        self.form = form
        self.lead = LeadState(form, region=region)
        self._clock = clock
        self._names = [f.name for f in form.fields]

    def call(self, name: str, arguments: str | dict[str, Any]) -> ToolOutcome:
        """Run one tool call from the model; errors come back as results, never raised."""
        if isinstance(arguments, str):
            try:
                args = json.loads(arguments or "{}")
            except json.JSONDecodeError as exc:
                return self._refuse(f"arguments are not valid JSON: {exc.msg}")
        else:
            args = arguments
        if not isinstance(args, dict):
            return self._refuse("arguments must be a JSON object")
        if name == "save_field":
            return self.save_field(args)
        if name == "end_call":
            return self.end_call(args)
        return self._refuse(f"unknown tool {name!r}; the tools are save_field and end_call")

    def save_field(self, args: dict[str, Any]) -> ToolOutcome:
        field_name, value = args.get("name"), args.get("value")
        if not isinstance(field_name, str) or field_name not in self._names:
            return self._refuse(f"unknown field {field_name!r}; fields: {self._names}")
        if not isinstance(value, str) or not value.strip():
            return self._refuse(f"{field_name}: value must be a non-empty string")
        before = self.lead.values.get(field_name)
        result = self.lead.set(field_name, value, now=self._clock())
        if isinstance(result, Invalid):
            self.lead.reject(field_name, value)
            return self._refuse(f"{field_name}: {result.reason}; ask the caller again")
        confirmed: frozenset[str] = frozenset()
        if args.get("confirmed") is True:
            self.lead.confirm(field_name)
            confirmed = frozenset({field_name})
        updates = {field_name: result.value} if before != result.value else {}
        needs_confirm = self.lead.needs_confirmation(field_name)
        return ToolOutcome(
            _result(
                True,
                self.lead,
                field=field_name,
                value=result.value,
                needs_confirmation=needs_confirm,
            ),
            updates,
            confirmed=confirmed,
        )

    def end_call(self, args: dict[str, Any]) -> ToolOutcome:
        reason = args.get("reason")
        if reason not in END_REASONS:
            return self._refuse(f"reason must be one of {list(END_REASONS)}, got {reason!r}")
        if reason == "lead_complete" and not self.lead.complete:
            return self._refuse(
                "required fields are still missing or unconfirmed; ask for them first"
            )
        return ToolOutcome(_result(True, self.lead, ending=reason), end_call=EndCall(reason))

    def _refuse(self, error: str) -> ToolOutcome:
        return ToolOutcome(_result(False, self.lead, error=error), ok=False)
