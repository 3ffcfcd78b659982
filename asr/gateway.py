"""The audio ingest gateway: WebSocket ``/v1/ingest`` (protocol: :mod:`streaming.ingest`) → Kafka.

Per connection: a start message (validated, caller number masked and hashed), binary frames of
interleaved audio split into one :class:`~streaming.events.AudioFrame` per channel with a
gap-free ``seq`` and a call-relative ``capture_ts``, then an end message. Frames keep the
codec they arrived in (μ-law/A-law stay one byte a sample on Kafka; the workers decode), so
``call.audio`` carries half the bytes of PCM16 for telephone audio.

Errors follow the protocol: an ``IngestError`` with a code, then a close (1003 unsupported
data, 1008 policy, 1013 busy, 1011 internal). A call that stops sending for
``idle_timeout_s`` is ended with ``CallEnded(reason=idle_timeout)``; a connection that drops
without an end message gets ``CallEnded(reason=error)``.

Authentication: the start message carries a start token (:func:`streaming.ingest.sign_start`,
HMAC-SHA256 under the site's ``ingest_secret``) over the call's identity; a start without a
valid token for exactly those fields gets ``unauthorized`` (close 1008) and nothing is published.

Admission control: a connection takes one of ``max_calls`` slots when it is accepted (before its
start message) and frees it on every way out; with none free it gets ``busy``. Audio is paced
against the wall clock: a call more than ``max_ahead_s`` of audio ahead of the time since its
start is ended (``too_fast``, ``CallEnded(reason=too_fast)``), and one longer than ``max_call_s``
is ended (``max_duration``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from streaming import metrics
from streaming.callers import caller_key, mask_caller_number  # the console derives the same key to erase
from streaming.events import CallEnded, CallStarted, EndReason, utcnow
from streaming.health import broker_reachable, health_router
from streaming.ingest import (
    INGEST_PATH,
    IngestAccepted,
    IngestClosed,
    IngestEnd,
    IngestError,
    StartTokenError,
    verify_start,
)
from streaming.kafka import EventProducer
from streaming.settings import KafkaSettings

from .session import CallSession, ProtocolError, parse_start
from .settings import AsrSettings

log = logging.getLogger("dasan.asr.gateway")

CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011
CLOSE_BUSY = 1013

_CLOSE_FOR = {
    "bad_start": CLOSE_POLICY,
    "bad_frame": CLOSE_UNSUPPORTED,
    "unknown_codec": CLOSE_UNSUPPORTED,
    "oversized": CLOSE_POLICY,
    "out_of_order": CLOSE_POLICY,
    "busy": CLOSE_BUSY,
    "idle_timeout": CLOSE_POLICY,
    "internal": CLOSE_INTERNAL,
    "unauthorized": CLOSE_POLICY,
    "too_fast": CLOSE_POLICY,
    "max_duration": CLOSE_POLICY,
}


# --------------------------------------------------------------------------- app


class Gateway:
    def __init__(
        self, settings: AsrSettings, kafka: KafkaSettings, producer: EventProducer | None = None
    ) -> None:
        self.settings = settings
        self.kafka = kafka
        self._producer = producer
        self.calls: dict[str, CallSession] = {}
        self.accepted = 0
        self.rejected_busy = 0
        self.slots = 0  # connections holding an admission slot (accepted, start message or not)

    @property
    def producer(self) -> EventProducer:
        if self._producer is None:
            self._producer = EventProducer(self.kafka)
        return self._producer

    async def _send_event(self, event: Any, wait: bool = False) -> None:
        fut = self.producer.send(event)
        if wait:
            await asyncio.to_thread(fut.get, 15)

    async def handle(self, ws: WebSocket) -> None:
        await ws.accept()
        # Check and take the slot with no await in between: parallel connects cannot all pass.
        if self.slots >= self.settings.max_calls:
            self.rejected_busy += 1
            metrics.INGEST_REFUSED.labels(reason="busy").inc()
            await self._error(
                ws, "busy", f"gateway at capacity ({self.settings.max_calls} calls); try another"
            )
            return
        self.slots += 1
        try:
            await self._handle(ws)
        finally:
            self.slots -= 1

    async def _handle(self, ws: WebSocket) -> None:
        try:
            msg = await asyncio.wait_for(ws.receive(), timeout=self.settings.start_timeout_s)
        except TimeoutError:
            await self._error(ws, "bad_start", f"no start message within {self.settings.start_timeout_s:g} s")
            return
        if msg["type"] == "websocket.disconnect":
            return
        if msg.get("bytes") is not None:
            await self._error(ws, "out_of_order", "audio before the start message")
            return
        try:
            start = parse_start(msg.get("text") or "")
        except ProtocolError as exc:
            await self._error(ws, exc.code, exc.message)
            return
        try:
            verify_start(
                self.settings.ingest_secrets(),
                start.token,
                start.call_id,
                start.counselor_id,
                start.team,
                start.caller_number,
                max_ttl_s=self.settings.ingest_token_max_ttl_s,
            )
        except StartTokenError as exc:
            # The call id only: never the caller number or the token.
            log.warning(
                "start refused: %s", exc.reason, extra={"call_id": start.call_id, "reason": exc.reason}
            )
            metrics.INGEST_REFUSED.labels(reason=f"unauthorized_{exc.reason}").inc()
            await self._error(ws, "unauthorized", exc.message)
            return
        if start.call_id in self.calls:
            await self._error(ws, "bad_start", f"call {start.call_id} is already streaming to this gateway")
            return
        session = CallSession(start, self.settings.max_frame_ms)
        self.calls[start.call_id] = session
        metrics.ACTIVE_CALLS.labels(service="asr-gateway").set(len(self.calls))
        extra = {"call_id": start.call_id}
        try:
            secret = self.settings.caller_key_secret.get_secret_value()
            started = CallStarted(
                call_id=start.call_id,
                counselor_id=start.counselor_id,
                team=start.team,
                queue=start.queue,
                category=start.category,
                caller_number_masked=mask_caller_number(start.caller_number) if start.caller_number else None,
                caller_key=caller_key(start.caller_number, secret) if start.caller_number else None,
                channels=session.channels,
            )
            try:
                await self._send_event(started, wait=True)
            except Exception as exc:
                log.exception("cannot publish call start", extra=extra)
                await self._error(ws, "internal", f"cannot publish to Kafka: {exc!r}"[:300])
                return
            # The wall clock of the call starts when it is accepted (pacing and max_call_s).
            session.started_mono = time.monotonic()
            self.accepted += 1
            log.info("call accepted", extra={**extra, "codec": start.codec.value, "rate": start.sample_rate})
            await ws.send_text(
                IngestAccepted(
                    call_id=start.call_id, max_frame_ms=self.settings.max_frame_ms
                ).model_dump_json()
            )
            await self._stream(ws, session)
        finally:
            self.calls.pop(start.call_id, None)
            metrics.ACTIVE_CALLS.labels(service="asr-gateway").set(len(self.calls))

    async def _stream(self, ws: WebSocket, session: CallSession) -> None:
        call_id = session.start.call_id
        extra = {"call_id": call_id}
        max_call_s = self.settings.max_call_s
        max_ahead_s = self.settings.max_ahead_s
        while True:
            remaining = max_call_s - (time.monotonic() - session.started_mono)
            # Which limit a timeout is: decided before waiting (a timer may fire a hair early).
            at_max_call = remaining <= self.settings.idle_timeout_s
            try:
                if remaining <= 0:
                    raise TimeoutError
                msg = await asyncio.wait_for(
                    ws.receive(), timeout=min(self.settings.idle_timeout_s, remaining)
                )
            except TimeoutError:
                if at_max_call:
                    log.warning("call reached max_call_s, ending it", extra=extra)
                    metrics.INGEST_REFUSED.labels(reason="max_duration").inc()
                    await self._end(session, EndReason.max_duration, f"call longer than {max_call_s:g} s")
                    await self._error(ws, "max_duration", f"calls end after {max_call_s:g} s")
                    return
                log.warning("call idle, ending it", extra=extra)
                await self._end(
                    session, EndReason.idle_timeout, f"no audio for {self.settings.idle_timeout_s:g} s"
                )
                await self._error(
                    ws, "idle_timeout", f"no message for {self.settings.idle_timeout_s:g} s; call ended"
                )
                return
            if msg["type"] == "websocket.disconnect":
                log.warning("client disconnected without an end message", extra=extra)
                await self._end(session, EndReason.error, "connection closed without an end message")
                return
            data = msg.get("bytes")
            if data is not None:
                try:
                    frames = session.split(data)
                    ahead = session.audio_s - (time.monotonic() - session.started_mono)
                    too_fast = bool(max_ahead_s and ahead > max_ahead_s)
                    if not too_fast:  # audio beyond the pace never reaches call.audio
                        for f in frames:
                            await self._send_event(f)
                except ProtocolError as exc:
                    metrics.ERRORS.labels(service="asr-gateway", kind=exc.code).inc()
                    await self._end(session, EndReason.error, f"{exc.code}: {exc.message}")
                    await self._error(ws, exc.code, exc.message)
                    return
                except Exception as exc:
                    log.exception("cannot publish audio", extra=extra)
                    await self._end(session, EndReason.error, "internal error")
                    await self._error(ws, "internal", repr(exc)[:300])
                    return
                if too_fast:
                    detail = f"audio is {ahead:.1f} s ahead of real time (limit {max_ahead_s:g} s)"
                    log.warning("call streams faster than real time, ending it", extra=extra)
                    metrics.INGEST_REFUSED.labels(reason="too_fast").inc()
                    await self._end(session, EndReason.too_fast, detail)
                    await self._error(ws, "too_fast", detail)
                    return
                continue
            text = msg.get("text") or ""
            try:
                data_json = json.loads(text)
            except ValueError:
                data_json = None
            kind = data_json.get("type") if isinstance(data_json, dict) else None
            if kind == "start":
                await self._end(session, EndReason.error, "second start message")
                await self._error(ws, "out_of_order", "start message after the call started")
                return
            try:
                end = IngestEnd.model_validate(data_json)
            except ValidationError:
                await self._end(session, EndReason.error, "bad control message")
                await self._error(ws, "bad_frame", f"unexpected text message: {text[:80]!r}")
                return
            reason = EndReason.hangup if end.reason == "hangup" else EndReason.error
            await self._end(session, reason, None)
            await ws.send_text(
                IngestClosed(
                    call_id=call_id, frames=session.frames, audio_s=round(session.audio_s, 3)
                ).model_dump_json()
            )
            await ws.close(CLOSE_NORMAL)
            log.info("call closed", extra={**extra, "frames": session.frames, "audio_s": session.audio_s})
            return

    async def _end(self, session: CallSession, reason: EndReason, detail: str | None) -> None:
        ended = CallEnded(
            call_id=session.start.call_id,
            ended_at=utcnow(),
            reason=reason,
            detail=detail,
            duration_s=round(session.audio_s, 3),
        )
        try:
            await self._send_event(ended, wait=True)
        except Exception:
            log.exception("cannot publish call end", extra={"call_id": session.start.call_id})

    async def _error(self, ws: WebSocket, code: str, message: str) -> None:
        with contextlib.suppress(Exception):
            await ws.send_text(IngestError(code=code, message=message).model_dump_json())
            await ws.close(_CLOSE_FOR.get(code, CLOSE_POLICY), reason=code)

    async def shutdown(self) -> None:
        for session in list(self.calls.values()):
            await self._end(session, EndReason.gateway_shutdown, "gateway stopped")
        if self._producer is not None:
            await asyncio.to_thread(self._producer.close)

    def ready(self) -> bool:
        return broker_reachable(self.kafka)


def create_gateway_app(
    settings: AsrSettings | None = None,
    kafka: KafkaSettings | None = None,
    producer: EventProducer | None = None,
) -> FastAPI:
    gw = Gateway(settings or AsrSettings(), kafka or KafkaSettings(), producer)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await gw.shutdown()

    app = FastAPI(title="Dasan ASR gateway", lifespan=lifespan)
    app.state.gateway = gw

    @app.websocket(INGEST_PATH)
    async def ingest(ws: WebSocket) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            await gw.handle(ws)

    def readiness() -> tuple[bool, dict[str, Any]]:
        ok = gw.ready()
        busy = gw.slots >= gw.settings.max_calls
        return ok and not busy, {
            "broker": ok,
            "calls": len(gw.calls),
            "connections": gw.slots,
            "max_calls": gw.settings.max_calls,
        }

    app.include_router(health_router(readiness, alive=lambda: {"calls": len(gw.calls)}))
    return app
