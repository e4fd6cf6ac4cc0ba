"""Delivering finished calls to the CRM from the outbox table.

Rows are claimed in a short transaction that sets a lease (``claimed_until``); on PostgreSQL
the candidates are picked with ``FOR UPDATE SKIP LOCKED`` so several workers share the queue
without delivering a row twice. The HTTP POST happens outside any transaction, and the
outcome is written in a second short one. A worker that dies mid-delivery leaves its rows
claimed; they become due again when the lease runs out. Failures back off exponentially
with jitter and park after ``max_attempts``; nothing is ever dropped. The receiver gets an
``Idempotency-Key`` (the call SID), so the rare redelivery after a crash is harmless.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import ColumnElement, and_, func, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from callgate.storage.models import Outbox, utcnow

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SIGNATURE_HEADER = "X-Callgate-Signature"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def encode_payload(payload: dict[str, Any]) -> bytes:
    """The exact request body (compact, key-sorted JSON) that the signature covers."""
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, body: bytes) -> str:
    """The ``X-Callgate-Signature`` value: ``sha256=<hex HMAC-SHA256 of body>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _pending() -> ColumnElement[bool]:
    return and_(Outbox.delivered_at.is_(None), Outbox.parked.is_(False))


def _due(now: datetime) -> ColumnElement[bool]:
    return and_(
        _pending(),
        Outbox.next_attempt_at <= now,
        or_(Outbox.claimed_until.is_(None), Outbox.claimed_until <= now),
    )


@dataclass(frozen=True, slots=True)
class _Claim:
    id: int
    key: str
    payload: dict[str, Any]
    attempts: int


class OutboxWorker:
    """Posts due outbox rows to the CRM webhook; run several on one PostgreSQL if you like."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        url: str,
        secret: str,
        http: httpx.AsyncClient,
        max_attempts: int = 25,
        *,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        clock: Clock = utcnow,
        rng: random.Random | None = None,
        batch_size: int = 20,
        lease_s: float = 120.0,
        timeout_s: float = 10.0,
        poll_interval_s: float = 1.0,
    ) -> None:
        # A pass takes at most timeout_s of HTTP plus two short transactions; a lease that
        # ran out before the outcome is written would let another worker POST the row again.
        if lease_s <= timeout_s:
            raise ValueError("lease_s must exceed timeout_s, or a slow POST could be repeated")
        self._sessions = sessionmaker
        self._url = url
        self._secret = secret
        self._http = http
        self._max_attempts = max_attempts
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._clock = clock
        self._rng = rng or random.Random()
        self._batch_size = batch_size
        self._lease = timedelta(seconds=lease_s)
        self._timeout_s = timeout_s
        self._poll_interval_s = poll_interval_s

    def backoff_s(self, attempts: int) -> float:
        """Delay after the ``attempts``-th failure: exponential, capped, "equal jitter"."""
        exponent = min(max(attempts - 1, 0), 60)
        ceiling = min(self._backoff_max_s, self._backoff_initial_s * 2.0**exponent)
        return ceiling / 2 + self._rng.uniform(0, ceiling / 2)

    async def run_once(self) -> int:
        """Claim the due rows and try each once; returns how many were tried (0: none due)."""
        claims = await self._claim()
        if claims:
            errors = await asyncio.gather(*(self._deliver(c) for c in claims))
            await self._record(list(zip(claims, errors, strict=True)))
        return len(claims)

    async def run_forever(self, stop_event: asyncio.Event) -> None:
        """Deliver until ``stop_event`` is set; the pass in progress is finished first."""
        while not stop_event.is_set():
            try:
                tried = await self.run_once()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("crm outbox: database error, retrying: %s", exc)
                tried = 0
            if tried == 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop_event.wait(), self._poll_interval_s)

    async def _claim(self) -> list[_Claim]:
        now = self._clock()
        async with self._sessions.begin() as session:
            conn = await session.connection()
            candidates = (
                select(Outbox.id)
                .where(_due(now))
                .order_by(Outbox.next_attempt_at, Outbox.id)
                .limit(self._batch_size)
            )
            if conn.dialect.name == "postgresql":
                candidates = candidates.with_for_update(skip_locked=True)
            # The outer WHERE re-checks the lease: on SQLite (no row locks) two workers that
            # picked the same candidates still cannot both claim them.
            stmt = (
                update(Outbox)
                .where(Outbox.id.in_(candidates), _due(now))
                .values(claimed_until=now + self._lease)
                .returning(Outbox.id, Outbox.idempotency_key, Outbox.payload, Outbox.attempts)
                .execution_options(synchronize_session=False)
            )
            rows = (await session.execute(stmt)).all()
        return [_Claim(r.id, r.idempotency_key, r.payload, r.attempts) for r in rows]

    async def _deliver(self, claim: _Claim) -> str | None:
        """POST one row; returns None on a 2xx, else what went wrong."""
        body = encode_payload(claim.payload)
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: sign(self._secret, body),
            IDEMPOTENCY_HEADER: claim.key,
        }
        error: str | None = None
        try:
            response = await self._http.post(
                self._url, content=body, headers=headers, timeout=self._timeout_s
            )
            if not response.is_success:
                error = f"HTTP {response.status_code}: {response.text[:200]}"
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        return error

    async def _record(self, outcomes: list[tuple[_Claim, str | None]]) -> None:
        """Write a pass's outcomes in one short transaction and release the leases."""
        now = self._clock()
        async with self._sessions.begin() as session:
            for claim, error in outcomes:
                attempts = claim.attempts + 1
                values: dict[str, Any] = {
                    "attempts": attempts,
                    "claimed_until": None,
                    "last_attempt_at": now,
                }
                if error is None:
                    values |= {"delivered_at": now, "last_error": None}
                else:
                    parked = attempts >= self._max_attempts
                    values |= {"last_error": error, "parked": parked}
                    if not parked:
                        delay = timedelta(seconds=self.backoff_s(attempts))
                        values["next_attempt_at"] = now + delay
                    log.info("crm outbox: %s attempt %d failed: %s", claim.key, attempts, error)
                await session.execute(
                    update(Outbox)
                    .where(Outbox.id == claim.id, Outbox.delivered_at.is_(None))
                    .values(**values)
                    .execution_options(synchronize_session=False)
                )


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    call_sid: str
    attempts: int
    parked: bool
    error: str
    at: datetime | None


