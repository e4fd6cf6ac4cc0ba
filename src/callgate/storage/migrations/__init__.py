"""Alembic scripts of the call store, shipped as package data (see ``callgate.storage.db``)."""
