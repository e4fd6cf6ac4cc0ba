"""Conversation agents: what to say next and which lead fields were learned.

:class:`~callgate.conversation.agents.base.Agent` is the seam; ``local`` is the backend
that needs no cloud. Cloud backends (OpenAI Agents SDK, Realtime tools) plug in later.
"""

from callgate.conversation.agents.base import Agent, AgentReply, EndCall, EndReason

__all__ = ["Agent", "AgentReply", "EndCall", "EndReason"]
