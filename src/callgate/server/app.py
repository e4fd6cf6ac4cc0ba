"""The web app: Twilio's voice webhook, the media WebSocket, and health.

- ``POST /twilio/voice`` checks the signature and answers with TwiML that connects the
  call to ``wss://PUBLIC_URL/twilio/media``. It also starts opening the Realtime
  connection for that CallSid, so the greeting does not wait for a cold connection.
- ``WS /twilio/media`` checks the signature of the upgrade and runs a :class:`CallSession`.
- ``GET /healthz`` reports liveness and the number of live calls.

On shutdown (SIGTERM under uvicorn), live calls are closed, so their records are complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import socket
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request, Response, WebSocket
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.websockets import WebSocketDisconnect

from callgate.audio.gate import compile_gate_kernels
from callgate.config import Settings
from callgate.server.backends import (
    LinkOpener,
    call_form,
    call_gate,
    call_tools,
    describe,
    pipeline_opener,
    realtime_opener,
    speech_engines,
)
from callgate.server.call import CallSession, CallStats, ModelLink
from callgate.server.logs import call_context
from callgate.server.metrics import BridgeMetrics
from callgate.server.recorder import CallRecorder
from callgate.speech import warm_up
from callgate.storage.db import make_engine, make_sessionmaker, migrate
from callgate.storage.outbox import OutboxWorker
from callgate.storage.repository import CallRepository
from callgate.storage.store_process import StoreProcess
from callgate.storage.writers import InlineStore, StoreWriter
from callgate.telephony.call_control import TwilioCallControl
from callgate.telephony.signature import expected_url, validate_webhook, validate_websocket
from callgate.telephony.twiml import (
    connect_stream_twiml,
    dial_twiml,
    media_stream_url,
    say_and_hangup_twiml,
)

log = logging.getLogger("callgate.server")

PREWARM_TTL_S = 30.0
"""How long a model connection opened by the voice webhook waits for its media stream."""


@dataclass
class StoreState:
    """The call store and the CRM outbox worker, opened with the app and closed with it."""

    repository: CallRepository | None = None
    """For reads (the API); calls are written through :attr:`writes`."""
    writes: StoreWriter | None = None
    _engine: AsyncEngine | None = None
    _worker: asyncio.Task[None] | None = None
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _http: httpx.AsyncClient | None = None

    async def open(self, settings: Settings) -> None:
        """Migrate and open the store; start delivering to the CRM if one is configured."""
        self._engine = make_engine(settings.database_url)
        await migrate(self._engine)
        sessions = make_sessionmaker(self._engine)
        self.repository = CallRepository(sessions)
        self.writes = (
            StoreProcess(settings.database_url)
            if settings.store_process
            else InlineStore(self.repository)
        )
        await self.writes.start()
        if settings.crm_webhook_url:
            self._http = httpx.AsyncClient()
            worker = OutboxWorker(
                sessions,
                settings.crm_webhook_url,
                settings.crm_hmac_secret.get_secret_value(),
                self._http,
                settings.crm_max_attempts,
            )
            self._worker = asyncio.create_task(worker.run_forever(self._stop))

    async def close(self) -> None:
        self._stop.set()
        if self._worker is not None:
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._http is not None:
            await self._http.aclose()
        if self.writes is not None:
            await self.writes.stop()
        if self._engine is not None:
            await self._engine.dispose()


def _jsonable(value: Any) -> Any:
    """Datetimes to ISO text, for JSON responses."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


@dataclass
class CallRegistry:
    """Live calls and Realtime connections opened ahead of their media stream."""

    sessions: set[CallSession] = field(default_factory=set)
    prewarmed: dict[str, asyncio.Task[ModelLink]] = field(default_factory=dict)
    finished: deque[CallStats] = field(default_factory=lambda: deque(maxlen=1000))
    """The most recent finished calls (their durable record is the store's job)."""


def _twilio_control(settings: Settings) -> TwilioCallControl | None:
    """Twilio's REST client for live-call updates, if the credentials are set."""
    token = settings.twilio_auth_token.get_secret_value()
    if not (settings.twilio_account_sid and token):
        return None
    return TwilioCallControl(settings.twilio_account_sid, token)


