"""When a call should end, sans-I/O: smart hang-up, silence, and the duration limit.

A phone agent that hangs up mid-sentence, or never hangs up, loses the caller's trust.
The rules, checked every gate frame on the caller's audio clock:

- **Requested end** (the agent's ``end_call``: lead complete, caller goodbye, an agent
  error). The hang-up waits until the agent is quiet: no response being generated and
  every queued frame of its audio confirmed played by Twilio's marks. If the marks stop
  coming (``grace_ms`` without progress), it hangs up anyway: a lost mark must not keep a
  line open. A caller who barges into the goodbye cancels the request, and the agent gets
  their words and may end again.
- **Silence**: the caller says nothing, while the agent is quiet, for
  ``silence_timeout_ms``: one prompt ("are you still there?"), then, after the same
  again, the call ends as ``silence``.
- **Duration**: the call ends as ``max_duration`` once it has lasted ``max_duration_ms``.

The caller hanging up and loops are ended by the call itself; they need no waiting.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class HangupOptions:
    """Limits of the ending rules (all in ms; 0 turns a limit off)."""

    silence_timeout_ms: int = 10_000
    max_duration_ms: int = 900_000
    grace_ms: int = 3_000
    frame_ms: int = 20

    def __post_init__(self) -> None:
        if self.frame_ms <= 0:
            raise ValueError(f"frame_ms must be positive, got {self.frame_ms}")
        for name in ("silence_timeout_ms", "max_duration_ms", "grace_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True, slots=True)
class PromptSilence:
    """Ask the caller whether they are still there (once per silence)."""


@dataclass(frozen=True, slots=True)
class HangUp:
    """Hang up now, for ``reason``."""

    reason: str


HangupAction = PromptSilence | HangUp


class HangupPolicy:
    """One call's ending rules. Feed :meth:`on_frame` every frame; act on what it returns."""

    def __init__(self, options: HangupOptions | None = None) -> None:
        self.options = options or HangupOptions()
        self.pending_reason: str | None = None
        self.prompted = False
        self._silent_ms = 0
        self._stall_ms = 0
        self._last_unheard = -1
        self._done = False

    def request_end(self, reason: str) -> None:
        """The agent asked to end after its current reply has been heard."""
        if self.pending_reason is None:
            self.pending_reason = reason
            self._stall_ms = 0
            self._last_unheard = -1

    def on_barge_in(self) -> None:
        """The caller spoke over the agent: a pending goodbye was not heard, so it waits."""
        self.pending_reason = None

    def on_frame(
        self, t_ms: int, *, caller_speaking: bool, agent_busy: bool, unheard_ms: int = 0
    ) -> list[HangupAction]:
        """One frame of the call at ``t_ms``.

        ``agent_busy``: a reply is being generated or its audio is still playing.
        ``unheard_ms``: agent audio queued at Twilio and not yet confirmed by a mark.
        """
        if self._done:
            return []
        o = self.options
        if o.max_duration_ms and t_ms >= o.max_duration_ms:
            return self._hang_up("max_duration")
        if self.pending_reason is not None:
            if not agent_busy:
                return self._hang_up(self.pending_reason)
            if unheard_ms != self._last_unheard:
                self._last_unheard, self._stall_ms = unheard_ms, 0
            else:
                self._stall_ms += o.frame_ms
            if o.grace_ms and self._stall_ms >= o.grace_ms:
                return self._hang_up(self.pending_reason)
            return []
        if caller_speaking or agent_busy or not o.silence_timeout_ms:
            if caller_speaking:
                self.prompted = False
            self._silent_ms = 0
            return []
        self._silent_ms += o.frame_ms
        if self._silent_ms < o.silence_timeout_ms:
            return []
        self._silent_ms = 0
        if not self.prompted:
            self.prompted = True
            return [PromptSilence()]
        return self._hang_up("silence")

    def _hang_up(self, reason: str) -> list[HangupAction]:
        self._done = True
        return [HangUp(reason)]
