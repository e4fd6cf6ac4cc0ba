"""Writing calls as they happen, and reading them back as plain dataclasses.

Every write commits at once: if the process dies mid-call, what was said so far is on disk.
``finish_call`` ends the call and queues its CRM delivery in one transaction, so an ended
call always has exactly one outbox row (the transactional-outbox pattern).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import selectinload

from callgate.storage.models import Call, Event, Field, Outbox, Turn, utcnow


class UnknownCallError(LookupError):
    """No call with this ``call_sid`` was started."""


@dataclass(frozen=True, slots=True)
class CallStats:
    """The gate's statistics for one call (what was sent to the model vs withheld)."""

    frames_in: int = 0
    frames_sent: int = 0
    frames_withheld: int = 0
    audio_sent_s: float = 0.0
    audio_withheld_s: float = 0.0
    est_cost_saved_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class CallSummary:
    """One row of ``calls``, detached from the database."""

    call_sid: str
    stream_sid: str | None
    from_number: str | None
    to_number: str | None
    started_at: datetime
    ended_at: datetime | None
    status: str
    end_reason: str | None
    language: str | None
    stats: CallStats


@dataclass(frozen=True, slots=True)
class TurnRecord:
    seq: int
    speaker: str
    text: str
    start_ms: int | None
    end_ms: int | None
    interrupted: bool


@dataclass(frozen=True, slots=True)
class NewTurn:
    """A turn to store: what :meth:`CallRepository.sync_turns` takes."""

    speaker: str
    text: str
    start_ms: int | None = None
    end_ms: int | None = None
    interrupted: bool = False


def _same_turn(row: Turn, turn: NewTurn) -> bool:
    return (row.speaker, row.text, row.start_ms, row.end_ms, row.interrupted) == (
        turn.speaker,
        turn.text,
        turn.start_ms,
        turn.end_ms,
        turn.interrupted,
    )


@dataclass(frozen=True, slots=True)
class FieldRecord:
    name: str
    value: str
    valid: bool
    confirmed: bool