def twilio_apology(settings: Settings) -> Callable[[str], Awaitable[None]] | None:
    """Say APOLOGY_TEXT and hang up through Twilio's REST API, if credentials are set."""
    control = _twilio_control(settings)
    if control is None:
        return None
    twiml = say_and_hangup_twiml(settings.apology_text)

    async def apologize(call_sid: str) -> None:
        await asyncio.to_thread(control.say_and_hang_up, call_sid, twiml)

    return apologize


def twilio_hang_up(settings: Settings) -> Callable[[str], Awaitable[None]] | None:
    """Hang up a live call through Twilio's REST API (status=completed)."""
    control = _twilio_control(settings)
    if control is None:
        return None

    async def hang_up(call_sid: str) -> None:
        await asyncio.to_thread(control.hang_up, call_sid)

    return hang_up


def twilio_transfer(settings: Settings) -> Callable[[str, str], Awaitable[None]] | None:
    """Connect a live call to another number through Twilio's REST API (<Dial>)."""
    control = _twilio_control(settings)
    if control is None:
        return None

    async def transfer(call_sid: str, number: str) -> None:
        await asyncio.to_thread(control.say_and_hang_up, call_sid, dial_twiml(number))

    return transfer


def create_app(
    settings: Settings,
    open_link: LinkOpener | None = None,
    apologize: Callable[[str], Awaitable[None]] | None = None,
    transfer: Callable[[str, str], Awaitable[None]] | None = None,
    hang_up: Callable[[str], Awaitable[None]] | None = None,
) -> FastAPI:
    """Build the app for these settings; tests may pass their own opener and Twilio actions.

    Raises :class:`~callgate.config.ConfigError` for settings the backends cannot serve
    (a bad form file, a language the local speech-to-text cannot do).
    """
    registry = CallRegistry()
    lead_form = call_form(settings)
    engines = None
    if open_link is None:
        if settings.realtime_path:
            open_link = realtime_opener(settings)
        else:
            engines = speech_engines(settings)
            open_link = pipeline_opener(settings, lead_form, engines)
    log.info("%s", describe(settings))
    if hang_up is None:
        hang_up = twilio_hang_up(settings)
    if apologize is None:
        apologize = twilio_apology(settings)
    if transfer is None:
        transfer = twilio_transfer(settings)

    async def close_calls() -> None:
        if registry.sessions:
            log.info("shutting down: closing %d live call(s)", len(registry.sessions))
        await asyncio.gather(
            *(s.end("server shutting down", code=1001) for s in list(registry.sessions)),
            return_exceptions=True,
        )
        for task in registry.prewarmed.values():
            task.cancel()

    state = StoreState()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await state.open(settings)
        # The gate's compiled kernels too: compiling on a call's first frames would stall
        # that call's audio for a couple of seconds on a new machine.
        await asyncio.to_thread(compile_gate_kernels)
        if engines is not None:
            # Load the speech models now, so the first caller does not wait for them.
            await asyncio.to_thread(warm_up, engines.stt, engines.tts)
        try:
            yield
        finally:
            await close_calls()  # normally done already by CallgateServer.shutdown
            await state.close()

    app = FastAPI(title="callgate", lifespan=lifespan)
    metrics = BridgeMetrics()
    app.state.registry = registry
    app.state.metrics = metrics
    app.state.store = state
    app.state.close_calls = close_calls
    app.state.settings = settings

    async def _open(call_sid: str) -> ModelLink:
        return await open_link(settings, call_sid)

    async def _expire(call_sid: str) -> None:
        """Close a pre-opened connection whose media stream never came."""
        task = registry.prewarmed.pop(call_sid, None)
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(BaseException):
            link = await task
            await link.close()
        log.info("closed an unused pre-opened model connection for %s", call_sid)

    async def link_for(call_sid: str) -> ModelLink:
        task = registry.prewarmed.pop(call_sid, None)
        if task is not None:
            with contextlib.suppress(Exception):
                return await task
            log.warning("prewarmed model connection failed; opening a new one")
        return await open_link(settings, call_sid)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    def authorized(request: Request) -> JSONResponse | None:
        token = settings.api_token.get_secret_value()
        if not token:
            return JSONResponse({"error": "the call API is off: set API_TOKEN"}, status_code=403)
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return JSONResponse({"error": "missing or wrong bearer token"}, status_code=401)
        if state.repository is None:
            return JSONResponse({"error": "the call store is not open"}, status_code=503)
        return None

    @app.get("/calls", response_model=None)
    async def list_calls(request: Request, limit: int = 50, offset: int = 0) -> Response:
        if (refusal := authorized(request)) is not None:
            return refusal
        assert state.repository is not None
        calls = await state.repository.list_calls(
            limit=min(max(limit, 1), 500), offset=max(offset, 0)
        )
        return JSONResponse([_jsonable(asdict(c)) for c in calls])

    @app.get("/calls/{call_sid}", response_model=None)
    async def get_call(request: Request, call_sid: str) -> Response:
        if (refusal := authorized(request)) is not None:
            return refusal
        assert state.repository is not None
        record = await state.repository.get_call(call_sid)
        if record is None:
            return JSONResponse({"error": f"no call {call_sid}"}, status_code=404)
        return JSONResponse(record.to_json())

    @app.get("/healthz")
    async def healthz() -> dict[str, object]:
        return {"status": "ok", "live_calls": len(registry.sessions)}

    @app.post("/twilio/voice")
    async def voice(request: Request) -> Response:
        form = {k: str(v) for k, v in (await request.form()).items()}
        if not _signed(settings, request, form):
            return JSONResponse({"error": "invalid Twilio signature"}, status_code=403)
        call_sid = form.get("CallSid", "")
        if settings.realtime_path and call_sid and call_sid not in registry.prewarmed:
            registry.prewarmed[call_sid] = asyncio.create_task(_open(call_sid))
            asyncio.get_running_loop().call_later(
                PREWARM_TTL_S, lambda: asyncio.ensure_future(_expire(call_sid))
            )
        parameters = {k: form[k] for k in ("From", "To", "CallSid") if form.get(k)}
        twiml = connect_stream_twiml(media_stream_url(settings.public_url), parameters)
        return Response(content=twiml, media_type="application/xml")

    @app.websocket("/twilio/media")
    async def media(websocket: WebSocket) -> None:
        if not _signed_websocket(settings, websocket):
            log.warning("media WebSocket rejected: invalid Twilio signature")
            await websocket.close(code=1008)
            return
        await websocket.accept()
        recorder = CallRecorder(state.writes, settings) if state.writes else None
        session = CallSession(
            settings,
            websocket,
            link_for,
            metrics=metrics,
            apologize=apologize,
            recorder=recorder,
            transfer=transfer,
            hang_up=hang_up,
            tools=call_tools(settings, lead_form),
            gate=call_gate(settings),
            greet=settings.realtime_path and settings.agent_greets_first,
        )
        registry.sessions.add(session)
        metrics.live_calls.inc()
        try:
            with call_context("-"):
                stats = await session.run()
            registry.finished.append(stats)
        finally:
            metrics.live_calls.dec()
            registry.sessions.discard(session)
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await websocket.close()

    return app