@dataclass(frozen=True, slots=True)
class OutboxStatus:
    """What ``callgate crm status`` shows."""

    pending: int
    due_now: int
    delivered: int
    parked: int
    oldest_pending_age_s: float | None
    last_errors: list[FailedDelivery]


async def outbox_status(
    sessionmaker: async_sessionmaker[AsyncSession],
    now: datetime | None = None,
    errors: int = 5,
) -> OutboxStatus:
    """Counts of the outbox, the age of the oldest undelivered row and the latest errors."""
    now = now or utcnow()

    def count(where: ColumnElement[bool]) -> Any:
        return select(func.count()).select_from(Outbox).where(where).scalar_subquery()

    async with sessionmaker() as session:
        row = (
            await session.execute(
                select(
                    count(_pending()),
                    count(_due(now)),
                    count(Outbox.delivered_at.is_not(None)),
                    count(and_(Outbox.parked.is_(True), Outbox.delivered_at.is_(None))),
                    select(func.min(Outbox.created_at)).where(_pending()).scalar_subquery(),
                )
            )
        ).one()
        failed = await session.execute(
            select(
                Outbox.idempotency_key,
                Outbox.attempts,
                Outbox.parked,
                Outbox.last_error,
                Outbox.last_attempt_at,
            )
            .where(Outbox.delivered_at.is_(None), Outbox.last_error.is_not(None))
            .order_by(Outbox.last_attempt_at.desc())
            .limit(errors)
        )
        last_errors = [FailedDelivery(r[0], r[1], r[2], r[3] or "", r[4]) for r in failed]
    oldest = row[4]
    if oldest is not None and oldest.tzinfo is None:  # a bare MIN() skips the UTC type
        oldest = oldest.replace(tzinfo=now.tzinfo)
    return OutboxStatus(
        pending=row[0],
        due_now=row[1],
        delivered=row[2],
        parked=row[3],
        oldest_pending_age_s=None if oldest is None else (now - oldest).total_seconds(),
        last_errors=last_errors,
    )


async def retry_now(
    sessionmaker: async_sessionmaker[AsyncSession],
    call_sid: str | None = None,
    now: datetime | None = None,
) -> int:
    """Make undelivered rows (parked or waiting) due now, with a fresh attempt budget.

    ``call_sid=None`` means every undelivered row. Returns how many rows were reset.
    """
    where: list[ColumnElement[bool]] = [Outbox.delivered_at.is_(None)]
    if call_sid is not None:
        where.append(Outbox.idempotency_key == call_sid)
    async with sessionmaker.begin() as session:
        result = await session.execute(
            update(Outbox)
            .where(*where)
            .values(parked=False, attempts=0, next_attempt_at=now or utcnow())
            .returning(Outbox.id)
            .execution_options(synchronize_session=False)
        )
        return len(result.all())