@dataclass(frozen=True, slots=True)
class EventRecord:
    at_ms: int
    kind: str
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """A whole call: the row plus its turns (in order), fields and events."""

    call: CallSummary
    turns: list[TurnRecord] = field(default_factory=list)
    fields: list[FieldRecord] = field(default_factory=list)
    events: list[EventRecord] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The CRM payload: JSON types only, times as ISO 8601 UTC."""
        call = asdict(self.call)
        for key in ("started_at", "ended_at"):
            value = call[key]
            call[key] = value.isoformat() if value is not None else None
        return {
            "call": call,
            "turns": [asdict(t) for t in self.turns],
            "fields": [asdict(f) for f in self.fields],
            "events": [asdict(e) for e in self.events],
        }


def _summary(call: Call) -> CallSummary:
    return CallSummary(
        call_sid=call.call_sid,
        stream_sid=call.stream_sid,
        from_number=call.from_number,
        to_number=call.to_number,
        started_at=call.started_at,
        ended_at=call.ended_at,
        status=call.status,
        end_reason=call.end_reason,
        language=call.language,
        stats=CallStats(
            frames_in=call.frames_in,
            frames_sent=call.frames_sent,
            frames_withheld=call.frames_withheld,
            audio_sent_s=call.audio_sent_s,
            audio_withheld_s=call.audio_withheld_s,
            est_cost_saved_usd=call.est_cost_saved_usd,
        ),
    )


def _record(call: Call) -> CallRecord:
    return CallRecord(
        call=_summary(call),
        turns=[
            TurnRecord(t.seq, t.speaker, t.text, t.start_ms, t.end_ms, t.interrupted)
            for t in call.turns
        ],
        fields=[FieldRecord(f.name, f.value, f.valid, f.confirmed) for f in call.fields],
        events=[EventRecord(e.at_ms, e.kind, dict(e.detail)) for e in call.events],
    )


def _apply_stats(call: Call, stats: CallStats) -> None:
    call.frames_in = stats.frames_in
    call.frames_sent = stats.frames_sent
    call.frames_withheld = stats.frames_withheld
    call.audio_sent_s = stats.audio_sent_s
    call.audio_withheld_s = stats.audio_withheld_s
    call.est_cost_saved_usd = stats.est_cost_saved_usd


class CallRepository:
    """The call store's write and read API for the bridge and the ``/calls`` API."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessionmaker

    async def _call(self, session: AsyncSession, call_sid: str) -> Call:
        call = await session.scalar(select(Call).where(Call.call_sid == call_sid))
        if call is None:
            raise UnknownCallError(call_sid)
        return call

    async def start_call(
        self,
        call_sid: str,
        *,
        stream_sid: str | None = None,
        from_number: str | None = None,
        to_number: str | None = None,
        language: str | None = None,
        started_at: datetime | None = None,
    ) -> None:
        """Record a new live call; a repeated start (a reconnect) keeps the first row."""
        async with self._sessions.begin() as session:
            existing = await session.scalar(select(Call.id).where(Call.call_sid == call_sid))
            if existing is not None:
                return
            session.add(
                Call(
                    call_sid=call_sid,
                    stream_sid=stream_sid,
                    from_number=from_number,
                    to_number=to_number,
                    language=language,
                    started_at=started_at or utcnow(),
                    status="live",
                )
            )

    async def add_turn(
        self,
        call_sid: str,
        speaker: str,
        text: str,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        interrupted: bool = False,
    ) -> int:
        """Append a turn; returns its ``seq`` (0, 1, 2, ... per call)."""
        async with self._sessions.begin() as session:
            call = await self._call(session, call_sid)
            last = await session.scalar(select(func.max(Turn.seq)).where(Turn.call_id == call.id))
            seq = 0 if last is None else last + 1
            session.add(
                Turn(
                    call_id=call.id,
                    seq=seq,
                    speaker=speaker,
                    text=text,
                    start_ms=start_ms,
                    end_ms=end_ms,
                    interrupted=interrupted,
                )
            )
        return seq

    async def sync_turns(self, call_sid: str, turns: Sequence[NewTurn]) -> int:
        """Make the call's stored turns equal ``turns``; returns how many rows were written.

        A live transcript changes behind its end: a barge-in cuts an agent turn already
        stored, a late caller transcription belongs before the agent's answer, and caller
        fragments merge. Rows up to the first difference stay; the rest are rewritten, in
        one transaction, so a reader never sees half an update.
        """
        async with self._sessions.begin() as session:
            call = await self._call(session, call_sid)
            rows = list(
                await session.scalars(
                    select(Turn).where(Turn.call_id == call.id).order_by(Turn.seq)
                )
            )
            first = 0
            while (
                first < len(rows) and first < len(turns) and _same_turn(rows[first], turns[first])
            ):
                first += 1
            for row in rows[first:]:
                await session.delete(row)
            await session.flush()
            for seq, turn in enumerate(turns[first:], start=first):
                session.add(Turn(call_id=call.id, seq=seq, **asdict(turn)))
            return len(turns) - first

    async def set_field(
        self, call_sid: str, name: str, value: str, *, valid: bool = True, confirmed: bool = False
    ) -> None:
        """Set (or overwrite) one collected field."""
        async with self._sessions.begin() as session:
            call = await self._call(session, call_sid)
            row = await session.scalar(
                select(Field).where(Field.call_id == call.id, Field.name == name)
            )
            if row is None:
                session.add(
                    Field(call_id=call.id, name=name, value=value, valid=valid, confirmed=confirmed)
                )
            else:
                row.value, row.valid, row.confirmed = value, valid, confirmed

    async def add_event(
        self, call_sid: str, kind: str, at_ms: int, detail: dict[str, Any] | None = None
    ) -> None:
        """Record an event (``barge_in``, ``loop``, ``echo``, ``reconnect``, ``error``, ...)."""
        async with self._sessions.begin() as session:
            call = await self._call(session, call_sid)
            session.add(Event(call_id=call.id, at_ms=at_ms, kind=kind, detail=detail or {}))

    async def update_stats(self, call_sid: str, stats: CallStats) -> None:
        """Overwrite the gate statistics so far (call it now and then during a call)."""
        async with self._sessions.begin() as session:
            _apply_stats(await self._call(session, call_sid), stats)

    async def finish_call(
        self,
        call_sid: str,
        end_reason: str,
        stats: CallStats | None = None,
        *,
        ended_at: datetime | None = None,
    ) -> bool:
        """End the call and queue its CRM delivery, atomically.

        Returns False if the call had already ended (nothing is written twice).
        """
        async with self._sessions.begin() as session:
            call = await session.scalar(
                select(Call)
                .where(Call.call_sid == call_sid)
                .options(
                    selectinload(Call.turns), selectinload(Call.fields), selectinload(Call.events)
                )
                .with_for_update()
            )
            if call is None:
                raise UnknownCallError(call_sid)
            if call.status == "ended":
                return False
            call.status = "ended"
            call.end_reason = end_reason
            call.ended_at = ended_at or utcnow()
            if stats is not None:
                _apply_stats(call, stats)
            now = utcnow()
            session.add(
                Outbox(
                    call_id=call.id,
                    payload=_record(call).to_json(),
                    idempotency_key=call_sid,
                    created_at=now,
                    next_attempt_at=now,
                    attempts=0,
                    parked=False,
                )
            )
        return True

    async def get_call(self, call_sid: str) -> CallRecord | None:
        """The whole call, or None if unknown."""
        async with self._sessions() as session:
            call = await session.scalar(
                select(Call)
                .where(Call.call_sid == call_sid)
                .options(
                    selectinload(Call.turns), selectinload(Call.fields), selectinload(Call.events)
                )
            )
            return None if call is None else _record(call)

    async def list_calls(self, limit: int = 50, offset: int = 0) -> list[CallSummary]:
        """Calls, newest first (for ``GET /calls``)."""
        async with self._sessions() as session:
            rows = await session.scalars(
                select(Call)
                .order_by(Call.started_at.desc(), Call.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return [_summary(c) for c in rows]
