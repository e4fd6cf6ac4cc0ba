"""The agent seam: text in, what to say (and whether to hang up) out.

The server calls :meth:`Agent.start` once when the call connects, speaks ``say``, then
calls :meth:`Agent.on_caller_turn` with each finished (merged) caller turn. When a reply
carries ``end_call``, the server plays ``say``, waits for it to finish, and hangs up with
that reason. Backends keep their own state; the server keeps the lead by applying
``field_updates``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

EndReason = Literal[
    "lead_complete",  # every required field collected and confirmed
    "caller_goodbye",  # the caller said goodbye (twice, if the lead was incomplete)
    "agent_error",  # the backend failed and cannot go on
]


@dataclass(frozen=True)
class EndCall:
    """A request to hang up after the reply has been played."""

    reason: EndReason


@dataclass(frozen=True)
class AgentReply:
    """One agent turn.

    ``say`` is spoken to the caller (may be empty). ``field_updates`` holds lead fields
    learned or changed this turn, already normalized (E.164, ISO 8601). ``language`` is the
    language of ``say`` ("en", "he", ...), so TTS and transcription can follow the caller.
    ``confirmed`` names the fields whose value the caller confirmed this turn (a read-back
    they agreed to); a field set again without it is no longer confirmed.
    """

    say: str
    language: str
    field_updates: dict[str, str] = field(default_factory=dict)
    end_call: EndCall | None = None
    confirmed: frozenset[str] = frozenset()


class Agent(Protocol):
    """A conversation backend. Async so cloud backends can await their model calls."""

    async def start(self) -> AgentReply:
        """The greeting and first question; call once, before any caller turn."""
        ...

    async def on_caller_turn(self, text: str) -> AgentReply:
        """React to one finished caller turn (transcribed text); never raises on odd text."""
        ...

    def instruct(self, text: str) -> None:
        """A rule of the call speaks to the agent (the loop rule: say it differently).

        A model-backed agent reads ``text`` before its next reply; the local form agent
        cannot read free text and words its next question another way instead.
        """
        ...
