"""The call store: calls, turns, fields and events, and the outbox that feeds the CRM."""
