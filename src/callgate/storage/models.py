"""The call store's tables, as typed SQLAlchemy 2 models.

Only portable types are used (JSON, integers, floats, text, UTC datetimes) so that the same
schema runs on SQLite (one box, tests) and PostgreSQL (production, several workers). The
Alembic migration in ``migrations/versions`` creates exactly these tables; a test compares them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Deterministic constraint names: Alembic can then drop or alter them on both databases.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware datetime, stored in UTC.

    SQLite has no time zones and hands back naive values; this type normalises on the way in
    and re-attaches UTC on the way out, so callers always get aware datetimes.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware (UTC) datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC (the store's only time zone)."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base with the naming convention and the portable type map."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
    }


class Call(Base):
    """One phone call: who, when, how it ended, and the gate's statistics."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_sid: Mapped[str] = mapped_column(String(64), unique=True)
    stream_sid: Mapped[str | None] = mapped_column(String(64))
    from_number: Mapped[str | None] = mapped_column(String(32))
    to_number: Mapped[str | None] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(index=True)
    ended_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(8), default="live")  # "live" | "ended"
    end_reason: Mapped[str | None] = mapped_column(String(64))
    frames_in: Mapped[int] = mapped_column(default=0)
    frames_sent: Mapped[int] = mapped_column(default=0)
    frames_withheld: Mapped[int] = mapped_column(default=0)
    audio_sent_s: Mapped[float] = mapped_column(Float, default=0.0)
    audio_withheld_s: Mapped[float] = mapped_column(Float, default=0.0)
    est_cost_saved_usd: Mapped[float] = mapped_column(Float, default=0.0)
    language: Mapped[str | None] = mapped_column(String(16))

    turns: Mapped[list[Turn]] = relationship(
        order_by="Turn.seq", cascade="all, delete-orphan", passive_deletes=True
    )
    fields: Mapped[list[Field]] = relationship(
        order_by="Field.name", cascade="all, delete-orphan", passive_deletes=True
    )
    events: Mapped[list[Event]] = relationship(
        order_by="(Event.at_ms, Event.id)", cascade="all, delete-orphan", passive_deletes=True
    )


class Turn(Base):
    """One utterance of the caller or the agent, in call order (``seq`` from 0)."""

    __tablename__ = "turns"
    __table_args__ = (UniqueConstraint("call_id", "seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    seq: Mapped[int]
    speaker: Mapped[str] = mapped_column(String(16))  # "caller" | "agent"
    text: Mapped[str] = mapped_column(Text)
    start_ms: Mapped[int | None]
    end_ms: Mapped[int | None]
    interrupted: Mapped[bool] = mapped_column(Boolean, default=False)


class Field(Base):
    """A form field the agent collected; re-setting a name overwrites it."""

    __tablename__ = "fields"
    __table_args__ = (UniqueConstraint("call_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    value: Mapped[str] = mapped_column(Text)
    valid: Mapped[bool] = mapped_column(Boolean, default=True)
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False)


class Event(Base):
    """Something notable during the call (barge-in, loop, echo, reconnect, error, ...)."""

    __tablename__ = "events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at_ms: Mapped[int]
    kind: Mapped[str] = mapped_column(String(32))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Outbox(Base):
    """A finished call waiting for (or done with) delivery to the CRM.

    Written in the same transaction that ends the call, so no ended call lacks its row. A
    worker claims a row by setting ``claimed_until`` (a lease); if it dies, the row is due
    again once the lease has passed. Delivered rows keep ``delivered_at``; rows that failed
    ``max_attempts`` times are ``parked`` until ``callgate crm retry``.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index(None, "delivered_at", "parked", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), unique=True)
    payload: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    parked: Mapped[bool] = mapped_column(Boolean, default=False)