class CallgateServer(uvicorn.Server):
    """uvicorn, but live calls are ended by callgate before uvicorn drops their sockets.

    On SIGTERM uvicorn closes every WebSocket with 1012 and only then runs the lifespan
    shutdown, by which time the calls are gone. Ending them first lets each call close
    with 1001 and record "server shutting down" as its end reason.
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # config.app is the FastAPI instance callgate passed in (not an import string).
        close_calls = getattr(getattr(self.config.app, "state", None), "close_calls", None)
        if close_calls is not None:
            await close_calls()
        await super().shutdown(sockets)


def _signed(settings: Settings, request: Request, form: dict[str, str]) -> bool:
    if not settings.twilio_validate_signatures:
        return True
    url = expected_url(settings.public_url, request.url.path, request.url.query)
    signature = request.headers.get("X-Twilio-Signature", "")
    ok = validate_webhook(settings.twilio_auth_token.get_secret_value(), url, form, signature)
    if not ok:
        log.warning("voice webhook rejected: invalid or missing X-Twilio-Signature")
    return ok


def _signed_websocket(settings: Settings, websocket: WebSocket) -> bool:
    if not settings.twilio_validate_signatures:
        return True
    url = expected_url(settings.public_url, websocket.url.path, websocket.url.query, websocket=True)
    signature = websocket.headers.get("X-Twilio-Signature", "")
    return validate_websocket(settings.twilio_auth_token.get_secret_value(), url, signature)
