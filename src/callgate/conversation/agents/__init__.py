"""Conversation agents: what to say next and which lead fields were learned.

:class:`~callgate.conversation.agents.base.Agent` is the seam; ``local`` is the backend
that needs no cloud; ``sdk`` runs an OpenAI Agents SDK agent. On the Realtime path the
speech model itself fills the form through function tools (``callgate.conversation.tools``).
"""

from callgate.conversation.agents.base import Agent, AgentReply, EndCall, EndReason

__all__ = ["Agent", "AgentReply", "EndCall", "EndReason"]
